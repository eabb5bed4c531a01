"""BERT's WordPiece tokenization in core TensorFlow ops: raw strings in, padded token ids out.

:class:`WordPieceTokenizer` reproduces the Hugging Face ``BertTokenizerFast``
of an uncased BERT (``BertNormalizer`` + ``BertPreTokenizer`` + ``WordPiece``
+ the ``[CLS] ... [SEP]`` template) with ops every TensorFlow build has:
``tf.strings`` regexes (RE2), ``unicode_split``/``substr`` and a hash table.
No ``tensorflow_text`` op is involved, so an export holding the layer serves
with TensorFlow alone (TF Serving, ``tf.saved_model.load``), and the layer runs
inside ``tf.data`` for training (TPUs run no string ops).

The steps, in Hugging Face's order:

1. invalid UTF-8 is replaced with U+FFFD; U+0000, U+FFFD and control/format
   characters are dropped, every whitespace character becomes a space;
2. CJK ideographs are surrounded by spaces (each one a word);
3. accents are stripped (NFD, then non-spacing marks removed; precomputed with
   :mod:`unicodedata` into a lookup table) and the text is lower-cased;
4. words are split at whitespace and at every punctuation character (Unicode
   ``P*`` and ASCII punctuation);
5. each word is split greedily into the longest vocabulary pieces, the
   non-initial ones prefixed ``##``; a word that cannot be split, or longer
   than ``max_chars_per_word``, becomes ``[UNK]``;
6. ``[CLS]`` + the first ``sequence_length - 2`` pieces + ``[SEP]``, padded with
   the ``[PAD]`` id.

Special-token strings typed in the text (``"[SEP]"``) are not special: they
are split as punctuation and letters, so user text cannot inject them.
"""

from __future__ import annotations

import functools
import sys
import unicodedata
from typing import Any, Sequence

import keras
import tensorflow as tf

from dlsuite.errors import DlsuiteError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
# Hugging Face's _is_chinese_char: the CJK Unified Ideographs blocks (not Hangul or kana).
CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)
_CJK = "".join(f"\\x{{{lo:X}}}-\\x{{{hi:X}}}" for lo, hi in CJK_RANGES)
# Hugging Face's is_whitespace: \t, \n, \r and Unicode separators (Z*); is_control: category C* but \t\n\r.
_WHITESPACE = r"[\t\n\r\p{Z}]"
_DROPPED = r"[\x{0}\x{FFFD}\p{Cc}\p{Cf}\p{Co}\p{Cs}]"
_PUNCTUATION = r"[\p{P}!-/:-@\[-`{-~]"


