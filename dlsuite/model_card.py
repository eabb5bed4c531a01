"""The model card: a ``README.md`` in each export, written from the metadata it already holds.

It says what the model is (task, data, metrics, classes, threshold), how to call it (the
signatures as written in ``saved_model.pb``, a ``curl`` request for ``dlsuite serve`` or
``tensorflow_model_server``) and how it was trained (the resolved config). It is written
inside the export's temporary folder, so it appears together with the version it describes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import tensorflow as tf
import yaml
from tensorflow.core.framework import types_pb2

from dlsuite.serving import read_signature_defs

CARD_FILE = "README.md"
METADATA_FILE = "assets.extra/dlsuite_metadata.json"
# Metadata keys with a section of their own, or too long for the data table.
_OWN_SECTION = {
    "task", "architecture", "metrics", "config", "class_names", "threshold", "threshold_method", "threshold_choice",
    "num_examples", "source", "dlsuite_version", "tensorflow_version", "keras_version", "exported_at",
}
_EXAMPLE_FILES = {"image_bytes": "image.png", "wav_bytes": "clip.wav"}
_MAX_INLINE_VALUES = 16


def write(export_dir: str | os.PathLike, metadata: Mapping[str, Any], summary: str = "") -> Path:
    """Write ``README.md`` into ``export_dir`` (a SavedModel folder with its metadata).

    Args:
        export_dir: the export (its ``saved_model.pb`` is read for the signatures).
        metadata: the export's metadata (``assets.extra/dlsuite_metadata.json``).
        summary: one line on what the task does.

    Returns:
        The path of the card.
    """
    path = Path(export_dir) / CARD_FILE
    path.write_text(render(metadata, read_signature_defs(export_dir), summary), encoding="utf-8")
    return path


def render(metadata: Mapping[str, Any], signature_defs: Mapping[str, Any], summary: str = "") -> str:
    """The card's Markdown text.

    Args:
        metadata: the export's metadata.
        signature_defs: :func:`dlsuite.serving.read_signature_defs` of the export.
        summary: one line on what the task does.

    Returns:
        Markdown.
    """
    task = metadata.get("task", "model")
    signatures = {k: v for k, v in signature_defs.items() if not k.startswith("__")}
    lines = [f"# {task}", ""]
    if summary:
        lines += [summary, ""]
    lines += [
        f"A SavedModel exported by dlsuite {metadata.get('dlsuite_version', '?')} "
        f"(TensorFlow {metadata.get('tensorflow_version', '?')}, Keras {metadata.get('keras_version', '?')}) "
        f"on {metadata.get('exported_at', '?')}, architecture `{metadata.get('architecture', '?')}`. It loads with "
        "TensorFlow alone (`tf.saved_model.load`) and serves with TensorFlow Serving; all preprocessing is inside. "
        f"Everything below comes from `{METADATA_FILE}` and `saved_model.pb`.",
        "",
    ]
    lines += _data_section(metadata)
    lines += _metrics_section(metadata)
    lines += _classes_section(metadata)
    lines += _threshold_section(metadata)
    lines += _signatures_section(signatures)
    lines += _calling_section(task, signatures)
    lines += _config_section(metadata)
    return "\n".join(lines).rstrip("\n") + "\n"


def _data_section(metadata: Mapping[str, Any]) -> list[str]:
    rows = [("source", metadata.get("source", "?"))]
    for split, count in (metadata.get("num_examples") or {}).items():
        rows.append((f"{split} examples", count))
    for key, value in metadata.items():
        if key in _OWN_SECTION or isinstance(value, dict):
            continue
        if isinstance(value, list) and value and isinstance(value[0], dict):
            value = [v.get("name", v) for v in value]  # field descriptions: their names
        text = json.dumps(value) if isinstance(value, (list, bool)) or value is None else str(value)
        if len(text) <= 300:
            rows.append((key, text))
    return ["## Data", "", *_table(["fact", "value"], rows), ""]


def _metrics_section(metadata: Mapping[str, Any]) -> list[str]:
    metrics = metadata.get("metrics") or {}
    if not metrics:
        return []
    rows = [(k, f"{v:.4f}" if isinstance(v, float) else v) for k, v in metrics.items()]
    return ["## Metrics (test split)", "", *_table(["metric", "value"], rows), ""]


def _classes_section(metadata: Mapping[str, Any]) -> list[str]:
    names = metadata.get("class_names")
    if not names:
        return []
    return ["## Classes", "", *_table(["id", "name"], list(enumerate(names))), ""]


def _threshold_section(metadata: Mapping[str, Any]) -> list[str]:
    if metadata.get("threshold") is None:
        return []
    how = metadata.get("threshold_method") or (metadata.get("threshold_choice") or {}).get("method")
    lines = ["## Threshold", "", f"`{metadata['threshold']:.6g}`" + (f", chosen by `{how}`" if how else "") + ". "
             "The signature's boolean output compares the score with it; the score is returned too, so a client "
             "may apply a threshold of its own."]
    choice = metadata.get("threshold_choice")
    if isinstance(choice, dict):
        lines += ["", "Choice: " + ", ".join(f"{k} {_short(v)}" for k, v in choice.items()) + "."]
    return lines + [""]


def _signatures_section(signatures: Mapping[str, Any]) -> list[str]:
    lines = ["## Signatures", ""]
    for name, signature in signatures.items():
        lines += [f"### `{name}`", ""]
        rows = [("input", n, *_tensor_text(t)) for n, t in sorted(signature.get("inputs", {}).items())]
        rows += [("output", n, *_tensor_text(t)) for n, t in sorted(signature.get("outputs", {}).items())]
        lines += [*_table(["", "name", "dtype", "shape"], rows), ""]
    return lines


def _calling_section(task: str, signatures: Mapping[str, Any]) -> list[str]:
    signature, body = example_request(signatures)
    url = f"http://localhost:8501/v1/models/{task}:predict"
    if signature in _bytes_signatures(signatures):
        file_name = _EXAMPLE_FILES.get(next(iter(signatures[signature]["inputs"])), "input.bin")
        command = (
            f"curl -s -X POST {url} \\\n"
            f"  -d \"{{\\\"signature_name\\\": \\\"{signature}\\\", "
            f"\\\"instances\\\": [{{\\\"b64\\\": \\\"$(base64 -w0 {file_name})\\\"}}]}}\""
        )
    elif body is None:
        command = f"curl -s -X POST {url} -d '{{\"instances\": [...]}}'"
    elif len(json.dumps(body)) > 400:
        command = f"python3 -c 'import json; print(json.dumps({_python_literal(body)}))' \\\n  | curl -s -X POST {url} -d @-"
    else:
        command = f"curl -s -X POST {url} \\\n  -d '{json.dumps(body)}'"
    return [
        "## Calling it",
        "",
        "Serve the export root (the folder holding this task's version folders) with either server; both answer "
        "the same REST API on port 8501, newest version by default:",
        "",
        "```sh",
        "dlsuite serve --model-root saved_models",
        f"# or: tensorflow_model_server --rest_api_port=8501 --model_name={task} "
        f"--model_base_path=$PWD/saved_models/{task}",
        "```",
        "",
        "Then (`/v1/models/" + task + "/versions/<n>:predict` calls a given version; the zeros and `<...>` "
        "stand for your values):",
        "",
        "```sh",
        command,
        "```",
        "",
        f"Signatures and version status: `curl http://localhost:8501/v1/models/{task}/metadata`, "
        f"`curl http://localhost:8501/v1/models/{task}`.",
        "",
    ]


def example_request(signatures: Mapping[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """A signature to show and a row-form request body for it.

    A signature over encoded bytes (image or WAV files) is preferred, since a client sends
    files; its body holds a placeholder that the card's curl line fills from a file.

    Returns:
        ``(signature name, {"instances": [...]} or None when an input has no known shape)``.
    """
    bytes_signatures = _bytes_signatures(signatures)
    if bytes_signatures:
        name = bytes_signatures[0]
        return name, {"signature_name": name, "instances": [{"b64": "<base64 of the file>"}]}
    name = "serving_default" if "serving_default" in signatures else next(iter(signatures))
    inputs = signatures[name].get("inputs", {})
    values = {}
    for key, tensor in sorted(inputs.items()):
        value = _example_value(key, tensor)
        if value is None:
            return name, None
        values[key] = value
    instance = next(iter(values.values())) if len(values) == 1 else values
    body = {"instances": [instance]}
    if name != "serving_default":
        body = {"signature_name": name, **body}
    return name, body


def _bytes_signatures(signatures: Mapping[str, Any]) -> list[str]:
    return [
        name for name, s in signatures.items()
        if len(s.get("inputs", {})) == 1
        and all(k.endswith("_bytes") and t.get("dtype") == "DT_STRING" for k, t in s["inputs"].items())
    ]


def _example_value(name: str, tensor: Mapping[str, Any]) -> Any:
    shape = _dims(tensor)
    if shape is None:
        return None
    per_example = [3 if d < 0 else d for d in shape[1:]]  # an unknown length: a few values show the form
    dtype = _dtype(tensor)
    if dtype == tf.string:
        leaf: Any = f"<{name}>"
    elif dtype == tf.bool:
        leaf = False
    else:
        leaf = 0.0 if dtype.is_floating else 0
    value = leaf
    for size in reversed(per_example):
        value = [value] * size
    return value


def _python_literal(body: Any) -> str:
    """A short Python expression for a body of repeated values (``[[0.0] * 4] * 32``)."""
    if isinstance(body, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_python_literal(v)}" for k, v in body.items()) + "}"
    if isinstance(body, list) and body and all(v == body[0] for v in body) and len(body) > 1:
        return f"[{_python_literal(body[0])}] * {len(body)}"
    if isinstance(body, list):
        return "[" + ", ".join(_python_literal(v) for v in body) + "]"
    return repr(body)


def _tensor_text(tensor: Mapping[str, Any]) -> tuple[str, str]:
    dims = _dims(tensor)
    shape = "unknown" if dims is None else "[" + ", ".join(
        "batch" if i == 0 and d < 0 else "any" if d < 0 else str(d) for i, d in enumerate(dims)
    ) + "]"
    return _dtype(tensor).name, shape


def _dims(tensor: Mapping[str, Any]) -> list[int] | None:
    shape = tensor.get("tensor_shape", {})
    if shape.get("unknown_rank"):
        return None
    return [int(d.get("size", -1)) for d in shape.get("dim", [])]


def _dtype(tensor: Mapping[str, Any]) -> tf.DType:
    return tf.dtypes.as_dtype(types_pb2.DataType.Value(tensor.get("dtype", "DT_INVALID")))


def _config_section(metadata: Mapping[str, Any]) -> list[str]:
    config = metadata.get("config")
    if not config:
        return []
    text = yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=False, default_flow_style=None, width=100)
    return ["## Training config", "", "The resolved configuration of the run (its `config.yaml`):", "",
            "```yaml", text.rstrip("\n"), "```", ""]


def _table(header: list[str], rows: list[tuple]) -> list[str]:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows),
    ]


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
