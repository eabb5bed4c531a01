"""Fraud detection: simulator, time-ordered split, imbalance methods, thresholds, export, estimator, floors."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from sklearn.base import clone
from sklearn.metrics import average_precision_score
from sklearn.model_selection import GridSearchCV

from conftest import SHARED_DATASETS
from dlsuite import DlsuiteError, architectures, cli
from dlsuite.data import transactions
from dlsuite.estimators import FraudDetector
from dlsuite.tasks import fraud, runner

VEHICLE = SHARED_DATASETS / "vehicle_claims_fraud" / "fraud_oracle.csv"
TINY = ["data.num_transactions=2000", "data.fraud_rate=0.05", "train.epochs=2", "train.early_stopping_patience=2"]


def fraud_config(tmp_path, *overrides):
    return runner.resolve_config(
        "fraud",
        overrides=[f"export.root={tmp_path / 'saved_models'}", f"run.root={tmp_path / 'runs'}", "train.verbose=0", *overrides],
    )


# -- simulator and split ------------------------------------------------------------------------


def test_simulator_rate_patterns_and_seed():
    log = transactions.simulate(20_000, 0.01, seed=3)
    assert len(log) == 20_000
    assert log["is_fraud"].sum() == 200
    assert set(log["pattern"].unique()) == {"none", *transactions.PATTERNS}
    assert (log["pattern"] != "none").eq(log["is_fraud"] == 1).all()
    assert log["timestamp"].is_monotonic_increasing
    by = {p: log[log["pattern"] == p] for p in transactions.PATTERNS}
    legit = log[log["is_fraud"] == 0]
    # Card testing: tiny online charges in bursts on one card.
    assert by["card_testing"]["amount"].max() <= 3.0 and (by["card_testing"]["channel"] == "online").all()
    assert by["card_testing"]["txn_count_1h"].median() >= 3 > legit["txn_count_1h"].median()
    # Account takeover: far above the card's usual amount.
    assert by["account_takeover"]["amount_to_avg"].median() > 3 * legit["amount_to_avg"].median()
    # Collusion: round amounts at the colluding merchants.
    colluding = {f"M{i:03d}" for i in range(transactions.COLLUDING_MERCHANTS)}
    assert set(by["merchant_collusion"]["merchant_id"]) <= colluding
    assert (by["merchant_collusion"]["amount"] % 50 == 0).all()
    # Night spike: between 1 and 4 a.m.
    assert by["night_spike"]["hour"].between(1, 4).all()
    assert legit["hour"].between(1, 4).mean() < 0.05
    again = transactions.simulate(20_000, 0.01, seed=3)
    pd.testing.assert_frame_equal(log, again)
    assert transactions.simulate(5_000, 0.003, seed=0)["is_fraud"].sum() == 15
    with pytest.raises(DlsuiteError, match="fraud_rate must be in"):
        transactions.simulate(1000, 0.7)


def test_time_ordered_split_puts_no_future_rows_in_train(tmp_path):
    task, cfg = fraud_config(tmp_path, "data.num_transactions=3000", "data.fraud_rate=0.05")
    splits = task.load(cfg)
    ranges = {k: [pd.Timestamp(t) for t in v] for k, v in splits.metadata["time_ranges"].items()}
    assert splits.metadata["split"] == "time-ordered"
    assert ranges["train"][1] <= ranges["val"][0] <= ranges["val"][1] <= ranges["test"][0]
    assert sum(splits.metadata["num_examples"].values()) == 3000
    assert splits.metadata["num_examples"]["test"] == 600
    keys = {f["key"] for f in splits.metadata["fields"]}
    assert "timestamp" not in keys and "card_id" not in keys and "pattern" not in keys  # not features
    # A cut-off time sends every later row to test.
    df = pd.DataFrame({"year": np.repeat([1994, 1995, 1996], 40), "x": np.arange(120.0), "y": np.tile([0, 0, 0, 1], 30)})
    cut = fraud.frame_splits(df, label_column="y", time_column="year", test_from=1996, val_fraction=0.25)
    test_x = np.array([x["x"].numpy() for x, _ in cut.test])
    train_x = np.array([x["x"].numpy() for x, _ in cut.train])
    assert test_x.min() == 80 and len(test_x) == 40 and train_x.max() < 80
    # A validation cut-off makes a whole tuning period: train on 1994, validate on 1995, test on 1996.
    tuning = fraud.frame_splits(df, label_column="y", time_column="year", test_from=1996, val_from=1995)
    val_x = np.array([x["x"].numpy() for x, _ in tuning.val])
    train_x = np.array([x["x"].numpy() for x, _ in tuning.train])
    assert (val_x.min(), val_x.max(), len(val_x)) == (40, 79, 40) and train_x.max() == 39
    with pytest.raises(DlsuiteError, match="same kind of time"):
        fraud.frame_splits(df, label_column="y", time_column="year", test_from=1996, val_from="1995-01-01")


def test_bad_tables_give_clear_errors(tmp_path):
    df = pd.DataFrame({"amount": np.arange(50.0), "label": [0] * 50})
    with pytest.raises(DlsuiteError, match="no label column 'is_fraud'"):
        fraud.frame_splits(df, label_column="is_fraud")
    with pytest.raises(DlsuiteError, match="holds no fraud rows"):
        fraud.frame_splits(df, label_column="label")
    csv = tmp_path / "rows.csv"
    df.to_csv(csv, index=False)
    task, cfg = fraud_config(tmp_path, f"data.path={csv}")
    with pytest.raises(DlsuiteError, match="needs --label-column"):
        task.load(cfg)
    task, cfg = fraud_config(tmp_path, "data.dataset=creditcard")
    with pytest.raises(DlsuiteError, match="no dataset 'creditcard'"):
        task.load(cfg)
    with pytest.raises(DlsuiteError, match="imbalance.method='smote' is not valid"):
        fraud_config(tmp_path, "imbalance.method=smote")


# -- thresholds ---------------------------------------------------------------------------------


def test_threshold_by_cost_precision_and_recall():
    y = np.array([0] * 90 + [1] * 10)
    scores = np.r_[np.linspace(0.0, 0.5, 90), np.linspace(0.3, 0.9, 10)]
    # Costly misses: flag down to the lowest fraud score (0.3) rather than miss any.
    t, facts = fraud.choose_threshold(y, scores, method="cost", false_negative_cost=100, false_positive_cost=1)
    assert t == pytest.approx(0.3) and facts["val_recall"] == 1.0
    # Costly alarms: flag only where no legitimate score reaches (above 0.5).
    t, facts = fraud.choose_threshold(y, scores, method="cost", false_negative_cost=1, false_positive_cost=100)
    assert 0.5 < t <= 0.9 and facts["val_precision"] == 1.0
    t, facts = fraud.choose_threshold(y, scores, method="precision", target=1.0)
    assert facts["val_precision"] == 1.0 and facts["val_recall"] == pytest.approx(0.6)
    t, facts = fraud.choose_threshold(y, scores, method="recall", target=0.8)
    assert facts["val_recall"] >= 0.8 and ((scores >= t) & (y == 1)).sum() == 8
    _, facts = fraud.choose_threshold(y, np.zeros(100), method="precision", target=0.9)
    assert facts["target_met"] is False
    with pytest.raises(DlsuiteError, match="no fraud rows"):
        fraud.choose_threshold(np.zeros(5), np.zeros(5))


# -- one trained run: export, serving, report ------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real run on the simulator (fewer rows and epochs than the default), exported and verified."""
    tmp = tmp_path_factory.mktemp("fraud_run")
    task, cfg = fraud_config(tmp, "data.num_transactions=6000", "data.fraud_rate=0.03", "train.epochs=4")
    return runner.run(task, cfg, tmp / "run")


