"""Time series as sliding windows: cut, label, split in time order, and score anomaly events.

A series is ``values [points, channels]`` in time order with optional point labels (1 =
anomalous point). A window of ``window`` points starts every ``stride`` points; it is labeled
anomalous when any point in it is. An *event* is a run of consecutive anomalous points; a
detector finds it when it flags at least one window that overlaps it.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import pandas as pd

from dlsuite.errors import DlsuiteError

log = logging.getLogger("dlsuite")


def window_starts(num_points: int, window: int, stride: int) -> np.ndarray:
    """First point of every full window."""
    check_window(num_points, window, stride)
    return np.arange(0, num_points - window + 1, stride)


def check_window(num_points: int, window: int, stride: int, where: str = "series") -> None:
    if window < 1 or stride < 1:
        raise DlsuiteError(
            f"data.window and data.stride must be at least 1, got window={window}, stride={stride}."
        )
    if num_points < window:
        raise DlsuiteError(
            f"{where} has {num_points} points, fewer than data.window={window}; use a shorter window "
            "(--set data.window=N) or a longer series."
        )


def windows(values: np.ndarray, window: int, stride: int) -> np.ndarray:
    """Sliding windows ``[n, window, channels]`` over ``values [points, channels]`` (a copy)."""
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[:, None]
    starts = window_starts(len(values), window, stride)
    view = np.lib.stride_tricks.sliding_window_view(
        values, window, axis=0
    )  # [points-window+1, channels, window]
    return np.ascontiguousarray(view[starts].transpose(0, 2, 1))


def window_labels(point_labels: np.ndarray, window: int, stride: int) -> np.ndarray:
    """1 for every window holding at least one anomalous point, else 0."""
    labels = np.asarray(point_labels, np.int64)
    starts = window_starts(len(labels), window, stride)
    counts = np.concatenate([[0], np.cumsum(labels != 0)])
    return ((counts[starts + window] - counts[starts]) > 0).astype(np.int64)


def events(point_labels: np.ndarray) -> list[tuple[int, int]]:
    """Runs of consecutive anomalous points as ``(first, last + 1)`` index pairs."""
    flags = np.concatenate([[0], (np.asarray(point_labels) != 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(flags))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def event_detection(
    point_labels: np.ndarray, starts: np.ndarray, window: int, flagged: np.ndarray
) -> dict[str, Any]:
    """Event-level detection: each anomaly event counts once, however many windows flag it.

    Args:
        point_labels: labels of the points the windows were cut from.
        starts: first point of each scored window.
        window: window length.
        flagged: boolean flag of each window.

    Returns:
        ``events`` (total), ``events_detected``, ``event_recall`` and ``false_alarm_windows``
        (flagged windows that overlap no event).
    """
    runs = events(point_labels)
    starts = np.asarray(starts)
    flagged = np.asarray(flagged, bool)
    ends = starts + window
    detected = sum(bool(np.any(flagged & (starts < b) & (ends > a))) for a, b in runs)
    anomalous_window = (
        window_labels(point_labels, window, 1)[starts] if len(starts) else np.zeros(0, np.int64)
    )
    return {
        "events": len(runs),
        "events_detected": int(detected),
        "event_recall": float(detected / len(runs)) if runs else float("nan"),
        "false_alarm_windows": int(np.sum(flagged & (anomalous_window == 0))),
    }


def fill_missing(values: pd.DataFrame, where: str = "series") -> tuple[pd.DataFrame, int]:
    """Linear interpolation in time of missing points (edges: nearest value); returns the count."""
    missing = int(values.isna().sum().sum())
    if missing:
        log.info("%s: %d missing values interpolated linearly between neighbouring points", where, missing)
        values = values.interpolate(method="linear", limit_direction="both")
    return values, missing


@dataclasses.dataclass
class Series:
    """One series in time order.

    Attributes:
        values: float32 ``[points, channels]``.
        labels: int64 ``[points]`` point labels, or ``None`` when the data has none.
        channels: channel names.
        times: the timestamps (or ``None``).
    """

    values: np.ndarray
    labels: np.ndarray | None
    channels: list[str]
    times: np.ndarray | None = None


def chronological_parts(
    num_points: int, val_fraction: float, test_fraction: float, window: int
) -> list[tuple[int, int]]:
    """``[(start, end)]`` point ranges of train, val and test in time order, each at least a window long."""
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < frac < 1.0:
            raise DlsuiteError(f"data.{name} must be between 0 and 1 (exclusive), got {frac}.")
    test_start = int(round(num_points * (1 - test_fraction)))
    val_start = int(round(test_start * (1 - val_fraction)))
    parts = [(0, val_start), (val_start, test_start), (test_start, num_points)]
    for (a, b), name in zip(parts, ("train", "validation", "test")):
        if b - a < window:
            raise DlsuiteError(
                f"the {name} part of the series has {b - a} points, fewer than data.window={window}; "
                "use a longer "
                "series, a shorter window or other data.val_fraction / data.test_fraction."
            )
    return parts
