"""TFLite: convert an export's ``serving_default`` signature and score the ``.tflite`` on the test split.

``dlsuite export --run RUN --format tflite`` writes the next SavedModel version with
``model.tflite`` inside it, converted from that very SavedModel with TFLite's built-in
ops only (what a phone runs without the TensorFlow kernels). Before the version is
renamed into place, both are scored on the run's test split through the same
signature, so a version holding a ``model.tflite`` always carries its parity figures
(``tflite`` in ``assets.extra/dlsuite_metadata.json`` and in the run's ``metrics.json``).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import tensorflow as tf

# The converter's exception is not exported under tf.lite; this is where TensorFlow defines it.
from tensorflow.lite.python.convert_phase import ConverterError

from dlsuite.errors import DlsuiteError
from dlsuite.export import METADATA_PATH

TFLITE_FILE = "model.tflite"
SIGNATURE = "serving_default"
EVAL_BATCH = 256


def convert(saved_model_dir: str | os.PathLike, task_name: str) -> bytes:
    """The ``serving_default`` signature of a SavedModel as a TFLite flatbuffer (built-in ops only).

    Args:
        saved_model_dir: a SavedModel folder.
        task_name: the task, for the error message.

    Returns:
        The ``.tflite`` file's bytes.

    Raises:
        DlsuiteError: the signature uses ops TFLite has no built-in kernel for; the message names them.
    """
    try:
        return _converter(saved_model_dir).convert()
    except ConverterError as e:
        ops = _ops_without_builtin_kernel(saved_model_dir) or ops_named(e)
        detail = f"ops without a TFLite built-in kernel: {', '.join(ops)}" if ops else str(e).strip().splitlines()[-1]
        raise DlsuiteError(
            f"the {task_name} export's {SIGNATURE} signature does not convert to TFLite's built-in ops ({detail}); "
            "text preprocessing (string ops) has no TFLite kernel. Serve this model as a SavedModel "
            "(TF Serving) instead; `--format tflite` converts image, speech, anomaly and fraud models."
        ) from None


def _converter(saved_model_dir: str | os.PathLike) -> tf.lite.TFLiteConverter:
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=[SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def _ops_without_builtin_kernel(saved_model_dir: str | os.PathLike) -> list[str]:
    """Every op of the signature that TFLite's built-in kernels lack.

    The default conversion first lowers tensor lists (recurrent layers) and stops at the
    first one it cannot lower, naming only that op; keeping tensor lists as they are makes
    the converter report every unsupported op at once (text ops behind a recurrent layer too).
    """
    converter = _converter(saved_model_dir)
    converter._experimental_lower_tensor_list_ops = False  # the switch TensorFlow's own error message names
    try:
        converter.convert()
    except ConverterError as e:
        return ops_named(e)
    return []


def ops_named(error: Exception) -> list[str]:
    """TensorFlow op names (``tf.StringLower``) a converter error reports, sorted."""
    names = {d.operator.name for d in getattr(error, "errors", []) if d.operator.name}
    names |= set(re.findall(r"'(tf\.\w+)' op", str(error)))
    return sorted(names)


def signature_runner(model: str | os.PathLike | bytes) -> Any:
    """A TFLite interpreter's runner for ``serving_default``, from a file or flatbuffer bytes."""
    source = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
    with warnings.catch_warnings():
        # tf.lite.Interpreter warns that it moves to the ai-edge-litert package; in TF 2.21 it still runs.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        interpreter = tf.lite.Interpreter(**source)
    return interpreter.get_signature_runner(SIGNATURE)