@pytest.mark.slow
def test_run_reports_pr_auc_first_and_writes_plots(trained):
    from pathlib import Path

    m = trained.metrics
    assert list(m)[2] == "pr_auc"
    assert m["pr_auc"] > 0.4  # the fraud rate is 0.03: a useless model scores about that
    for key in ("roc_auc", "precision", "recall", "f1", "recall_at_1pct_fpr", "expected_cost", "confusion_matrix"):
        assert key in m
    assert sum(map(sum, m["confusion_matrix"])) == m["num_test_examples"]
    for png in ("pr_curve.png", "roc_curve.png", "score_distribution.png", "confusion_matrix.png"):
        assert (Path(trained.run_dir) / png).stat().st_size > 0
    meta = json.loads((Path(trained.export_dir) / "assets.extra" / "dlsuite_metadata.json").read_text())
    assert meta["threshold"] == pytest.approx(m["threshold"]) and meta["threshold_choice"]["method"] == "cost"
    # The threshold travels in model.keras too (for `dlsuite evaluate` / `dlsuite export --run`).
    import keras

    saved = keras.models.load_model(Path(trained.run_dir) / "model.keras")
    assert fraud.stored_threshold(saved) == pytest.approx(m["threshold"])


@pytest.mark.slow
def test_export_takes_raw_fields_by_name_and_matches_after_reload(trained):
    assert trained.reload_max_abs_diff is not None and trained.reload_max_abs_diff < 1e-5
    fn = tf.saved_model.load(trained.export_dir).signatures["serving_default"]
    specs = fn.structured_input_signature[1]
    assert specs["merchant_category"].dtype == tf.string and specs["amount"].dtype == tf.float32
    row = {
        "amount": [1.5, 40.0], "hour": [3.0, 13.0], "seconds_since_last": [20.0, 90000.0], "txn_count_1h": [9.0, 1.0],
        "amount_to_avg": [0.05, 1.0], "merchant_id": ["M900", "M010"], "merchant_category": ["never_seen", "grocery"],
        "channel": ["online", "chip"], "cross_border": ["yes", "no"], "new_merchant": ["yes", "no"],
    }
    out = fn(**{k: tf.constant(v, dtype=specs[k].dtype) for k, v in row.items()})
    probs = out["fraud_probability"].numpy()
    assert probs.shape == (2,) and np.isfinite(probs).all()  # unseen categories land in the OOV bucket
    in_process = fraud.fraud_probability(trained.model, {k: np.array(v, dtype=object if isinstance(v[0], str) else np.float32) for k, v in row.items()})
    np.testing.assert_allclose(probs, in_process, atol=1e-5)
    np.testing.assert_array_equal(out["is_fraud"].numpy(), probs >= trained.metrics["threshold"])


