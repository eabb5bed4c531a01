"""Batch prediction: a folder or a table in, one output row per input item, streamed through tf.data.

``dlsuite predict --model DIR --input SOURCE --output OUT`` reads SOURCE the way the
export's task takes it: a folder of images or WAV clips (one row per file, keyed by its
path), or a CSV/TSV/Parquet/JSONL table of texts, rows or series (keyed by the ``id``
column when there is one, else the row number). Items flow through ``tf.data`` in
batches into the export's serving signature, loaded with TensorFlow alone, and each
batch's rows are written to OUT (CSV or JSONL) as soon as it is scored.

An item that cannot be scored (an unreadable or corrupt file, an invalid JSON line, a
value that is not a number) becomes a row with an ``error`` and the others go on: when
the model rejects a batch, its items are scored one by one to find the ones it rejects.
OUT is written under a hidden name beside it and renamed when complete.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from dlsuite.errors import DlsuiteError

ERROR = "error"
ID_COLUMN = "id"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
AUDIO_SUFFIXES = (".wav",)
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".jsonl")
OUTPUT_SUFFIXES = (".csv", ".jsonl")
CHUNK_ROWS = 4096


class RowError(ValueError):
    """One input item cannot be scored; the message becomes its ``error``."""


@dataclasses.dataclass
class Item:
    """One input item: its key, the signature's arguments for it, or why it has none."""

    key: str
    inputs: dict[str, Any] | None
    error: str = ""


@dataclasses.dataclass
class Source:
    """What a batch prediction reads: the signature it feeds, the key's name and the items."""

    signature: str
    key_name: str
    items: Iterator[Item]
    total: int | None = None


# -- reading -----------------------------------------------------------------------------------

def read_file(path: Path) -> bytes:
    """A file's bytes, or :class:`RowError` saying why it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as e:
        raise RowError(f"cannot read the file: {e.strerror or e}") from None


def read_wav(path: Path) -> bytes:
    """A WAV file as 16-bit PCM bytes, as ``predict FILE...`` sends it; :class:`RowError` when unreadable."""
    from dlsuite.data import audio

    try:
        return audio.read_wav_bytes(path)
    except DlsuiteError as e:
        raise RowError(str(e)) from None


def folder_source(
    folder: Path, suffixes: Sequence[str], signature: str, argument: str, read: Callable[[Path], bytes]
) -> Source:
    """Every file under ``folder`` with one of ``suffixes``, read by ``read`` as ``argument``, keyed by path."""
    files = sorted(
        p for p in folder.rglob("*")
        if p.suffix.lower() in suffixes and p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not files:
        raise DlsuiteError(f"{folder} holds no {', '.join(suffixes)} files (subfolders included).")

    def items() -> Iterator[Item]:
        for path in files:
            try:
                yield Item(str(path), {argument: read(path)})
            except RowError as e:
                yield Item(str(path), None, str(e))

    return Source(signature, "path", items(), len(files))


def table_columns(path: Path) -> list[str] | None:
    """A CSV/TSV/Parquet file's column names (``None`` for JSONL, whose records may differ)."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return [str(c) for c in pq.ParquetFile(path).schema_arrow.names]
        if suffix in (".csv", ".tsv"):
            return [str(c) for c in pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", nrows=0).columns]
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise DlsuiteError(f"cannot read table {path}: {e}. Check that it is a valid {suffix[1:].upper()} file.") from None
    return None


def table_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """``(row number from 1, record, error)`` for each row of a CSV/TSV/Parquet/JSONL file, streamed.

    CSV and TSV cells are read as text (numbers are parsed by the task's reader, so one bad
    cell spoils its row only); a JSONL line that is not a JSON object is an error row.
    """
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _jsonl_records(path)
        return
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        chunks = (batch.to_pandas() for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK_ROWS))
    else:
        chunks = pd.read_csv(
            path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False, chunksize=CHUNK_ROWS
        )
    number = 0
    try:
        for chunk in chunks:
            chunk.columns = [str(c) for c in chunk.columns]
            for record in chunk.to_dict("records"):
                number += 1
                yield number, record, ""
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DlsuiteError(f"cannot read table {path}: {e}. Nothing was written; fix the file and run again.") from None


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    number = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            number += 1
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                yield number, None, f"not valid JSON: {e}"
                continue
            if not isinstance(record, dict):
                yield number, None, f"not a JSON object: {line.strip()[:60]}"
                continue
            yield number, record, ""


