"""Sentiment: text sources, bad input, TFDS, export + predict CLI, estimator, accuracy floors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from conftest import SHARED_DATASETS, run_cli
from dlsuite import DlsuiteError, export
from dlsuite.data import text
from dlsuite.tasks import runner

SST2 = SHARED_DATASETS / "sst2"


def resolve(*overrides: str, **values):
    return runner.resolve_config("sentiment", overrides=list(overrides), values=values)


def take_all(ds):
    return [(x.decode(), int(y)) for x, y in ds.as_numpy_iterator()]


def small_table(n: int = 40) -> pd.DataFrame:
    texts, labels = text.generate_reviews(n, seed=3)
    return pd.DataFrame({"review": texts, "stars": np.where(labels == 1, "pos", "neg")})


# -- the generated default set --------------------------------------------------------------------
def test_generated_reviews_are_seeded_balanced_and_need_word_order():
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    texts, labels = text.generate_reviews(3000, seed=0)
    again, _ = text.generate_reviews(3000, seed=0)
    assert texts == again and np.bincount(labels).tolist() == [1500, 1500]
    assert len(set(texts)) > 2700
    accs = {}
    for n in (1, 2):
        vec = CountVectorizer(ngram_range=(1, n), token_pattern=r"[^ ]+")
        clf = LogisticRegression(C=10, max_iter=2000).fit(vec.fit_transform(texts[:2400]), labels[:2400])
        accs[n] = clf.score(vec.transform(texts[2400:]), labels[2400:])
    # A unigram bag of words misses negation and 'but'; bigrams help; neither solves it.
    assert accs[1] < 0.8 and accs[1] + 0.05 < accs[2] < 0.95, accs


def test_embedded_default_splits():
    task, cfg = resolve("data.generated_size=500")
    splits = task.load(cfg)
    assert splits.class_names == ["negative", "positive"]
    assert splits.metadata["num_examples"] == {"train": 360, "val": 40, "test": 100}
    x, y = next(iter(splits.train))
    assert x.dtype.name == "string" and y.dtype.name == "int64"


# -- tables, folders, lists --------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_table_sources_with_named_columns(tmp_path, suffix):
    frame = small_table()
    path = tmp_path / f"reviews{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    task, cfg = resolve(**{"data.path": str(path), "data.text_column": "review", "data.label_column": "stars"})
    splits = task.load(cfg)
    assert splits.class_names == ["neg", "pos"]
    rows = take_all(splits.train) + take_all(splits.val) + take_all(splits.test)
    assert sorted(t for t, _ in rows) == sorted(frame["review"])
    assert splits.metadata["cleaning"] == {"non_utf8_replaced": 0, "empty_dropped": 0}


def test_separate_validation_and_test_files(tmp_path):
    frame = small_table(60)
    for name, part in (("train", frame[:40]), ("dev", frame[40:50]), ("test", frame[50:])):
        part.rename(columns={"review": "sentence", "stars": "label"}).to_csv(tmp_path / f"{name}.tsv", sep="\t", index=False)
    task, cfg = resolve(
        f"data.val_path={tmp_path / 'dev.tsv'}", f"data.test_path={tmp_path / 'test.tsv'}",
        **{"data.path": str(tmp_path / "train.tsv")},
    )
    splits = task.load(cfg)
    assert splits.metadata["num_examples"] == {"train": 40, "val": 10, "test": 10}
    assert [t for t, _ in take_all(splits.test)] == list(frame["review"][50:])


def test_missing_column_names_the_columns_present(tmp_path):
    path = tmp_path / "r.csv"
    small_table().to_csv(path, index=False)
    task, cfg = resolve(**{"data.path": str(path), "data.text_column": "body", "data.label_column": "stars"})
    with pytest.raises(DlsuiteError, match=r"no text column 'body'.*\['review', 'stars'\].*--text-column"):
        task.load(cfg)
    task, cfg = resolve(**{"data.path": str(path)})  # no column given and no guessable name
    with pytest.raises(DlsuiteError, match=r"text or sentence or review|label or sentiment or class"):
        task.load(cfg)


def test_single_class_is_refused(tmp_path):
    path = tmp_path / "r.csv"
    frame = small_table()
    frame["stars"] = "pos"
    frame.to_csv(path, index=False)
    task, cfg = resolve(**{"data.path": str(path), "data.text_column": "review", "data.label_column": "stars"})
    with pytest.raises(DlsuiteError, match="single class"):
        task.load(cfg)


def test_empty_texts_dropped_and_invalid_utf8_replaced_and_counted(tmp_path):
    frame = small_table(30)
    lines = [b"text,label"] + [f'"{t}",{s}'.encode() for t, s in zip(frame["review"], frame["stars"])]
    lines += [b'"",pos', b'"   ",neg', b'"caf\xe9 au lait was great",pos']  # latin-1 byte, not UTF-8
    path = tmp_path / "r.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    task, cfg = resolve(**{"data.path": str(path)})
    splits = task.load(cfg)
    assert splits.metadata["cleaning"] == {"non_utf8_replaced": 1, "empty_dropped": 2}
    rows = [t for t, _ in take_all(splits.train) + take_all(splits.val) + take_all(splits.test)]
    assert len(rows) == 31 and "caf\ufffd au lait was great" in rows


def test_folder_of_class_subfolders(tmp_path):
    texts, labels = text.generate_reviews(30, seed=1)
    for i, (t, y) in enumerate(zip(texts, labels)):
        folder = tmp_path / ("neg", "pos")[y]
        folder.mkdir(exist_ok=True)
        (folder / f"{i}.txt").write_text(t, encoding="utf-8")
    (tmp_path / "pos" / "empty.txt").write_text("")
    task, cfg = resolve(**{"data.path": str(tmp_path)})
    splits = task.load(cfg)
    assert splits.class_names == ["neg", "pos"]
    assert splits.metadata["cleaning"]["empty_dropped"] == 1
    assert sum(splits.metadata["num_examples"].values()) == 30
    with pytest.raises(DlsuiteError, match="no .txt files"):
        text.read_folder(tmp_path / "neg")


def test_in_memory_lists():
    splits = text.text_arrays(["good", "bad"] * 10, ["up", "down"] * 10, val_fraction=0.2, test_fraction=0.2, seed=0)
    assert splits.class_names == ["down", "up"]
    with pytest.raises(DlsuiteError, match="every text is empty"):
        text.text_arrays(["", " "] * 5, [0, 1] * 5, val_fraction=0.2, test_fraction=0.2, seed=0)


# -- TFDS -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, classes", [("imdb_reviews", ["neg", "pos"]), ("glue/sst2", ["negative", "positive"])])
def test_tfds_text_dataset_through_mock_data(monkeypatch, tmp_path, name, classes):
    import tensorflow_datasets as tfds

    from dlsuite.data import tfds_source

    # As if online: TFDS then calls download_and_prepare, which mock_data replaces.
    monkeypatch.setattr(tfds_source, "can_reach_download_host", lambda: True)
    task, cfg = resolve(**{"data.dataset": name, "data.data_dir": str(tmp_path)})
    with tfds.testing.mock_data(num_examples=12):
        splits = task.load(cfg)
        x, y = next(iter(splits.train))
        assert x.dtype.name == "string" and int(y) in (0, 1)
        assert splits.class_names == classes
        assert all(label >= 0 for _, label in take_all(splits.test))


def test_tfds_not_prepared_offline_is_a_clear_error(tmp_path):
    task, cfg = resolve("data.download=false", **{"data.dataset": "imdb_reviews", "data.data_dir": str(tmp_path)})
    with pytest.raises(DlsuiteError, match="not prepared.*download_and_prepare"):
        task.load(cfg)


# -- one small trained run: evaluation report, export, predict CLI ------------------------------------
@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("sentiment_run")
    task, cfg = resolve(
        "architecture=gru", "data.generated_size=600", "train.epochs=2", "model.units=16", "model.embedding_dim=16",
        "train.learning_rate=0.005", **{"export.root": str(work / "saved_models")},
    )
    return runner.run(task, cfg, work / "run")


@pytest.mark.slow
def test_report_holds_metrics_curves_and_confidently_wrong(small_run):
    run_dir = Path(small_run.run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "confusion_matrix"):
        assert key in metrics
    assert 0.5 <= metrics["roc_auc"] <= 1.0
    wrong = metrics["most_confidently_wrong"]
    assert 0 < len(wrong) <= 20 and all(w["true"] != w["predicted"] for w in wrong)
    assert [w["probability"] for w in wrong] == sorted((w["probability"] for w in wrong), reverse=True)
    assert len((run_dir / "confidently_wrong.tsv").read_text().splitlines()) == len(wrong) + 1
    for png in ("confusion_matrix.png", "roc_curve.png", "pr_curve.png"):
        assert (run_dir / png).stat().st_size > 1000


@pytest.mark.slow
def test_export_serves_raw_strings_and_matches_after_reload(small_run):
    import tensorflow as tf

    # The run itself reloaded the export in a TensorFlow-only process and compared (export.verify).
    assert small_run.reload_max_abs_diff is not None and small_run.reload_max_abs_diff < 1e-5
    meta = export.load_metadata(small_run.export_dir)
    assert meta["vectorizer"]["mode"] == "int" and meta["class_names"] == ["negative", "positive"]
    texts = np.array(["the battery is great .", "the battery is not great .", "", b"\xff\xfe"], dtype=object)
    serve = tf.saved_model.load(small_run.export_dir).signatures["serving_default"]
    out = {k: v.numpy() for k, v in serve(text=tf.constant(texts)).items()}
    assert set(out) == {"probabilities", "label_id", "label"}
    assert out["probabilities"].shape == (4, 2)
    np.testing.assert_allclose(out["probabilities"], small_run.model(tf.constant(texts)).numpy(), atol=1e-5)
    assert [v.decode() for v in out["label"]] == [["negative", "positive"][i] for i in out["label_id"]]


@pytest.mark.slow
def test_predict_cli_prints_label_and_probability_per_text(small_run):
    proc = run_cli("predict", "--model", small_run.export_dir, "i love the screen .", "a waste of money .")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2
    for line, item in zip(lines, ["i love the screen .", "a waste of money ."]):
        given, label, prob = line.split("\t")
        assert given == item and label in ("negative", "positive") and 0.5 <= float(prob) <= 1.0


# -- estimator ------------------------------------------------------------------------------------
QUICK = dict(architecture="mlp", epochs=5, learning_rate=0.01, early_stopping_patience=5, hparams={"hidden_units": [16]})


@pytest.fixture(scope="module")
def reviews_xy():
    texts, labels = text.generate_reviews(800, seed=5)
    return pd.Series(texts), np.array(["neg", "pos"])[labels]


@pytest.mark.slow
def test_estimator_fit_predict_clone_pickle(reviews_xy):
    from dlsuite.estimators import SentimentClassifier

    X, y = reviews_xy
    clf = SentimentClassifier(**QUICK).fit(X[:600], y[:600])
    assert list(clf.classes_) == ["neg", "pos"]
    proba = clf.predict_proba(list(X[600:]))
    assert proba.shape == (200, 2) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert set(clf.predict(np.asarray(X[600:]))) <= {"neg", "pos"}
    assert clf.score(X[600:], y[600:]) > 0.65
    copy = clone(clf)
    assert copy.get_params() == clf.get_params() and not hasattr(copy, "model_")
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(again.predict_proba(X[600:]), proba, atol=1e-6)
    with pytest.raises(DlsuiteError, match="one class only"):
        SentimentClassifier(**QUICK).fit(X[:20], ["pos"] * 20)
    with pytest.raises(DlsuiteError, match="not a single string"):
        clf.predict("one text")


@pytest.mark.slow
def test_estimator_in_grid_search_and_pipeline(reviews_xy):
    from dlsuite.estimators import SentimentClassifier

    X, y = reviews_xy
    upper = FunctionTransformer(lambda s: [t.upper() for t in s])
    pipe = Pipeline([("upper", upper), ("clf", SentimentClassifier(**QUICK))])
    search = GridSearchCV(pipe, {"clf__ngrams": [1, 2]}, cv=2).fit(X[:400], y[:400])
    assert search.best_params_["clf__ngrams"] in (1, 2)
    assert search.score(X[600:], y[600:]) > 0.6


# -- accuracy floors ------------------------------------------------------------------------------
@pytest.mark.slow
def test_accuracy_floor_on_the_generated_reviews(tmp_path):
    # Measured: 0.948 with this small gru on 3,000 reviews after 5 epochs, 0.953 after 8 (the default
    # lstm on 6,000: 0.97).
    task, cfg = resolve(
        "architecture=gru", "data.generated_size=3000", "train.epochs=5", "train.learning_rate=0.005",
        "model.units=32", "model.embedding_dim=32", **{"export.root": str(tmp_path / "sm")},
    )
    result = runner.run(task, cfg, tmp_path / "run", do_export=False)
    assert result.metrics["accuracy"] >= 0.88, result.metrics["accuracy"]


@pytest.mark.slow
@pytest.mark.skipif(not (SST2 / "train.tsv").is_file(), reason=f"SST-2 is not in {SST2} (see benchmarks/README.md)")
def test_accuracy_floor_on_sst2_test(tmp_path):
    # One epoch of a small 1-D cnn on the 60,614 phrases: measured 0.806 (benchmarks/sentiment.py trains longer).
    task, cfg = resolve(
        "architecture=cnn", "model.filters=32", "model.blocks=1", "model.convs_per_block=1", "model.embedding_dim=32",
        "train.epochs=1", "train.batch_size=256", "train.learning_rate=0.003", "data.sequence_length=40",
        f"data.val_path={SST2 / 'dev.tsv'}", f"data.test_path={SST2 / 'test.tsv'}",
        **{"data.path": str(SST2 / "train.tsv")},
    )
    result = runner.run(task, cfg, tmp_path / "run", do_export=False)
    assert result.metrics["num_test_examples"] == 872
    assert result.metrics["accuracy"] >= 0.77, result.metrics["accuracy"]


@pytest.mark.slow
def test_transfer_reads_raw_strings_through_a_local_text_hub_module(tmp_path):
    from dlsuite import hubmodule

    texts, _ = text.generate_reviews(300, seed=2)
    handle = hubmodule.write_hub_module(
        hubmodule.text_embedding_backbone(texts, max_tokens=300, output_dim=8), tmp_path / "text_module"
    )
    task, cfg = resolve(
        "architecture=transfer", f"model.handle={handle}", "model.fine_tune=true", "data.generated_size=300",
        "train.epochs=1", **{"export.root": str(tmp_path / "sm")},
    )
    result = runner.run(task, cfg, tmp_path / "run")
    assert export.load_metadata(result.export_dir)["vectorizer"] == {"mode": "raw"}
    assert result.reload_max_abs_diff is not None and result.reload_max_abs_diff < 1e-5
