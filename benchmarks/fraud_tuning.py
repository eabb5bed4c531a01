"""The tuning-period protocol of the fraud benchmark: choose on 1995, retrain on 1994-1995, score 1996 once.

Imported by ``benchmarks/fraud.py`` (run from the repository root); see its docstring.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

log = logging.getLogger("bench")

NAME = "fraud"
TUNING_YEAR, TEST_YEAR = 1995, 1996
# Early stopping on 1995 picks the epoch count within this budget.
MAX_EPOCHS, PATIENCE = 40, 8
# The dlsuite grid: architecture x imbalance method x learning rate (18 settings).
MLP_128_64 = ["architecture=mlp", "model.hidden_units=[128,64]", "model.dropout=0.5", "model.batchnorm=true"]
ARCHITECTURES = {
    "mlp 128-64 bn": MLP_128_64,
    "mlp 256-128-64": ["architecture=mlp", "model.hidden_units=[256,128,64]", "model.dropout=0.3"],
    # Each numeric field through its own periodic embedding (Gorishniy et al. 2022) before the same MLP.
    "mlp 128-64 bn periodic": [*MLP_128_64, "model.numeric_embedding=periodic"],
}
IMBALANCE = ("none", "class_weight", "resample")
LEARNING_RATES = (1e-3, 3e-3)
GRID = {
    f"{arch} / {method} / lr {lr:g}": [*overrides, f"imbalance.method={method}", f"train.learning_rate={lr}"]
    for arch, overrides in ARCHITECTURES.items() for method in IMBALANCE for lr in LEARNING_RATES
}
HGB_GRID = [
    {"learning_rate": lr, "max_leaf_nodes": leaves, "class_weight": weight, "max_iter": iters}
    for lr in (0.03, 0.1) for leaves in (15, 31) for weight in (None, "balanced") for iters in (100, 300)
]
LOGREG_GRID = [{"C": c, "class_weight": weight} for c in (0.1, 1.0) for weight in (None, "balanced")]


@dataclasses.dataclass
class Scored:
    """One model's 1996 scores under the protocol, with what was chosen on 1995."""

    pr_auc: float
    roc_auc: float
    recall_at_1pct_fpr: float
    cost_per_claim: float
    threshold: float
    epochs: int | None = None


def tuning_splits(dataset: Sequence[str]) -> tuple[Any, Any, dict[str, Any]]:
    """(task, splits with train 1994 / val 1995 / test 1996, the dataset's resolved config)."""
    from dlsuite.tasks import runner

    task, cfg = runner.resolve_config(
        NAME, overrides=[*dataset, f"data.val_from={TUNING_YEAR}", f"data.test_from={TEST_YEAR}"]
    )
    return task, task.load(cfg), cfg


def without_test(splits: Any) -> Any:
    """The tuning splits with 1995 also as the test split, so a tuning run never scores 1996."""
    metadata = {**splits.metadata, "num_examples": {**splits.metadata["num_examples"]},
                "class_counts": {**splits.metadata["class_counts"]}}
    metadata["num_examples"]["test"] = metadata["num_examples"]["val"]
    metadata["class_counts"]["test"] = metadata["class_counts"]["val"]
    return dataclasses.replace(splits, test=splits.val, metadata=metadata)


def refit_splits(task: Any, splits: Any, cfg: Mapping[str, Any]) -> Any:
    """Train on 1994-1995 (validation 1995, already in training: it only feeds the runner), test 1996."""
    train = splits.train.concatenate(splits.val)
    counts = splits.metadata["class_counts"]
    sizes = splits.metadata["num_examples"]
    metadata = {
        **splits.metadata,
        "num_examples": {**sizes, "train": sizes["train"] + sizes["val"]},
        "class_counts": {**counts, "train": [a + b for a, b in zip(counts["train"], counts["val"])]},
    }
    refit = dataclasses.replace(splits, train=train, metadata=metadata)
    # Categories first seen in 1995 widen the one-hot blocks of a preprocessor adapted on 1994-1995.
    metadata["feature_width"] = int(task.preprocessor(refit, cfg).output.shape[-1])
    return refit


