"""Pretrained BERT-family encoders (keras-hub's ``BertBackbone``) under a new classification head.

The family follows keras-hub's split:

* **backbone**: ``keras_hub.models.BertBackbone.from_preset(folder)``, which reads
  a Hugging Face BERT folder (``config.json`` + ``model.safetensors``), as
  ``dlsuite fetch minilm`` writes one (:mod:`dlsuite.pretrained`);
* **preprocessor**: :func:`preprocessor`, the preset's WordPiece vocabulary in
  :class:`~dlsuite.data.wordpiece.WordPieceTokenizer`, core TensorFlow ops only,
  so it runs inside ``tf.data`` for training and in front of the network in
  the export, which then serves raw strings with TensorFlow alone;
* **head**: the encoder's outputs pooled (mean over the real tokens, or the
  ``[CLS]`` pooler output), dropout, an optional hidden layer and the output layer.

The network receives token ids (id 0 is ``[PAD]``); the padding mask and the
single segment are derived from them. ``fine_tune=False`` freezes the encoder
and turns its dropout off, so only the head trains, on fixed features. Fine-tuning
follows BERT's recipe, which :data:`FINE_TUNING` makes the training defaults:
AdamW with a linear warm-up over the first 10% of steps and a linear decay to 0.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping

import keras
import numpy as np
import tensorflow as tf

from dlsuite import pretrained
from dlsuite.architectures.registry import InputSpec, register
from dlsuite.architectures.sequence_inputs import MaskedMeanPooling1D, check_choice
from dlsuite.architectures.transfer import new_head
from dlsuite.data.wordpiece import WordPieceTokenizer
from dlsuite.errors import DlsuiteError

log = logging.getLogger("dlsuite")

DEFAULT_PRESET = "minilm"
POOLINGS = ("mean", "cls")
# BERT fine-tuning as Devlin et al. run it (lr 2e-5..5e-5, 2-4 epochs, batch 16-32, warm-up 10%).
FINE_TUNING = {
    "optimizer": "adamw",
    "learning_rate": 5e-5,
    "weight_decay": 0.01,
    "lr_schedule": "warmup_linear",
    "warmup_fraction": 0.1,
    "epochs": 3,
    "batch_size": 32,
    "early_stopping_patience": 1,
}
AUTO_LENGTH_QUANTILE = 99.9
LENGTH_MULTIPLE = 16


def load_backbone(preset: str, **overrides: Any) -> keras.Model:
    """``keras_hub.models.BertBackbone`` named ``encoder`` with the preset's weights.

    Args:
        preset: a catalogue name (``minilm``) or a Hugging Face BERT folder.
        **overrides: ``BertBackbone`` arguments replacing the preset's (``dropout``).
    """
    import keras_hub  # 0.7 s of imports: only this family pays them

    folder = pretrained.resolve_preset(preset)
    return keras_hub.models.BertBackbone.from_preset(str(folder), name="encoder", **overrides)


def max_sequence_length(preset: str) -> int:
    """Positions the preset's encoder has (512 for BERT)."""
    return int(pretrained.bert_config(pretrained.resolve_preset(preset)).get("max_position_embeddings", 512))


def preprocessor(
    hparams: Mapping[str, Any], *, sequence_length: int | None, texts: tf.data.Dataset
) -> WordPieceTokenizer:
    """The tokenizer of the preset in ``hparams``: raw strings -> ``[batch, sequence_length]`` ids.

    Args:
        hparams: the family's hyperparameters (``preset`` is read).
        sequence_length: ids per text, ``[CLS]`` and ``[SEP]`` included; ``None``:
            the 99.9th percentile of the training texts' lengths, rounded up to a
            multiple of 16.
        texts: batched training strings (for the automatic length).

    Returns:
        A :class:`WordPieceTokenizer`.

    Raises:
        DlsuiteError: a length over the encoder's positions, or a vocabulary whose padding is not id 0.
    """
    preset = hparams.get("preset", DEFAULT_PRESET)
    folder = pretrained.resolve_preset(preset)
    limit = max_sequence_length(preset)
    vocabulary = pretrained.read_vocabulary(folder)
    if vocabulary[0] != "[PAD]":
        raise DlsuiteError(f"{folder}: token id 0 is {vocabulary[0]!r}, not [PAD]; dlsuite pads token ids with 0.")
    if sequence_length is not None and not 2 <= sequence_length <= limit:
        raise DlsuiteError(
            f"data.sequence_length={sequence_length} is outside 2..{limit}: the encoder of {preset} has "
            f"{limit} positions ([CLS] and [SEP] included). Set data.sequence_length to at most {limit}."
        )
    lowercase = pretrained.lowercases(folder)
    if sequence_length is None:
        counter = WordPieceTokenizer(vocabulary, limit, lowercase=lowercase)
        counts = np.concatenate([counter.token_counts(batch).numpy() for batch in texts])
        wanted = float(np.percentile(counts, AUTO_LENGTH_QUANTILE)) if len(counts) else 2.0
        sequence_length = min(limit, LENGTH_MULTIPLE * math.ceil(wanted / LENGTH_MULTIPLE))
        log.info("bert: sequence length %d (%.1fth percentile of the training texts: %d ids)",
                 sequence_length, AUTO_LENGTH_QUANTILE, wanted)
    return WordPieceTokenizer(vocabulary, sequence_length, lowercase=lowercase, name="wordpiece")


