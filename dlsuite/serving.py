"""A local model server in TensorFlow Serving's REST shape (``dlsuite serve``).

Every ``<root>/<model>/<version>/saved_model.pb`` is served under the same URLs as
``tensorflow_model_server --rest_api_port``, so a client moves to TF Serving unchanged:

- ``GET  /v1/models/<model>[/versions/<n>]``            version status
- ``GET  /v1/models/<model>[/versions/<n>]/metadata``   signature defs
- ``POST /v1/models/<model>[/versions/<n>]:predict``    ``{"instances": [...]}`` (row form) or
  ``{"inputs": ...}`` (columnar), ``"signature_name"`` optional; bytes as ``{"b64": "..."}``;
  answers ``{"predictions": ...}`` / ``{"outputs": ...}``.

Without a version the newest one is served. A background poll finds versions written after
start (exports are renamed into place when complete; hidden ``.tmp-*`` folders are never
read) and loads the newest before it takes over, so requests never wait for a load. An older
version stays callable by number and is loaded on its first request. Every bad request gets a
4xx answer ``{"error": "..."}`` and the server goes on serving.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import http
import http.server
import json
import logging
import os
import re
import socket
import threading
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2

from dlsuite.errors import DlsuiteError

log = logging.getLogger("dlsuite.serving")

MAX_BODY_BYTES = 32 * 1024 * 1024  # a batch of a few hundred camera photos as base64
DRAIN_FACTOR = 4  # a body over the limit but under this many times it is read and dropped before the 413
LINGER_SECONDS = 2.0  # after an answer that ends the connection, how long the client's unread bytes are drained
POLL_SECONDS = 1.0
SOCKET_TIMEOUT_SECONDS = 60  # a client that stops sending mid-request frees its thread after this
DEFAULT_SIGNATURE = "serving_default"

_URL = re.compile(
    r"^/v1/models/(?P<model>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<action>/metadata|:[A-Za-z]+)?$"
)


class RequestError(Exception):
    """A request the server cannot answer: an HTTP status and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclasses.dataclass
class Servable:
    """One loaded version of one model.

    Attributes:
        name: the model name (its folder under the model root).
        version: the version number.
        path: the version folder.
        functions: signature name -> concrete function (``tf.saved_model.load(...).signatures``).
        inputs: signature name -> input name -> ``tf.TensorSpec``.
        signature_defs: the SignatureDef map of the SavedModel as TF Serving's metadata JSON.
    """

    name: str
    version: int
    path: Path
    functions: Mapping[str, Any]
    inputs: Mapping[str, Mapping[str, tf.TensorSpec]]
    signature_defs: Mapping[str, Any]


