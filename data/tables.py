"""CSV/TSV/Parquet tables: read, pick out label and time columns, clean the feature columns.

Small functions any tabular task composes (anomaly, fraud). The cleaning policy, documented in
README ("Anomaly detection"):

- a text column whose non-empty values are at least ``NUMERIC_SHARE`` numbers is numeric; the
  rest of its values ("n/a", "?", "error") become missing values and are counted;
- other text (and boolean) columns are categorical, up to ``max_categories`` distinct values;
  a text column with more is refused with an error naming it (an id or free text);
- constant columns carry no information and are dropped with a log line;
- infinite numbers (``inf``, ``-inf``) become missing values and are counted;
- bytes that are not valid UTF-8 (in a CSV, or a Parquet binary column) become U+FFFD, counted in a log line;
- missing values stay missing (NaN) in the raw features; the model's preprocessing imputes them,
  so served rows with missing values get the same treatment. Their count is logged.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from dlsuite.errors import DlsuiteError

log = logging.getLogger("dlsuite")

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")
NUMERIC_SHARE = 0.95
NORMAL_LABELS = frozenset(
    {"0", "false", "no", "n", "normal", "ok", "benign", "inlier", "legit", "legitimate", "genuine"}
)


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file into a DataFrame.

    Args:
        path: a ``.csv``, ``.tsv``/``.txt`` (tab-separated) or ``.parquet``/``.pq`` file.

    Returns:
        The table, at least one row.
    """
    path = Path(path)
    if not path.is_file():
        raise DlsuiteError(f"table file {path} does not exist; pass a CSV, TSV or Parquet file with --data.")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif suffix in (".tsv", ".txt"):
            df = pd.read_csv(path, sep="\t", encoding_errors="replace")
        elif suffix == ".csv":
            df = pd.read_csv(path, encoding_errors="replace")
        else:
            raise DlsuiteError(
                f"{path}: unsupported table format {suffix!r}; use one of {', '.join(TABLE_SUFFIXES)}."
            )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as e:
        if isinstance(e, DlsuiteError):
            raise
        raise DlsuiteError(
            f"cannot read table {path}: {e}. Check that it is a valid {suffix[1:].upper()} file."
        ) from None
    if df.empty:
        raise DlsuiteError(f"table {path} has no rows.")
    df.columns = [str(c) for c in df.columns]
    _decode_text(df, path)
    return df


def _decode_text(df: pd.DataFrame, path: Path) -> None:
    """Bytes values (Parquet binary columns) as text; invalid UTF-8 becomes U+FFFD, counted in a log line."""
    replaced = 0
    for name in df.columns:
        if df[name].dtype != object:
            continue
        values = df[name].map(
            lambda v: bytes(v).decode("utf-8", errors="replace") if isinstance(v, (bytes, bytearray)) else v
        )
        replaced += int(values.map(lambda v: isinstance(v, str) and "\ufffd" in v).sum())
        df[name] = values
    if replaced:
        log.info("%s: %d values were not valid UTF-8; their bad bytes became U+FFFD", path, replaced)


def pop_column(df: pd.DataFrame, name: str, role: str) -> pd.Series:
    """Remove and return column ``name``; a clear error lists the columns when it is absent.

    Args:
        df: the table (modified in place).
        name: the column.
        role: what it is for, for the message (``"label"``, ``"time"``).
    """
    if name not in df.columns:
        raise DlsuiteError(
            f"the table has no {role} column {name!r}; its columns are: {', '.join(map(str, df.columns))}. "
            f"Pass the right name with --{role}-column."
        )
    return df.pop(name)


def parse_times(values: pd.Series) -> pd.Series:
    """Timestamps (datetimes, or numbers such as epoch seconds) of a time column."""
    if pd.api.types.is_numeric_dtype(values):
        out = pd.Series(values.astype("float64"), index=values.index)
    else:
        out = pd.to_datetime(values, errors="coerce")
    bad = int(out.isna().sum())
    if bad:
        first = values[out.isna()].iloc[0]
        raise DlsuiteError(
            f"time column {values.name!r} has {bad} values that are not timestamps (first: {first!r}); "
            "fix or remove those rows."
        )
    return out


