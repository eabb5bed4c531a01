"""Plain convolutional network: stacked conv-BN-ReLU blocks with pooling.

Each block is two 3x3 conv-BN-ReLU layers followed by 2x2 max pooling; the
filter count doubles from block to block, and global average pooling plus
dropout feed the classifier. The network is sized from the input: a block only
pools while the feature map stays at least 2x2, and a strided stem shrinks
large (photo-sized) inputs before the blocks.

Over ``tokens`` (embedded ids) and ``sequence`` (``(T, F)`` frames) the same
blocks are one-dimensional (width-3 conv-BN-ReLU, pooling by 2 while at least
2 steps remain), and global max pooling picks each filter's strongest match
anywhere in the sequence (the text CNN of Kim, 2014). Convolutions do not take
Keras masks: padding is seen as ordinary (learned embedding / zero) input.

The image helpers here (``image_inputs``, ``conv_bn``, ``image_stem``,
``can_halve``) are shared with the other image families.
"""

from __future__ import annotations

import keras
from keras import layers

from dlsuite.architectures.registry import InputSpec, register
from dlsuite.architectures.sequence_inputs import sequence_inputs
from dlsuite.errors import DlsuiteError

# Keras's 0.99 suits long ImageNet-scale runs; on small data (digits: 21 steps an epoch) the
# moving statistics lag the weights for dozens of epochs and validation sits near chance
# (5 epochs on digits: 19% test accuracy at 0.99, 99% at 0.9). See benchmarks/RESULTS.md.
BN_MOMENTUM = 0.9

# Inputs whose smaller side is at least this many pixels get the strided stem
# (7x7/2 conv + 3x3/2 max pool, a 4x reduction) before the main blocks.
LARGE_INPUT_SIDE = 64