def read_signature_defs(export_dir: str | os.PathLike) -> dict[str, Any]:
    """The SignatureDefs of a SavedModel, as JSON in the shape TF Serving's metadata answers with.

    Read from ``saved_model.pb`` without loading the model, so it also describes an export
    that is still in its temporary folder.

    Args:
        export_dir: a SavedModel folder.

    Returns:
        Signature name -> ``{"inputs": {...}, "outputs": {...}, "method_name": ...}``, each tensor
        with ``dtype`` (``DT_FLOAT``, ...), ``tensor_shape`` and ``name``.
    """
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(export_dir) / "saved_model.pb").read_bytes())
    meta_graph = next((g for g in proto.meta_graphs if "serve" in g.meta_info_def.tags), proto.meta_graphs[0])
    return {
        name: json_format.MessageToDict(
            signature, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        for name, signature in sorted(meta_graph.signature_def.items())
    }


def load_servable(name: str, version: int, path: Path) -> Servable:
    """Load one SavedModel version with TensorFlow and index its signatures."""
    loaded = tf.saved_model.load(str(path))
    functions = dict(loaded.signatures)
    inputs = {sig: dict(fn.structured_input_signature[1]) for sig, fn in functions.items()}
    # The concrete functions keep `loaded` (their variables) alive.
    return Servable(name, version, path, functions, inputs, read_signature_defs(path))


class ModelRepository:
    """The versions under a model root, the loaded ones, and which one each model serves.

    Args:
        root: the export root, ``<root>/<model>/<version>/saved_model.pb``.
        poll_seconds: how often :meth:`start_polling` looks for new versions.
    """

    def __init__(self, root: str | os.PathLike, poll_seconds: float = POLL_SECONDS) -> None:
        self.root = Path(root)
        self.poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._versions: dict[str, list[int]] = {}
        self._loaded: dict[tuple[str, int], Servable] = {}
        self._failed: dict[tuple[str, int], str] = {}
        self._loading: dict[tuple[str, int], threading.Lock] = {}
        self._serving: dict[str, int] = {}
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def scan(self) -> dict[str, list[int]]:
        """Versions on disk now: model -> sorted version numbers holding ``saved_model.pb``."""
        found: dict[str, list[int]] = {}
        try:
            models = [e for e in os.scandir(self.root) if e.is_dir() and not e.name.startswith(".")]
        except FileNotFoundError:
            models = []
        for model in models:
            try:
                versions = sorted(
                    int(v.name) for v in os.scandir(model.path)
                    if v.name.isdigit() and os.path.isfile(os.path.join(v.path, "saved_model.pb"))
                )
            except OSError:  # removed or unreadable while we looked: as if absent
                continue
            if versions:
                found[model.name] = versions
        return found

    def refresh(self) -> None:
        """Scan the root, load each model's newest version if it is new, and serve it once loaded.

        The version that served before is unloaded (a request naming it loads it again), so
        memory holds one version per model however many exports accumulate. Versions that
        left the disk are dropped; a version that fails to load is recorded (its status says
        why) and the model goes on serving the version it served.
        """
        found = self.scan()
        with self._lock:
            self._versions = found
            for key in [k for k in self._loaded if k[1] not in found.get(k[0], [])]:
                del self._loaded[key]
            for name in [n for n, v in self._serving.items() if v not in found.get(n, [])]:
                del self._serving[name]
        for name, versions in found.items():
            for version in reversed(versions):
                if (name, version) in self._failed:
                    continue
                if self._serving.get(name, -1) >= version:
                    break
                try:
                    self._load(name, version)
                except RequestError:
                    continue
                with self._lock:
                    previous = self._serving.get(name)
                    if previous is None or previous < version:
                        self._serving[name] = version
                        if previous is not None:
                            self._loaded.pop((name, previous), None)  # requests under way keep their reference
                            log.info("now serving %s version %d (was %d)", name, version, previous)
                break

    def start_polling(self) -> None:
        """Call :meth:`refresh` every ``poll_seconds`` in a daemon thread until :meth:`stop`."""

        def poll() -> None:
            while not self._stop.wait(self.poll_seconds):
                try:
                    self.refresh()
                except Exception:  # a poll must never end the thread: the next one retries
                    log.exception("looking for new versions under %s failed", self.root)

        self._poller = threading.Thread(target=poll, name="dlsuite-serve-poll", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        """End the polling thread."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=10)

    def models(self) -> dict[str, dict[str, Any]]:
        """Model -> ``{"versions": [...], "serving": n or None}``, as last scanned."""
        with self._lock:
            return {n: {"versions": list(v), "serving": self._serving.get(n)} for n, v in sorted(self._versions.items())}

    def servable(self, name: str, version: int | None = None) -> Servable:
        """The servable for a request: ``version``, or the version the model serves.

        Raises:
            RequestError: 404 for an unknown model or version, 503 for a version that failed to load.
        """
        versions = self._known_versions(name, version)
        if version is None:
            with self._lock:
                version = self._serving.get(name)
            if version is None:  # found by this request's scan, before the poll loaded it
                self.refresh()
                with self._lock:
                    version = self._serving.get(name)
            if version is None:
                raise RequestError(503, f"no version of model {name!r} could be loaded: {self._failures(name)}")
        elif version not in versions:
            raise RequestError(
                404, f"model {name!r} has no version {version}; its versions: {', '.join(map(str, versions))}."
            )
        return self._load(name, version)

    def status(self, name: str, version: int | None = None) -> list[dict[str, Any]]:
        """TF Serving's ``model_version_status`` list, newest version first.

        A version newer than the served one is ``LOADING`` until the poll has loaded it; one
        that failed to load is ``END`` with the error; the others are ``AVAILABLE``.
        """
        versions = self._known_versions(name, version)
        with self._lock:
            serving = self._serving.get(name, -1)
            rows = []
            for v in sorted(versions if version is None else [version], reverse=True):
                error = self._failed.get((name, v))
                if error is not None:
                    state, status = "END", {"error_code": "UNKNOWN", "error_message": error}
                elif v > serving and (name, v) not in self._loaded:
                    state, status = "LOADING", {"error_code": "OK", "error_message": ""}
                else:
                    state, status = "AVAILABLE", {"error_code": "OK", "error_message": ""}
                rows.append({"version": str(v), "state": state, "status": status})
        return rows

    def _known_versions(self, name: str, version: int | None) -> list[int]:
        with self._lock:
            versions = self._versions.get(name, [])
        if not versions or (version is not None and version not in versions):
            found = self.scan()  # a model or version that appeared since the last poll
            with self._lock:
                self._versions = found
                versions = found.get(name, [])
        if not versions:
            known = ", ".join(sorted(self._versions)) or "none"
            raise RequestError(404, f"model {name!r} not found under {self.root}; models served: {known}.")
        if version is not None and version not in versions:
            raise RequestError(
                404, f"model {name!r} has no version {version}; its versions: {', '.join(map(str, versions))}."
            )
        return versions

    def _load(self, name: str, version: int) -> Servable:
        key = (name, version)
        with self._lock:
            if key in self._loaded:
                return self._loaded[key]
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:  # one load per version, however many requests ask for it at once
            with self._lock:
                if key in self._loaded:
                    return self._loaded[key]
                if key in self._failed:
                    raise RequestError(503, f"version {version} of model {name!r} failed to load: {self._failed[key]}")
            path = self.root / name / str(version)
            log.info("loading %s version %d from %s", name, version, path)
            try:
                servable = load_servable(name, version, path)
            except Exception as e:  # a corrupt SavedModel is reported, not fatal to the server
                message = f"{type(e).__name__}: {e}"[:2000]
                log.error("could not load %s: %s", path, message)
                with self._lock:
                    self._failed[key] = message
                raise RequestError(503, f"version {version} of model {name!r} failed to load: {message}") from e
            with self._lock:
                self._loaded[key] = servable
            return servable

    def _failures(self, name: str) -> str:
        with self._lock:
            return "; ".join(f"version {v}: {m}" for (n, v), m in sorted(self._failed.items()) if n == name) or "none loaded"


# --- requests: JSON -> tensors -> JSON --------------------------------------------------------


def predict(servable: Servable, body: Any) -> dict[str, Any]:
    """Answer a ``:predict`` request body in TF Serving's JSON shape.

    Args:
        servable: the model version to call.
        body: the parsed JSON body.

    Returns:
        ``{"predictions": [...]}`` for a row-form request, ``{"outputs": ...}`` for a columnar one.

    Raises:
        RequestError: 400 saying what is wrong with the request.
    """
    if not isinstance(body, dict):
        raise RequestError(400, f"the request body must be a JSON object, not {_json_type(body)}.")
    unknown = sorted(set(body) - {"signature_name", "instances", "inputs"})
    if unknown:
        raise RequestError(400, f"unknown request key(s) {', '.join(map(repr, unknown))}; "
                           "expected 'instances' or 'inputs', and optionally 'signature_name'.")
    if ("instances" in body) == ("inputs" in body):
        raise RequestError(400, "the request needs exactly one of 'instances' (row form) or 'inputs' (columnar form).")
    signature = body.get("signature_name") or DEFAULT_SIGNATURE
    if not isinstance(signature, str) or signature not in servable.functions:
        raise RequestError(400, f"model {servable.name!r} version {servable.version} has no signature "
                           f"{signature!r}; its signatures: {', '.join(sorted(servable.functions))}.")
    specs = servable.inputs[signature]
    row_form = "instances" in body
    columns = _rows_to_columns(body["instances"], specs) if row_form else _named_inputs(body["inputs"], specs)
    tensors = {name: to_tensor(columns[name], spec, name) for name, spec in specs.items()}
    _check_batch_sizes(tensors)
    try:
        outputs = servable.functions[signature](**tensors)
    except tf.errors.InvalidArgumentError as e:
        raise RequestError(400, f"the model rejected the input: {_op_error_text(e)}") from e
    arrays = {name: outputs[name].numpy() for name in sorted(outputs)}
    if row_form:
        return {"predictions": _rows(arrays)}
    values = {name: to_json(value, name) for name, value in arrays.items()}
    return {"outputs": next(iter(values.values())) if len(values) == 1 else values}


def _op_error_text(error: tf.errors.OpError) -> str:
    """The cause in a TensorFlow op error, without its graph-location boilerplate."""
    skip = ("Graph execution error", "Detected at node", "<stack traces unavailable>")
    lines = [line.strip() for line in error.message.splitlines()]
    kept = [re.sub(r"\s*\[\[\{\{node [^]]*\]\]|\s*\[Op:[^]]*\]", "", line) for line in lines
            if line and not line.startswith(skip)]
    return " ".join(line for line in kept if line) or error.message


def _rows_to_columns(instances: Any, specs: Mapping[str, tf.TensorSpec]) -> dict[str, list]:
    if not isinstance(instances, list) or not instances:
        raise RequestError(400, "'instances' must be a non-empty list, one entry per example.")
    names = sorted(specs)
    named = all(isinstance(i, dict) and "b64" not in i for i in instances)
    if len(names) == 1 and not named:
        return {names[0]: instances}
    if not named:
        raise RequestError(400, f"each instance must be an object with the inputs {', '.join(names)} "
                           "(this signature takes several).")
    columns: dict[str, list] = {name: [] for name in names}
    for row, instance in enumerate(instances):
        missing, extra = sorted(set(names) - set(instance)), sorted(set(instance) - set(names))
        if missing or extra:
            raise RequestError(400, f"instance {row}: " + _key_problem(missing, extra, names))
        for name in names:
            columns[name].append(instance[name])
    return columns


def _named_inputs(inputs: Any, specs: Mapping[str, tf.TensorSpec]) -> dict[str, Any]:
    names = sorted(specs)
    if len(names) == 1 and not (isinstance(inputs, dict) and "b64" not in inputs):
        return {names[0]: inputs}
    if not isinstance(inputs, dict):
        raise RequestError(400, f"'inputs' must be an object with the inputs {', '.join(names)}.")
    missing, extra = sorted(set(names) - set(inputs)), sorted(set(inputs) - set(names))
    if missing or extra:
        raise RequestError(400, "'inputs': " + _key_problem(missing, extra, names))
    return dict(inputs)


def _key_problem(missing: list[str], extra: list[str], names: list[str]) -> str:
    parts = []
    if missing:
        parts.append(f"missing input(s) {', '.join(map(repr, missing))}")
    if extra:
        parts.append(f"unknown input(s) {', '.join(map(repr, extra))}")
    return "; ".join(parts) + f". The signature takes: {', '.join(names)}."


def to_tensor(value: Any, spec: tf.TensorSpec, name: str) -> tf.Tensor:
    """One input's JSON value as a tensor of the signature's dtype and shape.

    Strings come as JSON strings (sent as UTF-8) or ``{"b64": "..."}`` (any bytes); numbers
    must fit the dtype (no rounding of 2.5 into an integer, no 300 into uint8).

    Raises:
        RequestError: 400 naming the input and what is wrong with it.
    """
    if spec.dtype == tf.string:
        shape, flat = _string_leaves(value, name)
        array = np.array(flat, dtype=object).reshape(shape)
    else:
        array = _numeric_array(value, spec.dtype, name)
    expected = spec.shape
    if expected.rank is not None:
        if array.ndim != expected.rank:
            raise RequestError(400, f"input {name!r} has shape {list(array.shape)}, but the signature takes "
                               f"{_shape_text(expected)} ({expected.rank} dimensions, the first one the batch).")
        for got, want in zip(array.shape, expected.as_list()):
            if want is not None and got != want:
                raise RequestError(400, f"input {name!r} has shape {list(array.shape)}, but the signature takes "
                                   f"{_shape_text(expected)}.")
    return tf.constant(array, dtype=spec.dtype)


def _string_leaves(value: Any, name: str) -> tuple[tuple[int, ...], list[bytes]]:
    """(shape, flat values) of nested lists of strings / {"b64": ...}; ragged nesting is an error."""
    if isinstance(value, str):
        return (), [value.encode("utf-8")]
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise RequestError(400, f"input {name!r}: an object in a string input must be {{\"b64\": \"...\"}}.")
        try:
            return (), [base64.b64decode(value["b64"], validate=True)]
        except (binascii.Error, ValueError) as e:
            raise RequestError(400, f"input {name!r}: bad base64 in {{\"b64\": ...}} ({e}).") from e
    if isinstance(value, list):
        if not value:
            return (0,), []
        parts = [_string_leaves(v, name) for v in value]
        shapes = {p[0] for p in parts}
        if len(shapes) != 1:
            raise RequestError(400, f"input {name!r} is ragged: its lists must all have the same length.")
        return (len(value), *shapes.pop()), [b for p in parts for b in p[1]]
    raise RequestError(400, f"input {name!r} takes strings (or {{\"b64\": ...}} for bytes), not {_json_type(value)}.")


def _numeric_array(value: Any, dtype: tf.DType, name: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except ValueError as e:
        raise RequestError(400, f"input {name!r} is ragged: its lists must all have the same length.") from e
    kind = array.dtype.kind
    want = "booleans" if dtype == tf.bool else f"{dtype.name} numbers"
    if array.size and (kind in "OUS" or (kind == "b") != (dtype == tf.bool)):
        got = {"U": "strings", "S": "strings", "b": "booleans"}.get(kind, "nulls, objects or mixed values")
        raise RequestError(400, f"input {name!r} takes {want}; got {got}.")
    if dtype.is_integer and array.size:
        if kind == "f":
            raise RequestError(400, f"input {name!r} takes {want}; got a non-integer value.")
        low, high = int(array.min()), int(array.max())
        if low < dtype.min or high > dtype.max:
            raise RequestError(400, f"input {name!r} takes {want} in [{dtype.min}, {dtype.max}]; got {low}..{high}.")
    return array.astype(dtype.as_numpy_dtype)


def _check_batch_sizes(tensors: Mapping[str, tf.Tensor]) -> None:
    sizes = {name: (t.shape[0] if t.shape.rank else None) for name, t in tensors.items()}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{n}: {s}" for n, s in sizes.items())
        raise RequestError(400, f"the inputs have different batch sizes ({listed}); every input needs one row per example.")


def to_json(value: np.ndarray, name: str) -> Any:
    """An output array as JSON values: lists of numbers, booleans or strings.

    Strings are UTF-8 text; an output whose name ends in ``_bytes`` (TF Serving's convention),
    or one that is not valid UTF-8, becomes ``{"b64": "..."}``.
    """
    if value.dtype.kind not in "OSU":
        return value.tolist()
    as_b64 = name.endswith("_bytes")

    def text(b: bytes) -> Any:
        if not as_b64:
            try:
                return b.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(b).decode("ascii")}

    return np.vectorize(text, otypes=[object])(value).tolist() if value.ndim else text(value.item())


def _rows(arrays: Mapping[str, np.ndarray]) -> list[Any]:
    columns = {name: to_json(value, name) for name, value in arrays.items()}
    if len(columns) == 1:
        return next(iter(columns.values()))
    batch = {len(v) for v in columns.values() if isinstance(v, list)}
    if len(batch) != 1:
        raise RequestError(400, "the outputs have different batch sizes; send the request in columnar form ('inputs').")
    return [{name: column[i] for name, column in columns.items()} for i in range(batch.pop())]


def _shape_text(shape: tf.TensorShape) -> str:
    return "[" + ", ".join("batch" if i == 0 and d is None else "any" if d is None else str(d)
                           for i, d in enumerate(shape.as_list())) + "]"


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


# --- HTTP ----------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes TF Serving's REST URLs to the repository; every answer is JSON."""

    protocol_version = "HTTP/1.1"  # keep-alive: a client reuses its connection
    server_version = "dlsuite-serve"
    timeout = SOCKET_TIMEOUT_SECONDS
    # Headers and body are two writes: with Nagle's algorithm the body waits for the client's
    # delayed ACK of the headers, 40 ms per answer on Linux loopback.
    disable_nagle_algorithm = True
    server: "_HTTPServer"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._answer(self._post)

    def do_PUT(self) -> None:  # noqa: N802
        self._close_after_answer()  # its body, if any, is not read
        self._send(405, {"error": "use GET for status and metadata, POST for :predict."}, {"Allow": "GET, POST"})

    do_DELETE = do_PATCH = do_PUT

    def _answer(self, route: Callable[[], dict[str, Any]]) -> None:
        try:
            self._send(200, route())
        except RequestError as e:
            log.debug("%s %s -> %d %s", self.command, self.path, e.status, e.message)
            self._send(e.status, {"error": e.message})
        except Exception as e:  # a failure inside TensorFlow must not take the server down
            log.exception("%s %s failed", self.command, self.path)
            self._send(500, {"error": f"internal error: {type(e).__name__}: {e}"})

    def _route(self) -> tuple[str, int | None, str]:
        path = urllib.parse.urlsplit(self.path).path
        match = _URL.match(path)
        if not match:
            raise RequestError(404, f"no such endpoint {path!r}; the API is /v1/models/<model>[/versions/<n>]"
                               "[/metadata|:predict].")
        if match["label"] is not None:
            raise RequestError(404, "version labels are not supported here; address a version as /versions/<n>.")
        version = match["version"]
        if version is not None and not version.isdigit():
            raise RequestError(400, f"version must be a number, not {version!r}.")
        return urllib.parse.unquote(match["model"]), int(version) if version else None, match["action"] or ""

    def _get(self) -> dict[str, Any]:
        name, version, action = self._route()
        if action == "":
            return {"model_version_status": self.server.repository.status(name, version)}
        if action == "/metadata":
            servable = self.server.repository.servable(name, version)
            return {
                "model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
                "metadata": {"signature_def": {"signature_def": servable.signature_defs}},
            }
        raise RequestError(405, f"{action} takes POST.")

    def _post(self) -> dict[str, Any]:
        raw = self._read_body()  # first: an unread body would be taken for the next request on the connection
        name, version, action = self._route()
        if action in ("", "/metadata"):
            raise RequestError(405, "status and metadata take GET; POST goes to :predict.")
        if action != ":predict":
            raise RequestError(404, f"{action} is not served; this server answers :predict.")
        servable = self.server.repository.servable(name, version)
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RequestError(400, f"the body is not valid JSON: {e}.") from e
        except RecursionError as e:
            raise RequestError(400, "the body's JSON is nested too deeply.") from e
        return predict(servable, body)

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked" or length is None:
            self._close_after_answer()
            raise RequestError(411, "send the body with a Content-Length header (chunked bodies are not read).")
        if not length.isdigit():
            self._close_after_answer()
            raise RequestError(400, f"bad Content-Length {length!r}.")
        size = int(length)
        limit = self.server.max_body_bytes
        if size > limit:
            # Read and drop a body up to a few times the limit: a client still sending would
            # otherwise meet a closed socket instead of the answer. A larger one ends the connection.
            if size <= DRAIN_FACTOR * limit:
                self._discard(size)
            else:
                self._close_after_answer()
            raise RequestError(413, f"request body of {size} bytes is over the limit of {limit} bytes; "
                               "send fewer instances per request.")
        return self.rfile.read(size)

    def _close_after_answer(self) -> None:
        """End the connection after this answer, though the client may still be sending a body."""
        self.close_connection = True
        self._linger = True

    def finish(self) -> None:
        """After the answer, drain what the client still sends before the socket closes.

        Closing a socket with unread bytes makes the kernel send a reset, and a client still
        writing its body would get a broken pipe instead of the answer (a lingering close).
        """
        super().finish()
        if not getattr(self, "_linger", False):
            return
        try:
            self.connection.shutdown(socket.SHUT_WR)  # the answer is complete
            self.connection.settimeout(LINGER_SECONDS)
            drained = 0
            while drained <= DRAIN_FACTOR * self.server.max_body_bytes:
                chunk = self.connection.recv(1 << 16)
                if not chunk:
                    break
                drained += len(chunk)
        except OSError:
            pass

    def _discard(self, size: int) -> None:
        while size > 0:
            chunk = self.rfile.read(min(size, 1 << 20))
            if not chunk:
                self.close_connection = True
                return
            size -= len(chunk)

    def _send(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload, allow_nan=True).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (a bad request line, an unknown method) as JSON too."""
        self._close_after_answer()
        try:
            reason = http.HTTPStatus(code).phrase
        except ValueError:
            reason = "error"
        self._send(code, {"error": message or explain or reason})

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        log.debug("%s - %s", self.address_string(), format % args)


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a keep-alive client left open does not hold up a stop
    request_queue_size = 128  # the listen backlog: many clients connecting at once are not refused

    def __init__(self, address: tuple[str, int], repository: ModelRepository, max_body_bytes: int) -> None:
        self.repository = repository
        self.max_body_bytes = max_body_bytes
        super().__init__(address, _Handler)


class ModelServer:
    """``dlsuite serve``: the repository of a model root behind TF Serving's REST API.

    Args:
        model_root: the export root (``saved_models``).
        host: address to listen on (``127.0.0.1``: this machine only).
        port: TCP port; 0 picks a free one (see :attr:`port`).
        max_body_bytes: larger request bodies get 413.
        poll_seconds: how often new versions are looked for.

    Raises:
        DlsuiteError: the root is not a folder, or the address cannot be bound.
    """

    def __init__(self, model_root: str | os.PathLike, host: str = "127.0.0.1", port: int = 8501,
                 max_body_bytes: int = MAX_BODY_BYTES, poll_seconds: float = POLL_SECONDS) -> None:
        if not Path(model_root).is_dir():
            raise DlsuiteError(f"model root {model_root} is not a folder; pass --model-root with the folder holding "
                               "<task>/<version>/ exports (dlsuite run writes them to saved_models/).")
        self.repository = ModelRepository(model_root, poll_seconds)
        try:  # bound before the models load, so a port in use is reported at once
            self._http = _HTTPServer((host, port), self.repository, max_body_bytes)
        except OSError as e:
            raise DlsuiteError(f"cannot listen on {host}:{port}: {e.strerror}. Pass another --port "
                               "(or --host).") from e
        self.repository.refresh()
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return self._http.server_address[0]

    @property
    def port(self) -> int:
        return self._http.server_address[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve until :meth:`close` (from another thread) or KeyboardInterrupt."""
        self.repository.start_polling()
        self._http.serve_forever(poll_interval=0.5)

    def start(self) -> "ModelServer":
        """Serve in a background thread (tests, benchmarks); returns self."""
        self._thread = threading.Thread(target=self.serve_forever, name="dlsuite-serve", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop accepting requests, stop polling and release the port."""
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join(timeout=10)
        self.repository.stop()
        self._http.server_close()

    def __enter__(self) -> "ModelServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["MAX_BODY_BYTES", "ModelRepository", "ModelServer", "RequestError", "Servable", "predict",
           "read_signature_defs", "to_json", "to_tensor"]
