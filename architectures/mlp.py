"""Multilayer perceptron: flatten, then dense blocks.

The baseline for tabular features, and a floor for small images (the input is
flattened, so it ignores the spatial layout a convolution would exploit).
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import layers

from dlsuite.architectures.cnn import BN_MOMENTUM
from dlsuite.architectures.numeric_embedding import NUMERIC_EMBEDDINGS, PeriodicEmbedding
from dlsuite.architectures.registry import InputSpec, register
from dlsuite.errors import DlsuiteError


def dense_block(
    x: keras.KerasTensor,
    units: int,
    *,
    activation: str,
    batchnorm: bool,
    dropout: float,
    name: str,
) -> keras.KerasTensor:
    """Dense -> (BatchNormalization) -> activation -> (Dropout).

    Args:
        x: input tensor.
        units: width of the dense layer.
        activation: activation applied after the (normalized) dense layer.
        batchnorm: whether to normalize the pre-activations.
        dropout: dropout rate after the activation (0 disables it).
        name: block label, used as the layer-name prefix.

    Returns:
        Output tensor of the block.
    """
    x = layers.Dense(units, use_bias=not batchnorm, name=f"{name}_dense")(x)
    if batchnorm:
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    x = layers.Activation(activation, name=f"{name}_{activation}")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


@register(
    "mlp",
    input_kinds=("image", "tabular"),
    summary="flatten + dense blocks (hidden_units, dropout, optional batchnorm)",
)
def build_mlp(
    input_spec: InputSpec,
    num_outputs: int,
    *,
    output_activation: str | None = "softmax",
    hidden_units: Sequence[int] = (256, 128),
    activation: str = "relu",
    dropout: float = 0.2,
    batchnorm: bool = False,
    numeric_embedding: str = "none",
    numeric_features: int = 0,
    embedding_dim: int = 8,
    frequencies: int = 16,
    frequency_scale: float = 0.5,
) -> keras.Model:
    """Builds a multilayer perceptron.

    Args:
        input_spec: the network input; any shape, flattened first.
        num_outputs: width of the output layer.
        output_activation: activation of the output layer (``None`` for logits).
        hidden_units: width of each hidden dense block, first to last (an int
            means a single block; an empty sequence gives a linear model).
        activation: activation of the hidden blocks.
        dropout: dropout rate after each hidden block.
        batchnorm: whether to batch-normalize each hidden block.
        numeric_embedding: ``none``, or ``periodic``: the first ``numeric_features``
            input columns each pass through their own :class:`PeriodicEmbedding`
            before the dense blocks (the remaining columns, one-hot blocks, go in as they are).
        numeric_features: how many leading input columns are numeric (set by the task).
        embedding_dim, frequencies, frequency_scale: see :class:`PeriodicEmbedding`.

    Returns:
        An uncompiled ``keras.Model`` named ``"mlp"``.
    """
    if isinstance(hidden_units, int):
        hidden_units = (hidden_units,)
    hidden_units = tuple(int(u) for u in hidden_units)
    if any(u < 1 for u in hidden_units):
        raise DlsuiteError(f"mlp hidden_units must be positive integers, got {list(hidden_units)}.")
    if not 0.0 <= dropout < 1.0:
        raise DlsuiteError(f"mlp dropout must be in [0, 1), got {dropout}.")

    if numeric_embedding not in NUMERIC_EMBEDDINGS:
        raise DlsuiteError(
            f"mlp numeric_embedding={numeric_embedding!r} is not valid; use one of {', '.join(NUMERIC_EMBEDDINGS)}."
        )

    inputs = keras.Input(shape=input_spec.shape, dtype=input_spec.dtype, name=input_spec.kind)
    x = layers.Flatten(name="flatten")(inputs) if len(input_spec.shape) != 1 else inputs
    if numeric_embedding != "none":
        x = _embed_numeric(x, numeric_features, embedding_dim, frequencies, frequency_scale)
    for i, units in enumerate(hidden_units, start=1):
        x = dense_block(
            x, units, activation=activation, batchnorm=batchnorm, dropout=dropout, name=f"block{i}"
        )
    outputs = layers.Dense(num_outputs, activation=output_activation, dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="mlp")


def _embed_numeric(
    x: keras.KerasTensor, numeric_features: int, embedding_dim: int, frequencies: int, frequency_scale: float
) -> keras.KerasTensor:
    """The first ``numeric_features`` columns of ``x`` embedded one by one, the other columns unchanged."""
    width = int(x.shape[-1])
    if not 0 < numeric_features <= width:
        raise DlsuiteError(
            f"mlp numeric_embedding needs numeric_features between 1 and the input width {width}, got "
            f"{numeric_features} (the task sets it; for your own inputs, put the numeric columns first)."
        )
    numeric = x[:, :numeric_features] if numeric_features < width else x
    embedded = PeriodicEmbedding(frequencies, embedding_dim, frequency_scale, name="numeric_embedding")(numeric)
    if numeric_features == width:
        return embedded
    return layers.Concatenate(name="embedded_features")([embedded, x[:, numeric_features:]])
