"""``dlsuite serve`` over HTTP on loopback: TF Serving's REST shape for every task, hot reload,
bad requests, and the model card each export carries."""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from dlsuite import model_card, serving

TASKS = ("image_classification", "sentiment", "speech", "anomaly", "fraud")
TEXTS = ["the battery is great", "the screen broke after a week, not worth it", "très bien 😀"]


@pytest.fixture(scope="module")
def model_root(task_run, tmp_path_factory) -> Path:
    """One export root holding each task's fast-run export as version 1 (symlinked, read-only)."""
    root = tmp_path_factory.mktemp("model_root")
    for task in TASKS:
        (root / task).mkdir()
        (root / task / "1").symlink_to(Path(task_run(task).export_dir).resolve())
    return root


@pytest.fixture(scope="module")
def server(model_root):
    with serving.ModelServer(model_root, port=0, max_body_bytes=256 * 1024).start() as running:
        yield running


@pytest.fixture(scope="module")
def direct(model_root):
    """task -> the export loaded with tf.saved_model.load, apart from the server's copy."""
    return {task: tf.saved_model.load(str(model_root / task / "1")) for task in TASKS}


def request(server, method: str, path: str, body=None, raw: bytes | None = None, conn=None) -> tuple[int, dict]:
    """One request; ``conn`` reuses a keep-alive connection. Returns (status, JSON answer)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection(server.host, server.port, timeout=60)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    answer = json.loads(response.read())
    if own:
        conn.close()
    return response.status, answer


def example_inputs(task: str, specs: dict, metadata: dict, batch: int = 3) -> dict[str, np.ndarray]:
    """Inputs for one signature: real encodings for bytes inputs, seeded values for the rest."""
    rng = np.random.default_rng(0)
    out = {}
    for name, spec in specs.items():
        shape = [batch] + [d if d is not None else 4000 for d in spec.shape.as_list()[1:]]
        if name == "image_bytes":
            pixels = rng.integers(0, 256, (batch, *metadata["input_shape"]), dtype=np.uint8)
            out[name] = np.array([tf.io.encode_png(p).numpy() for p in pixels], dtype=object)
        elif name == "wav_bytes":
            clips = rng.uniform(-0.5, 0.5, (batch, 6000, 1)).astype(np.float32)
            out[name] = np.array([tf.audio.encode_wav(c, metadata["sample_rate"]).numpy() for c in clips], dtype=object)
        elif spec.dtype == tf.string and task == "sentiment":
            out[name] = np.array([t.encode() for t in TEXTS[:batch]], dtype=object)
        elif spec.dtype == tf.string:
            out[name] = rng.choice(np.array([b"a", b"web", b"0", b"1", b"grocery"], dtype=object), size=shape)
        elif spec.dtype == tf.uint8:
            out[name] = rng.integers(0, 256, shape, dtype=np.uint8)
        else:
            out[name] = rng.normal(0.0, 1.0, shape).astype(spec.dtype.as_numpy_dtype)
    return out


def as_json(array: np.ndarray):
    """An input array in the request's JSON: bytes as {"b64": ...}, numbers as lists."""
    if array.dtype == object:
        return [{"b64": base64.b64encode(v).decode()} for v in array.tolist()]
    return array.tolist()


def assert_outputs_equal(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for name, expected in want.items():
        expected = expected.numpy()
        if expected.dtype == object:
            assert got[name] == [v.decode() for v in expected.tolist()], name
        elif expected.dtype.kind == "f":
            np.testing.assert_allclose(np.asarray(got[name], dtype=expected.dtype), expected, rtol=1e-6, atol=1e-7)
        else:
            np.testing.assert_array_equal(np.asarray(got[name]), expected)


@pytest.mark.parametrize("task", TASKS)
def test_status_and_metadata_name_every_signature(server, direct, task):
    status, answer = request(server, "GET", f"/v1/models/{task}")
    assert status == 200
    assert answer == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]}
    status, answer = request(server, "GET", f"/v1/models/{task}/versions/1/metadata")
    assert status == 200
    assert answer["model_spec"] == {"name": task, "signature_name": "", "version": "1"}
    defs = answer["metadata"]["signature_def"]["signature_def"]
    for name, fn in direct[task].signatures.items():
        inputs = fn.structured_input_signature[1]
        assert sorted(defs[name]["inputs"]) == sorted(inputs)
        for key, spec in inputs.items():
            assert defs[name]["inputs"][key]["dtype"] == "DT_" + spec.dtype.name.upper().replace("FLOAT32", "FLOAT")
        assert sorted(defs[name]["outputs"]) == sorted(fn.structured_outputs)
        assert defs[name]["method_name"] == "tensorflow/serving/predict"


