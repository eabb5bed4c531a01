"""Tabular detectors of the anomaly task on a real table: Deep SVDD, robust autoencoder, ensemble, auto.

The table is scikit-learn's bundled Wisconsin breast cancer (569 rows, 30 features):
benign rows are normal, malignant ones the anomalies.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import roc_auc_score

from dlsuite.architectures import InputSpec, build
from dlsuite.data import anomaly_data
from conftest import anomaly_config
from dlsuite.tasks import runner
from dlsuite.tasks.anomaly import isolation_forest_reference, robust_centre_spread, score_layer

FLOOR = 0.85  # test ROC-AUC; chance is 0.5 (measured 0.93-0.99 with 12 epochs)


def config(tmp_path, *overrides):
    return anomaly_config(tmp_path, "train.epochs=12", "train.early_stopping_patience=12", *overrides)


def breast_cancer(labeled: bool = True):
    data = load_breast_cancer()
    malignant = (data.target == 0).astype(np.int64)
    splits = anomaly_data.from_arrays(
        data.data, malignant, val_fraction=0.15, test_fraction=0.25, seed=0, source="breast_cancer"
    )
    if not labeled:
        splits.metadata["has_labels"] = False  # labels stay in the datasets for scoring only
    return splits


def split_scores(task, model, splits):
    scores, labels, _ = task.scores(model, splits.test)
    return scores, labels


@pytest.mark.parametrize(
    "architecture, overrides",
    [("deep_svdd", []), ("robust_autoencoder", []), ("ae_ensemble", ["model.members=3"])],
)
def test_detector_learns_a_real_table_and_saves_its_scores(tmp_path, architecture, overrides):
    task, cfg = config(tmp_path, f"architecture={architecture}", *overrides)
    splits = breast_cancer()
    model = runner.fit(task, cfg, splits, tmp_path, runner.make_strategy(cfg))
    scores, labels = split_scores(task, model, splits)
    auc = roc_auc_score(labels, scores)
    assert auc > FLOOR, f"{architecture}: test ROC-AUC {auc:.3f}"

    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    again, _ = split_scores(task, reloaded, splits)
    np.testing.assert_allclose(again, scores, rtol=1e-5, atol=1e-6)
    assert score_layer(reloaded).threshold == pytest.approx(score_layer(model).threshold)


def test_deep_svdd_has_no_bias_terms_and_a_centre_from_the_first_forward_pass():
    model = build("deep_svdd", InputSpec("tabular", (6,)), 6, None)
    names = [w.path for w in model.weights]
    assert not [n for n in names if "bias" in n], names
    assert [w.path for w in model.trainable_weights] == [w.path for w in model.network.trainable_weights]
    assert all("kernel" in w.path for w in model.trainable_weights)

    rows = np.random.default_rng(0).normal(size=(256, 6)).astype(np.float32)
    initial = np.asarray(model.network(rows)).mean(axis=0)
    model.compile(optimizer="adam")
    model.fit(rows, epochs=1, batch_size=64, verbose=0)
    centre = model.centre.numpy()
    # The mean of the untrained network's outputs, each coordinate at least eps away from 0;
    # training leaves it where it is.
    expected = np.where(np.abs(initial) < model.eps, np.where(initial < 0, -model.eps, model.eps), initial)
    np.testing.assert_allclose(centre, expected, rtol=1e-5, atol=1e-6)
    model.fit(rows, epochs=1, batch_size=64, verbose=0)
    np.testing.assert_array_equal(model.centre.numpy(), centre)


def test_robust_scaling_ignores_outliers_and_is_inside_the_model(tmp_path):
    values = np.random.default_rng(0).normal(10.0, 2.0, size=(400, 2))
    polluted = values.copy()
    polluted[:20, 0] = 1e6  # 5% wild rows
    centre, spread = robust_centre_spread(values, "test")
    centre_polluted, spread_polluted = robust_centre_spread(polluted, "test")
    assert abs(centre_polluted[0] - centre[0]) < 0.5 and spread_polluted[0] < 1.5 * spread[0]
    assert spread[0] == pytest.approx(2.0, rel=0.15)  # IQR / 1.349 estimates the standard deviation

    task, cfg = config(tmp_path, "architecture=robust_autoencoder")
    splits = anomaly_data.from_arrays(polluted, None, val_fraction=0.1, test_fraction=0.1, seed=0)
    layer = task.preprocessor(splits, cfg)
    train = np.concatenate([x.numpy() for x, _ in splits.train.batch(1000)])
    np.testing.assert_allclose(layer.mean, robust_centre_spread(train, "train")[0], rtol=1e-6)
    cfg["data"]["scaling"] = "standard"
    assert task.preprocessor(splits, cfg).std[0] > 1e4  # a standard deviation the wild rows blew up


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory):
    """One labeled breast-cancer run of ``auto`` (semi-supervised), exported and reload-checked.

    The panel holds every kind of tabular detector; the ensemble has 8 members by default, 2 here (time).
    """
    work = tmp_path_factory.mktemp("auto_run")
    task, cfg = config(work, "architecture=auto", "train.epochs=8", "model.ensemble_members=2")
    splits = breast_cancer()
    result = runner.run(task, cfg, work / "run", splits=splits)
    return task, cfg, splits, result


def test_auto_with_labels_keeps_the_best_validation_detector_and_exports_it(auto_run):
    task, cfg, splits, result = auto_run
    meta = splits.metadata
    assert meta["selection_rule"].startswith("validation ROC-AUC")
    figures = meta["selection_scores"]
    assert meta["selected_detector"] == max(figures, key=figures.get) == result.metrics["selected_detector"]
    assert set(figures) == {"robust_autoencoder", "ae_ensemble", "deep_svdd", "autoencoder"}
    panel = score_layer(result.model).detector
    assert panel.selected_name == meta["selected_detector"]
    # The kept detector's own score is what the model serves, in process and after a TF-only reload.
    x, _ = next(iter(splits.test.batch(32)))
    own = panel.detectors[panel.detector_names.index(meta["selected_detector"])]
    np.testing.assert_allclose(
        np.asarray(result.model(x)), np.asarray(own.anomaly_score(result.model.get_layer("preprocess")(x))),
        rtol=1e-6,
    )
    assert result.reload_max_abs_diff is not None and result.reload_max_abs_diff < 1e-4
    assert result.metrics["roc_auc"] > FLOOR


def test_report_holds_the_isolation_forest_reference(auto_run):
    _, _, splits, result = auto_run
    reference = result.metrics["reference"]["isolation_forest"]
    assert 0.5 < reference["roc_auc"] <= 1.0 and 0.0 < reference["pr_auc"] <= 1.0
    assert "IsolationForest" in reference["note"] and "not a dlsuite network" in reference["note"]
    assert result.metrics["beats_isolation_forest"] == (result.metrics["roc_auc"] > reference["roc_auc"])
    # Semi-supervised: the reference learns from the normal training rows, as the network did.
    train_labels = np.concatenate([y.numpy() for _, y in splits.train.batch(1000)])
    assert reference["fit_on"] == "normal" and reference["train_examples"] == int((train_labels == 0).sum())


def test_auto_without_labels_keeps_the_detector_closest_to_the_consensus(auto_run):
    task, cfg, _, result = auto_run
    splits = breast_cancer(labeled=False)
    cfg = {**cfg, "data": {**cfg["data"], "train_on": "auto"}}
    # Unsupervised protocol: no labels, so every training row, anomalies included, is learned from.
    assert task.training_examples(splits, cfg) is splits.train
    task.select_detector(result.model, splits, cfg)
    figures = splits.metadata["selection_scores"]
    assert splits.metadata["selection_rule"].startswith("label-free")
    assert splits.metadata["selected_detector"] == max(figures, key=figures.get)
    assert all(-1.0 <= v <= 1.0 for v in figures.values())
    assert score_layer(result.model).detector.selected_name == splits.metadata["selected_detector"]

    splits.metadata["train_on"] = "all"
    features = [x for x, _ in splits.test.batch(1000)]
    labels = np.concatenate([y.numpy() for _, y in splits.test.batch(1000)])
    reference = isolation_forest_reference(result.model, splits, features, labels)
    assert reference["fit_on"] == "all"
    assert reference["train_examples"] == splits.metadata["num_examples"]["train"]


def test_detectors_take_rows_only():
    from dlsuite.errors import DlsuiteError

    for name in ("deep_svdd", "robust_autoencoder", "ae_ensemble", "auto"):
        with pytest.raises(DlsuiteError, match="takes tabular inputs"):
            build(name, InputSpec("sequence", (8, 2)), 1, None)
    with pytest.raises(DlsuiteError, match="auto detectors must be distinct names"):
        build("auto", InputSpec("tabular", (4,)), 1, None, detectors=["som"])
