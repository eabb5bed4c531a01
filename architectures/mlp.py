"""Multilayer perceptron: flatten, then dense blocks.

The baseline for tabular features, and a floor for small images (the input is
flattened, so it ignores the spatial layout a convolution would exploit).
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import layers

from dlsuite.architectures.cnn import BN_MOMENTUM
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

    inputs = keras.Input(shape=input_spec.shape, dtype=input_spec.dtype, name=input_spec.kind)
    x = layers.Flatten(name="flatten")(inputs) if len(input_spec.shape) != 1 else inputs
    for i, units in enumerate(hidden_units, start=1):
        x = dense_block(
            x, units, activation=activation, batchnorm=batchnorm, dropout=dropout, name=f"block{i}"
        )
    outputs = layers.Dense(num_outputs, activation=output_activation, dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="mlp")