def image_inputs(input_spec: InputSpec) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The model input and an ``(H, W, C)`` view of it.

    Args:
        input_spec: an image spec of shape ``(H, W)`` or ``(H, W, C)``.

    Returns:
        ``(inputs, x)``: the ``keras.Input`` and the tensor to build on (a
        channel axis is added to ``(H, W)`` inputs).
    """
    shape = tuple(input_spec.shape)
    if len(shape) not in (2, 3):
        raise DlsuiteError(
            f"image networks take (height, width[, channels]) inputs, got shape {shape}; "
            "use the mlp family for other shapes."
        )
    inputs = keras.Input(shape=shape, dtype=input_spec.dtype, name="image")
    x = layers.Reshape((*shape, 1), name="add_channel")(inputs) if len(shape) == 2 else inputs
    return inputs, x


def spatial_size(x: keras.KerasTensor) -> tuple[int | None, int | None]:
    """Height and width of an ``(batch, H, W, C)`` tensor (``None`` if unknown)."""
    return x.shape[1], x.shape[2]


def can_halve(x: keras.KerasTensor) -> bool:
    """Whether a stride-2 downsampling keeps the feature map at least 2x2."""
    return all(s is None or s >= 4 for s in spatial_size(x))


def is_large(x: keras.KerasTensor) -> bool:
    """Whether the feature map is photo-sized (or of unknown size)."""
    return all(s is None or s >= LARGE_INPUT_SIDE for s in spatial_size(x))


def conv_bn(
    x: keras.KerasTensor,
    filters: int,
    kernel_size: int = 3,
    *,
    strides: int = 1,
    activation: str | None = "relu",
    name: str,
) -> keras.KerasTensor:
    """Conv2D (no bias, same padding) -> BatchNormalization -> activation.

    Args:
        x: input tensor.
        filters: number of output channels.
        kernel_size: square kernel size.
        strides: convolution stride.
        activation: activation after normalization (``None`` for none).
        name: layer-name prefix.

    Returns:
        Output tensor.
    """
    x = layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    if activation:
        x = layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


def image_stem(x: keras.KerasTensor, filters: int, *, small_stem: bool = True) -> keras.KerasTensor:
    """Stem sized from the input.

    Large inputs get a 7x7 stride-2 conv and a 3x3 stride-2 max pool (4x
    smaller, as in ResNet/GoogLeNet); small ones a single 3x3 stride-1 conv, or
    nothing when ``small_stem`` is False.

    Args:
        x: the ``(batch, H, W, C)`` input tensor.
        filters: stem width.
        small_stem: whether small inputs get the 3x3 conv.

    Returns:
        Output tensor of the stem.
    """
    if is_large(x):
        x = conv_bn(x, filters, 7, strides=2, name="stem")
        return layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    if small_stem:
        x = conv_bn(x, filters, 3, name="stem")
    return x


def classifier_head(
    x: keras.KerasTensor, num_outputs: int, output_activation: str | None, dropout: float
) -> keras.KerasTensor:
    """Global average pooling -> dropout -> dense output layer."""
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    return layers.Dense(num_outputs, activation=output_activation, dtype="float32", name="predictions")(x)


def check_positive(family: str, **values: float) -> None:
    for key, value in values.items():
        if value < 1:
            raise DlsuiteError(f"{family} {key} must be at least 1, got {value}.")


def check_rate(family: str, key: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise DlsuiteError(f"{family} {key} must be in [0, 1), got {value}.")


def conv_block(
    x: keras.KerasTensor, filters: int, *, convs: int = 2, pool: bool = True, name: str
) -> keras.KerasTensor:
    """``convs`` x (3x3 conv-BN-ReLU), then optional 2x2 max pooling.

    Args:
        x: input tensor.
        filters: channels of every conv in the block.
        convs: number of conv-BN-ReLU layers.
        pool: whether to end with 2x2 max pooling.
        name: block label, used as the layer-name prefix.

    Returns:
        Output tensor of the block.
    """
    for i in range(1, convs + 1):
        x = conv_bn(x, filters, 3, name=f"{name}_{i}")
    if pool:
        x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    return x


def conv1d_block(
    x: keras.KerasTensor, filters: int, *, convs: int = 2, name: str
) -> keras.KerasTensor:
    """``convs`` x (width-3 Conv1D-BN-ReLU), then max pooling by 2 while at least 2 steps remain.

    Args:
        x: ``(batch, T, features)`` input tensor.
        filters: channels of every conv in the block.
        convs: number of conv-BN-ReLU layers.
        name: block label, used as the layer-name prefix.

    Returns:
        Output tensor of the block.
    """
    for i in range(1, convs + 1):
        x = layers.Conv1D(filters, 3, padding="same", use_bias=False, name=f"{name}_{i}_conv")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_{i}_bn")(x)
        x = layers.Activation("relu", name=f"{name}_{i}_relu")(x)
    if x.shape[1] is None or x.shape[1] >= 4:
        x = layers.MaxPooling1D(2, name=f"{name}_pool")(x)
    return x


def _image_network(
    input_spec: InputSpec, num_outputs: int, output_activation: str | None,
    filters: int, blocks: int, convs_per_block: int, dropout: float,
) -> keras.Model:
    inputs, x = image_inputs(input_spec)
    x = image_stem(x, filters, small_stem=False)
    for i in range(blocks):
        x = conv_block(
            x, filters * 2**i, convs=convs_per_block, pool=can_halve(x), name=f"block{i + 1}"
        )
    outputs = classifier_head(x, num_outputs, output_activation, dropout)
    return keras.Model(inputs, outputs, name="cnn")


def _sequence_network(
    input_spec: InputSpec, num_outputs: int, output_activation: str | None,
    filters: int, blocks: int, convs_per_block: int, dropout: float, embedding_dim: int,
) -> keras.Model:
    # Unmasked: Conv1D would drop the mask anyway (with a warning).
    inputs, x = sequence_inputs(input_spec, "cnn", embedding_dim=embedding_dim, mask_padding=False)
    for i in range(blocks):
        x = conv1d_block(x, filters * 2**i, convs=convs_per_block, name=f"block{i + 1}")
    x = layers.GlobalMaxPooling1D(name="max_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_outputs, activation=output_activation, dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="cnn")


@register(
    "cnn",
    input_kinds=("image", "sequence", "tokens"),
    summary="stacked conv-BN-ReLU x2 + max-pool blocks, filters doubling, global pooling (2-D or 1-D)",
)
def build_cnn(
    input_spec: InputSpec,
    num_outputs: int,
    *,
    output_activation: str | None = "softmax",
    filters: int = 32,
    blocks: int = 3,
    convs_per_block: int = 2,
    dropout: float = 0.3,
    embedding_dim: int = 64,
) -> keras.Model:
    """Builds a plain convolutional network over images, frame sequences or tokens.

    Args:
        input_spec: an image ``(H, W)`` or ``(H, W, C)``, a ``sequence``
            ``(T, F)``, or ``tokens`` ``(T,)`` with ``vocab_size``.
        num_outputs: width of the output layer.
        output_activation: activation of the output layer (``None`` for logits).
        filters: channels of the first block; each later block doubles them.
        blocks: number of conv blocks. A block max-pools only while the feature
            map stays at least 2x2 (2 steps for sequences), so small inputs are
            never over-downsampled.
        convs_per_block: conv-BN-ReLU layers per block.
        dropout: dropout rate before the output layer.
        embedding_dim: width of the token embedding (``tokens`` inputs only).

    Returns:
        An uncompiled ``keras.Model`` named ``"cnn"``.
    """
    check_positive("cnn", filters=filters, blocks=blocks, convs_per_block=convs_per_block)
    check_rate("cnn", "dropout", dropout)
    sizes = (filters, blocks, convs_per_block, dropout)
    if input_spec.kind == "image":
        return _image_network(input_spec, num_outputs, output_activation, *sizes)
    return _sequence_network(input_spec, num_outputs, output_activation, *sizes, embedding_dim)