def is_missing(value: Any) -> bool:
    """An empty cell: ``None``, NaN, ``pd.NA`` or the empty string."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    return bool(np.ndim(value) == 0 and pd.isna(value))


def to_number(value: Any, column: str) -> float:
    """A cell as a float; NaN when missing (the model imputes it), :class:`RowError` when it is no number."""
    if is_missing(value):
        return math.nan
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise RowError(f"column {column!r}: {str(value)[:40]!r} is not a number") from None


def to_text(value: Any) -> str:
    """A cell as text; ``""`` when missing."""
    return "" if is_missing(value) else str(value)


def keyed_items(
    records: Iterator[tuple[int, dict[str, Any] | None, str]], convert: Callable[[Mapping[str, Any]], dict[str, Any]]
) -> Iterator[Item]:
    """Table records as items keyed by their ``id`` (else the row number), converted by ``convert``."""
    for number, record, error in records:
        key = str(number)
        if record is not None and not is_missing(record.get(ID_COLUMN)):
            key = str(record[ID_COLUMN])
        if record is None:
            yield Item(key, None, error)
            continue
        try:
            yield Item(key, convert(record))
        except RowError as e:
            yield Item(key, None, str(e))


def find_column(columns: Sequence[str] | None, names: Sequence[str], what: str) -> str:
    """The first of ``names`` among ``columns`` (``names[0]`` when the columns are not known in advance)."""
    if columns is None:
        return names[0]
    for name in names:
        if name in columns:
            return name
    raise DlsuiteError(f"the table lacks the {what} column {names[0]!r}; its columns: {', '.join(columns)}.")


def text_source(path: Path, metadata: Mapping[str, Any]) -> Source:
    """Sentiment: one text per row, from the ``text`` column (or the training text column)."""
    trained = ((metadata.get("config") or {}).get("data") or {}).get("text_column")
    column = find_column(table_columns(path), [n for n in ("text", trained) if n], "text")

    def convert(record: Mapping[str, Any]) -> dict[str, Any]:
        if column not in record:
            raise RowError(f"no {column!r} field")
        return {"text": to_text(record[column])}

    return Source("serving_default", ID_COLUMN, keyed_items(table_records(path), convert))


def field_source(path: Path, metadata: Mapping[str, Any]) -> Source:
    """Fraud: each row's fields, named as in training (or by their signature keys)."""
    columns = table_columns(path)
    fields = [(f, find_column(columns, [f["name"], f["key"]], "model's")) for f in metadata["fields"]]

    def convert(record: Mapping[str, Any]) -> dict[str, Any]:
        out = {}
        for field, column in fields:
            value = record.get(column)
            if field["kind"] == "string":
                out[field["key"]] = to_text(value)
            elif field["kind"] == "integer":
                number = to_number(value, column)
                if math.isnan(number) or number != round(number):
                    raise RowError(f"column {column!r} must hold a whole number, got {value!r}")
                out[field["key"]] = int(number)
            else:
                out[field["key"]] = to_number(value, column)
        return out

    return Source("serving_default", ID_COLUMN, keyed_items(table_records(path), convert))


def anomaly_row_source(path: Path, metadata: Mapping[str, Any]) -> Source:
    """Anomaly on a table: each row's numeric (and categorical) columns."""
    columns = table_columns(path)
    numeric = [find_column(columns, [c], "model's") for c in metadata["numeric_columns"]]
    categorical = [find_column(columns, [c], "model's") for c in metadata.get("categorical_columns") or []]

    def convert(record: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"features": np.array([to_number(record.get(c), c) for c in numeric], np.float32)}
        if categorical:
            out["categories"] = np.array([to_text(record.get(c)) for c in categorical], dtype=object)
        return out

    return Source("serving_default", ID_COLUMN, keyed_items(table_records(path), convert))


