"""The Numenta Anomaly Benchmark's scoring rule, from its definition (Lavin & Ahmad 2015).

A detector flags points of a series; each labeled anomaly window counts once:

- the window's first flagged point earns ``A_TP * sigma(y) / sigma(-1)``, where
  ``y = -(end - i + 1) / width`` runs from -1 at the window's first point towards 0
  at its last, and ``sigma(y) = 2 / (1 + exp(5 y)) - 1`` is NAB's scaled sigmoid:
  an early detection earns the whole reward ``A_TP``, a late one almost nothing;
  further flags inside the same window change nothing;
- a window with no flag costs ``A_FN``;
- every flag outside the windows costs ``A_FP * sigma(y)`` with ``y`` the distance
  past the end of the previous window in units of that window's width (minus one):
  a flag just after a window costs little, one far after it (``y >= 3``) or before
  any window costs the whole ``A_FP``;
- the probationary period, the first 15% of the series (at most 750 points), is
  not scored: a detector is allowed to learn there.

The raw score is normalized against the null detector (no flags: every window
missed) and the perfect one (every window flagged at its first scorable point):
``100 * (raw - null) / (perfect - null)``, summed over the series of a corpus
before dividing. The three application profiles weigh the terms differently
(:data:`PROFILES`). NAB itself picks, per detector and profile, the one threshold
on the anomaly scores that maximizes the corpus score (:func:`best_threshold`).

Pure NumPy; no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterable, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Profile:
    """Weights of a true positive, a false positive and a false negative (a missed window)."""

    tp: float
    fp: float
    fn: float


PROFILES = {
    "standard": Profile(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_fp": Profile(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_fn": Profile(tp=1.0, fp=0.11, fn=2.0),
}
PROBATION_FRACTION = 0.15
PROBATION_CAP = 750  # NAB: 15% of 5,000 points


def scaled_sigmoid(y: float | np.ndarray) -> float | np.ndarray:
    """NAB's ``2 / (1 + exp(5 y)) - 1``: 0.987 at ``y = -1``, 0 at 0, -1 from ``y = 3`` on (elementwise)."""
    y = np.asarray(y, dtype=np.float64)
    value = np.where(y >= 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.minimum(y, 3.0))) - 1.0)
    return float(value) if value.ndim == 0 else value


MAX_TP = scaled_sigmoid(-1.0)


def probation_length(num_points: int) -> int:
    """Points at the start of a series that are not scored."""
    return int(min(math.floor(PROBATION_FRACTION * num_points), PROBATION_CAP))


def window_bounds(timestamps: Sequence, windows: Iterable[Sequence]) -> list[tuple[int, int]]:
    """``[start, end]`` timestamp windows as inclusive ``(first, last)`` point indices.

    Args:
        timestamps: the series' timestamps, sorted (anything NumPy compares: datetimes, numbers).
        windows: ``(start, end)`` pairs in the timestamps' type.

    Returns:
        One ``(first, last)`` pair per window that holds at least one point, in order.
    """
    times = np.asarray(timestamps)
    bounds = []
    for start, end in windows:
        first = int(np.searchsorted(times, start, side="left"))
        last = int(np.searchsorted(times, end, side="right")) - 1
        if first <= last:
            bounds.append((first, last))
    return bounds


@dataclasses.dataclass(frozen=True)
class SeriesScore:
    """One series' raw NAB score and the null and perfect detectors' scores on it."""

    raw: float
    null: float
    perfect: float
    detected: int
    missed: int
    false_positives: int

    @property
    def normalized(self) -> float:
        return normalized([self])


def normalized(scores: Iterable[SeriesScore]) -> float:
    """``100 * (raw - null) / (perfect - null)`` over a corpus (sums over its series).

    0 is the null detector, 100 the perfect one; with no scorable window it is 0 - 100 * false-positive cost.
    """
    scores = list(scores)
    raw = sum(s.raw for s in scores)
    null = sum(s.null for s in scores)
    perfect = sum(s.perfect for s in scores)
    if perfect == null:  # no scorable window anywhere: only false positives can move the score
        return 100.0 * (raw - null)
    return 100.0 * (raw - null) / (perfect - null)


