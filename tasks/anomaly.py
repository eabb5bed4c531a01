"""Anomaly detection: learn what normal rows or windows look like, score the unusual.

A detector network (``autoencoder`` dense/lstm/variational, ``forecaster`` for series, ``som``,
``rbm``; for tables ``deep_svdd``, ``robust_autoencoder``, ``ae_ensemble`` and ``auto``, which
trains those together and keeps one, see :meth:`Anomaly.select_detector`) trains on normal
data (semi-supervised, when labels say which rows are normal) or on
everything (unsupervised, assuming ``threshold.contamination`` of it is anomalous). Its
``anomaly_score`` (reconstruction error, prediction error, distance to the best-matching unit,
free energy) is thresholded by one of
``dlsuite.thresholds.METHODS``; the threshold travels with the model and the export, whose
``serving_default`` takes raw rows (or raw windows) and returns ``score`` and ``is_anomaly``.
With labels, the report sets the network beside scikit-learn's IsolationForest fitted on the
same rows (``reference.isolation_forest``), a reference that is not part of the model.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any, Iterator, Mapping, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import ops
from sklearn import metrics as skm

from dlsuite import reporting, thresholds
from dlsuite.architectures import InputSpec
from dlsuite.architectures import build as build_architecture
from dlsuite.architectures import get as get_architecture
from dlsuite.architectures.detector_panel import DetectorPanel
from dlsuite.data import anomaly_data, tables, timeseries
from dlsuite.data.splits import Splits
from dlsuite.errors import DlsuiteError
from dlsuite.tasks.base import Endpoints, Task, register

log = logging.getLogger("dlsuite")

SCORE_LAYER = "anomaly_score"
TRAIN_ON = ("auto", "normal", "all")
SCALING = ("auto", "standard", "robust")
# Detectors written for real tables, fed median/IQR-scaled rows under data.scaling=auto.
ROBUST_SCALED = ("auto", "robust_autoencoder", "ae_ensemble", "deep_svdd")
SELECTION_ROWS = 5000  # training rows the label-free selection of ``auto`` reads, at most
STATS_BATCH = 1024
IQR_TO_STD = 1.349  # the interquartile range of a normal distribution, in standard deviations


def robust_centre_spread(values: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature median and interquartile range / 1.349 (in standard-deviation units), ignoring NaN.

    A feature whose interquartile range is 0 (mostly one value: a sparse or binary column)
    falls back to its standard deviation, so its rare other values are not blown up without bound.

    Args:
        values: ``[..., F]`` training values (NaN = missing).
        where: names the data in errors.

    Returns:
        ``(centre, spread)``, each ``[F]``; a spread of 0 means a constant feature.
    """
    flat = np.asarray(values, np.float64).reshape(-1, values.shape[-1])
    _, variance = tables.nan_mean_variance(flat, where)
    low, centre, high = np.nanpercentile(flat, [25, 50, 75], axis=0)
    spread = (high - low) / IQR_TO_STD
    return centre, np.where(spread > 0, spread, np.sqrt(variance))