def anomaly_window_source(path: Path, metadata: Mapping[str, Any]) -> Source:
    """Anomaly on a series: every window of consecutive rows, keyed by its last row.

    The first ``window - 1`` rows end no window and get no output row; a window that
    holds an unreadable row is an error row.
    """
    window = int(metadata["window"])
    channels = [find_column(table_columns(path), [c], "channel") for c in metadata["channels"]]

    def rows() -> Iterator[Item]:
        def convert(record: Mapping[str, Any]) -> dict[str, Any]:
            return {"row": np.array([to_number(record.get(c), c) for c in channels], np.float32)}

        return keyed_items(table_records(path), convert)

    def windows() -> Iterator[Item]:
        recent: collections.deque[Item] = collections.deque(maxlen=window)
        for item in rows():
            recent.append(item)
            if len(recent) < window:
                continue
            bad = next((r for r in recent if r.inputs is None), None)
            if bad is not None:
                yield Item(item.key, None, f"the window holds row {bad.key}: {bad.error}")
            else:
                yield Item(item.key, {"window": np.stack([r.inputs["row"] for r in recent])})

    return Source("serving_default", ID_COLUMN, windows())


def open_source(task_name: str, metadata: Mapping[str, Any], path: str | os.PathLike) -> Source:
    """The items of ``path`` for an export of ``task_name``; a clear error when the kind does not fit.

    Args:
        task_name: the export's task.
        metadata: the export's metadata.
        path: a folder (image classification, speech) or a table file (the other tasks).

    Returns:
        A :class:`Source`.
    """
    path = Path(path)
    if not path.exists():
        raise DlsuiteError(f"--input {path} does not exist.")
    folders = {
        "image_classification": (IMAGE_SUFFIXES, "classify_image_bytes", "image_bytes", read_file, "images"),
        "speech": (AUDIO_SUFFIXES, "recognize_wav", "wav_bytes", read_wav, "WAV clips"),
    }
    if task_name in folders:
        suffixes, signature, argument, read, what = folders[task_name]
        if not path.is_dir():
            raise DlsuiteError(
                f"a {task_name} model predicts a folder of {what} with --input; {path} is a file. Pass its folder, "
                f"or the files themselves without --input/--output: dlsuite predict --model DIR {path}"
            )
        return folder_source(path, suffixes, signature, argument, read)
    if path.is_dir() or path.suffix.lower() not in TABLE_SUFFIXES:
        raise DlsuiteError(
            f"a {task_name} model predicts the rows of a table: pass a {', '.join(TABLE_SUFFIXES)} file, not {path}."
        )
    if task_name == "sentiment":
        return text_source(path, metadata)
    if task_name == "fraud":
        return field_source(path, metadata)
    if task_name == "anomaly":
        return (anomaly_window_source if metadata["kind"] == "series" else anomaly_row_source)(path, metadata)
    raise DlsuiteError(f"batch prediction does not know task {task_name!r}.")


# -- scoring -----------------------------------------------------------------------------------

def batched_items(source: Source, specs: Mapping[str, tf.TensorSpec], batch_size: int) -> tf.data.Dataset:
    """The items as a tf.data pipeline of batches ``{"key", "error", "inputs"}``.

    An item without inputs carries zeros (or empty strings) that are never scored.
    """
    row_specs = {name: tf.TensorSpec(spec.shape[1:], spec.dtype) for name, spec in specs.items()}
    blank = {name: _blank(spec) for name, spec in row_specs.items()}

    def generate() -> Iterator[dict[str, Any]]:
        for item in source.items:
            yield {"key": item.key, "error": item.error, "inputs": item.inputs if item.inputs is not None else blank}

    signature = {"key": tf.TensorSpec((), tf.string), "error": tf.TensorSpec((), tf.string), "inputs": row_specs}
    return tf.data.Dataset.from_generator(generate, output_signature=signature).batch(batch_size).prefetch(1)


