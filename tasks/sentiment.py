"""Sentiment analysis: raw text in, sentiment (any number of classes) out.

The raw strings are vectorized by a ``TextVectorization`` layer adapted on the
training split only: token ids for the sequence families (``lstm``, ``gru``,
``rnn``, ``transformer``, ``cnn``), TF-IDF weighted n-grams for the
bag-of-words ``mlp``, and nothing at all for ``transfer``, whose TF Hub encoder
takes the strings themselves. A pretrained encoder (``bert``) brings its own
tokenizer (its WordPiece vocabulary, in core TF ops), and its training
batches are grouped by length (``data.length_buckets``). The runner maps the
vectorizer over training batches inside tf.data and puts it back in front of
the network for export, so the SavedModel takes a batch of ``tf.string``.

With ``data.word_vectors`` (a GloVe/word2vec file, see
:mod:`dlsuite.data.word_vectors`) the token embedding of the sequence families
starts from pretrained vectors, looked up for the adapted vocabulary, and is
fine-tuned (or kept fixed with ``data.freeze_word_vectors``).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf
from sklearn.model_selection import train_test_split

from dlsuite import architectures, reporting
from dlsuite.architectures import InputSpec
from dlsuite.data import text, word_vectors
from dlsuite.data.pipeline import batched
from dlsuite.data.splits import Splits
from dlsuite.errors import DlsuiteError
from dlsuite.tasks.base import Endpoints, register
from dlsuite.tasks.classification import ClassificationTask

log = logging.getLogger(__name__)

# Families that read the text as a bag of n-grams (tabular TF-IDF features) or as raw strings.
BAG_OF_WORDS = ("mlp",)
RAW_TEXT = ("transfer",)
TOKEN_FAMILIES = ("lstm", "gru", "rnn", "transformer", "cnn")
PRETRAINED = ("bert",)  # families with their own tokenizer (Architecture.preprocessor)
FIRST_LENGTH_BUCKET = 16
MAX_AUTO_LENGTH = 256
CONFIDENTLY_WRONG = 20
WRONG_FILE = "confidently_wrong.tsv"


@register
class Sentiment(ClassificationTask):
    name = "sentiment"
    summary = "text -> sentiment class; export takes a batch of raw strings"
    input_kind = "text"  # raw strings; the vectorizer turns them into tokens (or n-grams) for most families
    architectures = TOKEN_FAMILIES + RAW_TEXT + BAG_OF_WORDS + PRETRAINED
    embedded_datasets = text.EMBEDDED
    output_names = ("probabilities", "label_id", "label")

    def config_overrides(self) -> dict[str, Any]:
        return {
            "data": {
                "text_column": None,
                "label_column": None,
                "val_path": None,
                "test_path": None,
                "generated_size": 6000,
                "max_tokens": 20000,
                "sequence_length": None,
                "ngrams": 2,
                "word_vectors": None,
                "freeze_word_vectors": False,
                "word_vectors_vocabulary": 0,
                "length_buckets": None,
            },
            # The generated reviews: the lstm reaches its best validation loss in 5-9 epochs.
            "train": {"epochs": 10, "batch_size": 64, "learning_rate": 0.003, "early_stopping_patience": 3},
        }

    # -- data ------------------------------------------------------------------------------
    def load(self, cfg: Mapping[str, Any]) -> Splits:
        data, seed = cfg["data"], cfg["seed"]
        fractions = dict(val_fraction=data["val_fraction"], test_fraction=data["test_fraction"], seed=seed)
        if data["path"]:
            path = Path(data["path"])
            if path.is_dir():
                if data["val_path"] or data["test_path"]:
                    raise DlsuiteError("data.val_path/data.test_path go with a --data table file, not a folder.")
                texts, ids, names = text.read_folder(path)
                return text.text_arrays(
                    texts, [names[i] for i in ids], source=f"folder:{path}", class_names=names, **fractions
                )
            columns = (data["text_column"], data["label_column"])
            train = text.read_table(path, *columns)
            if not (data["val_path"] or data["test_path"]):
                return text.text_arrays(*train, source=f"file:{path}", **fractions)
            test = text.read_table(data["test_path"], *columns) if data["test_path"] else None
            if test is None:
                train, test = _carve(train, data["test_fraction"], seed)
            val = text.read_table(data["val_path"], *columns) if data["val_path"] else None
            if val is None:
                train, val = _carve(train, data["val_fraction"], seed)
            return text.fixed_splits({"train": train, "val": val, "test": test}, source=f"file:{path}")
        if data["dataset"] == "reviews":
            return text.reviews(size=data["generated_size"], **fractions)
        return text.tfds_text(
            data["dataset"], data_dir=data["data_dir"], val_fraction=data["val_fraction"], download=data["download"]
        )

    def raw_input(self, splits: Splits) -> keras.KerasTensor:
        return keras.Input(shape=(), dtype="string", name="text")

    def preprocessor(self, splits: Splits, cfg: Mapping[str, Any]) -> keras.layers.Layer:
        data, arch = cfg["data"], cfg["architecture"]
        texts = splits.train.map(lambda x, y: x).batch(1024)
        # Splits passed in again (runner.run(splits=...)) must not carry a previous run's vectors.
        splits.fitted.pop("embedding_matrix", None)
        splits.metadata.pop("word_vectors", None)
        if data["word_vectors"] and arch not in TOKEN_FAMILIES:
            raise DlsuiteError(
                f"data.word_vectors starts the token embedding of {', '.join(TOKEN_FAMILIES)}; "
                f"{arch} has none. Unset data.word_vectors or choose one of those architectures."
            )
        family = architectures.get(arch)
        if data["length_buckets"] and family.preprocessor is None:
            raise DlsuiteError(
                f"data.length_buckets groups the batches of {', '.join(PRETRAINED)}; {arch} pads every text "
                "to data.sequence_length. Unset it or choose one of those architectures."
            )
        if family.preprocessor is not None:
            hparams = {**family.hparams(), **cfg["model"]}
            tokenizer = family.preprocessor(hparams, sequence_length=data["sequence_length"], texts=texts)
            length = tokenizer.sequence_length
            buckets = data["length_buckets"]
            if buckets is None:  # powers of two from 16 below the full length
                buckets = [b for b in (FIRST_LENGTH_BUCKET << i for i in range(10)) if b < length]
            splits.metadata["vectorizer"] = {
                "mode": "wordpiece", "vocab_size": tokenizer.vocabulary_size, "sequence_length": length,
                "length_buckets": check_buckets(buckets), "preset": str(hparams["preset"]),
            }
            return tokenizer
        if arch in RAW_TEXT:
            splits.metadata["vectorizer"] = {"mode": "raw"}
            return keras.layers.Identity(name="raw_text")
        if arch in BAG_OF_WORDS:
            vectorizer = keras.layers.TextVectorization(
                max_tokens=data["max_tokens"], output_mode="tf_idf", ngrams=data["ngrams"], name="vectorize"
            )
            vectorizer.adapt(texts)
            splits.metadata["vectorizer"] = {"mode": "tf_idf", "vocab_size": vectorizer.vocabulary_size(),
                                             "ngrams": data["ngrams"]}
            return vectorizer
        length = data["sequence_length"] or auto_sequence_length(texts)
        vectorizer = keras.layers.TextVectorization(
            max_tokens=data["max_tokens"], output_mode="int", output_sequence_length=length, name="vectorize"
        )
        vectorizer.adapt(texts)
        added = 0
        if data["word_vectors"] and data["word_vectors_vocabulary"] > 0:
            vectorizer, added = extend_vocabulary(vectorizer, data["word_vectors"], data["word_vectors_vocabulary"])
        splits.metadata["vectorizer"] = {"mode": "int", "vocab_size": vectorizer.vocabulary_size(),
                                         "sequence_length": length}
        if data["word_vectors"]:
            matrix, stats = word_vectors.embedding_matrix(
                vectorizer.get_vocabulary(), data["word_vectors"], cfg["seed"]
            )
            stats["added_from_vectors"] = added
            log.info("word vectors: %d of the vocabulary's words found in %s (%.1f%%), %d wide",
                     stats["found"], data["word_vectors"], 100 * stats["coverage"], stats["dim"])
            splits.metadata["word_vectors"] = {"path": str(data["word_vectors"]), **stats}
            splits.fitted["embedding_matrix"] = matrix
        return vectorizer

    def build_network(self, splits: Splits, cfg: Mapping[str, Any]) -> keras.Model:
        """The configured family; with ``data.word_vectors`` its token embedding starts from them."""
        network = super().build_network(splits, cfg)
        matrix = splits.fitted.get("embedding_matrix")
        if matrix is None:
            return network
        embedding = network.get_layer("embedding")
        if embedding.output_dim != matrix.shape[1]:
            hparams = architectures.get(cfg["architecture"]).hparams()
            key = "model_dim" if "model_dim" in hparams else "embedding_dim"
            raise DlsuiteError(
                f"the word vectors are {matrix.shape[1]} wide but {cfg['architecture']}'s embedding is "
                f"{embedding.output_dim}; set model.{key}={matrix.shape[1]}."
            )
        embedding.embeddings.assign(matrix)
        embedding.trainable = not cfg["data"]["freeze_word_vectors"]
        return network

    def network_input(self, splits: Splits) -> InputSpec:
        vec = splits.metadata.get("vectorizer")
        if vec is None:
            raise DlsuiteError("the sentiment vectorizer is not adapted yet; call preprocessor() before building.")
        if vec["mode"] == "raw":
            return InputSpec("text", (), dtype="string")
        if vec["mode"] == "tf_idf":
            return InputSpec("tabular", (vec["vocab_size"],))
        if vec["mode"] == "wordpiece":
            # Length-bucketed batches are cut to their bucket: the network takes any length.
            length = None if vec["length_buckets"] else vec["sequence_length"]
            return InputSpec("tokens", (length,), dtype="int32", vocab_size=vec["vocab_size"])
        return InputSpec("tokens", (vec["sequence_length"],), dtype="int64", vocab_size=vec["vocab_size"])

    def pipeline_options(self, splits: Splits, cfg: Mapping[str, Any]) -> dict[str, Any]:
        return {"length_buckets": splits.metadata["vectorizer"].get("length_buckets") or ()}

    # -- evaluation ------------------------------------------------------------------------
    def evaluate(self, model: keras.Model, splits: Splits, run_dir: str, batch_size: int) -> dict[str, Any]:
        texts, y_true, probs = [], [], []
        for x, y in batched(splits.test, batch_size, training=False, seed=0, cache=False):
            probs.append(np.asarray(model(x, training=False)))
            texts.extend(t.decode("utf-8", errors="replace") for t in x.numpy())
            y_true.append(y.numpy())
        y_true, probs = np.concatenate(y_true), np.concatenate(probs)
        names = splits.class_names
        metrics = reporting.classification_metrics(y_true, probs.argmax(axis=1), names)
        metrics.update(reporting.score_metrics(y_true, probs))
        reporting.plot_confusion_matrix(metrics["confusion_matrix"], names, os.path.join(run_dir, "confusion_matrix.png"))
        reporting.plot_roc_curves(y_true, probs, names, os.path.join(run_dir, "roc_curve.png"))
        reporting.plot_pr_curves(y_true, probs, names, os.path.join(run_dir, "pr_curve.png"))
        wrong = most_confidently_wrong(texts, y_true, probs, names, CONFIDENTLY_WRONG)
        metrics["most_confidently_wrong"] = wrong
        with open(os.path.join(run_dir, WRONG_FILE), "w", encoding="utf-8") as f:
            f.write("probability\ttrue\tpredicted\ttext\n")
            for row in wrong:
                f.write(f"{row['probability']:.4f}\t{row['true']}\t{row['predicted']}\t{row['text']}\n")
        return metrics

    # -- serving ---------------------------------------------------------------------------
    def serving_endpoints(self, model: keras.Model, metadata: Mapping[str, Any]) -> Endpoints:
        class_names = metadata["class_names"]

        def classify_text(text: tf.Tensor) -> dict[str, tf.Tensor]:
            return self.postprocess(model(text, training=False), class_names)

        return {"serving_default": (classify_text, [tf.TensorSpec((None,), tf.string, name="text")])}

    def verification_inputs(self, splits: Splits, metadata: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
        sample = [t for t, _ in splits.test.take(16).as_numpy_iterator()]
        # Edge cases a client may send: empty, non-ASCII, invalid UTF-8, a long text.
        sample += [b"", "très bien, 好 😀".encode(), b"\xff\xfe broken bytes", b"word " * 400]
        return {"serving_default": {"text": np.array(sample, dtype=object)}}

    def serving_batches(
        self, ds: tf.data.Dataset, metadata: Mapping[str, Any], batch_size: int
    ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        for x, y in ds.batch(batch_size):
            yield {"text": x.numpy()}, y.numpy()

    def predict_inputs(self, inputs: Sequence[str], metadata: Mapping[str, Any]) -> tuple[str, dict[str, np.ndarray]]:
        return "serving_default", {"text": np.array(list(inputs), dtype=object)}


def extend_vocabulary(
    vectorizer: keras.layers.TextVectorization, path: str, count: int
) -> tuple[keras.layers.TextVectorization, int]:
    """The adapted vectorizer with the vectors file's leading words that training lacks appended.

    Words first met at test or serving time then get their pretrained vector
    instead of the out-of-vocabulary id. Fine-tuning moves only the words seen
    in training, so this pairs best with ``data.freeze_word_vectors``.

    Args:
        vectorizer: the ``TextVectorization`` adapted on the training split.
        path: the word vectors file.
        count: how many of its leading (most frequent) words to consider.

    Returns:
        ``(a new vectorizer with the same settings and the longer vocabulary, words added)``.
    """
    vocabulary = vectorizer.get_vocabulary()
    known = set(vocabulary)
    extra = [w for w in word_vectors.leading_words(path, count) if w not in known]
    config = {**vectorizer.get_config(), "max_tokens": None, "vocabulary": vocabulary[2:] + extra}
    log.info("added %d words of %s to the vocabulary of %d", len(extra), path, len(vocabulary))
    return keras.layers.TextVectorization.from_config(config), len(extra)


def check_buckets(buckets: Any) -> list[int]:
    """``data.length_buckets`` as a sorted list of positive ints, or a clear error."""
    if not isinstance(buckets, (list, tuple)) or not all(isinstance(b, int) and b > 0 for b in buckets):
        raise DlsuiteError(
            f"data.length_buckets must be a list of positive token counts such as [16, 32], got {buckets!r}; "
            "[] turns bucketing off."
        )
    return sorted(set(buckets))


def auto_sequence_length(texts: tf.data.Dataset) -> int:
    """Tokens per text for the vectorizer when ``data.sequence_length`` is unset.

    Args:
        texts: batched training strings.

    Returns:
        The 99th percentile of whitespace-token counts, rounded up to a multiple of 8,
        between 8 and ``MAX_AUTO_LENGTH``.
    """
    counts = np.concatenate([tf.strings.split(batch).row_lengths().numpy() for batch in texts])
    length = int(math.ceil(np.percentile(counts, 99) / 8) * 8) if len(counts) else 8
    return int(min(max(length, 8), MAX_AUTO_LENGTH))


def most_confidently_wrong(
    texts: Sequence[str], y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str], k: int
) -> list[dict[str, Any]]:
    """The ``k`` misclassified examples with the highest predicted-class probability.

    Args:
        texts: test texts.
        y_true: their class ids.
        probs: predicted probabilities ``(n, classes)``.
        class_names: names of the class ids.
        k: how many to return.

    Returns:
        Dicts with ``text``, ``true``, ``predicted`` and ``probability``, most confident first.
    """
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != y_true)
    order = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:k]
    return [
        {
            "text": texts[i],
            "true": class_names[int(y_true[i])],
            "predicted": class_names[int(pred[i])],
            "probability": float(probs[i, pred[i]]),
        }
        for i in order
    ]


def _carve(part: tuple[Sequence[Any], np.ndarray], fraction: float, seed: int) -> tuple[tuple, tuple]:
    """Split ``(texts, labels)`` into a remaining part and a stratified ``fraction``."""
    texts, labels = list(part[0]), np.asarray(part[1])
    _, counts = np.unique(labels, return_counts=True)
    stratify = labels if counts.min() >= 2 else None
    keep, held = train_test_split(np.arange(len(labels)), test_size=fraction, random_state=seed, stratify=stratify)
    keep, held = np.sort(keep), np.sort(held)
    return ([texts[i] for i in keep], labels[keep]), ([texts[i] for i in held], labels[held])