@keras.saving.register_keras_serializable(package="dlsuite")
class AnomalyPreprocessor(keras.layers.Layer):
    """Raw features -> detector input: standardize, impute, one-hot encode, optionally flatten.

    Numbers are standardized with a training centre and spread: the mean and standard deviation,
    or under robust scaling the median and interquartile range / 1.349; a missing value (NaN)
    becomes 0 after scaling, i.e. it is imputed with the training centre. Each
    categorical column is one-hot encoded over its training categories plus one slot for
    missing or unseen values.

    Args:
        mean: per-feature (or per-channel) training centre (mean, or median when robust).
        std: per-feature training spread (standard deviation, or IQR / 1.349; zeros become 1).
        vocabularies: training categories of each categorical column; when given, inputs are
            ``{"numeric": [batch, F], "categorical": [batch, C]}``.
        flatten: reshape ``[batch, T, F]`` windows to ``[batch, T * F]`` (detectors that take rows).
        **kwargs: ``keras.layers.Layer`` arguments.
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        vocabularies: Sequence[Sequence[str]] = (),
        flatten: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.mean = [float(m) for m in mean]
        self.std = [float(s) if s > 0 else 1.0 for s in std]
        self.vocabularies = [[str(v) for v in vocab] for vocab in vocabularies]
        self.flatten = bool(flatten)
        self.lookups = [
            keras.layers.StringLookup(
                vocabulary=vocab or ["<none>"], output_mode="one_hot", name=f"lookup_{i}"
            )
            for i, vocab in enumerate(self.vocabularies)
        ]

    def build(self, input_shape: Any) -> None:
        for lookup in self.lookups:
            lookup.build((None,))
        self.built = True

    def call(self, inputs: Any) -> Any:
        numeric = inputs["numeric"] if self.vocabularies else inputs
        x = (ops.cast(numeric, "float32") - ops.array(self.mean, "float32")) / ops.array(self.std, "float32")
        x = ops.where(ops.isnan(x), ops.zeros_like(x), x)
        # An infinite (or overflowing) value stays extreme but finite, so it scores high instead of NaN.
        x = ops.clip(x, -tables.LIMIT_STDS, tables.LIMIT_STDS)
        if self.vocabularies:
            categorical = inputs["categorical"]
            x = ops.concatenate(
                [x] + [lookup(categorical[:, i]) for i, lookup in enumerate(self.lookups)], axis=-1
            )
        if self.flatten:
            x = ops.reshape(x, (-1, math.prod(x.shape[1:])))
        return x

    def output_width(self) -> int:
        return len(self.mean) + sum(len(v or ["<none>"]) + 1 for v in self.vocabularies)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "mean": self.mean,
            "std": self.std,
            "vocabularies": self.vocabularies,
            "flatten": self.flatten,
        }


@keras.saving.register_keras_serializable(package="dlsuite")
class AnomalyScore(keras.layers.Layer):
    """The detector's ``anomaly_score`` as a layer, carrying the calibrated decision threshold.

    The layer outputs scores only; the threshold is stored here (set by the task's
    calibration, saved in the ``.keras`` file) and applied by the serving signature.

    Args:
        detector: a model with ``anomaly_score(x) -> [batch]``.
        threshold: flag scores above it (``None`` until calibrated).
        **kwargs: ``keras.layers.Layer`` arguments.
    """

    def __init__(self, detector: keras.Model, threshold: float | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.detector = detector
        self.threshold = None if threshold is None else float(threshold)

    def call(self, x: Any) -> Any:
        return ops.cast(self.detector.anomaly_score(x), "float32")

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None]:
        return (input_shape[0],)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "detector": keras.saving.serialize_keras_object(self.detector),
            "threshold": self.threshold,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "AnomalyScore":
        config = dict(config)
        config["detector"] = keras.saving.deserialize_keras_object(config["detector"])
        return cls(**config)


def score_layer(model: keras.Model) -> AnomalyScore:
    """The :class:`AnomalyScore` layer of an anomaly inference model."""
    layer = model.get_layer(SCORE_LAYER)
    if not isinstance(layer, AnomalyScore):
        raise DlsuiteError(f"model {model.name!r} is not an anomaly detector (no {SCORE_LAYER} layer).")
    return layer


def window_any(labels: np.ndarray) -> np.ndarray:
    """Per-example labels: a window of point labels is anomalous when any point is."""
    labels = np.asarray(labels)
    return labels.reshape(len(labels), -1).max(axis=1) if labels.ndim > 1 else labels


def stitch(windows: np.ndarray, stride: int) -> np.ndarray:
    """The points that windows cut every ``stride`` points came from.

    Values of overlapping windows agree, so later windows simply overwrite; for point labels
    (integer ``[n, window]``) a point is anomalous when any window says so.
    """
    n, window = windows.shape[:2]
    out = np.zeros(((n - 1) * stride + window, *windows.shape[2:]), windows.dtype)
    labels = windows.ndim == 2 and np.issubdtype(windows.dtype, np.integer)
    for i in range(n):
        span = slice(i * stride, i * stride + window)
        out[span] = np.maximum(out[span], windows[i]) if labels else windows[i]
    return out


def preprocessed_rows(model: keras.Model, batches: Sequence[Any]) -> np.ndarray:
    """Raw feature batches through the model's own preprocessing layer, one flat row per example."""
    preprocess = model.get_layer("preprocess")
    rows = [np.asarray(preprocess(x)) for x in batches]
    return np.concatenate([r.reshape(len(r), -1) for r in rows]) if rows else np.zeros((0, 0), np.float32)


