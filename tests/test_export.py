"""Export: versions, atomicity, TensorFlow-only reload, signatures, CLI predict."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import run_cli
from dlsuite import DlsuiteError, cli, export
from dlsuite.tasks import get as get_task


def test_export_reloads_in_a_tensorflow_only_process_and_matches(digits_run):
    assert digits_run.export_dir.endswith(os.path.join("image_classification", "1"))
    task = get_task("image_classification")
    metadata = export.load_metadata(digits_run.export_dir)
    from dlsuite.data import images

    splits = images.digits(val_fraction=0.1, test_fraction=0.2, seed=0)
    inputs = task.verification_inputs(splits, metadata)
    expected = export.run_endpoints(task.serving_endpoints(digits_run.model, metadata), inputs)
    reloaded = export.reload_outputs(digits_run.export_dir, inputs)
    assert not [m for m in reloaded["modules"] if m.startswith("dlsuite")]
    assert export.compare(expected, reloaded["outputs"]) < 1e-5
    out = reloaded["outputs"]
    # Raw uint8 pixels and the same images as PNG bytes give the same answer.
    np.testing.assert_allclose(out["serving_default"]["probabilities"], out["classify_image_bytes"]["probabilities"], atol=1e-6)
    assert out["serving_default"]["class_name"][0].decode() in metadata["class_names"]
    # ... and the in-process Keras model agrees with the served class ids.
    keras_ids = digits_run.model.predict(inputs["serving_default"]["images"].astype("float32"), verbose=0).argmax(1)
    np.testing.assert_array_equal(keras_ids, out["serving_default"]["class_id"])


def test_the_reload_process_is_reused_reports_failures_and_restarts(digits_run, tmp_path):
    metadata = export.load_metadata(digits_run.export_dir)
    pixels = np.zeros((2, *metadata["input_shape"]), np.uint8)
    inputs = {"serving_default": {"images": pixels}}
    first = export.reload_outputs(digits_run.export_dir, inputs)["outputs"]
    checker = export._CHECKER
    pid = checker._proc.pid
    # A folder that is no SavedModel: the failure and TensorFlow's reason, and the process lives on.
    with pytest.raises(DlsuiteError, match=r"(?s)TensorFlow alone failed.*SavedModel"):
        export.reload_outputs(tmp_path, inputs)
    again = export.reload_outputs(digits_run.export_dir, inputs)["outputs"]
    assert checker._proc.pid == pid
    np.testing.assert_array_equal(again["serving_default"]["probabilities"], first["serving_default"]["probabilities"])
    # A killed process is replaced at the next check.
    checker._proc.kill()
    checker._proc.wait()
    export.reload_outputs(digits_run.export_dir, inputs)
    assert checker._proc.pid != pid


def test_metadata_records_labels_input_spec_metrics_version(digits_run):
    meta = export.load_metadata(digits_run.export_dir)
    assert meta["task"] == "image_classification"
    assert meta["class_names"] == [str(d) for d in range(10)]
    assert meta["input_shape"] == [8, 8, 1]
    assert 0 < meta["metrics"]["accuracy"] <= 1
    assert meta["dlsuite_version"] and meta["tensorflow_version"] == tf.__version__


def test_saved_model_cli_lists_both_signatures(digits_run):
    cli = Path(sys.executable).with_name("saved_model_cli")
    proc = subprocess.run([str(cli), "show", "--dir", digits_run.export_dir, "--all"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for text in ("signature_def['serving_default']", "signature_def['classify_image_bytes']",
                 "outputs['probabilities']", "outputs['class_id']", "outputs['class_name']", "dtype: DT_UINT8",
                 "dtype: DT_STRING"):
        assert text in proc.stdout, text


def test_versions_increase_and_nothing_is_overwritten(digits_run, tmp_path):
    task = get_task("image_classification")
    meta = export.load_metadata(digits_run.export_dir)
    root = tmp_path / "saved_models"
    first = export.export(task, digits_run.model, meta, root)
    marker = Path(first) / "assets.extra" / "dlsuite_metadata.json"
    before = marker.read_text()
    (root / "image_classification" / "7").mkdir()  # someone else's version, even an empty one
    second = export.export(task, digits_run.model, meta, root)
    assert Path(first).name == "1" and Path(second).name == "8"
    assert marker.read_text() == before
    assert not [p for p in (root / "image_classification").iterdir() if p.name.startswith(".tmp")]


def test_a_version_another_process_claims_meanwhile_is_left_alone(digits_run, tmp_path, monkeypatch):
    # Two `dlsuite run` processes exporting the same task: both list the versions and pick 1;
    # the other one renames its export into place first.
    task = get_task("image_classification")
    meta = export.load_metadata(digits_run.export_dir)
    root = tmp_path / "saved_models"
    listed = export.next_version
    raced = []

    def other_process_wins_once(task_root):
        version = listed(task_root)
        if not raced:
            raced.append(version)
            theirs = Path(task_root) / str(version)
            theirs.mkdir()
            (theirs / "saved_model.pb").write_text("theirs")
        return version

    monkeypatch.setattr(export, "next_version", other_process_wins_once)
    ours = export.export(task, digits_run.model, meta, root)
    assert raced == [1] and Path(ours).name == "2"
    assert (root / "image_classification" / "1" / "saved_model.pb").read_text() == "theirs"
    assert not [p for p in (root / "image_classification").iterdir() if p.name.startswith(".tmp")]


def test_a_failed_export_leaves_no_version(digits_run, tmp_path, monkeypatch):
    task = get_task("image_classification")
    meta = export.load_metadata(digits_run.export_dir)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export.json, "dump", crash)  # fails after the SavedModel is written
    with pytest.raises(OSError):
        export.export(task, digits_run.model, meta, tmp_path)
    assert list((tmp_path / "image_classification").iterdir()) == []


@pytest.mark.slow
def test_an_export_killed_with_sigkill_leaves_no_version_and_the_next_gets_the_next_number(digits_run, tmp_path):
    root = tmp_path / "saved_models"
    task_root = root / "image_classification"
    (task_root / "1").mkdir(parents=True)
    (task_root / "1" / "saved_model.pb").write_text("an earlier version")
    args = [sys.executable, "-m", "dlsuite.cli", "export", "--run", digits_run.run_dir, "--export-root", str(root)]
    proc = subprocess.Popen(args, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not any(p.name.startswith(".tmp") for p in task_root.iterdir()):
            assert proc.poll() is None, "the export ended before it could be killed"
            assert time.time() < deadline, "the export never started writing"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # while the SavedModel is being written
    finally:
        proc.kill()
        proc.wait()
    assert sorted(p.name for p in task_root.iterdir() if not p.name.startswith(".tmp")) == ["1"]
    assert (task_root / "1" / "saved_model.pb").read_text() == "an earlier version"
    task = get_task("image_classification")
    second = export.export(task, digits_run.model, export.load_metadata(digits_run.export_dir), root)
    assert Path(second).name == "2" and export.load_metadata(second)["task"] == "image_classification"


def test_cli_predict_prints_the_class_of_image_files(digits_run, tmp_path):
    from dlsuite.data import images

    splits = images.digits(val_fraction=0.1, test_fraction=0.2, seed=0)
    paths = []
    for i, (x, y) in enumerate(splits.test.take(3)):
        path = tmp_path / f"digit{i}_{int(y)}.png"
        Image.fromarray(x.numpy()[..., 0]).save(path)
        paths.append(str(path))
    proc = run_cli("predict", "--model", digits_run.export_dir, *paths)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 3
    expected = digits_run.model.predict(np.stack([np.asarray(Image.open(p))[..., None] for p in paths]).astype("float32"), verbose=0)
    for line, path, probs in zip(lines, paths, expected):
        name, label, prob = line.split("\t")
        assert name == path and label == str(probs.argmax()) and abs(float(prob) - probs.max()) < 1e-4


# The error paths and export/evaluate run in-process: main() is the whole command. A fresh
# `dlsuite predict` process is exercised above, `dlsuite evaluate` in test_bert.py.
def test_predict_on_a_folder_that_is_not_an_export(tmp_path, digits_run, capsys):
    assert cli.main(["predict", "--model", str(tmp_path), "x.png"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("dlsuite: error:") and "not a dlsuite export" in last
    parent = Path(digits_run.export_dir).parent
    with pytest.raises(DlsuiteError, match=r"It holds versions; pass one, e.g. .*1"):
        export.load_metadata(parent)


def test_predict_with_a_missing_image(digits_run, capsys):
    assert cli.main(["predict", "--model", digits_run.export_dir, "no_such.png"]) == 2
    assert "image file no_such.png does not exist" in capsys.readouterr().err


def test_cli_export_and_evaluate_a_finished_run(digits_run, tmp_path, capsys):
    assert cli.main(["export", "--run", digits_run.run_dir, "--export-root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip().endswith(os.path.join("image_classification", "1"))
    assert cli.main(["evaluate", "--run", digits_run.run_dir]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["accuracy"] == pytest.approx(digits_run.metrics["accuracy"])
