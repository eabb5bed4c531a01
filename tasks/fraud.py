"""Fraud detection: raw transaction fields in, fraud probability and decision out.

Rare positives drive every choice here: an imbalance strategy in training
(``imbalance.method``), a decision threshold picked on the validation split by
cost or by a target precision/recall and stored with the model, PR-AUC as the
headline metric, and a time-ordered split whenever the data has a time column
(train on the past, test on the future, as the model will be used).

The ``autoencoder`` architecture is trained on legitimate rows only; its anomaly
score (reconstruction error) becomes a fraud probability through a logistic
calibration on the validation split (:class:`ScoreCalibration`).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterator, Mapping, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from dlsuite import reporting
from dlsuite.architectures import ARCHITECTURES, InputSpec
from dlsuite.architectures import build as build_architecture
from dlsuite.data import tables, transactions
from dlsuite.data.splits import Splits, split_indices
from dlsuite.errors import DlsuiteError
from dlsuite.tasks.base import Endpoints, Task, register

log = logging.getLogger("dlsuite")

CLASS_NAMES = ("legit", "fraud")
IMBALANCE_METHODS = ("none", "class_weight", "focal", "resample", "gan")
THRESHOLD_METHODS = ("cost", "precision", "recall")
DETECTORS = ("autoencoder",)  # trained on legitimate rows only, scored by anomaly_score
LOW_FPR = 0.01
EMBEDDED = {
    "transactions": "simulated card transactions (default 20,000 rows, 1% fraud: card testing, account "
    "takeover, merchant collusion, night-time spikes), offline; data.num_transactions, data.fraud_rate",
}


@keras.saving.register_keras_serializable(package="dlsuite")
class ScoreCalibration(keras.layers.Layer):
    """A detector's anomaly score as a probability: ``sigmoid(slope * log(score) + intercept)``.

    ``slope`` and ``intercept`` are not trained by backprop; the fraud task fits them
    by logistic regression of the validation labels on the log score (Platt scaling),
    so the transform is monotone and leaves PR-AUC and ROC-AUC unchanged.

    Args:
        detector: a model with ``anomaly_score(x) -> [batch]`` (higher = more unusual).
        **kwargs: ``keras.layers.Layer`` arguments.
    """

    def __init__(self, detector: keras.Model, **kwargs: Any):
        super().__init__(**kwargs)
        self.detector = detector

    def build(self, input_shape: Any) -> None:
        self.slope = self.add_weight(name="slope", shape=(), initializer="ones", trainable=False)
        self.intercept = self.add_weight(name="intercept", shape=(), initializer="zeros", trainable=False)
        super().build(input_shape)

    def score(self, x: Any) -> Any:
        """The detector's anomaly score, ``[batch]`` float32."""
        return keras.ops.cast(self.detector.anomaly_score(x), "float32")

    def call(self, x: Any) -> Any:
        logit = self.slope * keras.ops.log(keras.ops.maximum(self.score(x), 1e-12)) + self.intercept
        return keras.ops.expand_dims(keras.ops.sigmoid(logit), -1)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, int]:
        return (input_shape[0], 1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "detector": keras.saving.serialize_keras_object(self.detector)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ScoreCalibration":
        config = dict(config)
        config["detector"] = keras.saving.deserialize_keras_object(config["detector"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="dlsuite")
class DecisionThreshold(keras.layers.Layer):
    """Passes fraud probabilities through and stores the decision threshold with the model.

    The threshold is a non-trainable weight (set by the fraud task's ``calibrate``), so
    a saved ``model.keras`` carries it to ``dlsuite evaluate`` and ``dlsuite export``.

    Args:
        **kwargs: ``keras.layers.Layer`` arguments.
    """

    def build(self, input_shape: Any) -> None:
        self.threshold = self.add_weight(
            name="threshold", shape=(), initializer=keras.initializers.Constant(0.5), trainable=False
        )
        super().build(input_shape)

    def call(self, probabilities: Any) -> Any:
        return probabilities

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


def stored_threshold(model: keras.Model) -> float:
    """The decision threshold a fraud model carries."""
    return float(model.get_layer("decision").threshold.numpy())


def _is_legit(x: Any, y: tf.Tensor) -> tf.Tensor:
    return tf.equal(y, 0)


def _is_fraud(x: Any, y: tf.Tensor) -> tf.Tensor:
    return tf.equal(y, 1)


# -- data ---------------------------------------------------------------------------------------

def frame_splits(
    df: pd.DataFrame,
    *,
    label_column: str,
    time_column: str | None = None,
    drop_columns: Sequence[str] = (),
    categorical_columns: Sequence[str] = (),
    max_categories: int = 100,
    val_fraction: float = 0.15,
    test_fraction: float | None = 0.2,
    test_from: Any = None,
    val_from: Any = None,
    seed: int = 0,
    source: str = "table",
) -> Splits:
    """A labeled table as train/val/test splits of raw fields (a dict per row).

    With a time column the split is time-ordered (:func:`tables.time_ordered_indices`);
    without one it is random and stratified by label.

    Args:
        df: the table (not modified).
        label_column: the 0/1 (or legit/fraud) label.
        time_column: timestamps (dates or numbers); used for the split, not as a feature.
        drop_columns: columns that are not features (row ids, leaks).
        categorical_columns: integer columns to one-hot encode instead of normalizing.
        max_categories: the most distinct values a text column may have.
        val_fraction, test_fraction, test_from, val_from: see :func:`tables.time_ordered_indices`;
            ``test_fraction=None`` makes no test split (the test split is the validation split).
        seed: split seed (random split only).
        source: the data's name, for messages and metadata.

    Returns:
        :class:`Splits` whose metadata holds ``fields`` (the raw inputs), ``feature_width``
        (the preprocessed width), ``class_counts`` and ``fraud_rate`` per split.
    """
    df = df.copy()
    labels = tables.binary_labels(tables.pop_column(df, label_column, "label"))
    times = tables.parse_times(tables.pop_column(df, time_column, "time")) if time_column else None
    missing = [c for c in drop_columns if c not in df.columns]
    if missing:
        raise DlsuiteError(
            f"data.drop_columns names {missing}, not columns of {source}; its columns: {', '.join(df.columns)}."
        )
    df = df.drop(columns=list(drop_columns))
    clean = tables.clean_features(df, max_categories=max_categories, where=source)
    fields = tables.record_fields(clean, categorical_columns)
    arrays = tables.record_arrays(clean, fields)
    parts = _split(labels, times, val_fraction, test_fraction, test_from, val_from, seed)
    names = ("train", "val", "test")
    for name, idx in zip(names, parts):
        if labels[idx].sum() == 0 and name != "test":
            raise DlsuiteError(
                f"the {name} split of {source} holds no fraud rows; there are {int(labels.sum())} in all. "
                "Use more data, or move data.test_from / the fractions so every split gets some."
            )
    train_idx = parts[0]
    width = sum(
        1 if f.kind == "numeric" else len(tables.vocabulary(arrays[f.key][train_idx], max_categories)) + 1
        for f in fields
    )

    def subset(idx: np.ndarray) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices(({k: v[idx] for k, v in arrays.items()}, labels[idx]))

    metadata = {
        "class_names": list(CLASS_NAMES),
        "fields": [f.to_dict() for f in fields],
        "feature_width": int(width),
        "input_shape": [len(fields)],
        "input_dtype": "record",
        "source": source,
        "label_column": label_column,
        "time_column": time_column,
        "split": "time-ordered" if times is not None else "random stratified",
        "num_examples": {n: int(len(i)) for n, i in zip(names, parts)},
        "class_counts": {n: [int((labels[i] == 0).sum()), int(labels[i].sum())] for n, i in zip(names, parts)},
        "fraud_rate": {n: float(labels[i].mean()) if len(i) else 0.0 for n, i in zip(names, parts)},
        "max_categories": int(max_categories),
        "cleaning": clean.report,
    }
    if times is not None:
        metadata["time_ranges"] = {
            n: [str(times.iloc[i].min()), str(times.iloc[i].max())] for n, i in zip(names, parts)
        }
    return Splits(*(subset(i) for i in parts), metadata)


def _split(
    labels: np.ndarray,
    times: pd.Series | None,
    val_fraction: float,
    test_fraction: float | None,
    test_from: Any,
    val_from: Any,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) indices; with ``test_fraction=None`` there is no test split (test = val)."""
    if test_fraction is not None:
        if times is not None:
            return tables.time_ordered_indices(
                times, val_fraction=val_fraction, test_fraction=test_fraction, test_from=test_from,
                val_from=val_from,
            )
        return split_indices(labels, val_fraction, test_fraction, seed)
    if not 0.0 < val_fraction < 1.0:
        raise DlsuiteError(f"the validation fraction must be between 0 and 1 (exclusive), got {val_fraction}.")
    index = np.arange(len(labels))
    if times is not None:
        order = np.argsort(times.to_numpy(), kind="stable")
        n_val = max(1, int(round(len(order) * val_fraction)))
        train, val = order[:-n_val], order[-n_val:]
    else:
        stratify = labels if labels.sum() >= 2 and (len(labels) - labels.sum()) >= 2 else None
        train, val = train_test_split(index, test_size=val_fraction, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(val), np.sort(val)


def fields_of(metadata: Mapping[str, Any]) -> list[tables.Field]:
    return [tables.Field(f["name"], f["kind"], f["key"]) for f in metadata["fields"]]


def split_arrays(ds: tf.data.Dataset) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """An unbatched split as (field key -> values, labels) in NumPy."""
    columns: dict[str, list[np.ndarray]] = {}
    labels = []
    for x, y in ds.batch(4096):
        for key, value in x.items():
            columns.setdefault(key, []).append(value.numpy())
        labels.append(y.numpy())
    out = {k: np.concatenate(v) for k, v in columns.items()}
    for k, v in out.items():
        if v.dtype == object:
            out[k] = np.array([s.decode() if isinstance(s, bytes) else s for s in v], dtype=object)
    return out, np.concatenate(labels)


def fraud_probability(model: keras.Model, features: Mapping[str, np.ndarray], batch_size: int = 1024) -> np.ndarray:
    """The model's fraud probability ``[n]`` for raw fields."""
    probs = model.predict(dict(features), batch_size=batch_size, verbose=0)
    return np.asarray(probs, np.float64).reshape(-1)


# -- threshold and report ---------------------------------------------------------------------------

def choose_threshold(
    y_true: np.ndarray,
    scores: np.ndarray,
    *,
    method: str = "cost",
    target: float = 0.9,
    false_negative_cost: float = 20.0,
    false_positive_cost: float = 1.0,
) -> tuple[float, dict[str, Any]]:
    """The decision threshold (flag when ``score >= threshold``) on labeled validation scores.

    Args:
        y_true: 0/1 labels.
        scores: fraud probabilities (higher = more likely fraud).
        method: ``cost``: least ``FN * false_negative_cost + FP * false_positive_cost``;
            ``precision``: the most recall with precision >= ``target``; ``recall``: the
            highest threshold with recall >= ``target``.
        target: the precision or recall to reach.
        false_negative_cost, false_positive_cost: cost of a missed fraud and of a false alarm.

    Returns:
        (threshold, facts: ``method``, ``target_met``, and validation precision/recall/cost there).
    """
    if method not in THRESHOLD_METHODS:
        raise DlsuiteError(f"threshold.method={method!r} is not valid; use one of {', '.join(THRESHOLD_METHODS)}.")
    if method != "cost" and not 0.0 < target <= 1.0:
        raise DlsuiteError(f"threshold.target must be in (0, 1] for threshold.method={method}, got {target}.")
    if false_negative_cost < 0 or false_positive_cost < 0:
        raise DlsuiteError("cost.false_negative and cost.false_positive must not be negative.")
    y_true = np.asarray(y_true).astype(np.int64)
    scores = np.asarray(scores, np.float64)
    positives = int(y_true.sum())
    if positives == 0:
        raise DlsuiteError("the validation split holds no fraud rows; a threshold cannot be chosen. Use more data.")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], y_true[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # last row of each distinct score
    thresholds = np.r_[np.nextafter(s[0], np.inf), s[last]]    # the first flags nothing
    tp = np.r_[0, np.cumsum(y)[last]]
    fp = np.r_[0, np.cumsum(1 - y)[last]]
    recall = tp / positives
    precision = np.divide(tp, tp + fp, out=np.ones_like(recall, dtype=np.float64), where=(tp + fp) > 0)
    cost = false_negative_cost * (positives - tp) + false_positive_cost * fp
    met = True
    if method == "cost":
        i = int(np.argmin(cost))
    elif method == "precision":
        ok = np.flatnonzero((precision >= target) & (tp > 0))
        met = len(ok) > 0
        i = int(ok[-1]) if met else int(np.argmax(np.where(tp > 0, precision, -1)))
    else:
        ok = np.flatnonzero(recall >= target)
        i = int(ok[0])
    if not met:
        log.warning(
            "no validation threshold reaches precision %.3f; using the most precise one (%.3f)", target, precision[i]
        )
    facts = {
        "method": method,
        "target": None if method == "cost" else float(target),
        "target_met": bool(met),
        "val_precision": float(precision[i]),
        "val_recall": float(recall[i]),
        "val_cost": float(cost[i]),
    }
    return float(thresholds[i]), facts


def recall_at_fpr(y_true: np.ndarray, scores: np.ndarray, max_fpr: float = LOW_FPR) -> float:
    """The highest recall reachable while at most ``max_fpr`` of legitimate rows are flagged."""
    fpr, tpr, _ = skm.roc_curve(y_true, scores)
    return float(tpr[fpr <= max_fpr].max())


def fraud_report(
    y_true: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    *,
    false_negative_cost: float,
    false_positive_cost: float,
) -> dict[str, Any]:
    """PR-AUC first, then ROC-AUC, metrics at the threshold, recall at 1% FPR, cost, confusion matrix."""
    y_true = np.asarray(y_true).astype(np.int64)
    pred = (np.asarray(scores) >= threshold).astype(np.int64)
    both = 0 < y_true.sum() < len(y_true)
    tn, fp, fn, tp = skm.confusion_matrix(y_true, pred, labels=[0, 1]).ravel()
    precision, recall, f1, _ = skm.precision_recall_fscore_support(y_true, pred, average="binary", zero_division=0)
    cost = false_negative_cost * fn + false_positive_cost * fp
    return {
        "pr_auc": float(skm.average_precision_score(y_true, scores)) if both else None,
        "roc_auc": float(skm.roc_auc_score(y_true, scores)) if both else None,
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "recall_at_1pct_fpr": recall_at_fpr(y_true, scores) if both else None,
        "threshold": float(threshold),
        "expected_cost": float(cost / len(y_true)),
        "total_cost": float(cost),
        "confusion_matrix": [[int(tn), int(fp)], [int(fn), int(tp)]],
        "fraud_rate": float(y_true.mean()),
        "num_test_examples": int(len(y_true)),
    }


# -- the task -----------------------------------------------------------------------------------

@register
class Fraud(Task):
    name = "fraud"
    summary = "transaction/claim fields -> fraud probability + decision; imbalance handling, cost-chosen threshold"
    input_kind = "tabular"
    architectures = ("mlp", "rbfn", "dbn", "autoencoder")
    embedded_datasets = EMBEDDED
    supporting_architectures = {"gan": "imbalance.method=gan oversampling"}
    reads_tfds = False
    headline_metric = "pr_auc"

    def config_overrides(self) -> dict[str, Any]:
        return {
            "data": {
                "label_column": None,
                "time_column": None,
                "test_from": None,
                "val_from": None,
                "drop_columns": [],
                "categorical_columns": [],
                "max_categories": 100,
                "val_fraction": 0.15,
                "test_fraction": 0.2,
                "num_transactions": 20000,
                "fraud_rate": 0.01,
            },
            "imbalance": {"method": "class_weight", "target_rate": 0.2, "focal_gamma": 2.0, "gan_epochs": 30},
            "threshold": {"method": "cost", "target": 0.9},
            "cost": {"false_negative": 20.0, "false_positive": 1.0},
            # Sized so that the default run (train, evaluate, export, verify) stays under a minute.
            "train": {"epochs": 20, "batch_size": 256, "early_stopping_patience": 4},
        }

    def choices(self) -> dict[str, Sequence[Any]]:
        return {**super().choices(), "imbalance.method": IMBALANCE_METHODS, "threshold.method": THRESHOLD_METHODS}

    # -- data and model ------------------------------------------------------------------
    def load(self, cfg: Mapping[str, Any]) -> Splits:
        data = cfg["data"]
        common = dict(
            drop_columns=data["drop_columns"], categorical_columns=data["categorical_columns"],
            max_categories=data["max_categories"], val_fraction=data["val_fraction"],
            test_fraction=data["test_fraction"], test_from=data["test_from"], val_from=data["val_from"],
            seed=cfg["seed"],
        )
        if data["path"]:
            if not data["label_column"]:
                raise DlsuiteError(f"--data {data['path']} needs --label-column (the 0/1 fraud column).")
            return frame_splits(
                tables.read_table(data["path"]), label_column=data["label_column"], time_column=data["time_column"],
                source=str(data["path"]), **common,
            )
        if data["dataset"] != "transactions":
            raise DlsuiteError(
                f"fraud has no dataset {data['dataset']!r}; use the embedded 'transactions' or your own table "
                "with --data FILE --label-column NAME (`dlsuite list datasets`)."
            )
        log_df = transactions.simulate(data["num_transactions"], data["fraud_rate"], seed=cfg["seed"])
        common["drop_columns"] = [*transactions.ID_COLUMNS, *common["drop_columns"]]
        return frame_splits(log_df, label_column="is_fraud", time_column="timestamp", source="transactions", **common)

    def raw_input(self, splits: Splits) -> dict[str, keras.KerasTensor]:
        return tables.record_inputs(fields_of(splits.metadata))

    def preprocessor(self, splits: Splits, cfg: Mapping[str, Any]) -> keras.Model:
        train, _ = split_arrays(splits.train)
        return tables.record_preprocessor(
            fields_of(splits.metadata), train, max_categories=splits.metadata["max_categories"]
        )

    def network_input(self, splits: Splits) -> InputSpec:
        return InputSpec("tabular", (int(splits.metadata["feature_width"]),))

    def head(self, splits: Splits) -> tuple[int, str | None]:
        return 1, "sigmoid"

    def build_network(self, splits: Splits, cfg: Mapping[str, Any]) -> keras.Model:
        if cfg["architecture"] in DETECTORS:
            width = int(splits.metadata["feature_width"])
            network = build_architecture(cfg["architecture"], self.network_input(splits), width, None, **cfg["model"])
        else:
            if cfg["model"].get("numeric_embedding", "none") != "none":
                # The preprocessed row starts with the standardized numeric fields; the mlp embeds those.
                numeric = sum(f.kind == "numeric" for f in fields_of(splits.metadata))
                cfg = {**cfg, "model": {**cfg["model"], "numeric_features": numeric}}
            network = super().build_network(splits, cfg)
        if not network.built:  # subclassed families build on their first call
            network(np.zeros((1, int(splits.metadata["feature_width"])), np.float32))
        return network

    def loss_and_metrics(self, splits: Splits, cfg: Mapping[str, Any]) -> tuple[Any, list[Any]]:
        if cfg["architecture"] in DETECTORS:
            return None, []
        imbalance = cfg["imbalance"]
        if imbalance["method"] == "focal":
            loss = keras.losses.BinaryFocalCrossentropy(gamma=imbalance["focal_gamma"])
        else:
            loss = keras.losses.BinaryCrossentropy()
        return loss, [keras.metrics.AUC(curve="PR", name="pr_auc"), keras.metrics.AUC(name="roc_auc")]

    def training_examples(self, splits: Splits, cfg: Mapping[str, Any]) -> tf.data.Dataset:
        method = cfg["imbalance"]["method"]
        negatives, positives = splits.metadata["class_counts"]["train"]
        if cfg["architecture"] in DETECTORS:
            # Detectors learn what legitimate traffic looks like; frauds only calibrate them.
            legit = splits.train.filter(_is_legit)
            return legit.apply(tf.data.experimental.assert_cardinality(negatives))
        if method == "resample":
            return self._resampled(splits, cfg, negatives, positives)
        if method == "gan":
            return self._with_generated_frauds(splits, cfg, negatives, positives)
        return splits.train

    def _oversampled_count(self, cfg: Mapping[str, Any], negatives: int, positives: int) -> int:
        rate = cfg["imbalance"]["target_rate"]
        if not 0.0 < rate < 1.0:
            raise DlsuiteError(f"imbalance.target_rate must be in (0, 1), got {rate}.")
        return max(positives, int(round(negatives * rate / (1.0 - rate))))

    def _resampled(self, splits: Splits, cfg: Mapping[str, Any], negatives: int, positives: int) -> tf.data.Dataset:
        """Every legitimate row once, fraud rows repeated to ``imbalance.target_rate``, interleaved at random."""
        wanted = self._oversampled_count(cfg, negatives, positives)
        legit = splits.train.filter(_is_legit)
        fraud = splits.train.filter(_is_fraud).cache().repeat().take(wanted)
        rate = cfg["imbalance"]["target_rate"]
        mixed = tf.data.Dataset.sample_from_datasets(
            [legit, fraud], weights=[1.0 - rate, rate], seed=cfg["seed"], stop_on_empty_dataset=False
        )
        return mixed.apply(tf.data.experimental.assert_cardinality(negatives + wanted))

    def _with_generated_frauds(
        self, splits: Splits, cfg: Mapping[str, Any], negatives: int, positives: int
    ) -> tf.data.Dataset:
        """Real rows plus synthetic fraud rows from the class-conditional tabular GAN.

        The GAN learns the preprocessed rows (normalized numbers, one-hot categories) of
        both classes; generated fraud rows are mapped back to raw fields (numbers
        de-normalized, each category its most likely value) so that they enter training
        through the same preprocessing as real rows, and the export stays unchanged.
        """
        if "gan" not in ARCHITECTURES.names():
            raise DlsuiteError("imbalance.method=gan needs the 'gan' architecture family, which is not installed.")
        wanted = self._oversampled_count(cfg, negatives, positives) - positives
        preprocessor = self.preprocessor(splits, cfg)
        raw, labels = split_arrays(splits.train)
        rows = np.asarray(preprocessor.predict(raw, batch_size=1024, verbose=0), np.float32)
        gan = build_architecture("gan", self.network_input(splits), 2, None, variant="tabular")
        gan.compile(optimizer=keras.optimizers.Adam(cfg["train"]["learning_rate"]))
        gan.fit(rows, labels, epochs=cfg["imbalance"]["gan_epochs"], batch_size=cfg["train"]["batch_size"], verbose=0)
        generated = np.asarray(gan.generate(wanted, 1), np.float32)
        synthetic = tables.decode_records(generated, tables.record_layout(preprocessor, fields_of(splits.metadata)))
        log.info(
            "imbalance.method=gan: %d generated fraud rows added to %d real training rows", wanted, negatives + positives
        )
        fake = tf.data.Dataset.from_tensor_slices((synthetic, np.ones(wanted, np.int64)))
        mixed = tf.data.Dataset.sample_from_datasets(
            [splits.train, fake], weights=[float(negatives + positives), float(wanted)], seed=cfg["seed"],
            stop_on_empty_dataset=False,
        )
        return mixed.apply(tf.data.experimental.assert_cardinality(negatives + positives + wanted))

    def fit_options(self, splits: Splits, cfg: Mapping[str, Any]) -> dict[str, Any]:
        if cfg["imbalance"]["method"] != "class_weight" or cfg["architecture"] in DETECTORS:
            return {}
        negatives, positives = splits.metadata["class_counts"]["train"]
        total = negatives + positives
        # "balanced" weights: each class carries half of the total weight.
        return {"class_weight": {0: total / (2.0 * negatives), 1: total / (2.0 * positives)}}

    def inference_model(
        self, raw_input: Any, preprocessor: keras.layers.Layer, network: keras.Model, splits: Splits
    ) -> keras.Model:
        features = preprocessor(raw_input)
        if hasattr(network, "anomaly_score"):
            outputs = ScoreCalibration(network, name="calibration")(features)
        else:
            outputs = network(features)
        return keras.Model(raw_input, DecisionThreshold(name="decision")(outputs), name=f"{self.name}_{network.name}")

    def calibrate(self, model: keras.Model, splits: Splits, cfg: Mapping[str, Any]) -> None:
        """Platt-scale a detector's score, then choose the threshold on the validation split."""
        features, labels = split_arrays(splits.val)
        if any(isinstance(layer, ScoreCalibration) for layer in model.layers):
            self._fit_score_calibration(model, features, labels)
        probs = fraud_probability(model, features)
        threshold, facts = choose_threshold(
            labels, probs, method=cfg["threshold"]["method"], target=cfg["threshold"]["target"],
            false_negative_cost=cfg["cost"]["false_negative"], false_positive_cost=cfg["cost"]["false_positive"],
        )
        model.get_layer("decision").threshold.assign(threshold)
        splits.metadata["threshold"] = threshold
        splits.metadata["threshold_choice"] = facts
        splits.metadata["cost"] = dict(cfg["cost"])
        log.info("threshold %.4g (%s): validation precision %.3f, recall %.3f", threshold, facts["method"],
                 facts["val_precision"], facts["val_recall"])

    def _fit_score_calibration(
        self, model: keras.Model, features: Mapping[str, np.ndarray], labels: np.ndarray
    ) -> None:
        layer = model.get_layer("calibration")
        preprocess = model.get_layer("preprocess")
        scores = []
        for start in range(0, len(labels), 1024):
            batch = {k: v[start: start + 1024] for k, v in features.items()}
            scores.append(np.asarray(layer.score(preprocess(batch))))
        log_score = np.log(np.maximum(np.concatenate(scores), 1e-12)).reshape(-1, 1)
        fit = LogisticRegression(C=1e4).fit(log_score, labels)
        layer.slope.assign(float(fit.coef_[0, 0]))
        layer.intercept.assign(float(fit.intercept_[0]))

    # -- evaluation and serving ------------------------------------------------------------
    def evaluate(self, model: keras.Model, splits: Splits, run_dir: str, batch_size: int) -> dict[str, Any]:
        features, labels = split_arrays(splits.test)
        probs = fraud_probability(model, features)
        cost = splits.metadata.get("cost") or {"false_negative": 20.0, "false_positive": 1.0}
        metrics = fraud_report(
            labels, probs, stored_threshold(model),
            false_negative_cost=cost["false_negative"], false_positive_cost=cost["false_positive"],
        )
        two_columns = np.stack([1.0 - probs, probs], axis=1)
        if 0 < labels.sum() < len(labels):
            reporting.plot_pr_curves(labels, two_columns, list(CLASS_NAMES), os.path.join(run_dir, "pr_curve.png"))
            reporting.plot_roc_curves(labels, two_columns, list(CLASS_NAMES), os.path.join(run_dir, "roc_curve.png"))
        reporting.plot_score_histogram(
            probs, labels, metrics["threshold"], os.path.join(run_dir, "score_distribution.png"),
            class_names=tuple(CLASS_NAMES), score_name="fraud probability",
        )
        reporting.plot_confusion_matrix(
            metrics["confusion_matrix"], list(CLASS_NAMES), os.path.join(run_dir, "confusion_matrix.png")
        )
        return metrics

    def serving_endpoints(self, model: keras.Model, metadata: Mapping[str, Any]) -> Endpoints:
        fields = fields_of(metadata)
        threshold = model.get_layer("decision").threshold  # a variable the export tracks

        def score_transactions(*columns: tf.Tensor) -> dict[str, tf.Tensor]:
            raw = {f.key: c for f, c in zip(fields, columns)}
            probs = tf.reshape(tf.cast(model(raw, training=False), tf.float32), [-1])
            return {"fraud_probability": probs, "is_fraud": probs >= tf.cast(threshold, tf.float32)}

        signature = [tf.TensorSpec((None,), tf.as_dtype(f.dtype), name=f.key) for f in fields]
        return {"serving_default": (score_transactions, signature)}

    def verification_inputs(self, splits: Splits, metadata: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
        features, _ = split_arrays(splits.test.take(64))
        return {"serving_default": features}

    def serving_batches(
        self, ds: tf.data.Dataset, metadata: Mapping[str, Any], batch_size: int
    ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        for x, y in ds.batch(batch_size):
            yield {key: value.numpy() for key, value in x.items()}, y.numpy()

    def served_score(self, outputs: Mapping[str, np.ndarray], labels: np.ndarray) -> float | None:
        """PR-AUC (average precision) of the served fraud probabilities."""
        labels = np.asarray(labels).reshape(-1)
        if len(np.unique(labels)) < 2:
            return None
        return float(skm.average_precision_score(labels, np.asarray(outputs["fraud_probability"]).reshape(-1)))

    def predict_inputs(self, inputs: Sequence[str], metadata: Mapping[str, Any]) -> tuple[str, dict[str, np.ndarray]]:
        frames = [tables.read_table(path) for path in inputs]
        return "serving_default", rows_to_fields(pd.concat(frames, ignore_index=True), fields_of(metadata))

    def format_predictions(self, inputs: Sequence[str], outputs: Mapping[str, np.ndarray]) -> list[str]:
        names = [f"{path}:{row + 1}" for path in inputs for row in range(len(tables.read_table(path)))]
        return [
            f"{name}\t{'fraud' if flag else 'legit'}\t{float(p):.4f}"
            for name, flag, p in zip(names, outputs["is_fraud"], outputs["fraud_probability"])
        ]


def rows_to_fields(df: pd.DataFrame, fields: Sequence[tables.Field]) -> dict[str, np.ndarray]:
    """Table rows as the serving inputs: field key -> values in the field's dtype.

    A column may be named as in training or by its key; missing values become NaN
    (numbers) or ``""`` (text). Extra columns (the label, ids) are ignored.
    """
    out = {}
    for f in fields:
        column = f.name if f.name in df.columns else f.key if f.key in df.columns else None
        if column is None:
            raise DlsuiteError(
                f"the rows lack column {f.name!r}; the model takes: {', '.join(x.name for x in fields)}."
            )
        values = df[column]
        if f.kind == "string":
            out[f.key] = values.astype("string").fillna("").astype(str).to_numpy(dtype=object)
        else:
            numbers = pd.to_numeric(values, errors="coerce")
            if f.kind == "integer":
                if numbers.isna().any():
                    raise DlsuiteError(f"column {f.name!r} must hold whole numbers in every row.")
                out[f.key] = numbers.to_numpy().astype(np.int64)
            else:
                out[f.key] = numbers.to_numpy().astype(np.float32)
    return out