def isolation_forest_reference(
    model: keras.Model, splits: Splits, test_batches: Sequence[Any], test_labels: np.ndarray
) -> dict[str, Any]:
    """scikit-learn's IsolationForest (default settings) on the run's own split, as a reference.

    It fits on the rows the network learned from (the normal training rows under the
    semi-supervised protocol, every training row otherwise), after the same preprocessing
    (scaling, imputation, one-hot encoding; windows flattened), and scores the test rows.

    Args:
        model: the anomaly inference model (its ``preprocess`` layer is used).
        splits: the run's splits; ``metadata["train_on"]`` and ``["seed"]`` are read.
        test_batches: the raw test feature batches, in order.
        test_labels: one label per test example.

    Returns:
        ``roc_auc``, ``pr_auc``, ``fit_on``, ``train_examples`` and a ``note`` saying what it is.
    """
    from sklearn.ensemble import IsolationForest
    from sklearn.metrics import average_precision_score, roc_auc_score

    fit_on = splits.metadata.get("train_on", "normal" if splits.metadata["has_labels"] else "all")
    features, labels = [], []
    for x, y in splits.train.batch(STATS_BATCH):
        features.append(x)
        labels.append(window_any(y.numpy()))
    train = preprocessed_rows(model, features)
    if fit_on == "normal":
        train = train[np.concatenate(labels) == 0]
    forest = IsolationForest(random_state=int(splits.metadata.get("seed", 0))).fit(train)
    scores = -forest.score_samples(preprocessed_rows(model, test_batches))
    return {
        "roc_auc": float(roc_auc_score(test_labels, scores)),
        "pr_auc": float(average_precision_score(test_labels, scores)),
        "fit_on": fit_on,
        "train_examples": int(len(train)),
        "note": "scikit-learn IsolationForest, default settings, on the same split and preprocessing; "
        "a reference, not a dlsuite network",
    }