def binary_labels(values: pd.Series) -> np.ndarray:
    """A label column as 0 (normal) / 1 (anomaly, fraud).

    Numbers and booleans: nonzero is 1. Text with two distinct values: the one that reads as
    normal (``0``, ``false``, ``no``, ``normal``, ``ok``, ``benign``, ``inlier``, ``legit``...) is 0.
    """
    if values.isna().any():
        raise DlsuiteError(
            f"label column {values.name!r} has {int(values.isna().sum())} missing values; "
            "label every row or drop those rows."
        )
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return (values.astype("float64").to_numpy() != 0).astype(np.int64)
    text = values.astype(str).str.strip().str.lower()
    distinct = sorted(text.unique())
    normal = [v for v in distinct if v in NORMAL_LABELS]
    if len(distinct) > 2 or (len(distinct) == 2 and len(normal) != 1):
        raise DlsuiteError(
            f"label column {values.name!r} must be 0/1, true/false or two values one of which means normal "
            f"({', '.join(sorted(NORMAL_LABELS))}); it holds {', '.join(map(repr, distinct[:10]))}."
        )
    if not normal:  # a single value that does not read as normal: every row is positive
        return np.ones(len(text), np.int64)
    return (text != normal[0]).to_numpy().astype(np.int64)


@dataclasses.dataclass
class CleanTable:
    """Feature columns after cleaning.

    Attributes:
        numeric: float64 values (NaN = missing), shape ``[rows, len(numeric_columns)]``.
        categorical: string values (``""`` = missing), shape ``[rows, len(categorical_columns)]``.
        numeric_columns, categorical_columns: their names, in order.
        report: what cleaning did: ``missing``, ``junk`` and ``infinite`` counts per column, ``dropped_constant``.
    """

    numeric: np.ndarray
    categorical: np.ndarray
    numeric_columns: list[str]
    categorical_columns: list[str]
    report: dict[str, Any]


def coerce_numeric(column: pd.Series) -> tuple[pd.Series, int] | None:
    """A text column as numbers when at least ``NUMERIC_SHARE`` of its values parse, else ``None``.

    Returns:
        (the numeric column, how many non-empty values were junk and became missing), or ``None``.
    """
    present = column.dropna()
    if present.empty:
        return pd.to_numeric(column, errors="coerce"), 0
    parsed = pd.to_numeric(present.astype(str).str.strip(), errors="coerce")
    ok = int(parsed.notna().sum())
    if ok < NUMERIC_SHARE * len(present):
        return None
    return (
        pd.to_numeric(column.astype(str).str.strip(), errors="coerce").where(column.notna()),
        len(present) - ok,
    )


def clean_features(df: pd.DataFrame, *, max_categories: int = 50, where: str = "table") -> CleanTable:
    """Split feature columns into numeric and categorical ones and apply the cleaning policy.

    Args:
        df: the feature columns only (label and time columns popped already).
        max_categories: the most distinct values a categorical column may have.
        where: the data's name, for messages.

    Returns:
        A :class:`CleanTable`.
    """
    numeric: dict[str, pd.Series] = {}
    categorical: dict[str, pd.Series] = {}
    report: dict[str, Any] = {"missing": {}, "junk": {}, "infinite": {}, "dropped_constant": []}
    for name in df.columns:
        col = df[name]
        if pd.api.types.is_bool_dtype(col):
            categorical[name] = col.astype("string")
        elif pd.api.types.is_numeric_dtype(col):
            numeric[name] = col.astype("float64")
        elif pd.api.types.is_datetime64_any_dtype(col):
            raise DlsuiteError(
                f"{where}: column {name!r} holds timestamps; "
                "pass it as the time column (--time-column) or drop it."
            )
        else:
            coerced = coerce_numeric(col)
            if coerced is not None:
                numeric[name], junk = coerced
                if junk:
                    report["junk"][name] = junk
            else:
                categorical[name] = col.astype("string")
    for name, col in categorical.items():
        count = col.nunique(dropna=True)
        if count > max_categories:
            if _looks_like_times(col):
                raise DlsuiteError(
                    f"{where}: column {name!r} holds timestamps; "
                    "pass it with --time-column (to score windows of a "
                    "time series) or drop it."
                )
            raise DlsuiteError(
                f"{where}: column {name!r} is text with {count} distinct values "
                f"(e.g. {col.dropna().iloc[0]!r}), more than data.max_categories={max_categories}; "
                "it looks like an id or free text. Drop the column, "
                "or raise data.max_categories if it really is a category."
            )
    for name, col in numeric.items():
        infinite = np.isinf(col.to_numpy(np.float64))
        if infinite.any():  # no mean or scale can be learned from them: treated as missing
            report["infinite"][name] = int(infinite.sum())
            numeric[name] = col.mask(infinite)
    if report["infinite"]:
        log.info("%s: %d infinite values treated as missing (%s)", where, sum(report["infinite"].values()),
                 ", ".join(f"{k}: {v}" for k, v in report["infinite"].items()))
    for table in (numeric, categorical):
        for name in list(table):
            col = table[name]
            missing = int(col.isna().sum())
            if missing:
                report["missing"][name] = missing
            if col.nunique(dropna=False) <= 1:
                log.info(
                    "%s: dropping constant column %r (a single value carries no information)", where, name
                )
                report["dropped_constant"].append(name)
                del table[name]
    if not numeric and not categorical:
        raise DlsuiteError(
            f"{where}: no feature column is left (every column is constant, the label or the time)."
        )
    if report["missing"]:
        log.info(
            "%s: %d missing values (%s); "
            "they are imputed with the training mean (numbers) or a missing category",
            where,
            sum(report["missing"].values()),
            ", ".join(f"{k}: {v}" for k, v in report["missing"].items()),
        )
    if report["junk"]:
        log.info(
            "%s: %d non-numeric values in numeric columns treated as missing (%s)",
            where,
            sum(report["junk"].values()),
            ", ".join(f"{k}: {v}" for k, v in report["junk"].items()),
        )
    rows = len(df)
    num = (
        np.stack([numeric[n].to_numpy(np.float64) for n in numeric], axis=1)
        if numeric
        else np.zeros((rows, 0))
    )
    cat = (
        np.stack([categorical[n].fillna("").astype(str).to_numpy(dtype=object) for n in categorical], axis=1)
        if categorical
        else np.zeros((rows, 0), dtype=object)
    )
    return CleanTable(num, cat.astype(str) if cat.size else cat, list(numeric), list(categorical), report)


