"""Text sources: the generated ``reviews`` set, TFDS by name, CSV/TSV/Parquet tables, folders, lists.

Every source yields :class:`~dlsuite.data.splits.Splits` whose features are raw
``tf.string`` scalars and whose labels are class ids. Tokenization belongs to the
task's preprocessing, so the exported model takes the same raw text.

Cleaning is the same for every in-memory source (:func:`clean_texts`): bytes
that are not valid UTF-8 are decoded with U+FFFD replacement characters, and
examples whose text is empty (no letter or digit: blank, or punctuation only) are dropped. Both are counted
in ``metadata["cleaning"]``, so a run's ``data_metadata.json`` says what happened.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from dlsuite.data import tfds_source
from dlsuite.data.splits import Splits, check_labels, from_arrays
from dlsuite.errors import DlsuiteError

EMBEDDED = {
    "reviews": "6,000 product/hotel/restaurant reviews generated offline by a seeded grammar "
    "(negation, intensifiers, 'but'/'although' contrast, mixed aspects), 2 classes (embedded)",
}
BINARY_NAMES = ("negative", "positive")
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".parquet": None, ".pq": None}


# -- cleaning ----------------------------------------------------------------------------------
def clean_texts(texts: Sequence[Any], labels: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Decode to ``str`` (invalid UTF-8 -> U+FFFD), drop empty texts (no letter or digit).

    Args:
        texts: strings or bytes (``None``/NaN count as empty).
        labels: one label per text.
        source: name of the source, for error messages.

    Returns:
        (texts as an object array of ``str``, their labels, counts: ``non_utf8_replaced``
        (texts holding U+FFFD, the mark of replaced invalid bytes), ``empty_dropped``).
    """
    if len(texts) != len(labels):
        raise DlsuiteError(f"{source}: {len(texts)} texts but {len(labels)} labels; they must match.")
    out, keep, replaced = [], [], 0
    for i, t in enumerate(texts):
        if isinstance(t, (bytes, np.bytes_)):
            t = bytes(t).decode("utf-8", errors="replace")
        elif t is None or (isinstance(t, float) and np.isnan(t)):
            t = ""
        elif not isinstance(t, str):
            raise DlsuiteError(f"{source}: example {i} is a {type(t).__name__} ({t!r}), not text.")
        replaced += "\ufffd" in t
        # Nothing but spaces and punctuation tokenizes to all padding: nothing to learn from.
        if any(c.isalnum() for c in t):
            out.append(t)
            keep.append(i)
    labels = np.asarray(labels)[keep]
    if not out:
        raise DlsuiteError(f"{source}: every text is empty; nothing to train on.")
    return np.array(out, dtype=object), labels, {"non_utf8_replaced": replaced, "empty_dropped": len(texts) - len(out)}