@pytest.mark.parametrize("task", TASKS)
def test_predict_rows_and_columns_equal_the_savedmodel(server, direct, model_root, task):
    metadata = json.loads((model_root / task / "1" / "assets.extra" / "dlsuite_metadata.json").read_text())
    for signature, fn in direct[task].signatures.items():
        specs = fn.structured_input_signature[1]
        inputs = example_inputs(task, specs, metadata)
        want = fn(**{k: tf.constant(v, dtype=specs[k].dtype) for k, v in inputs.items()})
        path = f"/v1/models/{task}:predict"

        columns = {k: as_json(v) for k, v in inputs.items()}
        status, answer = request(server, "POST", path, {"signature_name": signature, "inputs": columns})
        assert status == 200, answer
        got = answer["outputs"] if len(want) > 1 else {next(iter(want)): answer["outputs"]}
        assert_outputs_equal(got, want)

        names = list(columns)
        rows = [{k: columns[k][i] for k in names} if len(names) > 1 else columns[names[0]][i] for i in range(3)]
        status, answer = request(server, "POST", path, {"signature_name": signature, "instances": rows})
        assert status == 200, answer
        assert len(answer["predictions"]) == 3
        assert_outputs_equal({k: [p[k] for p in answer["predictions"]] for k in want}, want)


def test_new_version_is_served_without_restart_and_the_old_stays_callable(task_run, tmp_path):
    source = Path(task_run("anomaly").export_dir)
    root = tmp_path / "models"
    shutil.copytree(source, root / "anomaly" / "1")
    window = np.random.default_rng(1).normal(size=(2, 32, 4)).tolist()
    with serving.ModelServer(root, port=0, poll_seconds=0.1).start() as server:
        # An export being written: a full SavedModel in a hidden temporary folder.
        partial = root / "anomaly" / ".tmp-0123abcd"
        shutil.copytree(source, partial)
        time.sleep(0.5)
        assert [v["version"] for v in request(server, "GET", "/v1/models/anomaly")[1]["model_version_status"]] == ["1"]
        assert request(server, "GET", "/v1/models/anomaly/versions/2")[0] == 404

        os.rename(partial, root / "anomaly" / "2")  # what dlsuite.export does when the version is complete
        deadline = time.monotonic() + 60
        while request(server, "GET", "/v1/models/anomaly/metadata")[1]["model_spec"]["version"] != "2":
            assert time.monotonic() < deadline, "version 2 was not picked up"
            time.sleep(0.1)
        status = request(server, "GET", "/v1/models/anomaly")[1]["model_version_status"]
        assert [(v["version"], v["state"]) for v in status] == [("2", "AVAILABLE"), ("1", "AVAILABLE")]

        newest = request(server, "POST", "/v1/models/anomaly:predict", {"instances": window})
        old = request(server, "POST", "/v1/models/anomaly/versions/1:predict", {"instances": window})
        assert newest[0] == old[0] == 200
        assert newest[1] == old[1]  # the same weights under two version numbers

        # A version that does not load is reported, and the one before it goes on serving.
        broken = root / "anomaly" / ".tmp-broken"
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
        os.rename(broken, root / "anomaly" / "3")
        while request(server, "GET", "/v1/models/anomaly/versions/3")[1]["model_version_status"][0]["state"] != "END":
            assert time.monotonic() < deadline, "the broken version 3 was not reported"
            time.sleep(0.1)
        assert request(server, "POST", "/v1/models/anomaly:predict", {"instances": window}) == newest
        status, answer = request(server, "POST", "/v1/models/anomaly/versions/3:predict", {"instances": window})
        assert status == 503 and "version 3 of model 'anomaly' failed to load" in answer["error"]


def _fraud_row(model_root) -> dict:
    specs = tf.saved_model.load(str(model_root / "fraud" / "1")).signatures["serving_default"].structured_input_signature[1]
    return {k: "web" if s.dtype == tf.string else 1.0 for k, s in specs.items()}


