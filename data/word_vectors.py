"""Pretrained word vectors (GloVe, word2vec or fastText text files, or ``.npz``) as an embedding's start.

Three file formats are read, each optionally gzip-compressed (``.gz``):

* GloVe text: one ``word v1 ... vd`` line per word;
* word2vec / fastText text (``.vec``): the same, after a ``count dim`` header line;
* ``.npz`` with a string array ``words`` and a float array ``vectors`` of shape
  ``(len(words), dim)``.

Only the rows of the words in a vocabulary are kept, so a 400,000-word GloVe
file costs the memory of the vocabulary, not of the file.
"""

from __future__ import annotations

import gzip
import io
import itertools
import os
import re
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from dlsuite.errors import DlsuiteError

# TextVectorization's reserved entries: "" is padding (id 0), "[UNK]" the out-of-vocabulary id.
PADDING, OOV = "", "[UNK]"


def read_word_vectors(path: str | os.PathLike, words: Iterable[str]) -> tuple[dict[str, np.ndarray], int]:
    """The vectors of ``words`` found in the file at ``path``.

    Args:
        path: a GloVe or word2vec/fastText text file (optionally ``.gz``) or an ``.npz``.
        words: the words wanted; a word is looked up as written, then lower-cased.

    Returns:
        ``({word: float32 vector}, dim)`` for the wanted words the file has.

    Raises:
        DlsuiteError: the file is missing, empty or malformed (the message names the line).
    """
    path = Path(path)
    if not path.is_file():
        raise DlsuiteError(
            f"word vectors file {path} does not exist; pass a GloVe/word2vec text file or an .npz "
            "(benchmarks/glove.py fetches GloVe 6B 100d)."
        )
    wanted: dict[str, list[str]] = {}
    for word in words:
        for key in dict.fromkeys((word, word.lower())):
            wanted.setdefault(key, []).append(word)
    found: dict[str, np.ndarray] = {}
    dim = None
    for key, vector in _vectors_in(path):
        if dim is None:
            dim = len(vector)
        for word in wanted.get(key, ()):
            # An exact match wins over a lower-cased one.
            if word not in found or key == word:
                found[word] = vector
    if dim is None:
        raise DlsuiteError(f"word vectors file {path} holds no vectors.")
    return found, dim


def leading_words(path: str | os.PathLike, count: int) -> list[str]:
    """The first ``count`` words of the file: the most frequent ones in GloVe and word2vec files.

    Only plain words (letters, digits, underscores) are kept, lower-cased and
    deduplicated: what ``TextVectorization``'s default standardization can
    produce as a token.

    Args:
        path: the word vectors file (see :func:`read_word_vectors`).
        count: how many lines of the file to look at.

    Returns:
        The words, in file order.
    """
    path = Path(path)
    if not path.is_file():
        raise DlsuiteError(f"word vectors file {path} does not exist.")
    words = (word.lower() for word, _ in itertools.islice(_vectors_in(path), count))
    return list(dict.fromkeys(w for w in words if re.fullmatch(r"\w+", w)))


def embedding_matrix(
    vocabulary: Sequence[str], path: str | os.PathLike, seed: int
) -> tuple[np.ndarray, dict[str, float | int]]:
    """An ``Embedding`` weight matrix for ``vocabulary`` with pretrained rows where the file has them.

    Row 0 (padding) is zeros. Words the file lacks, and the out-of-vocabulary
    id, get seeded random rows with the pretrained rows' standard deviation, so
    they start on the same scale and are learned in training.

    Args:
        vocabulary: the vectorizer's vocabulary, id order (``TextVectorization.get_vocabulary()``).
        path: the word vectors file (see :func:`read_word_vectors`).
        seed: seed for the random rows.

    Returns:
        ``(matrix of shape (len(vocabulary), dim), stats)``; ``stats`` has ``dim``,
        ``found`` (vocabulary words with a pretrained vector) and ``coverage``
        (their share of the words, padding and OOV ids left out).
    """
    words = [w for w in vocabulary if w not in (PADDING, OOV)]
    found, dim = read_word_vectors(path, words)
    if not found:
        raise DlsuiteError(
            f"none of the {len(words)} vocabulary words is in {path}; check that the file's language "
            "and casing match the text (GloVe is lower-case)."
        )
    scale = float(np.std(np.stack(list(found.values()))))
    matrix = np.random.default_rng(seed).normal(0.0, scale, (len(vocabulary), dim)).astype(np.float32)
    for i, word in enumerate(vocabulary):
        if word == PADDING:
            matrix[i] = 0.0
        elif word in found:
            matrix[i] = found[word]
    stats = {"dim": dim, "found": len(found), "coverage": round(len(found) / max(len(words), 1), 4)}
    return matrix, stats


def _vectors_in(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """Every ``(word, vector)`` in the file, checking that all vectors have one width."""
    if path.suffix == ".npz":
        yield from _npz_vectors(path)
        return
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as raw:
        lines = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="\n")
        dim = None
        for number, line in enumerate(lines, 1):
            parts = line.rstrip("\r\n").rstrip(" ").split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                dim = int(parts[1])  # the word2vec / fastText header: count and width
                continue
            if len(parts) < 2 or parts == [""]:
                continue
            if dim is None:
                dim = len(parts) - 1
            if len(parts) - 1 != dim:
                raise DlsuiteError(
                    f"{path} line {number}: {len(parts) - 1} numbers after the word, expected {dim}; "
                    "each line must be a word and its vector, separated by single spaces."
                )
            try:
                vector = np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                raise DlsuiteError(
                    f"{path} line {number}: the vector of {parts[0]!r} is not all numbers."
                ) from None
            yield parts[0], vector


def _npz_vectors(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as archive:
        missing = {"words", "vectors"} - set(archive.files)
        if missing:
            raise DlsuiteError(
                f"{path} lacks the arrays {sorted(missing)}; an .npz needs 'words' and 'vectors'."
            )
        words, vectors = archive["words"], archive["vectors"]
    if vectors.ndim != 2 or len(words) != len(vectors):
        raise DlsuiteError(
            f"{path}: 'vectors' must have shape (len(words), dim); "
            f"got {vectors.shape} for {len(words)} words."
        )
    vectors = vectors.astype(np.float32, copy=False)
    for word, vector in zip(words.tolist(), vectors):
        yield str(word), vector
