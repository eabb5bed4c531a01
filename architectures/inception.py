"""Inception network (Szegedy et al., GoogLeNet, with the v2/v3 refinements).

Each inception module runs four branches in parallel and concatenates them
along channels:

* 1x1 conv;
* 1x1 conv (reduction) -> 3x3 conv;
* 1x1 conv (reduction) -> 3x3 conv -> 3x3 conv (a factorized 5x5);
* 3x3 max pool (stride 1) -> 1x1 conv (pool projection).

Every conv is conv-BN-ReLU. Modules are grouped in stages; between stages a
3x3 stride-2 max pool halves the feature map (while it stays at least 2x2)
and the branch widths double.
"""

from __future__ import annotations

import keras
from keras import layers

from dlsuite.architectures.cnn import (
    can_halve,
    check_positive,
    check_rate,
    classifier_head,
    conv_bn,
    image_inputs,
    image_stem,
)
from dlsuite.architectures.registry import InputSpec, register


def inception_module(x: keras.KerasTensor, filters: int, *, name: str) -> keras.KerasTensor:
    """One inception module; outputs ``3 * filters`` channels (rounded down).

    Branch widths: ``filters`` for the 1x1 and the 3x3 branches, ``filters // 2``
    for the double-3x3 and pool-projection branches; the 1x1 reductions in
    front of the 3x3 convs have ``filters // 2`` channels.

    Args:
        x: input tensor.
        filters: width of the 1x1 and 3x3 branches.
        name: module label, used as the layer-name prefix.

    Returns:
        The concatenated branch outputs.
    """
    half = max(filters // 2, 1)
    b1 = conv_bn(x, filters, 1, name=f"{name}_1x1")

    b3 = conv_bn(x, half, 1, name=f"{name}_3x3_reduce")
    b3 = conv_bn(b3, filters, 3, name=f"{name}_3x3")

    b5 = conv_bn(x, half, 1, name=f"{name}_dbl3x3_reduce")
    b5 = conv_bn(b5, half, 3, name=f"{name}_dbl3x3_a")
    b5 = conv_bn(b5, half, 3, name=f"{name}_dbl3x3_b")

    bp = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    bp = conv_bn(bp, half, 1, name=f"{name}_pool_proj")

    return layers.Concatenate(axis=-1, name=f"{name}_concat")([b1, b3, b5, bp])


@register(
    "inception",
    input_kinds=("image",),
    summary="inception modules (1x1 | 1x1-3x3 | 1x1-3x3-3x3 | pool-1x1 branches), stages of modules",
)
def build_inception(
    input_spec: InputSpec,
    num_outputs: int,
    *,
    output_activation: str | None = "softmax",
    modules: int = 4,
    modules_per_stage: int = 2,
    filters: int = 32,
    dropout: float = 0.3,
) -> keras.Model:
    """Builds an inception network.

    Args:
        input_spec: the image input, ``(H, W)`` or ``(H, W, C)``.
        num_outputs: width of the output layer.
        output_activation: activation of the output layer (``None`` for logits).
        modules: total number of inception modules.
        modules_per_stage: modules between two downsampling max pools.
        filters: branch width in the first stage (and stem width); doubles
            with every stage.
        dropout: dropout rate before the output layer.

    Returns:
        An uncompiled ``keras.Model`` named ``"inception"``.
    """
    check_positive("inception", modules=modules, modules_per_stage=modules_per_stage, filters=filters)
    check_rate("inception", "dropout", dropout)

    inputs, x = image_inputs(input_spec)
    x = image_stem(x, filters)
    width = filters
    for i in range(modules):
        if i and i % modules_per_stage == 0:
            width *= 2
            if can_halve(x):
                stage = i // modules_per_stage
                x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"reduce{stage}")(x)
        x = inception_module(x, width, name=f"module{i + 1}")
    outputs = classifier_head(x, num_outputs, output_activation, dropout)
    return keras.Model(inputs, outputs, name="inception")