def _looks_like_times(column: pd.Series) -> bool:
    sample = column.dropna().astype(str).head(200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return len(sample) > 0 and parsed.notna().mean() >= NUMERIC_SHARE


def nan_mean_variance(values: np.ndarray, where: str = "training data") -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and variance ignoring missing values, over the last axis."""
    flat = np.asarray(values, np.float64).reshape(-1, values.shape[-1])
    if flat.shape[1] and np.isnan(flat).all(axis=0).any():
        raise DlsuiteError(f"{where}: a feature column has no values at all (every value missing); drop it.")
    return np.nanmean(flat, axis=0), np.nanvar(flat, axis=0)


# -- Records: a table row as named raw fields (the fraud task serves them by name) -------------
# Standardized numbers are clipped to this many standard deviations: a served inf stays finite.
LIMIT_STDS = 1e4
FIELD_KINDS = {"numeric": "float32", "string": "string", "integer": "int64"}


@dataclasses.dataclass(frozen=True)
class Field:
    """One raw input field of a record.

    Attributes:
        name: the column name in the table.
        kind: ``numeric`` (float, normalized), ``string`` or ``integer`` (categorical, one-hot).
        key: the name of the model input and of the serving signature argument
            (``name`` made a valid identifier).
    """

    name: str
    kind: str
    key: str

    @property
    def dtype(self) -> str:
        return FIELD_KINDS[self.kind]

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "kind": self.kind, "key": self.key, "dtype": self.dtype}


def field_key(name: str) -> str:
    """A column name as a signature-safe identifier: ``"Days:Policy"`` -> ``"Days_Policy"``."""
    key = "".join(c if c.isalnum() or c == "_" else "_" for c in name.strip()) or "field"
    return f"f_{key}" if key[0].isdigit() else key


def record_fields(clean: CleanTable, integer_categorical: Sequence[str] = ()) -> list[Field]:
    """The fields of a cleaned table; ``integer_categorical`` numeric columns become categories.

    Args:
        clean: the cleaned feature columns.
        integer_categorical: numeric columns holding integer codes (a store number, a rating)
            to one-hot encode instead of normalizing.

    Returns:
        Numeric fields, then categorical ones, in table order.
    """
    for name in integer_categorical:
        if name in clean.categorical_columns:
            continue
        if name not in clean.numeric_columns:
            raise DlsuiteError(
                f"data.categorical_columns names {name!r}, which is not a feature column; "
                f"feature columns: {', '.join(clean.numeric_columns + clean.categorical_columns)}."
            )
        values = clean.numeric[:, clean.numeric_columns.index(name)]
        if np.isnan(values).any() or not np.all(values == np.round(values)):
            raise DlsuiteError(f"column {name!r} in data.categorical_columns must hold whole numbers with none missing.")
    fields = [Field(n, "numeric", field_key(n)) for n in clean.numeric_columns if n not in integer_categorical]
    fields += [Field(n, "integer", field_key(n)) for n in clean.numeric_columns if n in integer_categorical]
    fields += [Field(n, "string", field_key(n)) for n in clean.categorical_columns]
    keys = [f.key for f in fields]
    clashes = sorted({k for k in keys if keys.count(k) > 1})
    if clashes:
        raise DlsuiteError(f"columns {clashes} clash once made identifiers; rename them so they differ in letters or digits.")
    return fields


def record_arrays(clean: CleanTable, fields: Sequence[Field]) -> dict[str, np.ndarray]:
    """Field key -> column values in the field's dtype (NaN / ``""`` stay as missing markers)."""
    out = {}
    for f in fields:
        if f.name in clean.numeric_columns:
            values = clean.numeric[:, clean.numeric_columns.index(f.name)]
            out[f.key] = values.astype(np.int64) if f.kind == "integer" else values.astype(np.float32)
        else:
            out[f.key] = clean.categorical[:, clean.categorical_columns.index(f.name)].astype(object)
    return out


def record_inputs(fields: Sequence[Field]) -> dict[str, Any]:
    """One ``keras.Input`` per field (a scalar per row), keyed like :func:`record_arrays`."""
    import keras

    return {f.key: keras.Input(shape=(), dtype=f.dtype, name=f.key) for f in fields}


def vocabulary(values: np.ndarray, max_size: int | None = None) -> list[Any]:
    """Distinct values, most frequent first (ties by value), at most ``max_size``."""
    distinct, counts = np.unique(np.asarray(values), return_counts=True)
    order = sorted(range(len(distinct)), key=lambda i: (-counts[i], distinct[i]))
    kept = [distinct[i].item() if hasattr(distinct[i], "item") else distinct[i] for i in order]
    return kept[:max_size] if max_size else kept


def record_preprocessor(
    fields: Sequence[Field], train: Mapping[str, np.ndarray], *, max_categories: int | None = None, name: str = "preprocess"
) -> Any:
    """A Keras model from a dict of raw fields to one float vector, fitted on ``train`` only.

    Numeric fields are standardized by their training mean and variance and a missing
    value (NaN) becomes 0, the training mean. Categorical fields are one-hot encoded by
    a ``StringLookup`` / ``IntegerLookup`` over the training values (most frequent first,
    at most ``max_categories``); index 0 of each block is the out-of-vocabulary bucket,
    where values never seen in training (at serving time too) land.

    Args:
        fields: the record's fields.
        train: field key -> training values (:func:`record_arrays` of the training rows).
        max_categories: the largest vocabulary kept per categorical field.
        name: the model's name.

    Returns:
        A ``keras.Model`` whose output is ``[batch, width]`` float32: the normalized
        numeric fields in order, then each categorical field's one-hot block.
    """
    import keras

    inputs = record_inputs(fields)
    parts = []
    numeric = [f for f in fields if f.kind == "numeric"]
    if numeric:
        stacked = np.stack([np.asarray(train[f.key], np.float64) for f in numeric], axis=1)
        mean, variance = nan_mean_variance(stacked)
        x = keras.ops.stack([inputs[f.key] for f in numeric], axis=-1)
        x = keras.layers.Normalization(mean=mean.tolist(), variance=variance.tolist(), name="normalize")(x)
        # Missing -> the training mean; an infinite or overflowing value -> extreme but finite.
        parts.append(keras.ops.clip(keras.ops.where(keras.ops.isnan(x), 0.0, x), -LIMIT_STDS, LIMIT_STDS))
    for f in fields:
        if f.kind == "numeric":
            continue
        vocab = vocabulary(train[f.key], max_categories)
        lookup_cls = keras.layers.StringLookup if f.kind == "string" else keras.layers.IntegerLookup
        if f.kind == "string":
            vocab = [str(v) for v in vocab]
        else:
            vocab = [int(v) for v in vocab]
        lookup = lookup_cls(vocabulary=vocab, num_oov_indices=1, output_mode="one_hot", name=f"lookup_{f.key}")
        parts.append(keras.ops.cast(lookup(inputs[f.key]), "float32"))
    out = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="features")(parts)
    return keras.Model(inputs, out, name=name)