def _check_windows(bounds: Sequence[tuple[int, int]], num_points: int) -> None:
    previous = -1
    for first, last in bounds:
        if not 0 <= first <= last < num_points or first <= previous:
            raise ValueError(
                f"windows must be sorted, disjoint (first, last) index pairs within 0..{num_points - 1}; "
                f"got {list(bounds)}"
            )
        previous = last


def score_series(
    flags: np.ndarray,
    windows: Sequence[tuple[int, int]],
    profile: Profile = PROFILES["standard"],
    probation: int | None = None,
) -> SeriesScore:
    """NAB's score of one series' detections.

    Args:
        flags: one boolean per point, true where the detector reports an anomaly.
        windows: the anomaly windows as sorted, disjoint inclusive ``(first, last)`` indices.
        profile: the weights (:data:`PROFILES`).
        probation: unscored points at the start (default: :func:`probation_length`).

    Returns:
        The raw score with the null and perfect detectors' scores for normalizing.
    """
    flags = np.asarray(flags, dtype=bool).copy()
    n = len(flags)
    _check_windows(windows, n)
    skip = probation_length(n) if probation is None else int(probation)
    flags[:skip] = False

    raw = null = perfect = 0.0
    detected = missed = 0
    outside = np.ones(n, dtype=bool)
    for first, last in windows:
        outside[first:last + 1] = False
        if last < skip:  # wholly in the probationary period: not scored
            continue
        width = last - first + 1
        earliest = max(first, skip)
        perfect += profile.tp * scaled_sigmoid(-(last - earliest + 1) / width) / MAX_TP
        null -= profile.fn
        hits = np.flatnonzero(flags[first:last + 1])
        if hits.size:
            i = first + int(hits[0])
            raw += profile.tp * scaled_sigmoid(-(last - i + 1) / width) / MAX_TP
            detected += 1
        else:
            raw -= profile.fn
            missed += 1

    false_positives = np.flatnonzero(flags & outside)
    if false_positives.size:
        ends = np.array([last for _, last in windows] or [0], dtype=np.int64)
        spans = np.array([max(last - first, 1) for first, last in windows] or [1], dtype=np.float64)
        k = np.searchsorted(ends, false_positives, side="left") - 1  # the last window ending before the flag
        # Before any window: as far as can be (y = 3, the whole cost).
        y = np.where(k >= 0, (false_positives - ends[k]) / spans[k], 3.0) if windows else np.full(k.shape, 3.0)
        raw += profile.fp * float(np.sum(scaled_sigmoid(y)))
    return SeriesScore(raw, null, perfect, detected, missed, int(false_positives.size))


def best_threshold(
    scores: Sequence[np.ndarray],
    windows: Sequence[Sequence[tuple[int, int]]],
    profile: Profile = PROFILES["standard"],
    candidates: np.ndarray | None = None,
    decide: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[float, float, list[SeriesScore]]:
    """NAB's own threshold choice: the one threshold over a corpus that maximizes its normalized score.

    Args:
        scores: per series, one anomaly score per point, on one scale across the corpus.
        windows: per series, its windows as for :func:`score_series`.
        profile: the weights.
        candidates: thresholds to try (default: 200 quantiles of the pooled scores, plus
            one above the maximum: the null detector).
        decide: turns a series' points at or above the threshold into its flags (an
            event-level decision such as ``dlsuite.thresholds.event_flags``); default: as they are.

    Returns:
        ``(threshold, corpus normalized score, per-series scores at that threshold)``;
        a point is flagged where its score is at least the threshold.
    """
    if len(scores) != len(windows):
        raise ValueError(f"{len(scores)} score series but {len(windows)} window lists")
    if candidates is None:
        pooled = np.concatenate([np.asarray(s, dtype=np.float64) for s in scores])
        candidates = np.unique(np.quantile(pooled, np.linspace(0.5, 1.0, 200)))
        candidates = np.append(candidates, np.nextafter(pooled.max(), np.inf))
    best: tuple[float, float, list[SeriesScore]] | None = None
    for threshold in np.sort(np.asarray(candidates, dtype=np.float64))[::-1]:
        per_series = [
            score_series(decide(above) if decide else above, w, profile)
            for above, w in ((np.asarray(s) >= threshold, w) for s, w in zip(scores, windows))
        ]
        value = normalized(per_series)
        if best is None or value > best[1]:
            best = (float(threshold), value, per_series)
    assert best is not None
    return best