def _blank(spec: tf.TensorSpec) -> Any:
    """A placeholder example of ``spec``: zeros, or empty strings."""
    shape = [d or 0 for d in spec.shape.as_list()]
    if spec.dtype == tf.string:
        return np.full(shape, b"", dtype=object) if shape else b""
    return np.zeros(shape, spec.dtype.as_numpy_dtype)


def error_message(error: tf.errors.OpError) -> str:
    """The line of a TensorFlow error that says what was wrong (not where in the graph)."""
    skip = ("Graph execution error", "Detected at node", "<stack traces", "[[")
    lines = [line.strip() for line in error.message.splitlines()]
    useful = [line for line in lines if line and not line.startswith(skip)]
    return (useful[0] if useful else lines[0]).split(" [Op:")[0]


def score_batch(fn: Any, inputs: Mapping[str, tf.Tensor], ok: np.ndarray) -> tuple[dict[str, np.ndarray], list[str]]:
    """Outputs for the rows of a batch where ``ok`` is true, and an error per row ("" when scored).

    When the model rejects the batch, its rows are scored one by one: the rows it
    rejects get TensorFlow's reason, the others their outputs.
    """
    index = np.flatnonzero(ok)
    errors = [""] * len(ok)
    if not len(index):
        return {}, errors
    picked = {k: tf.gather(v, index) for k, v in inputs.items()}
    try:
        return {k: v.numpy() for k, v in fn(**picked).items()}, errors
    except tf.errors.InvalidArgumentError:
        pass
    parts: dict[str, list[np.ndarray]] = {}
    for i in index:
        try:
            out = fn(**{k: v[i: i + 1] for k, v in inputs.items()})
        except tf.errors.InvalidArgumentError as e:
            errors[i] = error_message(e)
            continue
        for k, v in out.items():
            parts.setdefault(k, []).append(v.numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}, errors


# -- writing -----------------------------------------------------------------------------------

def plain(value: Any) -> Any:
    """A NumPy scalar as a JSON/CSV value (float32 by its shortest exact text)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.floating):
        return float(str(value))
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value


def output_columns(specs: Mapping[str, tf.TensorSpec], class_names: Sequence[str]) -> dict[str, list[str]]:
    """Output name -> its CSV columns, single values first: a vector over the classes gets one per class."""
    columns = {}
    for name, spec in sorted(specs.items(), key=lambda item: item[1].shape.rank == 2):
        if spec.shape.rank == 2:
            width = spec.shape[1] or 0
            suffixes = list(class_names) if len(class_names) == width else [str(i) for i in range(width)]
            columns[name] = [f"{name}_{s}" for s in suffixes]
        else:
            columns[name] = [name]
    return columns


class RowWriter:
    """Prediction rows into a CSV or JSONL file, written under a hidden name and renamed when complete."""

    def __init__(self, path: Path, key_name: str, columns: Mapping[str, list[str]]):
        self.path = path
        self.key_name = key_name
        self.columns = columns
        self.partial = path.with_name(f".{path.name}.partial")
        self.file = open(self.partial, "w", encoding="utf-8", newline="")
        self.jsonl = path.suffix.lower() == ".jsonl"
        if not self.jsonl:
            header = [key_name, *(c for cols in columns.values() for c in cols), ERROR]
            self.csv = csv.writer(self.file)
            self.csv.writerow(header)

    def write(self, key: str, outputs: Mapping[str, np.ndarray] | None, error: str) -> None:
        """One row: ``outputs`` holds this row's value of each output (``None`` for an error row)."""
        if self.jsonl:
            record: dict[str, Any] = {self.key_name: key}
            for name in self.columns:
                value = None if outputs is None else outputs[name]
                record[name] = None if value is None else (
                    [plain(v) for v in value] if np.ndim(value) else plain(value)
                )
            record[ERROR] = error or None
            self.file.write(json.dumps(record, ensure_ascii=False) + "\n")
            return
        cells: list[Any] = [key]
        for name, cols in self.columns.items():
            if outputs is None:
                cells += [""] * len(cols)
            else:
                value = outputs[name]
                cells += [plain(v) for v in value] if np.ndim(value) else [plain(value)]
        self.csv.writerow(cells + [error])

    def close(self, complete: bool) -> None:
        """Close the file; rename it into place when ``complete``, else remove it."""
        self.file.close()
        if complete:
            os.replace(self.partial, self.path)
        else:
            self.partial.unlink(missing_ok=True)


