"""Anomaly-detection sources as :class:`~dlsuite.data.splits.Splits`.

Two kinds of example, recorded as ``metadata["kind"]``:

- ``table``: one row per example. Features are float32 ``[F]`` (missing = NaN), or, when the
  table has categorical columns, ``{"numeric": float32 [F], "categorical": string [C]}``. The
  label is a scalar (1 = anomaly).
- ``series``: windows of ``data.window`` points ``[window, channels]`` cut every
  ``data.stride`` points, train / validation / test taken in time order (earliest first, so no
  window of the future leaks into training). The label of a window is the vector of its point
  labels; the window is anomalous when any of them is.

Without a label column the labels are all 0 and ``metadata["has_labels"]`` is false: the run
trains unsupervised and reports scores without accuracy figures.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping

import numpy as np
import pandas as pd
import tensorflow as tf

from dlsuite.data import synthetic_anomalies, tables, timeseries
from dlsuite.data.splits import Splits, split_indices
from dlsuite.errors import DlsuiteError

log = logging.getLogger("dlsuite")

EMBEDDED = {
    "sensors": "generated 4-channel machine-sensor series (6,000 points) with labeled spikes, level shifts, "
    "correlation breaks and noise bursts; windows of data.window points",
    "machine_rows": "generated table of 4,000 machine readings (5 numeric + 1 categorical column), "
    "5% labeled anomalies",
}
CLASS_NAMES = ["normal", "anomaly"]
MIN_EXAMPLES = 20


def _metadata(
    kind: str, has_labels: bool, source: str, counts: Mapping[str, int], **extra: Any
) -> dict[str, Any]:
    return {
        "kind": kind,
        "has_labels": bool(has_labels),
        "class_names": list(CLASS_NAMES),
        "source": source,
        "num_examples": dict(counts),
        **extra,
    }


def table_splits(
    clean: tables.CleanTable,
    labels: np.ndarray | None,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    source: str,
    parts: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> Splits:
    """Rows -> seeded train/val/test splits (stratified by label when there are labels).

    ``parts`` gives the train, validation and test row indices instead (a time-ordered split).
    """
    rows = len(clean.numeric)
    if rows < MIN_EXAMPLES:
        raise DlsuiteError(
            f"{source} has {rows} rows; at least {MIN_EXAMPLES} are needed to split, train and threshold."
        )
    has_labels = labels is not None
    y = np.zeros(rows, np.int64) if labels is None else np.asarray(labels, np.int64)
    if len(y) != rows:
        raise DlsuiteError(f"{source}: {rows} feature rows but {len(y)} labels; they must match.")
    numeric = clean.numeric.astype(np.float32)
    categorical = clean.categorical.astype(str) if clean.categorical_columns else None
    if parts is None:
        parts = split_indices(y, val_fraction, test_fraction, seed)

    def subset(idx: np.ndarray) -> tf.data.Dataset:
        x: Any = (
            numeric[idx]
            if categorical is None
            else {"numeric": numeric[idx], "categorical": categorical[idx]}
        )
        return tf.data.Dataset.from_tensor_slices((x, y[idx]))

    return Splits(
        *(subset(p) for p in parts),
        _metadata(
            "table",
            has_labels,
            source,
            {"train": len(parts[0]), "val": len(parts[1]), "test": len(parts[2])},
            input_shape=[numeric.shape[1]],
            numeric_columns=clean.numeric_columns,
            categorical_columns=clean.categorical_columns,
            cleaning=clean.report,
        ),
    )


def series_splits(
    values: np.ndarray,
    point_labels: np.ndarray | None,
    channels: list[str],
    *,
    window: int,
    stride: int,
    val_fraction: float,
    test_fraction: float,
    source: str,
    cleaning: Mapping[str, Any] | None = None,
) -> Splits:
    """A series in time order -> windows of the train / val / test parts (in that order)."""
    values = np.asarray(values, np.float32)
    if values.ndim == 1:
        values = values[:, None]
    has_labels = point_labels is not None
    labels = np.zeros(len(values), np.int64) if point_labels is None else np.asarray(point_labels, np.int64)
    if len(labels) != len(values):
        raise DlsuiteError(f"{source}: {len(values)} points but {len(labels)} labels; they must match.")
    timeseries.check_window(len(values), window, stride, source)
    datasets, counts = [], {}
    for name, (a, b) in zip(
        ("train", "val", "test"),
        timeseries.chronological_parts(len(values), val_fraction, test_fraction, window),
    ):
        x = timeseries.windows(values[a:b], window, stride)
        y = timeseries.windows(labels[a:b], window, stride)[..., 0]
        datasets.append(tf.data.Dataset.from_tensor_slices((x, y)))
        counts[name] = len(x)
    return Splits(
        *datasets,
        _metadata(
            "series",
            has_labels,
            source,
            counts,
            input_shape=[window, values.shape[1]],
            window=int(window),
            stride=int(stride),
            channels=list(channels),
            cleaning=dict(cleaning or {}),
        ),
    )


def from_file(path: str, data: Mapping[str, Any], seed: int) -> Splits:
    """A CSV/TSV/Parquet table: rows, or a series when ``data.time_column`` is set.

    Args:
        path: the file.
        data: the ``data`` config section (``label_column``, ``time_column``, ``window``,
            ``stride``, ``max_categories``, ``val_fraction``, ``test_fraction``).
        seed: split seed (tables).
    """
    df = tables.read_table(path)
    label = tables.pop_column(df, data["label_column"], "label") if data["label_column"] else None
    labels = tables.binary_labels(label) if label is not None else None
    if data["time_column"]:
        times = tables.parse_times(tables.pop_column(df, data["time_column"], "time"))
        order = np.argsort(times.to_numpy(), kind="stable")
        df = df.iloc[order].reset_index(drop=True)
        labels = labels[order] if labels is not None else None
        clean = tables.clean_features(df, max_categories=data["max_categories"], where=str(path))
        if clean.categorical_columns:
            raise DlsuiteError(
                f"{path}: time-series channels must be numeric, but "
                f"{', '.join(map(repr, clean.categorical_columns))} "
                "hold text; drop them, or leave out --time-column to score rows as a table."
            )
        filled, _ = timeseries.fill_missing(
            pd.DataFrame(clean.numeric, columns=clean.numeric_columns), str(path)
        )
        return series_splits(
            filled.to_numpy(np.float32),
            labels,
            clean.numeric_columns,
            window=data["window"],
            stride=data["stride"],
            val_fraction=data["val_fraction"],
            test_fraction=data["test_fraction"],
            source=str(path),
            cleaning=clean.report,
        )
    clean = tables.clean_features(df, max_categories=data["max_categories"], where=str(path))
    return table_splits(
        clean,
        labels,
        val_fraction=data["val_fraction"],
        test_fraction=data["test_fraction"],
        seed=seed,
        source=str(path),
    )


def from_arrays(
    X: np.ndarray,
    y: np.ndarray | None,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    source: str = "arrays",
) -> Splits:
    """In-memory arrays: ``[n, features]`` rows (split at random) or ``[n, window, channels]`` windows.

    Windows are taken in the order given (train first, test last) since neighbouring windows of
    one series overlap; their labels are one per window. Missing values (NaN) are allowed.
    """
    X = np.asarray(X)
    if X.dtype == object or not np.issubdtype(X.dtype, np.number):
        raise DlsuiteError(
            f"X must hold numbers (NaN for missing), got dtype {X.dtype}; encode text columns first."
        )
    X = X.astype(np.float32)
    if X.ndim == 2:
        names = [f"x{i}" for i in range(X.shape[1])]
        clean = tables.CleanTable(X, np.zeros((len(X), 0), dtype=str), names, [], {})
        return table_splits(
            clean, y, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, source=source
        )
    if X.ndim != 3:
        raise DlsuiteError(
            f"X must be [n, features] rows or [n, window, channels] windows, got shape {X.shape}."
        )
    if len(X) < MIN_EXAMPLES:
        raise DlsuiteError(f"{source} has {len(X)} windows; at least {MIN_EXAMPLES} are needed.")
    labels = (
        np.zeros(len(X), np.int64) if y is None else np.asarray(y, np.int64).reshape(len(X), -1).max(axis=1)
    )
    test_start = int(round(len(X) * (1 - test_fraction)))
    val_start = int(round(test_start * (1 - val_fraction)))
    parts = [np.arange(0, val_start), np.arange(val_start, test_start), np.arange(test_start, len(X))]
    datasets = [tf.data.Dataset.from_tensor_slices((X[p], labels[p])) for p in parts]
    counts = {"train": len(parts[0]), "val": len(parts[1]), "test": len(parts[2])}
    return Splits(
        *datasets,
        _metadata(
            "series",
            y is not None,
            source,
            counts,
            input_shape=list(X.shape[1:]),
            window=int(X.shape[1]),
            stride=None,
            channels=[f"x{i}" for i in range(X.shape[2])],
            cleaning={},
        ),
    )


def from_tfds(name: str, data: Mapping[str, Any], seed: int) -> Splits:
    """A labeled TFDS dataset: examples of ``data.normal_class`` are normal, the rest anomalies.

    Features (images, vectors) are flattened to rows of numbers.
    """
    from dlsuite.data import tfds_source

    if data["normal_class"] is None:
        raise DlsuiteError(
            f"TFDS dataset {name!r} has class labels, not anomaly labels; "
            "choose the class that counts as normal "
            "with --set data.normal_class=N (every other class is an anomaly)."
        )
    datasets, _, _ = tfds_source.load(name, data["data_dir"], data["val_fraction"], data["download"])
    features, labels = [], []
    for x, y in datasets["train"].concatenate(datasets["val"]).concatenate(datasets["test"]).batch(1024):
        features.append(np.asarray(x, np.float32).reshape(len(x), -1))
        labels.append((np.asarray(y) != data["normal_class"]).astype(np.int64))
    X, y = np.concatenate(features), np.concatenate(labels)
    if y.all():
        raise DlsuiteError(
            f"TFDS dataset {name!r} has no example of data.normal_class={data['normal_class']}."
        )
    return from_arrays(
        X,
        y,
        val_fraction=data["val_fraction"],
        test_fraction=data["test_fraction"],
        seed=seed,
        source=f"tfds:{name}",
    )


def embedded(name: str, data: Mapping[str, Any], seed: int) -> Splits:
    """One of ``EMBEDDED``, generated from a fixed seed (the data does not change with ``seed``)."""
    if name == "sensors":
        values, labels, channels, _ = synthetic_anomalies.sensor_series()
        return series_splits(
            values,
            labels,
            channels,
            window=data["window"],
            stride=data["stride"],
            val_fraction=data["val_fraction"],
            test_fraction=data["test_fraction"],
            source="embedded:sensors",
        )
    if name == "machine_rows":
        df, labels = synthetic_anomalies.machine_rows()
        clean = tables.clean_features(df, max_categories=data["max_categories"], where="machine_rows")
        return table_splits(
            clean,
            labels,
            val_fraction=data["val_fraction"],
            test_fraction=data["test_fraction"],
            seed=seed,
            source="embedded:machine_rows",
        )
    raise KeyError(name)


def min_fit_examples(validation_fraction: float) -> int:
    """The fewest examples :func:`fit_arrays` splits into non-empty training and validation parts."""
    n = max(2, math.ceil(1 / validation_fraction))
    while not 0 < int(round(n * (1 - validation_fraction))) < n:
        n += 1
    return n


def fit_arrays(X: np.ndarray, *, validation_fraction: float, seed: int) -> Splits:
    """Unlabeled arrays for an estimator's ``fit``: train and validation parts (test = validation).

    Rows are split at random, windows ``[n, window, channels]`` in order (the last part validates).
    """
    if not 0.0 < validation_fraction < 1.0:
        raise DlsuiteError(
            f"validation_fraction must be between 0 and 1 (exclusive), got {validation_fraction}."
        )
    X = np.asarray(X, np.float32)
    cut = int(round(len(X) * (1 - validation_fraction)))
    if not 0 < cut < len(X):
        raise DlsuiteError(
            f"X has {len(X)} examples, too few to hold out validation_fraction={validation_fraction} of them "
            f"and train on the rest; pass at least {min_fit_examples(validation_fraction)}."
        )
    index = np.arange(len(X))
    if X.ndim == 2:
        index = np.random.default_rng(seed).permutation(len(X))
    train, val = np.sort(index[:cut]), np.sort(index[cut:])
    labels = np.zeros(len(X), np.int64)
    data = lambda idx: tf.data.Dataset.from_tensor_slices((X[idx], labels[idx]))  # noqa: E731
    kind = "table" if X.ndim == 2 else "series"
    extra: dict[str, Any] = {"input_shape": list(X.shape[1:])}
    if kind == "table":
        extra.update(numeric_columns=[f"x{i}" for i in range(X.shape[1])], categorical_columns=[])
    else:
        extra.update(window=int(X.shape[1]), stride=None, channels=[f"x{i}" for i in range(X.shape[2])])
    return Splits(
        data(train),
        data(val),
        data(val),
        _metadata(kind, False, "arrays", {"train": len(train), "val": len(val), "test": len(val)}, **extra),
    )
