"""Residual network of basic blocks (He et al., 2016, "Deep Residual Learning").

Stages of ``depth`` basic blocks (two 3x3 conv-BN layers around an identity
or projection shortcut); every stage after the first doubles the filters and
halves the feature map, as long as the map stays at least 2x2. Large inputs
get the 7x7/2 conv + max-pool stem of ImageNet ResNets, small ones the 3x3
stem of CIFAR ResNets.
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


def basic_block(x: keras.KerasTensor, filters: int, *, stride: int = 1, name: str) -> keras.KerasTensor:
    """A residual basic block: conv3x3-BN-ReLU -> conv3x3-BN, plus shortcut, then ReLU.

    The shortcut is the identity when shapes match, otherwise a 1x1 conv-BN
    projection with the block's stride.

    Args:
        x: input tensor.
        filters: output channels.
        stride: stride of the first conv (2 halves the feature map).
        name: block label, used as the layer-name prefix.

    Returns:
        Output tensor of the block.
    """
    if stride != 1 or x.shape[-1] != filters:
        shortcut = conv_bn(x, filters, 1, strides=stride, activation=None, name=f"{name}_proj")
    else:
        shortcut = x
    y = conv_bn(x, filters, 3, strides=stride, name=f"{name}_1")
    y = conv_bn(y, filters, 3, activation=None, name=f"{name}_2")
    x = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(x)


def residual_stage(
    x: keras.KerasTensor, filters: int, blocks: int, *, downsample: bool, name: str
) -> keras.KerasTensor:
    """``blocks`` basic blocks; the first one strides by 2 if ``downsample``.

    Args:
        x: input tensor.
        filters: output channels of every block in the stage.
        blocks: number of basic blocks.
        downsample: whether the first block halves the feature map.
        name: stage label, used as the layer-name prefix.

    Returns:
        Output tensor of the stage.
    """
    x = basic_block(x, filters, stride=2 if downsample else 1, name=f"{name}_block1")
    for i in range(2, blocks + 1):
        x = basic_block(x, filters, name=f"{name}_block{i}")
    return x


@register(
    "resnet",
    input_kinds=("image",),
    summary="residual basic blocks with projection shortcuts; depth = blocks per stage",
)
def build_resnet(
    input_spec: InputSpec,
    num_outputs: int,
    *,
    output_activation: str | None = "softmax",
    depth: int = 2,
    stages: int = 3,
    filters: int = 32,
    dropout: float = 0.2,
) -> keras.Model:
    """Builds a residual network of basic blocks.

    Args:
        input_spec: the image input, ``(H, W)`` or ``(H, W, C)``.
        num_outputs: width of the output layer.
        output_activation: activation of the output layer (``None`` for logits).
        depth: residual blocks per stage (2 with 4 stages is ResNet-18).
        stages: number of stages; each after the first doubles the filters and
            halves the feature map while it stays at least 2x2.
        filters: channels of the stem and the first stage.
        dropout: dropout rate before the output layer.

    Returns:
        An uncompiled ``keras.Model`` named ``"resnet"``.
    """
    check_positive("resnet", depth=depth, stages=stages, filters=filters)
    check_rate("resnet", "dropout", dropout)

    inputs, x = image_inputs(input_spec)
    x = image_stem(x, filters)
    for s in range(stages):
        x = residual_stage(
            x, filters * 2**s, depth, downsample=s > 0 and can_halve(x), name=f"stage{s + 1}"
        )
    outputs = classifier_head(x, num_outputs, output_activation, dropout)
    return keras.Model(inputs, outputs, name="resnet")