# -- the command -------------------------------------------------------------------------------

@dataclasses.dataclass
class Summary:
    """What a batch prediction did."""

    rows: int
    failed: int
    output: str


def _stop_on_error(items: Iterator[Item], stopped: list[DlsuiteError]) -> Iterator[Item]:
    """The items until one cannot be read at all (a table that turns malformed), kept in ``stopped``.

    Raised inside tf.data's generator, the error would reach the caller as a TensorFlow
    error; ending the items instead lets :func:`predict` raise it as it is.
    """
    try:
        yield from items
    except DlsuiteError as e:
        stopped.append(e)


def predict(
    model_dir: str | os.PathLike,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    batch_size: int = 64,
    progress: bool | None = None,
) -> Summary:
    """Score every item of ``input_path`` with the export in ``model_dir`` and write ``output_path``.

    Args:
        model_dir: an export version (``saved_models/<task>/<version>``).
        input_path: a folder of images/WAV clips, or a CSV/TSV/Parquet/JSONL table.
        output_path: a ``.csv`` or ``.jsonl`` file (replaced when complete).
        batch_size: items per call of the serving signature.
        progress: show a tqdm bar on stderr (``None``: when stderr is a terminal).

    Returns:
        A :class:`Summary`; rows that failed have an ``error`` in the output.
    """
    from tqdm import tqdm

    from dlsuite import export

    output = Path(output_path)
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise DlsuiteError(f"--output {output} must end in {' or '.join(OUTPUT_SUFFIXES)}.")
    if output.exists() and Path(input_path).exists() and output.resolve() == Path(input_path).resolve():
        raise DlsuiteError("--output must differ from --input.")
    if not output.parent.is_dir():
        raise DlsuiteError(f"the folder of --output {output} does not exist.")
    if batch_size < 1:
        raise DlsuiteError(f"--batch-size must be at least 1, got {batch_size}.")
    metadata = export.load_metadata(model_dir)
    source = open_source(metadata["task"], metadata, input_path)
    stopped: list[DlsuiteError] = []
    source.items = _stop_on_error(source.items, stopped)
    fn = tf.saved_model.load(str(model_dir)).signatures[source.signature]
    in_specs = fn.structured_input_signature[1]
    columns = output_columns(fn.structured_outputs, metadata.get("class_names") or [])
    writer = RowWriter(output, source.key_name, columns)
    rows = failed = 0
    complete = False
    bar = tqdm(total=source.total, unit=" rows", desc="predict", file=sys.stderr, disable=None if progress is None else not progress)
    try:
        for batch in batched_items(source, in_specs, batch_size):
            keys = [k.decode("utf-8", errors="replace") for k in batch["key"].numpy()]
            read_errors = [e.decode("utf-8", errors="replace") for e in batch["error"].numpy()]
            outputs, model_errors = score_batch(fn, batch["inputs"], np.array([not e for e in read_errors]))
            scored = 0
            for key, read_error, model_error in zip(keys, read_errors, model_errors):
                error = read_error or model_error
                if error:
                    writer.write(key, None, error)
                    failed += 1
                else:
                    writer.write(key, {name: values[scored] for name, values in outputs.items()}, "")
                    scored += 1
            rows += len(keys)
            bar.update(len(keys))
        if stopped:
            raise stopped[0]
        complete = True
    finally:
        bar.close()
        writer.close(complete)
    return Summary(rows, failed, str(output))