def run_tflite(runner: Any, kwargs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Call a signature runner, casting numeric inputs to the dtypes the flatbuffer declares."""
    details = runner.get_input_details()
    feed = {}
    for name, value in kwargs.items():
        value = np.asarray(value)
        dtype = details[name]["dtype"]
        feed[name] = value if value.dtype == object else value.astype(dtype, copy=False)
    return runner(**feed)


def folder_size(path: str | os.PathLike, exclude: tuple[str, ...] = ()) -> int:
    """Bytes of every file under ``path`` except those named in ``exclude`` at its top level."""
    root = Path(path)
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] not in exclude)


def compare_on_split(
    task: Any,
    saved_model_dir: str | os.PathLike,
    tflite_model: str | os.PathLike | bytes,
    ds: tf.data.Dataset,
    metadata: Mapping[str, Any],
    batch_size: int = EVAL_BATCH,
) -> dict[str, Any]:
    """Score the SavedModel and the TFLite model on the same split through ``serving_default``.

    Args:
        task: the export's task (:meth:`~dlsuite.tasks.base.Task.serving_batches`, ``served_score``).
        saved_model_dir: the SavedModel.
        tflite_model: its conversion, a path or the flatbuffer bytes.
        ds: an unbatched split of raw ``(features, label)`` examples (the test split).
        metadata: the export's metadata.
        batch_size: examples per call.

    Returns:
        ``metric`` (the task's headline metric), ``savedmodel`` and ``tflite`` (its value for each),
        ``max_abs_diff`` over float outputs, ``decisions_agree`` (fraction of examples whose
        non-float outputs, the class or flag, are equal) and ``num_examples``.
    """
    served = tf.saved_model.load(str(saved_model_dir)).signatures[SIGNATURE]
    specs = served.structured_input_signature[1]
    runner = signature_runner(tflite_model)
    saved_out: dict[str, list[np.ndarray]] = {}
    lite_out: dict[str, list[np.ndarray]] = {}
    labels = []
    for kwargs, y in task.serving_batches(ds, metadata, batch_size):
        expected = served(**{k: tf.constant(v, dtype=specs[k].dtype) for k, v in kwargs.items()})
        got = run_tflite(runner, kwargs)
        for name, value in expected.items():
            saved_out.setdefault(name, []).append(value.numpy())
            lite_out.setdefault(name, []).append(np.asarray(got[name]))
        labels.append(np.asarray(y))
    if not labels:
        raise DlsuiteError("the test split is empty; there is nothing to score the TFLite model on.")
    saved = {k: np.concatenate(v) for k, v in saved_out.items()}
    lite = {k: np.concatenate(v) for k, v in lite_out.items()}
    all_labels = np.concatenate(labels)
    worst, agree = 0.0, np.ones(len(all_labels), bool)
    for name, want in saved.items():
        got = lite[name]
        if np.issubdtype(want.dtype, np.floating):
            worst = max(worst, float(np.max(np.abs(want - got))) if want.size else 0.0)
        else:
            agree &= np.all((want == got).reshape(len(want), -1), axis=1)
    return {
        "metric": getattr(task, "headline_metric", "accuracy"),
        "savedmodel": task.served_score(saved, all_labels),
        "tflite": task.served_score(lite, all_labels),
        "max_abs_diff": worst,
        "decisions_agree": float(np.mean(agree)),
        "num_examples": int(len(all_labels)),
    }


def add_to_version(version_dir: Path, task: Any, test: tf.data.Dataset, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a version's SavedModel, score both on ``test`` and record it all inside the version.

    Meant for the still hidden version folder (``prepare`` of :func:`dlsuite.export.export`),
    so a version appears with its ``model.tflite`` and parity figures or not at all.

    Args:
        version_dir: a written SavedModel version with its metadata asset.
        task: its task.
        test: the unbatched test split.
        metadata: the version's metadata.

    Returns:
        The ``tflite`` report: file name, both sizes in bytes and :func:`compare_on_split`'s figures.
    """
    flatbuffer = convert(version_dir, task.name)
    (version_dir / TFLITE_FILE).write_bytes(flatbuffer)
    report = {
        "file": TFLITE_FILE,
        "tflite_bytes": len(flatbuffer),
        "savedmodel_bytes": folder_size(version_dir, exclude=(TFLITE_FILE, "assets.extra")),
        **compare_on_split(task, version_dir, version_dir / TFLITE_FILE, test, metadata),
    }
    meta_file = version_dir / METADATA_PATH
    stored = json.loads(meta_file.read_text(encoding="utf-8"))
    stored["tflite"] = report
    meta_file.write_text(json.dumps(stored, indent=2), encoding="utf-8")
    return report


def describe(report: Mapping[str, Any]) -> str:
    """One line: the headline metric of both models and both sizes."""

    def value(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    return (
        f"{report['file']}: {report['metric']} {value(report['tflite'])} (SavedModel {value(report['savedmodel'])}) "
        f"on {report['num_examples']} test examples, max abs difference {report['max_abs_diff']:.2e}, "
        f"{report['decisions_agree']:.1%} same decisions; {report['tflite_bytes'] / 1e3:,.0f} kB "
        f"(SavedModel {report['savedmodel_bytes'] / 1e3:,.0f} kB)"
    )
