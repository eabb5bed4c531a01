"""One export function for every task: versioned, atomic SavedModels for TF Serving.

Layout: ``<root>/<task>/<version>/`` with ``saved_model.pb``, ``variables/``,
``assets.extra/dlsuite_metadata.json`` (labels, input spec, metrics, versions) and
``README.md`` (the model card, :mod:`dlsuite.model_card`).
A version is written to a hidden temporary directory beside its final place
and renamed into place when complete, so a crash never leaves half a version
and an existing version is never overwritten.
"""

from __future__ import annotations

import atexit
import datetime
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

import keras
import numpy as np
import tensorflow as tf

import dlsuite
from dlsuite import distribute, model_card
from dlsuite.errors import DlsuiteError

METADATA_PATH = os.path.join("assets.extra", "dlsuite_metadata.json")
RELOAD_SCRIPT = Path(__file__).with_name("reload_check.py")
TOLERANCE = 1e-5
# Serving needs TensorFlow alone: loading an export must pull in none of these (custom ops, Python code).
SERVING_FORBIDDEN = ("dlsuite", "keras_hub", "tensorflow_text")


def export(
    task: Any,
    model: keras.Model,
    metadata: Mapping[str, Any],
    root: str | os.PathLike,
    strategy: tf.distribute.Strategy | None = None,
    prepare: Callable[[Path], None] | None = None,
) -> str:
    """Write ``model`` with the task's serving signatures as the next version.

    Args:
        task: the :class:`~dlsuite.tasks.base.Task` that trained ``model``.
        model: the inference model (raw inputs -> network outputs).
        metadata: JSON-serializable facts stored beside the model; ``task`` and
            ``dlsuite_version`` are added.
        root: export root (``saved_models``).
        strategy: the training strategy (TPU exports save through the local host).
        prepare: called with the complete, still hidden version folder before it is
            renamed into place, to add files of its own (``model.tflite``); when it
            raises, no version appears.

    Returns:
        The directory of the new version.
    """
    task_root = Path(root) / task.name
    task_root.mkdir(parents=True, exist_ok=True)
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (fn, signature) in task.serving_endpoints(model, metadata).items():
        archive.add_endpoint(name, fn, input_signature=signature)
    tmp = task_root / f".tmp-{uuid.uuid4().hex}"
    try:
        archive.write_out(str(tmp), options=distribute.save_options(strategy) if strategy else None, verbose=False)
        full = {
            **metadata,
            "task": task.name,
            "dlsuite_version": dlsuite.__version__,
            "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__,
            "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        (tmp / "assets.extra").mkdir(exist_ok=True)
        with open(tmp / METADATA_PATH, "w", encoding="utf-8") as f:
            json.dump(full, f, indent=2)
        if prepare is not None:
            prepare(tmp)
        model_card.write(tmp, load_metadata(tmp), task.summary)  # after prepare: its additions included
        return str(_rename_into_next_version(tmp, task_root))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _rename_into_next_version(tmp: Path, task_root: Path) -> Path:
    for _ in range(100):
        target = task_root / str(next_version(task_root))
        try:
            # rename refuses a non-empty target; next_version never picks an existing name.
            os.rename(tmp, target)
            return target
        except OSError:
            if not target.exists():
                raise
    raise DlsuiteError(f"could not claim a new version number under {task_root}; too many concurrent exports.")


def next_version(task_root: str | os.PathLike) -> int:
    versions = [int(p.name) for p in Path(task_root).iterdir() if p.name.isdigit()] if Path(task_root).exists() else []
    return max(versions, default=0) + 1


def load_metadata(export_dir: str | os.PathLike) -> dict[str, Any]:
    """The metadata of an export, or a clear error when the folder is not one."""
    export_dir = Path(export_dir)
    if not (export_dir / "saved_model.pb").is_file():
        hint = ""
        if export_dir.is_dir():
            versions = sorted((p for p in export_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
            if versions:
                hint = f" It holds versions; pass one, e.g. {versions[-1]}."
        raise DlsuiteError(
            f"{export_dir} is not a dlsuite export (no saved_model.pb).{hint} "
            "Pass a version folder such as saved_models/<task>/<version>."
        )
    meta_file = export_dir / METADATA_PATH
    if not meta_file.is_file():
        raise DlsuiteError(f"{export_dir} is a SavedModel but not a dlsuite export (no {METADATA_PATH}).")
    with open(meta_file, encoding="utf-8") as f:
        return json.load(f)


def run_endpoints(endpoints: Mapping[str, Any], inputs: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """Call the in-process endpoint functions on ``inputs`` (endpoint -> kwargs)."""
    out = {}
    for name, kwargs in inputs.items():
        fn, signature = endpoints[name]
        args = [tf.constant(kwargs[spec.name], dtype=spec.dtype) for spec in signature]
        out[name] = {k: v.numpy() for k, v in fn(*args).items()}
    return out


class ReloadChecker:
    """A TensorFlow-only process (:mod:`dlsuite.reload_check` ``--serve``) that checks exports.

    Started on the first check and reused: ``import tensorflow`` (about 4 s here) is
    most of a check's cost, paid once per dlsuite process instead of once per export.
    It is restarted after :attr:`max_checks` checks (each load leaves its functions
    registered in the process), after a crash, and in a forked child.
    """

    max_checks = 25
    timeout = 600

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._stderr: Any = None
        self._pid = -1
        self._checks = 0

    def check(self, export_dir: str, inputs_path: str, outputs_path: str) -> None:
        """Write the outputs of ``export_dir``'s signatures on the saved inputs; DlsuiteError when it fails."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None or self._pid != os.getpid() or self._checks >= self.max_checks:
                self._start()
            self._checks += 1
            proc, ready = self._proc, []
            try:
                proc.stdin.write(json.dumps([export_dir, inputs_path, outputs_path]) + "\n")
                proc.stdin.flush()
                ready = select.select([proc.stdout], [], [], self.timeout)[0]
                line = proc.stdout.readline() if ready else ""
            except (BrokenPipeError, OSError):
                line = ""
            if not line:
                detail = "timed out" if not ready else f"ended (exit status {proc.poll()})"
                log_tail = self._stderr_tail()
                self.close()
                raise DlsuiteError(f"reloading {export_dir} with TensorFlow alone {detail}:\n{log_tail}")
            error = json.loads(line)["error"]
            if error:
                raise DlsuiteError(f"reloading {export_dir} with TensorFlow alone failed:\n{error[-2000:]}")

    def _start(self) -> None:
        self.close()
        self._stderr = tempfile.TemporaryFile(mode="w+")
        # -P: do not put dlsuite/ (the script's folder) on sys.path.
        self._proc = subprocess.Popen(
            [sys.executable, "-P", str(RELOAD_SCRIPT), "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        self._pid, self._checks = os.getpid(), 0

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-2000:]

    def close(self) -> None:
        """Stop the process (end of its input; killed if it does not exit in 10 s)."""
        proc, self._proc = self._proc, None
        if proc is not None and self._pid == os.getpid():
            try:
                proc.stdin.close()
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


_CHECKER = ReloadChecker()
atexit.register(_CHECKER.close)


def reload_outputs(export_dir: str | os.PathLike, inputs: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, Any]:
    """Run the signatures of an export in a process that imports TensorFlow only (:class:`ReloadChecker`).

    Returns:
        ``{"outputs": {signature: {name: array}}, "modules": [dlsuite/keras/keras_hub/tensorflow_text modules seen]}``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        in_path, out_path = os.path.join(tmp, "inputs.npz"), os.path.join(tmp, "outputs.npz")
        np.savez(in_path, **{f"{sig}/{arg}": value for sig, kwargs in inputs.items() for arg, value in kwargs.items()})
        _CHECKER.check(str(export_dir), in_path, out_path)
        with np.load(out_path, allow_pickle=True) as data:
            outputs: dict[str, dict[str, np.ndarray]] = {}
            modules = []
            for key in data.files:
                if key == "__modules__":
                    modules = [str(m) for m in data[key]]
                    continue
                sig, name = key.split("/", 1)
                outputs.setdefault(sig, {})[name] = data[key]
    return {"outputs": outputs, "modules": modules}


def compare(expected: Mapping[str, Mapping[str, np.ndarray]], actual: Mapping[str, Mapping[str, np.ndarray]]) -> float:
    """Max absolute difference over float outputs; raises if anything else differs."""
    worst = 0.0
    for sig, outputs in expected.items():
        for name, want in outputs.items():
            got = actual.get(sig, {}).get(name)
            if got is None:
                raise DlsuiteError(f"reloaded export lacks output {name!r} of signature {sig!r}.")
            if np.issubdtype(np.asarray(want).dtype, np.floating):
                if not (np.all(np.isfinite(want)) and np.all(np.isfinite(got))):
                    raise DlsuiteError(f"{sig}/{name} holds NaN or infinite values; the model is not fit to serve.")
                diff = float(np.max(np.abs(np.asarray(want) - np.asarray(got)))) if np.size(want) else 0.0
                worst = max(worst, diff)
                # float32 holds ~7 significant digits: outputs larger than 1 (free energies) get a relative tolerance.
                scale = max(1.0, float(np.max(np.abs(np.asarray(want))))) if np.size(want) else 1.0
                if diff > TOLERANCE * scale:
                    raise DlsuiteError(f"reloaded {sig}/{name} differs from in-process output by {diff:.2e}.")
            elif not np.array_equal(np.asarray(want), np.asarray(got)):
                raise DlsuiteError(f"reloaded {sig}/{name} differs from in-process output.")
    return worst


def verify(export_dir: str | os.PathLike, endpoints: Mapping[str, Any], inputs: Mapping[str, Mapping[str, np.ndarray]]) -> float:
    """Compare in-process outputs with the export reloaded in a TensorFlow-only process.

    Returns:
        The max absolute difference over float outputs (raises above ``TOLERANCE``).
    """
    expected = run_endpoints(endpoints, inputs)
    result = reload_outputs(export_dir, inputs)
    imported = sorted({m.split(".")[0] for m in result["modules"]} & set(SERVING_FORBIDDEN))
    if imported:
        raise DlsuiteError(
            f"the reload check imported {', '.join(imported)}; the export must load with TensorFlow alone."
        )
    return compare(expected, result["outputs"])
