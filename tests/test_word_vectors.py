"""Pretrained word vectors: the file formats, bad files, and the sentiment embedding they start."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from dlsuite import DlsuiteError
from dlsuite.data import word_vectors
from dlsuite.tasks import runner

VECTORS = {
    "good": [1.0, 0.5, 0.0], "bad": [-1.0, -0.5, 0.0], "battery": [0.0, 0.0, 2.0], "Paris": [3.0, 3.0, 3.0],
}


def glove_text(vectors: dict[str, list[float]] = VECTORS) -> str:
    return "".join(f"{w} {' '.join(map(str, v))}\n" for w, v in vectors.items())


def write_all_formats(tmp_path) -> dict[str, object]:
    glove = tmp_path / "vectors.txt"
    glove.write_text(glove_text())
    word2vec = tmp_path / "vectors.vec"
    word2vec.write_text(f"{len(VECTORS)} 3\n" + glove_text())
    gz = tmp_path / "vectors.txt.gz"
    gz.write_bytes(gzip.compress(glove_text().encode()))
    npz = tmp_path / "vectors.npz"
    np.savez(npz, words=np.array(list(VECTORS)), vectors=np.array(list(VECTORS.values()), np.float32))
    return {"glove": glove, "word2vec": word2vec, "gz": gz, "npz": npz}


@pytest.mark.parametrize("fmt", ["glove", "word2vec", "gz", "npz"])
def test_every_format_gives_the_same_vectors(tmp_path, fmt):
    path = write_all_formats(tmp_path)[fmt]
    found, dim = word_vectors.read_word_vectors(path, ["good", "bad", "missing"])
    assert dim == 3 and set(found) == {"good", "bad"}
    np.testing.assert_array_equal(found["good"], np.float32([1.0, 0.5, 0.0]))


def test_a_word_falls_back_to_lower_case_and_an_exact_match_wins(tmp_path):
    path = write_all_formats(tmp_path)["glove"]
    found, _ = word_vectors.read_word_vectors(path, ["Good", "Paris", "paris"])
    np.testing.assert_array_equal(found["Good"], found.get("Good"))
    np.testing.assert_array_equal(found["Good"], np.float32(VECTORS["good"]))
    assert "paris" not in found  # "Paris" is not looked up lower-cased in reverse
    np.testing.assert_array_equal(found["Paris"], np.float32(VECTORS["Paris"]))


def test_embedding_matrix_rows(tmp_path):
    path = write_all_formats(tmp_path)["glove"]
    vocabulary = ["", "[UNK]", "good", "unseen", "bad"]
    matrix, stats = word_vectors.embedding_matrix(vocabulary, path, seed=1)
    assert matrix.shape == (5, 3) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[0], 0.0)  # padding
    np.testing.assert_array_equal(matrix[2], np.float32(VECTORS["good"]))
    np.testing.assert_array_equal(matrix[4], np.float32(VECTORS["bad"]))
    assert np.all(np.isfinite(matrix)) and np.any(matrix[3] != 0)
    assert stats == {"dim": 3, "found": 2, "coverage": round(2 / 3, 4)}
    again, _ = word_vectors.embedding_matrix(vocabulary, path, seed=1)
    np.testing.assert_array_equal(matrix, again)


@pytest.mark.parametrize(
    "content, message",
    [
        ("good 1 2 3\nbad 1 2\n", "line 2: 2 numbers after the word, expected 3"),
        ("good 1 2 3\nbad 1 x 3\n", "line 2: the vector of 'bad' is not all numbers"),
        ("", "holds no vectors"),
    ],
)
def test_malformed_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(DlsuiteError, match=message):
        word_vectors.read_word_vectors(path, ["good"])


def test_missing_file_npz_without_arrays_and_no_overlap(tmp_path):
    with pytest.raises(DlsuiteError, match="does not exist.*glove.py"):
        word_vectors.read_word_vectors(tmp_path / "absent.txt", ["good"])
    np.savez(tmp_path / "wrong.npz", tokens=np.array(["good"]))
    with pytest.raises(DlsuiteError, match="lacks the arrays.*'vectors', 'words'"):
        word_vectors.read_word_vectors(tmp_path / "wrong.npz", ["good"])
    (tmp_path / "other.txt").write_text("hund 1 2 3\n")
    with pytest.raises(DlsuiteError, match="none of the 2 vocabulary words"):
        word_vectors.embedding_matrix(["", "[UNK]", "good", "bad"], tmp_path / "other.txt", seed=0)


# -- the sentiment task's embedding -----------------------------------------------------------------
def review_vectors(tmp_path, dim: int) -> str:
    """Vectors for the generated reviews' words, seeded, written as GloVe text."""
    from dlsuite.data import text

    texts, _ = text.generate_reviews(400, seed=0)
    words = sorted({w.strip(".,!?'") for t in texts for w in t.lower().split()} - {""})
    rng = np.random.default_rng(0)
    path = tmp_path / "reviews.txt"
    path.write_text(glove_text({w: rng.normal(size=dim).round(4).tolist() for w in words}))
    return str(path)


def prepared(*overrides: str, **values):
    task, cfg = runner.resolve_config(
        "sentiment", overrides=["data.generated_size=400", *overrides], values=values
    )
    splits = task.load(cfg)
    preprocessor = task.preprocessor(splits, cfg)
    return task, cfg, splits, preprocessor