@functools.cache
def _accent_table() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(characters, replacements): every character NFD + mark removal changes, and what it becomes."""
    keys, values = [], []
    for code in range(0x80, sys.maxunicode + 1):
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue
        stripped = "".join(c for c in unicodedata.normalize("NFD", char) if unicodedata.category(c) != "Mn")
        if stripped != char:
            keys.append(char)
            values.append(stripped)
    return tuple(keys), tuple(values)


@keras.saving.register_keras_serializable(package="dlsuite")
class WordPieceTokenizer(keras.layers.Layer):
    """Raw strings ``[batch]`` -> BERT token ids ``[batch, sequence_length]`` (int32).

    Args:
        vocabulary: the WordPiece vocabulary in id order (``vocab.txt``); it must
            hold ``[PAD]``, ``[UNK]``, ``[CLS]`` and ``[SEP]``.
        sequence_length: ids per text, ``[CLS]`` and ``[SEP]`` included.
        lowercase: lower-case and strip accents (an uncased model); ``False``
            keeps case and accents (a cased one).
        max_chars_per_word: longer words become ``[UNK]`` (Hugging Face's 100).
        **kwargs: base ``Layer`` arguments (``name``).
    """

    def __init__(
        self,
        vocabulary: Sequence[str],
        sequence_length: int,
        lowercase: bool = True,
        max_chars_per_word: int = 100,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.vocabulary = [str(t) for t in vocabulary]
        missing = [t for t in SPECIAL_TOKENS if t not in self.vocabulary]
        if missing:
            raise DlsuiteError(f"the WordPiece vocabulary lacks {', '.join(missing)}; is it a BERT vocab.txt?")
        if sequence_length < 2:
            raise DlsuiteError(f"sequence_length must be at least 2 ([CLS] and [SEP]), got {sequence_length}.")
        self.sequence_length = int(sequence_length)
        self.lowercase = bool(lowercase)
        self.max_chars_per_word = int(max_chars_per_word)
        ids = {token: i for i, token in enumerate(self.vocabulary)}
        self.pad_id, self.unk_id, self.cls_id, self.sep_id = (ids[t] for t in SPECIAL_TOKENS)
        # Longest piece in characters (continuations without their "##"): the candidates per step.
        self._max_piece = max(len(t[2:] if t.startswith("##") else t) for t in self.vocabulary)
        self._pieces = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(self.vocabulary), tf.range(len(self.vocabulary), dtype=tf.int32)
            ),
            default_value=-1,
        )
        if self.lowercase:
            keys, values = _accent_table()
            self._accents = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values)), default_value="\x00"
            )
        self.built = True

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    # -- the steps ---------------------------------------------------------------------------
    def normalize(self, texts: tf.Tensor) -> tf.Tensor:
        """Steps 1-3: cleaned, CJK-spaced, (accent-stripped, lower-cased) strings."""
        texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
        # Whitespace first: \t, \n and \r are control characters too, but become spaces.
        texts = tf.strings.regex_replace(texts, _WHITESPACE, " ")
        texts = tf.strings.regex_replace(texts, _DROPPED, "")
        texts = tf.strings.regex_replace(texts, f"([{_CJK}])", r" \1 ")
        if self.lowercase:
            chars = tf.strings.unicode_split(texts, "UTF-8")
            mapped = self._accents.lookup(chars)
            chars = tf.where(tf.equal(mapped, "\x00"), chars, mapped)
            texts = tf.strings.lower(tf.strings.reduce_join(chars, axis=-1), encoding="utf-8")
        return texts

    def split_words(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Step 4: ``[batch, (words)]`` strings."""
        return tf.strings.split(tf.strings.regex_replace(texts, f"({_PUNCTUATION})", r" \1 "))

    def word_pieces(self, words: tf.Tensor) -> tf.RaggedTensor:
        """Step 5 over a flat ``[n]`` string tensor: ``[n, (pieces)]`` int32 ids.

        Every word advances at once: each step looks up the ``1.._max_piece``
        characters from its current position (``##``-prefixed after the first
        piece) and takes the longest hit.
        """
        lengths = tf.strings.length(words, unit="UTF8_CHAR")
        n = tf.shape(words)[0]
        widths = tf.range(1, self._max_piece + 1, dtype=tf.int32)
        tiled = tf.tile(words[:, None], [1, self._max_piece])

        def step(i, start, failed, pieces):
            active = (start < lengths) & ~failed
            candidates = tf.strings.substr(
                tiled, tf.tile(start[:, None], [1, self._max_piece]), tf.tile(widths[None, :], [n, 1]), unit="UTF8_CHAR"
            )
            candidates = tf.where((start > 0)[:, None], "##" + candidates, candidates)
            ids = self._pieces.lookup(candidates)
            fits = (ids >= 0) & (start[:, None] + widths[None, :] <= lengths[:, None])
            best = tf.argmax(tf.where(fits, widths[None, :], 0), axis=1, output_type=tf.int32)  # widest fit
            found = tf.reduce_any(fits, axis=1)
            chosen = tf.gather(ids, best, batch_dims=1)
            pieces = pieces.write(i, tf.where(active & found, chosen, -1))
            return i + 1, tf.where(active & found, start + best + 1, start), failed | (active & ~found), pieces

        too_long = lengths > self.max_chars_per_word
        # At least one step, so that the stack below has a row even for an empty batch.
        _, _, failed, pieces = tf.while_loop(
            lambda i, start, failed, pieces: (i == 0) | tf.reduce_any((start < lengths) & ~failed),
            step,
            (
                tf.constant(0),
                tf.zeros_like(lengths),
                too_long,
                tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=tf.TensorShape([None])),
            ),
        )
        grid = tf.transpose(pieces.stack())  # [n, steps], -1 where no piece
        grid = tf.where(failed[:, None], -1, grid)
        grid = tf.concat([tf.where(failed, self.unk_id, -1)[:, None], grid], axis=1)  # a failed word is one [UNK]
        return tf.ragged.boolean_mask(grid, grid >= 0)

    def pieces(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Steps 1-5: ``[batch, (pieces)]`` ids, before the special tokens, truncation and padding."""
        texts = tf.convert_to_tensor(texts, dtype=tf.string)
        words = self.split_words(self.normalize(tf.reshape(texts, [-1])))
        return words.with_flat_values(self.word_pieces(words.flat_values)).merge_dims(1, 2)

    def token_counts(self, texts: tf.Tensor) -> tf.Tensor:
        """Ids each text needs untruncated, ``[CLS]`` and ``[SEP]`` included: ``[batch]`` int64."""
        return self.pieces(texts).row_lengths() + 2

    def call(self, texts: tf.Tensor) -> tf.Tensor:
        body = self.pieces(texts)[:, : self.sequence_length - 2]
        batch = body.nrows()
        ids = tf.concat(
            [tf.fill([batch, 1], self.cls_id), body, tf.fill([batch, 1], self.sep_id)], axis=1
        )
        return ids.to_tensor(default_value=self.pad_id, shape=[None, self.sequence_length])

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.sequence_length)

    def compute_output_spec(self, inputs: Any) -> keras.KerasTensor:
        return keras.KerasTensor((inputs.shape[0], self.sequence_length), dtype="int32")

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "vocabulary": self.vocabulary,
            "sequence_length": self.sequence_length,
            "lowercase": self.lowercase,
            "max_chars_per_word": self.max_chars_per_word,
        }