@register(
    "bert",
    input_kinds=("tokens",),
    summary="pretrained BERT-family encoder (keras-hub BertBackbone; `dlsuite fetch minilm` or a Hugging Face "
    "folder) + mean/[CLS] pooling head, fine-tuned or frozen",
    preprocessor=preprocessor,
    train_defaults=FINE_TUNING,
)
def build_bert(
    input_spec: InputSpec,
    num_outputs: int,
    *,
    output_activation: str | None = "softmax",
    preset: str = DEFAULT_PRESET,
    pooling: str = "mean",
    fine_tune: bool = True,
    dropout: float = 0.1,
    head_units: int = 0,
) -> keras.Model:
    """Builds a pretrained BERT encoder with a new head over token ids.

    Args:
        input_spec: ``tokens`` of shape ``(T,)`` (``T`` may be ``None``), ids of the
            preset's own vocabulary (:func:`preprocessor`), 0 for padding.
        num_outputs: width of the output layer.
        output_activation: activation of the output layer (``None`` for logits).
        preset: ``minilm`` (after ``dlsuite fetch minilm``) or a Hugging Face BERT
            folder (``config.json``, ``model.safetensors``, ``vocab.txt`` or ``tokenizer.json``).
        pooling: ``mean`` over the real tokens (what sentence-transformers
            models such as MiniLM were trained for) or ``cls``, the ``[CLS]``
            token through BERT's pooler layer (BERT's own classifier input).
        fine_tune: train the encoder too; ``False`` freezes it (and its dropout: only the head trains).
        dropout: dropout rate before the head's layers.
        head_units: width of a hidden dense layer in the head (0: linear head).

    Returns:
        An uncompiled ``keras.Model`` named ``"bert"``.
    """
    check_choice("bert", "pooling", pooling, POOLINGS)
    if not 0.0 <= dropout < 1.0:
        raise DlsuiteError(f"bert dropout must be in [0, 1), got {dropout}.")
    if head_units < 0:
        raise DlsuiteError(f"bert head_units must be 0 or more, got {head_units}.")
    if len(input_spec.shape) != 1:
        raise DlsuiteError(f"bert takes token ids of shape (timesteps,), got {input_spec.shape}.")
    # Frozen, the encoder is a fixed feature extractor: no dropout inside it either. (A functional
    # model passes fit's training=True to every layer, whatever training= it was built with.)
    backbone = load_backbone(preset, **({} if fine_tune else {"dropout": 0.0}))
    if input_spec.vocab_size != backbone.vocabulary_size:
        raise DlsuiteError(
            f"bert's preset {preset} has a vocabulary of {backbone.vocabulary_size} tokens, but the token ids "
            f"come from one of {input_spec.vocab_size}; tokenize with the preset's own vocabulary "
            "(architectures.bert.preprocessor, which the sentiment task uses)."
        )
    length = input_spec.shape[0]
    if length is not None and length > backbone.max_sequence_length:
        raise DlsuiteError(
            f"bert inputs of {length} tokens exceed the {backbone.max_sequence_length} positions of {preset}."
        )
    if pooling == "mean":
        # The encoder without BERT's [CLS] pooler, which mean pooling never reaches (no gradients).
        backbone = keras.Model(backbone.input, backbone.output["sequence_output"], name="encoder")
    backbone.trainable = fine_tune
    token_ids = keras.Input(shape=input_spec.shape, dtype="int32", name="token_ids")
    padding_mask = keras.ops.not_equal(token_ids, 0)
    encoded = backbone(
        {"token_ids": token_ids, "padding_mask": padding_mask, "segment_ids": keras.ops.zeros_like(token_ids)}
    )
    if pooling == "mean":
        x = MaskedMeanPooling1D(name="mean_pool")(encoded, mask=padding_mask)
    else:
        x = encoded["pooled_output"]
    outputs = new_head(x, num_outputs, output_activation, dropout, head_units, hidden_activation="gelu")
    return keras.Model(token_ids, outputs, name="bert")