def test_sentiment_embedding_starts_from_the_vectors(tmp_path):
    path = review_vectors(tmp_path, 8)
    task, cfg, splits, vectorizer = prepared("model.embedding_dim=8", **{"data.word_vectors": path})
    network = task.build_network(splits, cfg)
    found, _ = word_vectors.read_word_vectors(path, vectorizer.get_vocabulary())
    weights = network.get_layer("embedding").get_weights()[0]
    vocabulary = vectorizer.get_vocabulary()
    assert len(found) > 20
    for word, vector in found.items():
        np.testing.assert_array_equal(weights[vocabulary.index(word)], vector)
    assert network.get_layer("embedding").trainable
    assert splits.metadata["word_vectors"]["found"] == len(found)
    # The same splits prepared again without vectors start random, not from the last run's vectors.
    _, plain = runner.resolve_config("sentiment", overrides=["data.generated_size=400", "model.embedding_dim=8"])
    task.preprocessor(splits, plain)
    assert "embedding_matrix" not in splits.fitted and "word_vectors" not in splits.metadata


def test_width_mismatch_and_families_without_embedding_are_clear_errors(tmp_path):
    path = review_vectors(tmp_path, 8)
    task, cfg, splits, _ = prepared("model.embedding_dim=16", **{"data.word_vectors": path})
    with pytest.raises(DlsuiteError, match="8 wide but lstm's embedding is 16; set model.embedding_dim=8"):
        task.build_network(splits, cfg)
    task, cfg, splits, _ = prepared("architecture=transformer", **{"data.word_vectors": path})
    with pytest.raises(DlsuiteError, match="set model.model_dim=8"):
        task.build_network(splits, cfg)
    with pytest.raises(DlsuiteError, match="mlp has none. Unset data.word_vectors"):
        prepared("architecture=mlp", **{"data.word_vectors": path})


@pytest.mark.slow
def test_frozen_vectors_stay_fixed_through_training_and_export(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text(glove_text({"splendid": [0.5] * 8}) + open(review_vectors(tmp_path, 8)).read())
    task, cfg = runner.resolve_config(
        "sentiment",
        overrides=["architecture=gru", "data.generated_size=400", "train.epochs=2", "model.embedding_dim=8",
                   "model.units=8", "data.freeze_word_vectors=true", "data.word_vectors_vocabulary=1000"],
        values={"data.word_vectors": str(path), "export.root": str(tmp_path / "sm")},
    )
    result = runner.run(task, cfg, tmp_path / "run")
    embedding = result.model.get_layer("gru").get_layer("embedding")
    vectorizer = result.model.get_layer("vectorize")
    matrix, _ = word_vectors.embedding_matrix(vectorizer.get_vocabulary(), path, cfg["seed"])
    np.testing.assert_array_equal(embedding.get_weights()[0], matrix)
    assert "splendid" in vectorizer.get_vocabulary()  # from the vectors, not from training
    assert result.reload_max_abs_diff is not None and result.reload_max_abs_diff < 1e-5


def test_estimator_takes_word_vectors(tmp_path):
    from sklearn.base import clone

    from dlsuite.data import text
    from dlsuite.estimators import SentimentClassifier

    path = review_vectors(tmp_path, 8)
    texts, labels = text.generate_reviews(300, seed=1)
    estimator = SentimentClassifier(
        architecture="gru", epochs=1, word_vectors=path, freeze_word_vectors=True,
        hparams={"embedding_dim": 8, "units": 4},
    )
    assert clone(estimator).get_params()["word_vectors"] == path
    estimator.fit(texts, labels)
    vocabulary = estimator.model_.get_layer("vectorize").get_vocabulary()
    found, _ = word_vectors.read_word_vectors(path, vocabulary)
    weights = estimator.model_.get_layer("gru").get_layer("embedding").get_weights()[0]
    for word, vector in found.items():
        np.testing.assert_array_equal(weights[vocabulary.index(word)], vector)


def test_vocabulary_extended_with_the_leading_words_of_the_vectors(tmp_path):
    path = tmp_path / "with_extra.txt"
    # Unseen in the generated reviews; "n't" and "U.S." are no tokens of the default standardization.
    extra = {"splendid": [0.5] * 8, "n't": [0.1] * 8, "U.S.": [0.2] * 8, "zeppelin": [-0.5] * 8}
    path.write_text(glove_text(extra) + open(review_vectors(tmp_path, 8)).read())
    assert word_vectors.leading_words(path, 4) == ["splendid", "zeppelin"]
    task, cfg, splits, vectorizer = prepared(
        "model.embedding_dim=8", "data.word_vectors_vocabulary=4", **{"data.word_vectors": str(path)}
    )
    vocabulary = vectorizer.get_vocabulary()
    assert vocabulary[-2:] == ["splendid", "zeppelin"]
    assert splits.metadata["word_vectors"]["added_from_vectors"] == 2
    assert splits.metadata["vectorizer"]["vocab_size"] == len(vocabulary)
    ids = vectorizer(["splendid zeppelin"]).numpy()[0]
    assert list(ids[:2]) == [len(vocabulary) - 2, len(vocabulary) - 1]
    weights = task.build_network(splits, cfg).get_layer("embedding").get_weights()[0]
    np.testing.assert_array_equal(weights[len(vocabulary) - 2], np.float32([0.5] * 8))