def run_network(task: Any, splits: Any, overrides: Sequence[str], work: str, tag: str) -> Any:
    from dlsuite.tasks import runner

    _, cfg = runner.resolve_config(NAME, overrides=[*overrides, "train.verbose=0", f"export.root={work}/sm"])
    return runner.run(task, cfg, Path(work) / "runs" / tag, splits=splits, do_export=False)


def best_epoch(run_dir: str) -> int:
    """The epoch (1-based) with the lowest validation loss: the one whose weights the run keeps."""
    from dlsuite import reporting

    return int(np.argmin(reporting.read_history(Path(run_dir) / "history.csv")["val_loss"])) + 1


def tune_networks(
    dataset: Sequence[str], work: str, seeds: Sequence[int], grid: Mapping[str, Sequence[str]] = GRID
) -> tuple[list[dict[str, Any]], dict[tuple[str, int], dict[str, Any]]]:
    """Every grid setting trained on 1994 and scored on 1995, per seed.

    Returns:
        (one row per setting: mean 1995 PR-AUC / ROC-AUC and the epochs chosen, sorted best first;
        (setting, seed) -> that tuning run's threshold and epoch count, reused by the final runs).
    """
    task, splits, _ = tuning_splits(dataset)
    splits = without_test(splits)
    budget = [f"train.epochs={MAX_EPOCHS}", f"train.early_stopping_patience={PATIENCE}"]
    rows, chosen = [], {}
    for name, overrides in grid.items():
        pr, roc, epochs = [], [], []
        for seed in seeds:
            result = run_network(task, splits, [*dataset, *budget, *overrides, f"seed={seed}"], work,
                                 f"tune-{len(chosen)}")
            m = result.metrics
            pr.append(m["pr_auc"])
            roc.append(m["roc_auc"])
            epochs.append(best_epoch(result.run_dir))
            chosen[(name, seed)] = {"threshold": m["threshold"], "epochs": epochs[-1]}
        rows.append({"setting": name, "1995 PR-AUC": float(np.mean(pr)), "1995 ROC-AUC": float(np.mean(roc)),
                     "epochs": "/".join(map(str, epochs))})
        log.info("  %s", rows[-1])
    rows.sort(key=lambda r: -r["1995 PR-AUC"])
    return rows, chosen


def final_networks(
    dataset: Sequence[str], work: str, setting: str, seeds: Sequence[int],
    tuned: dict[tuple[str, int], dict[str, Any]], cost: Mapping[str, float], grid: Mapping[str, Sequence[str]] = GRID,
) -> list[Scored]:
    """The chosen setting per seed: tuned on 1994/1995 (unless done), retrained on 1994-1995, scored on 1996."""
    from dlsuite.tasks import fraud

    task, splits, cfg = tuning_splits(dataset)
    budget = [f"train.epochs={MAX_EPOCHS}", f"train.early_stopping_patience={PATIENCE}"]
    refit = refit_splits(task, splits, cfg)
    features, labels = fraud.split_arrays(splits.test)
    scored = []
    for seed in seeds:
        if (setting, seed) not in tuned:
            result = run_network(task, without_test(splits), [*dataset, *budget, *grid[setting], f"seed={seed}"],
                                 work, f"final-tune-{seed}")
            tuned[(setting, seed)] = {"threshold": result.metrics["threshold"], "epochs": best_epoch(result.run_dir)}
        choice = tuned[(setting, seed)]
        fixed = [f"train.epochs={choice['epochs']}", f"train.early_stopping_patience={choice['epochs'] + 1}"]
        result = run_network(task, refit, [*dataset, *fixed, *grid[setting], f"seed={seed}"], work, f"refit-{seed}")
        probs = fraud.fraud_probability(result.model, features)
        scored.append(score_1996(labels, probs, choice["threshold"], cost, epochs=choice["epochs"]))
        log.info("  seed %d: %s", seed, scored[-1])
    return scored