def _bad_requests(model_root) -> list[tuple[str, str, object, int, str]]:
    image = [[[0]] * 8] * 8
    row = _fraud_row(model_root)
    without_amount = {k: v for k, v in row.items() if k != "amount"}
    return [
        ("POST", "/v1/models/nonexistent:predict", {"instances": [1]}, 404, "model 'nonexistent' not found"),
        ("GET", "/v1/models/anomaly/versions/9", None, 404, "has no version 9"),
        ("POST", "/v1/models/anomaly/versions/9:predict", {"instances": [1]}, 404, "has no version 9"),
        ("POST", "/v1/models/anomaly:predict", b'{"instances": [[1, 2]', 400, "not valid JSON"),
        ("POST", "/v1/models/anomaly:predict", {"instances": [[[0.0] * 4] * 31]}, 400, "has shape [1, 31, 4]"),
        ("POST", "/v1/models/anomaly:predict", {"instances": [[["x"] * 4] * 32]}, 400, "takes float32 numbers; got strings"),
        ("POST", "/v1/models/anomaly:predict", {"instances": [[[0.0] * 4] * 32, [[0.0] * 3] * 32]}, 400, "ragged"),
        ("POST", "/v1/models/image_classification:predict", {"instances": [[[[300]]] * 8] * 8}, 400, "in [0, 255]"),
        ("POST", "/v1/models/image_classification:predict", {"instances": [image], "signature_name": "nope"}, 400,
         "has no signature 'nope'"),
        ("POST", "/v1/models/fraud:predict", {"instances": [without_amount]}, 400, "missing input(s) 'amount'"),
        ("POST", "/v1/models/fraud:predict", {"inputs": {**{k: [v] for k, v in row.items()}, "extra": [1]}}, 400,
         "unknown input(s) 'extra'"),
        ("POST", "/v1/models/sentiment:predict", {"instances": [{"b64": "not base64!"}]}, 400, "bad base64"),
        ("POST", "/v1/models/sentiment:predict", {"instances": [3]}, 400, "takes strings"),
        ("POST", "/v1/models/image_classification:predict",
         {"signature_name": "classify_image_bytes", "instances": [{"b64": base64.b64encode(b"not an image").decode()}]},
         400, "Unknown image file format"),
        ("POST", "/v1/models/sentiment:predict", {"instances": ["a"], "inputs": ["a"]}, 400, "exactly one of"),
        ("POST", "/v1/models/sentiment:predict", {"instances": ["x" * 300_000]}, 413, "over the limit"),
        ("PUT", "/v1/models/sentiment", None, 405, "use GET"),
        ("GET", "/v2/models", None, 404, "no such endpoint"),
    ]


def test_bad_requests_get_a_4xx_that_says_why_and_the_server_keeps_serving(server, model_root):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)  # one keep-alive connection for all
    for method, path, body, want_status, want_text in _bad_requests(model_root):
        raw = body if isinstance(body, bytes) else None
        status, answer = request(server, method, path, None if raw else body, raw=raw, conn=conn)
        assert (status, list(answer)) == (want_status, ["error"]), (path, body if raw else "", answer)
        assert want_text in answer["error"], answer
        status, answer = request(server, "POST", "/v1/models/sentiment:predict", {"instances": TEXTS}, conn=conn)
        assert status == 200 and len(answer["predictions"]) == 3

    # A body far over the limit is not read at all: the answer comes after the headers alone.
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    conn.putrequest("POST", "/v1/models/sentiment:predict")
    conn.putheader("Content-Length", str(10**10))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413 and response.getheader("Connection") == "close"
    assert "10000000000 bytes is over the limit" in json.loads(response.read())["error"]

    # A body without Content-Length (chunked) is refused, not waited for.
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    conn.request("POST", "/v1/models/sentiment:predict", body=iter([b'{"instances": ["a"]}']),
                 encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
    response = conn.getresponse()
    assert response.status == 411 and "Content-Length" in json.loads(response.read())["error"]


@pytest.mark.parametrize("task", TASKS)
def test_model_card_names_the_signatures_and_its_example_request_works(server, model_root, task):
    export_dir = model_root / task / "1"
    card = (export_dir / "README.md").read_text()
    assert (export_dir / "assets.extra").is_dir()
    defs = serving.read_signature_defs(export_dir)
    for name, signature in defs.items():
        if name.startswith("__"):
            continue
        assert f"### `{name}`" in card
        for tensor in [*signature["inputs"], *signature["outputs"]]:
            assert f"| {tensor} |" in card
    assert f"curl -s -X POST http://localhost:8501/v1/models/{task}:predict" in card
    metadata = json.loads((export_dir / "assets.extra" / "dlsuite_metadata.json").read_text())
    if task in ("anomaly", "fraud"):
        assert f"## Threshold\n\n`{metadata['threshold']:.6g}`" in card
    else:
        assert "## Threshold" not in card
    for name in metadata.get("class_names", []):
        assert f"| {name} |" in card

    signature, body = model_card.example_request(defs)
    if body["instances"] == [{"b64": "<base64 of the file>"}]:
        return  # filled from a file by the card's shell line; the bytes signatures are tested above
    status, answer = request(server, "POST", f"/v1/models/{task}:predict", body)
    assert status == 200, answer


def test_cli_serve_prints_its_models_and_stops_on_ctrl_c(model_root):
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlsuite.cli", "serve", "--model-root", str(model_root), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    try:
        lines = []
        while not lines or not lines[-1].startswith("listening on"):
            line = proc.stdout.readline()
            assert line, f"dlsuite serve ended early: {proc.stderr.read()[-2000:]}"
            lines.append(line.strip())
        assert [line.split(":")[0] for line in lines[:-1]] == [f"model {t}" for t in sorted(TASKS)]
        assert all(line.endswith("versions 1; serving 1") for line in lines[:-1])
        host, port = lines[-1].split("http://")[1].split()[0].rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.request("GET", "/v1/models/speech")
        assert conn.getresponse().status == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert "stopped serving" in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
