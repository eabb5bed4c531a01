"""Decision thresholds over anomaly scores, and the metrics of a detector at its threshold.

Scores follow the detectors' convention: higher = more unusual; an example is flagged when
its score is strictly above the threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

from dlsuite.errors import DlsuiteError

METHODS = ("contamination", "fpr", "f1")


def contamination_threshold(train_scores: np.ndarray, contamination: float) -> float:
    """PyOD's convention: the ``(1 - contamination)`` quantile of the training scores.

    Args:
        train_scores: scores of the examples the detector was trained on.
        contamination: expected share of anomalies, in (0, 0.5].
    """
    if not 0.0 < contamination <= 0.5:
        raise DlsuiteError(
            f"contamination must be in (0, 0.5], got {contamination}; it is the expected share of anomalies."
        )
    return float(np.quantile(_finite(train_scores, "training"), 1.0 - contamination))


def fpr_threshold(normal_scores: np.ndarray, target_fpr: float) -> float:
    """The lowest threshold whose false-positive rate on normal examples is at most ``target_fpr``."""
    if not 0.0 < target_fpr < 1.0:
        raise DlsuiteError(f"threshold.target_fpr must be in (0, 1), got {target_fpr}.")
    scores = _finite(normal_scores, "normal validation")
    return float(np.quantile(scores, 1.0 - target_fpr, method="higher"))


def f1_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold with the best F1 on a labeled split (flagging ``score > threshold``)."""
    labels = np.asarray(labels).astype(int)
    if labels.min(initial=1) == labels.max(initial=0):
        raise DlsuiteError(
            "threshold.method=f1 needs a labeled validation split with both normal examples and anomalies; "
            "this one has only one kind. Use threshold.method=contamination or fpr, or more labeled data."
        )
    precision, recall, cuts = skm.precision_recall_curve(labels, _finite(scores, "validation"))
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    best = int(np.argmax(f1))
    # precision_recall_curve flags score >= cut; step just below the cut for our strict ">".
    return float(np.nextafter(cuts[best], -np.inf))


def detection_metrics(scores: np.ndarray, labels: np.ndarray | None, threshold: float) -> dict[str, Any]:
    """ROC-AUC, PR-AUC (average precision) and precision/recall/F1 at ``threshold``.

    Without labels (or with one class only) just the share of flagged examples.
    """
    scores = np.asarray(scores, np.float64)
    flagged = scores > threshold
    out: dict[str, Any] = {
        "threshold": float(threshold),
        "flagged_fraction": float(flagged.mean()) if len(scores) else 0.0,
    }
    if labels is None:
        return out
    labels = np.asarray(labels).astype(int)
    out["anomaly_fraction"] = float(labels.mean())
    if labels.min() == labels.max():
        return out
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        labels, flagged, average="binary", zero_division=0
    )
    out.update(
        roc_auc=float(skm.roc_auc_score(labels, scores)),
        pr_auc=float(skm.average_precision_score(labels, scores)),
        precision=float(precision),
        recall=float(recall),
        f1=float(f1),
    )
    return out


def event_flags(flags: np.ndarray, min_duration: int = 1, refractory: int = 0) -> np.ndarray:
    """Point flags of a series -> one flag per event: sustained, then quiet for a while.

    A point confirms an event when it and the ``min_duration - 1`` points before it are all
    flagged (a lone spike of a noisy score is no event when ``min_duration > 1``) and it comes
    more than ``refractory`` points after the previous event, so a long excursion reports
    once per ``refractory + 1`` points instead of on every point (a debounce). Causal: a
    point's decision depends only on it and the points before it.

    Args:
        flags: one boolean per point, in time order (scores above the threshold).
        min_duration: consecutive flagged points that make an event, at least 1.
        refractory: points after an event during which no new one starts, at least 0.

    Returns:
        Boolean array like ``flags``, true at the point each event is confirmed.
    """
    if int(min_duration) < 1 or int(refractory) < 0:
        raise DlsuiteError(
            f"min_duration must be at least 1 and refractory at least 0, got {min_duration} and {refractory}."
        )
    flags = np.asarray(flags, dtype=bool)
    sustained = flags
    if min_duration > 1:
        counts = np.concatenate([[0], np.cumsum(flags, dtype=np.int64)])
        sustained = np.zeros_like(flags)
        sustained[min_duration - 1:] = counts[min_duration:] - counts[:-min_duration] == min_duration
    candidates = np.flatnonzero(sustained)
    out = np.zeros_like(flags)
    if refractory == 0:
        out[candidates] = True
        return out
    j = 0
    while j < len(candidates):  # one step per event: jump past the refractory span
        out[candidates[j]] = True
        j = int(np.searchsorted(candidates, candidates[j] + int(refractory), side="right"))
    return out


def _finite(scores: np.ndarray, what: str) -> np.ndarray:
    scores = np.asarray(scores, np.float64).ravel()
    if scores.size == 0:
        raise DlsuiteError(f"no {what} scores to set a threshold from; the split is empty.")
    if not np.isfinite(scores).all():
        raise DlsuiteError(
            f"{int((~np.isfinite(scores)).sum())} {what} scores are not finite (the detector diverged); "
            "lower train.learning_rate or standardize the inputs."
        )
    return scores