def score_1996(labels: np.ndarray, probs: np.ndarray, threshold: float, cost: Mapping[str, float],
               epochs: int | None = None) -> Scored:
    from dlsuite.tasks import fraud

    report = fraud.fraud_report(labels, probs, threshold, false_negative_cost=cost["false_negative"],
                                false_positive_cost=cost["false_positive"])
    return Scored(report["pr_auc"], report["roc_auc"], report["recall_at_1pct_fpr"], report["expected_cost"],
                  threshold, epochs)


def year_frames(dataset: Sequence[str]) -> tuple[list[pd.DataFrame], list[np.ndarray], list[str]]:
    """The 1994, 1995 and 1996 rows as frames of raw fields, their labels, and the categorical names."""
    from dlsuite.tasks import fraud

    _, splits, _ = tuning_splits(dataset)
    fields = fraud.fields_of(splits.metadata)
    frames, labels = [], []
    for ds in (splits.train, splits.val, splits.test):
        arrays, y = fraud.split_arrays(ds)
        frames.append(pd.DataFrame({f.name: arrays[f.key] for f in fields}))
        labels.append(y)
    return frames, labels, [f.name for f in fields if f.kind != "numeric"]


def tune_sklearn(
    make: Callable[[Mapping[str, Any], int], Any], grid: Sequence[Mapping[str, Any]], dataset: Sequence[str],
    seeds: Sequence[int], cost: Mapping[str, float], categorical_dtype: bool,
) -> tuple[Mapping[str, Any], float, list[Scored]]:
    """A scikit-learn model under the same protocol.

    Args:
        make: (parameters, seed) -> an unfitted estimator with ``predict_proba``.
        grid: the parameter settings tried on 1995.
        dataset: the vehicle-claims ``--set`` overrides.
        seeds: the seeds of the final 1994-1995 fits.
        cost: ``false_negative`` / ``false_positive`` costs for the threshold and the report.
        categorical_dtype: give categorical columns the pandas category dtype (HistGradientBoosting).

    Returns:
        (the chosen parameters, their 1995 PR-AUC, the 1996 scores per seed).
    """
    from sklearn.metrics import average_precision_score

    from dlsuite.tasks import fraud

    (x94, x95, x96), (y94, y95, y96), categorical = year_frames(dataset)
    past, y_past = pd.concat([x94, x95], ignore_index=True), np.concatenate([y94, y95])
    if categorical_dtype:
        x94, x95 = as_categories([x94, x95], categorical, fit_rows=1)
        past, x96 = as_categories([past, x96], categorical, fit_rows=1)
    on_1995 = [make(p, 0).fit(x94, y94).predict_proba(x95)[:, 1] for p in grid]
    scores = [average_precision_score(y95, probs) for probs in on_1995]
    best = int(np.argmax(scores))
    threshold, _ = fraud.choose_threshold(
        y95, on_1995[best], method="cost",
        false_negative_cost=cost["false_negative"], false_positive_cost=cost["false_positive"],
    )
    finals = [score_1996(y96, make(grid[best], seed).fit(past, y_past).predict_proba(x96)[:, 1], threshold, cost)
              for seed in seeds]
    return grid[best], float(scores[best]), finals


def as_categories(frames: list[pd.DataFrame], categorical: Sequence[str], fit_rows: int) -> list[pd.DataFrame]:
    """Categorical columns as pandas categories of the first ``fit_rows`` frames (unseen values: missing)."""
    frames = [f.copy() for f in frames]
    for c in categorical:
        for f in frames:
            f[c] = f[c].astype(str)
        dtype = pd.CategoricalDtype(sorted(set().union(*(set(f[c]) for f in frames[:fit_rows]))))
        for f in frames:
            f[c] = f[c].astype(dtype)
    return frames


def mean_std(values: Sequence[float]) -> str:
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.4f}"
