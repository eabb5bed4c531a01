"""Transformer encoder over tokens or frame sequences.

Tokens are embedded (frames projected) to ``model_dim``, position information
is added (:class:`PositionalEncoding`, learned or sinusoidal), then
``num_layers`` post-norm encoder blocks (:class:`TransformerEncoderBlock`:
self-attention and a feed-forward network, each with a residual connection and
layer normalization) run, and the outputs are mean-pooled over the unmasked
positions into the output layer. Padding (token id 0, all-zero frames) is kept
out of the attention keys and of the pooling.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import layers, ops

from dlsuite.architectures.cnn import check_positive, check_rate
from dlsuite.architectures.registry import InputSpec, register
from dlsuite.architectures.sequence_inputs import SEQUENCE_KINDS, MaskedMeanPooling1D, check_choice, sequence_inputs
from dlsuite.errors import DlsuiteError

POSITIONAL = ("learned", "sinusoidal")


@keras.saving.register_keras_serializable(package="dlsuite")
class PositionalEncoding(layers.Layer):
    """Adds position information to a ``(batch, T, d)`` sequence; passes its mask through.

    Args:
        mode: ``"learned"`` (a trained ``(max_length, d)`` table) or
            ``"sinusoidal"`` (the fixed sines and cosines of Vaswani et al.,
            no weights, any length).
        max_length: longest sequence a learned table covers.
        **kwargs: base ``Layer`` arguments.
    """

    def __init__(self, mode: str = "sinusoidal", max_length: int = 512, **kwargs: Any):
        super().__init__(**kwargs)
        if mode not in POSITIONAL:
            raise ValueError(f"mode must be one of {POSITIONAL}, got {mode!r}")
        self.mode = mode
        self.max_length = int(max_length)
        self.supports_masking = True

    def build(self, input_shape: tuple) -> None:
        if self.mode == "learned":
            self.position_embeddings = self.add_weight(
                shape=(self.max_length, input_shape[-1]),
                initializer=keras.initializers.RandomNormal(stddev=0.02),
                name="position_embeddings",
            )

    def call(self, inputs: Any) -> Any:
        # A static length keeps the slice and the sinusoid table static for XLA.
        length = inputs.shape[1] if inputs.shape[1] is not None else ops.shape(inputs)[1]
        depth = inputs.shape[-1]
        if self.mode == "learned":
            positions = ops.slice(self.position_embeddings, (0, 0), (length, depth))
        else:
            positions = sinusoids(length, depth)
        return inputs + ops.cast(positions, inputs.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode, "max_length": self.max_length}


def sinusoids(length: Any, depth: int) -> Any:
    """``(length, depth)`` table: sin on even channels, cos on odd, wavelengths up to 10000 x 2 pi."""
    positions = ops.cast(ops.arange(length), "float32")[:, None]
    channels = ops.arange(depth)
    rates = ops.exp(ops.cast(2 * (channels // 2), "float32") * (-math.log(10000.0) / depth))
    angles = positions * rates[None, :]
    return ops.where(channels[None, :] % 2 == 0, ops.sin(angles), ops.cos(angles))


@keras.saving.register_keras_serializable(package="dlsuite")
class TransformerEncoderBlock(layers.Layer):
    """Post-norm encoder block: x + self-attention, normalize; x + feed-forward, normalize.

    Masked positions (the Keras mask of the input) are never attended to.

    Args:
        num_heads: attention heads.
        key_dim: size of each head's queries and keys.
        ff_dim: width of the feed-forward hidden layer.
        dropout: dropout on attention weights and after each sublayer.
        **kwargs: base ``Layer`` arguments.
    """

    def __init__(self, num_heads: int, key_dim: int, ff_dim: int, dropout: float = 0.1, **kwargs: Any):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.ff_dim = ff_dim
        self.dropout = dropout
        self.supports_masking = True

    def build(self, input_shape: tuple) -> None:
        model_dim = input_shape[-1]
        self.attention = layers.MultiHeadAttention(
            self.num_heads, self.key_dim, dropout=self.dropout, name="attention"
        )
        self.attention.build(input_shape, input_shape)
        self.attention_norm = layers.LayerNormalization(epsilon=1e-6, name="attention_norm")
        self.attention_norm.build(input_shape)
        self.ff_hidden = layers.Dense(self.ff_dim, activation="relu", name="ff_hidden")
        self.ff_hidden.build(input_shape)
        self.ff_output = layers.Dense(model_dim, name="ff_output")
        self.ff_output.build((*input_shape[:-1], self.ff_dim))
        self.ff_norm = layers.LayerNormalization(epsilon=1e-6, name="ff_norm")
        self.ff_norm.build(input_shape)
        self.sublayer_dropout = layers.Dropout(self.dropout)

    def call(self, inputs: Any, mask: Any = None, training: bool | None = None) -> Any:
        attention_mask = None
        if mask is not None:
            attention_mask = ops.cast(mask, "bool")[:, None, :]  # (batch, 1 query row, keys)
        attended = self.attention(inputs, inputs, attention_mask=attention_mask, training=training)
        x = self.attention_norm(inputs + self.sublayer_dropout(attended, training=training))
        transformed = self.ff_output(self.ff_hidden(x))
        return self.ff_norm(x + self.sublayer_dropout(transformed, training=training))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout,
        }


def _check_length(input_spec: InputSpec, positional: str, max_length: int) -> None:
    length = input_spec.shape[0] if input_spec.shape else None
    if positional == "learned" and length is not None and length > max_length:
        raise DlsuiteError(
            f"transformer max_length ({max_length}) is shorter than the input's {length} timesteps; "
            "raise max_length or use positional='sinusoidal'."
        )


@register(
    "transformer",
    input_kinds=SEQUENCE_KINDS,
    summary="transformer encoder blocks (self-attention + feed-forward), masked mean pooling",
)
def build_transformer(
    input_spec: InputSpec,
    num_outputs: int,
    *,
    output_activation: str | None = "softmax",
    num_layers: int = 2,
    num_heads: int = 4,
    model_dim: int = 64,
    key_dim: int | None = None,
    ff_dim: int = 128,
    dropout: float = 0.1,
    positional: str = "sinusoidal",
    max_length: int = 512,
    mask_padding: bool = True,
) -> keras.Model:
    """Builds a transformer encoder classifier.

    Args:
        input_spec: ``tokens`` ``(T,)`` with ``vocab_size``, or ``sequence`` ``(T, F)``.
        num_outputs: width of the output layer.
        output_activation: activation of the output layer (``None`` for logits).
        num_layers: number of encoder blocks.
        num_heads: attention heads per block.
        model_dim: width of the token embedding / frame projection and of every block.
        key_dim: size of each head's queries and keys (default ``model_dim // num_heads``).
        ff_dim: width of each block's feed-forward hidden layer.
        dropout: dropout on attention weights, after each sublayer and before the output layer.
        positional: ``"learned"`` or ``"sinusoidal"`` position encodings.
        max_length: longest input a learned position table covers.
        mask_padding: mask padding (token id 0; all-zero frames) out of attention and pooling.

    Returns:
        An uncompiled ``keras.Model`` named ``"transformer"``.
    """
    check_positive(
        "transformer", num_layers=num_layers, num_heads=num_heads, model_dim=model_dim, ff_dim=ff_dim,
        max_length=max_length,
    )
    key_dim = key_dim if key_dim is not None else max(1, model_dim // num_heads)
    check_positive("transformer", key_dim=key_dim)
    check_rate("transformer", "dropout", dropout)
    check_choice("transformer", "positional", positional, POSITIONAL)
    _check_length(input_spec, positional, max_length)

    inputs, x = sequence_inputs(input_spec, "transformer", embedding_dim=model_dim, mask_padding=mask_padding)
    if input_spec.kind == "sequence":
        x = layers.Dense(model_dim, name="frame_projection")(x)
    x = PositionalEncoding(positional, max_length, name="positional_encoding")(x)
    if dropout:
        x = layers.Dropout(dropout, name="embedding_dropout")(x)
    for i in range(1, num_layers + 1):
        x = TransformerEncoderBlock(num_heads, key_dim, ff_dim, dropout, name=f"encoder{i}")(x)
    x = MaskedMeanPooling1D(name="avg_pool")(x)  # padding is left out
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_outputs, activation=output_activation, dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="transformer")