@pytest.mark.slow
def test_cli_predict_prints_one_line_per_row(trained, tmp_path, capsys):
    rows = transactions.simulate(300, 0.05, seed=9).drop(columns=["is_fraud", "pattern"]).head(5)
    csv = tmp_path / "rows.csv"
    rows.to_csv(csv, index=False)
    assert cli.main(["predict", "--model", trained.export_dir, str(csv)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and lines[0].startswith(f"{csv}:1\t") and lines[0].split("\t")[1] in ("fraud", "legit")
    rows.drop(columns=["amount"]).to_csv(csv, index=False)
    assert cli.main(["predict", "--model", trained.export_dir, str(csv)]) == 2
    assert "lack column 'amount'" in capsys.readouterr().err


# -- imbalance methods and the detector ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("method", ["focal", "resample", "gan"])  # class_weight: the `trained` run
def test_each_imbalance_method_trains(method, tmp_path, monkeypatch):
    from dlsuite import reporting

    if method == "gan" and "gan" not in architectures.names():
        pytest.skip("the gan architecture family is not installed")
    task, cfg = fraud_config(tmp_path, *TINY, f"imbalance.method={method}", "imbalance.gan_epochs=1")
    splits = task.load(cfg)
    streams = []
    original = type(task).training_examples
    monkeypatch.setattr(type(task), "training_examples", lambda self, *a: streams.append(original(self, *a)) or streams[-1])
    model = runner.fit(task, cfg, splits, tmp_path, runner.make_strategy(cfg))
    if method in ("resample", "gan"):
        labels = np.array([int(y) for _, y in streams[0]])
        assert labels.mean() == pytest.approx(0.2, abs=0.02)  # imbalance.target_rate
        if method == "resample":
            assert (labels == 0).sum() == splits.metadata["class_counts"]["train"][0]  # every legit row once
    loss = reporting.read_history(tmp_path / runner.HISTORY_CSV)["loss"]
    assert loss[-1] < loss[0]
    probs = fraud.fraud_probability(model, fraud.split_arrays(splits.test)[0])
    assert np.isfinite(probs).all() and 0 <= probs.min() and probs.max() <= 1
    assert 0 <= splits.metadata["threshold"] <= 1


def test_class_weight_balances_the_classes(tmp_path):
    task, cfg = fraud_config(tmp_path, *TINY)
    splits = task.load(cfg)
    weights = task.fit_options(splits, cfg)["class_weight"]
    negatives, positives = splits.metadata["class_counts"]["train"]
    assert weights[0] * negatives == pytest.approx(weights[1] * positives)
    assert task.loss_and_metrics(splits, fraud_config(tmp_path, "imbalance.method=focal")[1])[0].__class__.__name__ == "BinaryFocalCrossentropy"


@pytest.mark.slow
def test_autoencoder_learns_legit_rows_only_and_calibrates(tmp_path):
    import keras

    task, cfg = fraud_config(tmp_path, *TINY, "architecture=autoencoder")
    splits = task.load(cfg)
    assert {int(y) for _, y in task.training_examples(splits, cfg)} == {0}
    model = runner.fit(task, cfg, splits, tmp_path, runner.make_strategy(cfg))
    layer = model.get_layer("calibration")
    assert float(layer.slope.numpy()) > 0  # a higher reconstruction error means more likely fraud
    features, labels = fraud.split_arrays(splits.test)
    probs = fraud.fraud_probability(model, features)
    assert average_precision_score(labels, probs) > 2 * labels.mean()
    model.save(tmp_path / "model.keras")
    again = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(fraud.fraud_probability(again, features), probs, atol=1e-6)


# -- estimator ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def claims():
    log = transactions.simulate(3000, 0.05, seed=1)
    y = log.pop("is_fraud").to_numpy()
    return log.drop(columns=["card_id", "pattern"]), y


QUICK = dict(epochs=2, early_stopping_patience=2, hparams={"hidden_units": [32]})


@pytest.mark.slow
def test_estimator_contract(claims, tmp_path):
    X, y = claims
    est = FraudDetector(time_column="timestamp", **QUICK).fit(X[:2400], y[:2400])
    assert list(est.classes_) == [0, 1]  # classes_[1] is fraud
    proba = est.predict_proba(X[2400:])
    assert proba.shape == (600, 2) and np.allclose(proba.sum(1), 1)
    margin = est.decision_function(X[2400:])  # > 0 exactly where predict says fraud
    np.testing.assert_allclose(margin, proba[:, 1] - est.threshold_, atol=1e-12)
    np.testing.assert_array_equal(est.predict(X[2400:]), (proba[:, 1] >= est.threshold_).astype(int))
    np.testing.assert_array_equal(est.predict(X[2400:]), (margin > 0).astype(int))
    assert 0 < est.threshold_ < 1
    assert list(est.feature_names_in_) == list(X.columns)
    copy = clone(est)
    assert copy.get_params() == est.get_params() and not hasattr(copy, "model_")
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_allclose(again.predict_proba(X[2400:]), proba, atol=1e-6)
    assert again.threshold_ == est.threshold_
    with pytest.raises(DlsuiteError, match="lack column 'amount'"):
        est.predict(X.drop(columns=["amount"]))
    with pytest.raises(ValueError, match="Only binary classification is supported"):
        FraudDetector(**QUICK).fit(X[:100], np.arange(100) % 3)


@pytest.mark.slow
def test_estimator_grid_search_by_average_precision(claims):
    X, y = claims
    y01 = y
    search = GridSearchCV(
        FraudDetector(epochs=1, early_stopping_patience=1), {"hparams": [{"hidden_units": [16]}, {"hidden_units": [64]}]},
        cv=2, scoring="average_precision", refit=False,
    )
    search.fit(X[:1200].drop(columns=["timestamp"]), y01[:1200])
    assert len(search.cv_results_["mean_test_score"]) == 2
    assert search.best_score_ > 2 * y01[:1200].mean()


# -- accuracy floors ------------------------------------------------------------------------------


@pytest.mark.slow
def test_pr_auc_floor_on_vehicle_claims(tmp_path):
    if not VEHICLE.is_file():
        pytest.skip(f"{VEHICLE} is absent (shared datasets); the benchmark data is needed for this floor")
    task, cfg = fraud_config(
        tmp_path, f"data.path={VEHICLE}", "data.label_column=FraudFound_P", "data.time_column=Year",
        "data.test_from=1996", "data.drop_columns=[PolicyNumber]", "model.hidden_units=[64]", "model.dropout=0.5",
        "train.epochs=8", "train.early_stopping_patience=8",
    )
    result = runner.run(task, cfg, tmp_path / "run", do_export=False)
    # 5.2% of 1996 claims are fraud; one-hot logistic regression reaches about 0.10 on this split.
    assert result.metrics["pr_auc"] > 0.09
    assert result.metrics["roc_auc"] > 0.7


# -- numeric embeddings -----------------------------------------------------------------------------


def test_periodic_numeric_embedding_trains_saves_and_exports(tmp_path):
    import keras

    task, cfg = fraud_config(tmp_path, *TINY, "train.epochs=1", "model.hidden_units=[16]",
                             "model.numeric_embedding=periodic", "model.embedding_dim=4", "model.frequencies=4")
    result = runner.run(task, cfg, tmp_path / "run")
    embedding = result.model.get_layer("mlp").get_layer("numeric_embedding")
    numeric = sum(f["kind"] == "numeric" for f in json.loads(
        (tmp_path / "run" / runner.DATA_METADATA).read_text())["fields"])
    assert embedding.output.shape[-1] == 4 * numeric  # one 4-wide embedding per numeric field
    reloaded = keras.models.load_model(tmp_path / "run" / "model.keras")
    assert reloaded.get_layer("mlp").get_layer("numeric_embedding").get_config()["frequencies"] == 4
    # The export reloads with TensorFlow alone and gives the model's predictions.
    assert result.reload_max_abs_diff is not None and result.reload_max_abs_diff < 1e-5
    with pytest.raises(DlsuiteError, match="numeric_embedding='fourier' is not valid"):
        runner.run(*fraud_config(tmp_path, *TINY, "model.numeric_embedding=fourier"), tmp_path / "bad", do_export=False)