def record_layout(preprocessor: Any, fields: Sequence[Field]) -> list[dict[str, Any]]:
    """Where each field sits in the output of :func:`record_preprocessor`.

    Returns:
        Per field: ``key``, ``kind``, ``start``, ``width``, and ``mean``/``std`` (numeric)
        or ``vocabulary`` (categorical, index 0 = out of vocabulary).
    """
    layout, start = [], 0
    numeric = [f for f in fields if f.kind == "numeric"]
    if numeric:
        norm = preprocessor.get_layer("normalize")
        mean = np.asarray(norm.mean).reshape(-1)
        std = np.sqrt(np.maximum(np.asarray(norm.variance).reshape(-1), 0.0))
        for i, f in enumerate(numeric):
            layout.append({"key": f.key, "kind": f.kind, "start": start, "width": 1, "mean": float(mean[i]), "std": float(std[i])})
            start += 1
    for f in fields:
        if f.kind != "numeric":
            vocab = preprocessor.get_layer(f"lookup_{f.key}").get_vocabulary()
            layout.append({"key": f.key, "kind": f.kind, "start": start, "width": len(vocab), "vocabulary": vocab})
            start += len(vocab)
    return layout


def decode_records(rows: np.ndarray, layout: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Preprocessed rows (e.g. generated ones) back to raw fields, the inverse of the preprocessor.

    Numeric values are de-standardized; each categorical block becomes its most likely
    in-vocabulary value (the out-of-vocabulary index 0 is never chosen).

    Args:
        rows: ``[n, width]`` vectors in the preprocessor's output space.
        layout: :func:`record_layout` of that preprocessor.

    Returns:
        Field key -> raw values, like :func:`record_arrays`.
    """
    rows = np.asarray(rows, np.float64)
    out: dict[str, np.ndarray] = {}
    for part in layout:
        block = rows[:, part["start"]: part["start"] + part["width"]]
        if part["kind"] == "numeric":
            out[part["key"]] = (block[:, 0] * max(part["std"], 1e-3) + part["mean"]).astype(np.float32)
        else:
            vocab = part["vocabulary"]
            pick = 1 + np.argmax(block[:, 1:], axis=1) if len(vocab) > 1 else np.zeros(len(rows), np.int64)
            values = np.asarray(vocab, dtype=object)[pick]
            out[part["key"]] = values.astype(np.int64) if part["kind"] == "integer" else values
    return out


def time_ordered_indices(
    times: pd.Series, *, val_fraction: float, test_fraction: float, test_from: Any = None, val_from: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train on the past, validate on the recent past, test on the future.

    Args:
        times: :func:`parse_times` of the time column.
        val_fraction: share of the pre-test rows, the latest ones, held out for validation.
        test_fraction: share of all rows, the latest ones, in the test split (unless ``test_from``).
        test_from: a time (same kind as ``times``: a number, or a date string) from which
            rows go to the test split, instead of ``test_fraction``.
        val_from: a time from which the pre-test rows go to the validation split, instead of
            ``val_fraction`` (a whole tuning period: train on 1994, validate on 1995).

    Returns:
        (train, val, test) row indices; every train row is no later than any val row,
        every val row no later than any test row.
    """
    for label, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < frac < 1.0:
            raise DlsuiteError(f"data.{label} must be between 0 and 1 (exclusive), got {frac}.")
    order = np.argsort(times.to_numpy(), kind="stable")
    n = len(order)
    if test_from is not None:
        n_test = int((times >= _cut(times, test_from, "data.test_from")).sum())
    else:
        n_test = int(round(n * test_fraction))
    if val_from is not None:
        n_val = int((times >= _cut(times, val_from, "data.val_from")).sum()) - n_test
    else:
        n_val = int(round((n - n_test) * val_fraction))
    if n_test < 1 or n_val < 1 or n - n_test - n_val < 1:
        raise DlsuiteError(
            f"the time-ordered split of {n} rows leaves {n - n_test - n_val} train, {n_val} validation and "
            f"{n_test} test rows; each needs at least one (check data.val_from / data.test_from / the fractions)."
        )
    train, val, test = order[: n - n_test - n_val], order[n - n_test - n_val: n - n_test], order[n - n_test:]
    return np.sort(train), np.sort(val), np.sort(test)


def _cut(times: pd.Series, value: Any, option: str) -> Any:
    """``value`` (a number or a date string) as a time comparable with ``times``."""
    cut = parse_times(pd.Series([value], name=option)).iloc[0]
    if pd.api.types.is_datetime64_any_dtype(times) != isinstance(cut, pd.Timestamp):
        raise DlsuiteError(
            f"{option}={value!r} is not the same kind of time as column {times.name!r} "
            f"(e.g. {times.iloc[0]!r}); give a {'date' if pd.api.types.is_datetime64_any_dtype(times) else 'number'}."
        )
    return cut