def encode_labels(values: Sequence[Any], class_names: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Label values -> (class ids, class names).

    Integer labels exactly ``{0, 1}`` are named ``negative``/``positive`` (the
    usual sentiment convention, as in SST-2 and IMDB); other values are named by
    their text, in sorted order.

    Args:
        values: one label per example.
        class_names: fixed class names to map ``str(value)`` onto (``None``: inferred).

    Returns:
        (class ids as int64, class names).
    """
    values = np.asarray(values)
    if class_names is not None:
        lookup = {name: i for i, name in enumerate(class_names)}
        unknown = sorted({str(v) for v in values} - set(lookup))
        if unknown:
            raise DlsuiteError(f"labels {unknown[:5]} are not among the classes {list(class_names)}.")
        return np.array([lookup[str(v)] for v in values], dtype=np.int64), list(class_names)
    uniques, ids = np.unique(values, return_inverse=True)
    if np.issubdtype(uniques.dtype, np.integer) and set(uniques.tolist()) == {0, 1}:
        return ids.astype(np.int64), list(BINARY_NAMES)
    return ids.astype(np.int64), [str(u) for u in uniques]


def text_arrays(
    texts: Sequence[Any],
    labels: Sequence[Any],
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    source: str = "arrays",
    class_names: Sequence[str] | None = None,
) -> Splits:
    """In-memory texts and labels (any values), cleaned and split stratified by class.

    Args:
        texts: strings or bytes.
        labels: one label per text (see :func:`encode_labels`).
        val_fraction, test_fraction, seed: the split (as :func:`~dlsuite.data.splits.split_indices`).
        source: name of the source, for metadata and error messages.
        class_names: fixed class names (``None``: inferred from the labels).

    Returns:
        :class:`Splits` of raw strings.
    """
    texts, labels, cleaning = clean_texts(list(texts), np.asarray(labels), source)
    ids, names = encode_labels(labels, class_names)
    splits = from_arrays(
        texts, ids, names, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, source=source
    )
    splits.metadata.update(input_shape=[], input_dtype="string", cleaning=cleaning)
    return splits


def fixed_splits(parts: dict[str, tuple[Sequence[Any], Sequence[Any]]], source: str) -> Splits:
    """Train/val/test given as separate parts (separate files), cleaned, as :class:`Splits`.

    Args:
        parts: ``{"train": (texts, labels), "val": ..., "test": ...}``; labels are any values.
        source: name of the source, for metadata and error messages.

    Returns:
        :class:`Splits` whose class names come from the labels of all three parts.
    """
    cleaned, cleaning = {}, {"non_utf8_replaced": 0, "empty_dropped": 0}
    for name, (texts, labels) in parts.items():
        t, y, counts = clean_texts(list(texts), np.asarray(labels), f"{source} ({name})")
        cleaned[name] = (t, y)
        for k, v in counts.items():
            cleaning[k] += v
    sizes = [len(y) for _, y in cleaned.values()]
    all_ids, names = encode_labels(np.concatenate([y for _, y in cleaned.values()]))
    data, counts, start = {}, {}, 0
    for (name, (t, _)), size in zip(cleaned.items(), sizes):
        ids, start = all_ids[start:start + size], start + size
        if name == "train":
            check_labels(ids, names, f"{source} (train)")
        data[name] = tf.data.Dataset.from_tensor_slices((t, ids))
        counts[name] = len(t)
    return Splits(
        data["train"], data["val"], data["test"],
        {
            "class_names": names,
            "input_shape": [],
            "input_dtype": "string",
            "source": source,
            "num_examples": counts,
            "cleaning": cleaning,
        },
    )


# -- tables ------------------------------------------------------------------------------------
def read_table(path: str | os.PathLike, text_column: str | None, label_column: str | None) -> tuple[list[Any], np.ndarray]:
    """Texts and labels from a CSV, TSV or Parquet file.

    Args:
        path: the file; its suffix picks the format (``.csv``, ``.tsv``/``.tab``, ``.parquet``/``.pq``).
        text_column: column holding the text (``None``: ``text``, ``sentence`` or ``review``).
        label_column: column holding the label (``None``: ``label``, ``sentiment`` or ``class``).

    Returns:
        (texts, labels).
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DlsuiteError(f"data file {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DlsuiteError(
            f"{path}: unknown table format {suffix!r}; use one of {', '.join(TABLE_SUFFIXES)} "
            "or a folder of class subfolders of .txt files."
        )
    try:
        if TABLE_SUFFIXES[suffix] is None:
            frame = pd.read_parquet(path)
        else:
            # Invalid UTF-8 becomes U+FFFD (counted per text by clean_texts), not a failed read.
            frame = pd.read_csv(
                path, sep=TABLE_SUFFIXES[suffix], quoting=3 if suffix != ".csv" else 0,
                keep_default_na=False, encoding="utf-8", encoding_errors="replace",
            )
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise DlsuiteError(f"cannot read {path}: {e}") from None
    text_column = _pick_column(frame, text_column, ("text", "sentence", "review"), "text", path)
    label_column = _pick_column(frame, label_column, ("label", "sentiment", "class"), "label", path)
    return frame[text_column].tolist(), frame[label_column].to_numpy()


def _pick_column(frame: Any, wanted: str | None, guesses: Sequence[str], role: str, path: Path) -> str:
    columns = [str(c) for c in frame.columns]
    if wanted:
        if wanted not in columns:
            raise DlsuiteError(
                f"{path} has no {role} column {wanted!r}; its columns are {columns}. "
                f"Pass the right one with --{role}-column (data.{role}_column)."
            )
        return wanted
    for guess in guesses:
        if guess in columns:
            return guess
    raise DlsuiteError(
        f"{path} has no column named {' or '.join(guesses)}; its columns are {columns}. "
        f"Name the {role} column with --{role}-column (data.{role}_column)."
    )


# -- folders -----------------------------------------------------------------------------------
def read_folder(path: str | os.PathLike) -> tuple[list[bytes], np.ndarray, list[str]]:
    """A folder of class subfolders of ``.txt`` files (``path/<class>/<file>.txt``).

    Returns:
        (raw file contents, class ids, class names).
    """
    import keras

    root = Path(path)
    if not root.is_dir():
        raise DlsuiteError(f"data folder {root} does not exist or is not a directory.")
    if not any(root.glob("*/*.txt")):
        raise DlsuiteError(f"{root} holds no .txt files in class subfolders; lay it out as {root}/<class>/<file>.txt.")
    ds = keras.utils.text_dataset_from_directory(
        root, labels="inferred", label_mode="int", batch_size=None, shuffle=False, verbose=False
    )
    texts, labels = [], []
    for text, label in ds.as_numpy_iterator():
        texts.append(text)
        labels.append(label)
    return texts, np.asarray(labels, dtype=np.int64), list(ds.class_names)


# -- TFDS --------------------------------------------------------------------------------------
def tfds_text(name: str, *, data_dir: str | None, val_fraction: float, download: bool = True) -> Splits:
    """Any TFDS text classification dataset (``imdb_reviews``, ``glue/sst2``, ...).

    The text and label features are the supervised keys when the dataset has
    them, else its only text feature and its ``label`` class feature (GLUE).
    GLUE keeps its test labels private (every test label is -1), so for
    ``glue/*`` the validation split is the test split and validation is carved
    out of train. Unlabeled examples (label < 0) are dropped everywhere.
    """
    import tensorflow_datasets as tfds

    datasets, info, counts = tfds_source.load(name, data_dir, val_fraction, download, as_supervised=False)
    text_key, label_key = info.supervised_keys or _text_and_label_keys(name, info.features)
    label_feature = info.features[label_key]
    if not isinstance(label_feature, tfds.features.ClassLabel) or info.features[text_key].dtype != tf.string:
        raise DlsuiteError(f"TFDS dataset {name!r} is not a text classification dataset (text + class label).")
    if name.split(":")[0].startswith("glue/"):
        builder = tfds.builder(name, data_dir=data_dir)
        pct = 100 - int(round(val_fraction * 100))
        expr = {"train": f"train[:{pct}%]", "val": f"train[{pct}%:]", "test": "validation"}
        datasets = {k: builder.as_dataset(split=v, shuffle_files=False) for k, v in expr.items()}
        counts = {k: int(info.splits[v].num_examples) for k, v in expr.items()} if info.splits else None

    def pair(example: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        return example[text_key], tf.cast(example[label_key], tf.int64)

    labeled = {k: ds.map(pair).filter(lambda x, y: y >= 0) for k, ds in datasets.items()}
    return Splits(
        labeled["train"], labeled["val"], labeled["test"],
        {
            "class_names": list(label_feature.names),
            "input_shape": [],
            "input_dtype": "string",
            "source": f"tfds:{name}",
            "num_examples": counts,
        },
    )


def _text_and_label_keys(name: str, features: Any) -> tuple[str, str]:
    import tensorflow_datasets as tfds

    texts = [k for k, f in features.items() if isinstance(f, tfds.features.Text)]
    if len(texts) != 1 or "label" not in features:
        raise DlsuiteError(
            f"TFDS dataset {name!r} has no supervised keys and not exactly one text feature plus a 'label' "
            f"(features: {', '.join(features)}); pick a single-text classification dataset."
        )
    return texts[0], "label"


# -- the generated ``reviews`` set -------------------------------------------------------------
_DOMAINS = {
    "phone": ["battery", "screen", "camera", "speaker", "charger", "case"],
    "laptop": ["keyboard", "screen", "battery", "trackpad", "fan", "hinge"],
    "hotel": ["room", "staff", "breakfast", "location", "bed", "pool"],
    "restaurant": ["food", "service", "dessert", "waiter", "menu", "wine"],
    "blender": ["motor", "lid", "jar", "blade", "price", "design"],
    "headphones": ["sound", "fit", "bass", "cable", "microphone", "battery"],
    "jacket": ["fabric", "zipper", "fit", "color", "hood", "stitching"],
    "novel": ["plot", "ending", "characters", "writing", "pacing", "dialogue"],
}
# adjective -> strength (sign = polarity)
_ADJECTIVES = {
    "great": 2.0, "excellent": 2.0, "amazing": 2.0, "wonderful": 2.0, "superb": 2.0, "fantastic": 2.0,
    "good": 1.0, "nice": 1.0, "solid": 1.0, "decent": 0.7, "reliable": 1.0, "pleasant": 1.0, "sturdy": 1.0,
    "terrible": -2.0, "awful": -2.0, "horrible": -2.0, "useless": -2.0, "dreadful": -2.0, "appalling": -2.0,
    "bad": -1.0, "poor": -1.0, "flimsy": -1.0, "disappointing": -1.0, "mediocre": -0.7, "noisy": -1.0, "weak": -1.0,
}
_VERBS = {"love": 2.0, "like": 1.0, "enjoy": 1.0, "adore": 2.0, "hate": -2.0, "dislike": -1.0, "regret": -1.5}
_STRONG = ["very", "really", "extremely", "incredibly", "truly"]
_WEAK = ["somewhat", "fairly", "a bit", "slightly"]
_VERDICTS = {
    "i would recommend it": 2.0, "worth every penny": 2.0, "i would buy it again": 2.0, "five stars": 2.0,
    "i would not recommend it": -2.0, "a waste of money": -2.0, "i returned it": -1.5, "one star": -2.0,
    "never again": -2.0, "i would not buy it again": -2.0,
}
_FILLERS = [
    "it arrived on a tuesday", "i bought it last month", "my sister has one too", "the box was blue",
    "i use it every day", "we stayed for three nights", "i got it as a gift", "it came in two colors",
    "i read reviews before buying", "this is my second one",
]


def _clause(rng: np.random.Generator, aspects: Sequence[str]) -> tuple[str, float]:
    """One opinion clause and its score (intensifiers scale, negation flips and weakens)."""
    aspect = aspects[rng.integers(len(aspects))]
    form = rng.integers(10)
    if form <= 5:
        adj = list(_ADJECTIVES)[rng.integers(len(_ADJECTIVES))]
        score, words = _ADJECTIVES[adj], adj
        roll = rng.random()
        if roll < 0.25:
            mod = _STRONG[rng.integers(len(_STRONG))]
            score, words = 1.5 * score, f"{mod} {adj}"
        elif roll < 0.4:
            mod = _WEAK[rng.integers(len(_WEAK))]
            score, words = 0.5 * score, f"{mod} {adj}"
        negate = rng.random() < 0.3
        if negate:
            score, words = -0.5 * score, f"not {words}"
        verb = ["is", "was", "seems", "felt"][rng.integers(4)]
        if form <= 3 or negate:
            return f"the {aspect} {verb} {words}", score
        return f"{words} {aspect}", score
    if form <= 7:
        verb = list(_VERBS)[rng.integers(len(_VERBS))]
        score = _VERBS[verb]
        if rng.random() < 0.3:
            return f"i do not {verb} the {aspect}", -0.5 * score
        return f"i {verb} the {aspect}", score
    verdict = list(_VERDICTS)[rng.integers(len(_VERDICTS))]
    return verdict, _VERDICTS[verdict]


def _review(rng: np.random.Generator) -> tuple[str, float]:
    """One review: 1-3 clauses joined so that the clause after 'but'/'although ...,' weighs most."""
    product = list(_DOMAINS)[rng.integers(len(_DOMAINS))]
    aspects = _DOMAINS[product]
    text, score = _clause(rng, aspects)
    for i in range(rng.integers(0, 3)):
        clause, s = _clause(rng, aspects)
        joint = rng.random()
        if joint < 0.35:
            text, score = f"{text} but {clause}", 0.4 * score + 1.5 * s
        elif joint < 0.5 and i == 0:
            text, score = f"although {text} , {clause}", 0.4 * score + 1.5 * s
        else:
            text, score = f"{text} {'and' if joint < 0.8 else ','} {clause}", score + s
    opener = rng.random()
    if opener < 0.3:
        text = f"{_FILLERS[rng.integers(len(_FILLERS))]} . {text}"
    elif opener < 0.6:
        text = f"{['the', 'this', 'my new', 'our'][rng.integers(4)]} {product} : {text}"
    return f"{text} .", score


def generate_reviews(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Seeded synthetic reviews, balanced between negative (0) and positive (1).

    The label is the sign of a compositional score: adjective/verb polarity,
    scaled by intensifiers ("very", "slightly"), flipped and weakened by
    negation ("not good" is mildly negative, "not terrible" mildly positive),
    with the clause after "but" (or after an "although ..." clause) outweighing
    the one before. Reviews whose score is near zero are redrawn. A unigram
    bag of words cannot tell "good but noisy" from "noisy but good"; word order
    and negation scope decide a good share of the labels.

    Args:
        n: number of reviews.
        seed: random seed; the same seed gives the same reviews.

    Returns:
        (texts, labels).
    """
    rng = np.random.default_rng(seed)
    texts, labels, per_class = [], [], [0, 0]
    while len(texts) < n:
        text, score = _review(rng)
        label = int(score > 0)
        if abs(score) < 0.3 or per_class[label] >= (n + 1) // 2:
            continue
        texts.append(text)
        labels.append(label)
        per_class[label] += 1
    return texts, np.asarray(labels, dtype=np.int64)


def reviews(*, size: int, val_fraction: float, test_fraction: float, seed: int) -> Splits:
    """The embedded ``reviews`` set; generated from seed 0 whatever the run seed, so every run sees the same data."""
    texts, labels = generate_reviews(size, seed=0)
    return text_arrays(
        texts, labels, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, source="reviews",
        class_names=None,
    )
