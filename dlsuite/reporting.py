"""Evaluation reports: metrics.json and the PNG plots of a run."""

from __future__ import annotations

import csv
import json
import os
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import metrics as skm  # noqa: E402


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, macro F1 and the confusion matrix."""
    labels = list(range(len(class_names)))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "macro_f1": float(np.mean(f1)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
        },
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "num_test_examples": int(len(y_true)),
    }


def write_json(data: Mapping[str, Any], path: str | os.PathLike) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")


def read_history(csv_path: str | os.PathLike) -> dict[str, list[float]]:
    """The per-epoch log CSVLogger wrote (resumed runs append to it)."""
    history: dict[str, list[float]] = {}
    if not os.path.exists(csv_path):
        return history
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key and value not in (None, ""):
                    history.setdefault(key, []).append(float(value))
    return history


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 100) -> None:
    """Lay out, write and close a matplotlib figure (closing frees it: runs draw many).

    Args:
        fig: the figure.
        path: the image file to write (PNG by its suffix).
        dpi: resolution.
    """
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def plot_history(history: Mapping[str, Sequence[float]], path: str | os.PathLike) -> None:
    """Loss and every other metric, train beside validation, one panel each."""
    names = [k for k in history if k != "epoch" and not k.startswith("val_") and k != "learning_rate"]
    if not names:
        return
    epochs = history.get("epoch") or list(range(len(history[names[0]])))
    epochs = [int(e) + 1 for e in epochs]
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.plot(epochs, history[name], label="train")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
        ax.grid(alpha=0.3)
    save_figure(fig, path)


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: str | os.PathLike) -> None:
    cm = np.asarray(matrix)
    size = max(4.0, 0.5 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > threshold else "black")
    ax.set_title("confusion matrix (test split)")
    save_figure(fig, path)


def score_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """Precision, recall, F1 and ROC-AUC from class probabilities ``(n, classes)``.

    Two classes: of the positive class (index 1). More: macro averages and
    one-vs-rest macro ROC-AUC. ROC-AUC is ``None`` when the test split lacks a class.
    """
    y_pred = probs.argmax(axis=1)
    binary = probs.shape[1] == 2
    average = "binary" if binary else "macro"
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        y_true, y_pred, average=average, labels=list(range(probs.shape[1])) if not binary else None, zero_division=0
    )
    try:
        auc = float(skm.roc_auc_score(y_true, probs[:, 1]) if binary else skm.roc_auc_score(
            y_true, probs, multi_class="ovr", labels=list(range(probs.shape[1]))))
    except ValueError:
        auc = None
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1), "roc_auc": auc}


def _one_vs_rest(y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str]):
    """(class name, binary truth, score) per curve: the positive class only when there are two."""
    indices = [1] if probs.shape[1] == 2 else range(probs.shape[1])
    for i in indices:
        truth = (np.asarray(y_true) == i).astype(int)
        if 0 < truth.sum() < len(truth):
            yield class_names[i], truth, probs[:, i]


def plot_roc_curves(y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str], path: str | os.PathLike) -> None:
    """ROC curve of the positive class (two classes) or one-vs-rest per class, with AUC in the legend."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, truth, score in _one_vs_rest(y_true, probs, class_names):
        fpr, tpr, _ = skm.roc_curve(truth, score)
        ax.plot(fpr, tpr, label=f"{name} (AUC {skm.auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curve (test split)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def plot_pr_curves(y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str], path: str | os.PathLike) -> None:
    """Precision-recall curve of the positive class (two classes) or one-vs-rest per class."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, truth, score in _one_vs_rest(y_true, probs, class_names):
        precision, recall, _ = skm.precision_recall_curve(truth, score)
        ap = skm.average_precision_score(truth, score)
        ax.plot(recall, precision, label=f"{name} (AP {ap:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("precision-recall curve (test split)")
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table (also valid Markdown)."""
    cells = [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    line = lambda values: "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(list(columns)), sep, *(line(r) for r in cells)])


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def plot_score_histogram(
    scores: np.ndarray,
    labels: np.ndarray | None,
    threshold: float,
    path: str | os.PathLike,
    *,
    class_names: tuple[str, str] = ("normal", "anomaly"),
    score_name: str = "anomaly score",
) -> None:
    """Histogram of scores (the two classes apart when labeled) with the threshold line.

    Args:
        scores: one score per example; higher means more likely the positive class.
        labels: 0/1 labels, or ``None`` when unlabeled.
        threshold: the decision threshold, drawn as a dashed line.
        path: where the PNG goes.
        class_names: legend names of label 0 and label 1.
        score_name: what the score is, for the axis and title.
    """
    scores = np.asarray(scores, np.float64)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.histogram_bin_edges(scores, bins=50)
    if labels is not None and 0 < np.sum(labels) < len(labels):
        labels = np.asarray(labels).astype(bool)
        ax.hist(scores[~labels], bins=bins, alpha=0.6, label=class_names[0])
        ax.hist(scores[labels], bins=bins, alpha=0.6, label=class_names[1])
    else:
        ax.hist(scores, bins=bins, alpha=0.8, label="all")
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.4g}")
    ax.set_yscale("log")
    ax.set_xlabel(score_name)
    ax.set_ylabel("examples")
    ax.set_title(f"{score_name}s (test split)")
    ax.legend()
    save_figure(fig, path)


def plot_series_scores(
    values: np.ndarray,
    channels: Sequence[str],
    point_labels: np.ndarray | None,
    window_ends: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    path: str | os.PathLike,
) -> None:
    """A series (one panel per channel, labeled anomalies shaded) above its window scores, flags marked.

    Args:
        values: ``[points, channels]``.
        channels: channel names.
        point_labels: 1 = anomalous point, or ``None``.
        window_ends: the last point of each scored window (where its score is drawn).
        scores: score of each window.
        threshold: flagging threshold.
        path: PNG to write.
    """
    values = np.asarray(values)
    n = values.shape[1]
    fig, axes = plt.subplots(n + 1, 1, figsize=(12, 1.6 * (n + 1)), sharex=True, squeeze=False)
    axes = axes[:, 0]
    spans = []
    if point_labels is not None:
        edges = np.flatnonzero(np.diff(np.concatenate([[0], np.asarray(point_labels) != 0, [0]]).astype(np.int8)))
        spans = list(zip(edges[::2], edges[1::2]))
    for i, ax in enumerate(axes[:-1]):
        ax.plot(values[:, i], linewidth=0.7)
        ax.set_ylabel(channels[i], fontsize=8)
    flagged = np.asarray(scores) > threshold
    axes[-1].plot(window_ends, scores, linewidth=0.7, color="tab:purple")
    axes[-1].scatter(np.asarray(window_ends)[flagged], np.asarray(scores)[flagged], s=6, color="red", label="flagged")
    axes[-1].axhline(threshold, color="black", linestyle="--", linewidth=0.8)
    axes[-1].set_ylabel("score", fontsize=8)
    axes[-1].set_xlabel("point")
    for ax in axes:
        for a, b in spans:  # at least 0.5% of the width, so one-point anomalies show
            ax.axvspan(a, max(b, a + 0.005 * len(values)), color="orange", alpha=0.25, linewidth=0)
    axes[0].set_title("test series: labeled anomalies shaded, flagged windows in red at their last point")
    save_figure(fig, path)