@register
class Anomaly(Task):
    name = "anomaly"
    summary = (
        "rows or time-series windows -> anomaly score + flag; detectors learn normal, threshold calibrated"
    )
    input_kind = "tabular"
    architectures = (
        "autoencoder", "forecaster", "som", "rbm", "auto", "deep_svdd", "robust_autoencoder", "ae_ensemble"
    )
    embedded_datasets = anomaly_data.EMBEDDED
    headline_metric = "roc_auc"

    def config_overrides(self) -> dict[str, Any]:
        return {
            "data": {
                "label_column": None,
                "time_column": None,
                "window": 32,
                "stride": 1,
                "max_categories": 50,
                "normal_class": None,
                "train_on": "auto",
                "scaling": "auto",
            },
            "threshold": {"method": "contamination", "contamination": 0.05, "target_fpr": 0.05},
            # The default autoencoder reaches test ROC-AUC > 0.99 on the embedded sensors within 12-20
            # epochs; 12 keeps `dlsuite run anomaly` (train, evaluate, export, verify) within a minute.
            "train": {"epochs": 12, "batch_size": 128, "early_stopping_patience": 5},
        }

    def choices(self) -> dict[str, Sequence[Any]]:
        return {
            **super().choices(),
            "data.train_on": TRAIN_ON,
            "data.scaling": SCALING,
            "threshold.method": thresholds.METHODS,
        }

    # -- data ------------------------------------------------------------------------
    def load(self, cfg: Mapping[str, Any]) -> Splits:
        data, seed = cfg["data"], cfg["seed"]
        if data["path"]:
            return anomaly_data.from_file(data["path"], data, seed)
        if data["dataset"] in anomaly_data.EMBEDDED:
            return anomaly_data.embedded(data["dataset"], data, seed)
        return anomaly_data.from_tfds(data["dataset"], data, seed)

    def _categorical(self, splits: Splits) -> bool:
        return splits.metadata["kind"] == "table" and bool(splits.metadata.get("categorical_columns"))

    def raw_input(self, splits: Splits) -> Any:
        shape = tuple(splits.metadata["input_shape"])
        if self._categorical(splits):
            return {
                "numeric": keras.Input(shape=shape, dtype="float32", name="numeric"),
                "categorical": keras.Input(
                    shape=(len(splits.metadata["categorical_columns"]),), dtype="string", name="categorical"
                ),
            }
        return keras.Input(
            shape=shape, dtype="float32", name="window" if splits.metadata["kind"] == "series" else "features"
        )

    def preprocessor(self, splits: Splits, cfg: Mapping[str, Any]) -> keras.layers.Layer:
        numeric, categorical = [], []
        for x, _ in splits.train.batch(STATS_BATCH):
            if isinstance(x, dict):
                numeric.append(x["numeric"].numpy())
                categorical.append(x["categorical"].numpy().astype(str))
            else:
                numeric.append(x.numpy())
        values = np.concatenate(numeric)
        if self.robust_scaling(cfg):
            centre, spread = robust_centre_spread(values, "the training split")
        else:
            centre, variance = tables.nan_mean_variance(values, "the training split")
            spread = np.sqrt(variance)
        vocabularies = []
        if categorical:
            cats = np.concatenate(categorical)
            vocabularies = [sorted(v for v in np.unique(cats[:, j]) if v) for j in range(cats.shape[1])]
        series = splits.metadata["kind"] == "series"
        flatten = series and "sequence" not in get_architecture(cfg["architecture"]).input_kinds
        layer = AnomalyPreprocessor(centre, spread, vocabularies, flatten=flatten, name="preprocess")
        shape = list(splits.metadata["input_shape"])
        if flatten:
            splits.metadata["network_input"] = {"kind": "tabular", "shape": [math.prod(shape)]}
        elif series:
            splits.metadata["network_input"] = {"kind": "sequence", "shape": shape}
        else:
            splits.metadata["network_input"] = {"kind": "tabular", "shape": [layer.output_width()]}
        return layer

    def robust_scaling(self, cfg: Mapping[str, Any]) -> bool:
        """Whether features are scaled by median/IQR (``data.scaling``; ``auto``: for ``ROBUST_SCALED``)."""
        scaling = cfg["data"]["scaling"]
        return scaling == "robust" or (scaling == "auto" and cfg["architecture"] in ROBUST_SCALED)

    def network_input(self, splits: Splits) -> InputSpec:
        if "network_input" not in splits.metadata:
            raise DlsuiteError(
                "the anomaly preprocessor must be built (adapted on train) before the network."
            )
        spec = splits.metadata["network_input"]
        return InputSpec(spec["kind"], tuple(spec["shape"]))

    def head(self, splits: Splits) -> tuple[int, str | None]:
        return math.prod(self.network_input(splits).shape), None

    def build_network(self, splits: Splits, cfg: Mapping[str, Any]) -> keras.Model:
        spec = self.network_input(splits)
        network = build_architecture(cfg["architecture"], spec, math.prod(spec.shape), None, **cfg["model"])
        if not callable(getattr(network, "anomaly_score", None)):
            raise DlsuiteError(
                f"architecture {cfg['architecture']!r} is not a detector (it has no anomaly_score)."
            )
        if not network.built:  # subclassed detectors build on their first call
            network(np.zeros((1, *spec.shape), np.float32))
        return network

    def loss_and_metrics(self, splits: Splits, cfg: Mapping[str, Any]) -> tuple[Any, list[Any]]:
        return None, []  # detectors train themselves (their own train_step / test_step)

    def semi_supervised(self, splits: Splits, cfg: Mapping[str, Any]) -> bool:
        mode = cfg["data"]["train_on"]
        if mode == "normal" and not splits.metadata["has_labels"]:
            raise DlsuiteError(
                "data.train_on=normal needs labels (--label-column) to tell normal rows apart."
            )
        return mode == "normal" or (mode == "auto" and splits.metadata["has_labels"])

    def training_examples(self, splits: Splits, cfg: Mapping[str, Any]) -> tf.data.Dataset:
        method = cfg["threshold"]["method"]
        if method == "f1" and not splits.metadata["has_labels"]:
            raise DlsuiteError(
                "threshold.method=f1 needs labels (--label-column); "
                "use threshold.method=contamination or fpr."
            )
        if not self.semi_supervised(splits, cfg):
            return splits.train
        labels = np.concatenate([window_any(y.numpy()) for _, y in splits.train.batch(STATS_BATCH)])
        normal = int((labels == 0).sum())
        if normal < 10:
            raise DlsuiteError(
                f"the training split holds {normal} normal examples; at least 10 are needed to learn normal."
            )
        log.info("semi-supervised: training on the %d normal of %d training examples", normal, len(labels))
        normal_only = splits.train.filter(lambda x, y: tf.reduce_max(y) == 0)
        return normal_only.apply(tf.data.experimental.assert_cardinality(normal))

    # -- model, threshold ------------------------------------------------------------
    def inference_model(
        self, raw_input: Any, preprocessor: keras.layers.Layer, network: keras.Model, splits: Splits
    ) -> keras.Model:
        score = AnomalyScore(network, name=SCORE_LAYER)(preprocessor(raw_input))
        return keras.Model(raw_input, score, name=f"anomaly_{network.name}")

    def scores(
        self, model: keras.Model, ds: tf.data.Dataset, batch_size: int = 512
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """(scores, raw labels, raw feature batches) over an unbatched split, in order."""
        scores, labels, features = [], [], []
        for x, y in ds.batch(batch_size):
            scores.append(np.asarray(model(x, training=False)))
            labels.append(y.numpy())
            features.append(x)
        if not scores:
            return np.zeros(0, np.float32), np.zeros(0, np.int64), []
        return np.concatenate(scores), np.concatenate(labels), features

    def calibrate(self, model: keras.Model, splits: Splits, cfg: Mapping[str, Any]) -> None:
        if isinstance(score_layer(model).detector, DetectorPanel):
            self.select_detector(model, splits, cfg)
        settings = cfg["threshold"]
        method = settings["method"]
        if method == "contamination":
            train_scores, _, _ = self.scores(model, self.training_examples(splits, cfg))
            threshold = thresholds.contamination_threshold(train_scores, settings["contamination"])
        else:
            val_scores, val_labels, _ = self.scores(model, splits.val)
            val_labels = window_any(val_labels)
            if method == "fpr":
                # Unlabeled validation data counts as normal (its few anomalies raise the threshold a little).
                normal = val_scores[val_labels == 0] if splits.metadata["has_labels"] else val_scores
                threshold = thresholds.fpr_threshold(normal, settings["target_fpr"])
            else:
                threshold = thresholds.f1_threshold(val_scores, val_labels)
        score_layer(model).threshold = threshold
        splits.metadata["train_on"] = "normal" if self.semi_supervised(splits, cfg) else "all"
        splits.metadata["seed"] = int(cfg["seed"])
        splits.metadata["threshold"] = threshold
        splits.metadata["threshold_method"] = method
        log.info("threshold (%s): %.6g", method, threshold)

    def select_detector(self, model: keras.Model, splits: Splits, cfg: Mapping[str, Any]) -> None:
        """``auto``: keep the panel's detector that the evidence favours (README, "Anomaly detection").

        With labels on the validation split (both kinds present): the detector with the highest
        validation ROC-AUC. Without: a label-free rule on the training rows the panel learned
        from (at most ``SELECTION_ROWS``), model centrality (Ma et al., 2023): each detector's
        and an IsolationForest's scores are turned into ranks, their mean is the consensus, and
        the detector whose ranking agrees best with it (Spearman correlation) is kept. Ties go
        to the earlier detector. The choice and every candidate's figure land in
        ``splits.metadata`` (``selected_detector``, ``selection_rule``, ``selection_scores``).
        """
        from scipy.stats import rankdata, spearmanr
        from sklearn.ensemble import IsolationForest
        from sklearn.metrics import roc_auc_score

        panel: DetectorPanel = score_layer(model).detector
        preprocess = model.get_layer("preprocess")

        def panel_scores(
            ds: tf.data.Dataset, limit: int | None = None
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            rows, scores, labels = [], [], []
            for x, y in (ds.take(limit) if limit else ds).batch(STATS_BATCH):
                features = preprocess(x)
                rows.append(np.asarray(features).reshape(len(features), -1))
                scores.append(np.asarray(panel(features)))
                labels.append(window_any(y.numpy()))
            return np.concatenate(rows), np.concatenate(scores), np.concatenate(labels)

        _, val_scores, val_labels = panel_scores(splits.val)
        if splits.metadata["has_labels"] and 0 < val_labels.sum() < len(val_labels):
            rule = "validation ROC-AUC (labels)"
            figures = [float(roc_auc_score(val_labels, val_scores[:, k])) for k in range(val_scores.shape[1])]
        else:
            rule = "label-free: Spearman agreement with the consensus rank on the training rows"
            rows, scores, _ = panel_scores(self.training_examples(splits, cfg), SELECTION_ROWS)
            forest = IsolationForest(random_state=int(cfg["seed"])).fit(rows)
            columns = np.column_stack([scores, -forest.score_samples(rows)])
            consensus = np.mean([rankdata(c) for c in columns.T], axis=0)
            figures = [
                float(np.nan_to_num(spearmanr(scores[:, k], consensus)[0])) for k in range(scores.shape[1])
            ]
        chosen = panel.detector_names[int(np.argmax(figures))]
        panel.select(chosen)
        splits.metadata["selected_detector"] = chosen
        splits.metadata["selection_rule"] = rule
        splits.metadata["selection_scores"] = dict(zip(panel.detector_names, figures))
        log.info("auto: kept %s by %s (%s)", chosen, rule,
                 ", ".join(f"{n} {v:.3f}" for n, v in zip(panel.detector_names, figures)))

    # -- evaluation ------------------------------------------------------------------
    def evaluate(self, model: keras.Model, splits: Splits, run_dir: str, batch_size: int) -> dict[str, Any]:
        threshold = score_layer(model).threshold
        if threshold is None:
            raise DlsuiteError("the model has no calibrated threshold; train it with `dlsuite run anomaly`.")
        scores, raw_labels, features = self.scores(model, splits.test, max(batch_size, 256))
        has_labels = splits.metadata["has_labels"]
        labels = window_any(raw_labels)
        metrics = thresholds.detection_metrics(scores, labels if has_labels else None, threshold)
        metrics["num_test_examples"] = int(len(scores))
        for key in ("selected_detector", "selection_rule", "selection_scores"):
            if key in splits.metadata:
                metrics[key] = splits.metadata[key]
        if "roc_auc" in metrics:
            reference = isolation_forest_reference(model, splits, features, labels)
            metrics["reference"] = {"isolation_forest": reference}
            metrics["beats_isolation_forest"] = bool(metrics["roc_auc"] > reference["roc_auc"])
            log.info(
                "test ROC-AUC %.4f; reference IsolationForest (scikit-learn, same split) %.4f",
                metrics["roc_auc"], reference["roc_auc"],
            )
        reporting.plot_score_histogram(
            scores, labels if has_labels else None, threshold, os.path.join(run_dir, "score_histogram.png")
        )
        if "roc_auc" in metrics:
            two_columns = np.stack([-scores, scores], axis=1)
            names = anomaly_data.CLASS_NAMES
            reporting.plot_roc_curves(labels, two_columns, names, os.path.join(run_dir, "roc_curve.png"))
            reporting.plot_pr_curves(labels, two_columns, names, os.path.join(run_dir, "pr_curve.png"))
        stride = splits.metadata.get("stride")
        if splits.metadata["kind"] == "series" and stride and len(scores):
            windows = np.concatenate([np.asarray(f) for f in features])
            window = windows.shape[1]
            point_labels = (
                stitch(np.asarray(raw_labels), stride) if has_labels and raw_labels.ndim == 2 else None
            )
            starts = np.arange(len(scores)) * stride
            if point_labels is not None:
                metrics.update(timeseries.event_detection(point_labels, starts, window, scores > threshold))
            reporting.plot_series_scores(
                stitch(windows, stride),
                splits.metadata["channels"],
                point_labels,
                starts + window - 1,
                scores,
                threshold,
                os.path.join(run_dir, "series_scores.png"),
            )
        return metrics

    # -- serving ---------------------------------------------------------------------
    def serving_endpoints(self, model: keras.Model, metadata: Mapping[str, Any]) -> Endpoints:
        threshold = score_layer(model).threshold
        if threshold is None:
            threshold = metadata.get("threshold")
        if threshold is None:
            raise DlsuiteError("the model has no calibrated threshold to export.")
        cut = tf.constant(threshold, tf.float32)

        def outputs(score: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"score": score, "is_anomaly": score > cut}

        shape = tuple(metadata["input_shape"])
        if metadata["kind"] == "table" and metadata.get("categorical_columns"):

            def score_rows(features: tf.Tensor, categories: tf.Tensor) -> dict[str, tf.Tensor]:
                return outputs(model({"numeric": features, "categorical": categories}, training=False))

            signature = [
                tf.TensorSpec((None, *shape), tf.float32, name="features"),
                tf.TensorSpec((None, len(metadata["categorical_columns"])), tf.string, name="categories"),
            ]
            return {"serving_default": (score_rows, signature)}
        name = "window" if metadata["kind"] == "series" else "features"

        def score_features(values: tf.Tensor) -> dict[str, tf.Tensor]:
            return outputs(model(values, training=False))

        return {"serving_default": (score_features, [tf.TensorSpec((None, *shape), tf.float32, name=name)])}

    def verification_inputs(
        self, splits: Splits, metadata: Mapping[str, Any]
    ) -> dict[str, dict[str, np.ndarray]]:
        x, _ = next(iter(splits.test.batch(16)))
        if isinstance(x, dict):
            return {
                "serving_default": {"features": x["numeric"].numpy(), "categories": x["categorical"].numpy()}
            }
        name = "window" if metadata["kind"] == "series" else "features"
        return {"serving_default": {name: x.numpy()}}

    def serving_batches(
        self, ds: tf.data.Dataset, metadata: Mapping[str, Any], batch_size: int
    ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        name = "window" if metadata["kind"] == "series" else "features"
        for x, y in ds.batch(batch_size):
            if isinstance(x, dict):
                kwargs = {"features": x["numeric"].numpy(), "categories": x["categorical"].numpy()}
            else:
                kwargs = {name: x.numpy()}
            yield kwargs, window_any(y.numpy())

    def served_score(self, outputs: Mapping[str, np.ndarray], labels: np.ndarray) -> float | None:
        """ROC-AUC of the served scores (``None`` without both normal and anomalous examples)."""
        labels = np.asarray(labels).reshape(-1)
        if len(np.unique(labels)) < 2:
            return None
        return float(skm.roc_auc_score(labels, np.asarray(outputs["score"]).reshape(-1)))

    def predict_inputs(
        self, inputs: Sequence[str], metadata: Mapping[str, Any]
    ) -> tuple[str, dict[str, np.ndarray]]:
        if metadata["kind"] == "series":
            return "serving_default", {"window": np.stack([self._window_file(p, metadata) for p in inputs])}
        numeric_columns = metadata["numeric_columns"]
        categorical_columns = metadata.get("categorical_columns") or []
        width = len(numeric_columns) + len(categorical_columns)
        numbers, texts = [], []
        for row in inputs:
            cells = [c.strip() for c in row.split(",")]
            if len(cells) != width:
                raise DlsuiteError(
                    f"row {row!r} has {len(cells)} values; "
                    f"give {width} comma-separated values in this order: "
                    f"{', '.join(numeric_columns + categorical_columns)} (leave a value empty when missing)."
                )
            try:
                numbers.append([float(c) if c else np.nan for c in cells[: len(numeric_columns)]])
            except ValueError:
                raise DlsuiteError(
                    f"row {row!r}: the values of {', '.join(numeric_columns)} must be numbers."
                ) from None
            texts.append(cells[len(numeric_columns) :])
        kwargs = {"features": np.asarray(numbers, np.float32)}
        if categorical_columns:
            kwargs["categories"] = np.asarray(texts, dtype=object)
        return "serving_default", kwargs

    def _window_file(self, path: str, metadata: Mapping[str, Any]) -> np.ndarray:
        window, channels = metadata["input_shape"]
        df = tables.read_table(path)
        names = [c for c in metadata.get("channels", []) if c in df.columns]
        if len(names) != channels:
            raise DlsuiteError(
                f"{path} must have the columns {', '.join(metadata.get('channels', []))} "
                "(the model's channels)."
            )
        values = df[names].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
        if len(values) < window:
            raise DlsuiteError(f"{path} has {len(values)} rows; the model scores windows of {window} rows.")
        return values[-window:]

    def format_predictions(self, inputs: Sequence[str], outputs: Mapping[str, np.ndarray]) -> list[str]:
        return [
            f"{item}\t{'anomaly' if flag else 'normal'}\t{float(score):.6g}"
            for item, score, flag in zip(inputs, outputs["score"], outputs["is_anomaly"])
        ]
