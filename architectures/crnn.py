"""Convolutional recurrent network (CRNN) over spectrograms.

Conv-BN-ReLU blocks look at local time-frequency patterns and pool the
frequency axis (time only every other block, so the recurrent layer still sees
a sequence), then the remaining frequency bins and channels of each frame are
flattened into one vector per time step, and a (bidirectional) GRU or LSTM
reads the frames; its final states feed the classifier. The layout follows
keyword spotting and sound-event CRNNs (e.g. Cakir et al., 2017).
"""

from __future__ import annotations

import keras
from keras import layers

from dlsuite.architectures.cnn import check_positive, check_rate, conv_bn
from dlsuite.architectures.registry import InputSpec, register
from dlsuite.errors import DlsuiteError

RNN_CELLS = {"gru": layers.GRU, "lstm": layers.LSTM}


@register(
    "crnn",
    input_kinds=("image", "sequence"),
    summary="conv-BN-ReLU blocks pooling frequency, then a bidirectional GRU/LSTM over time",
)
def build_crnn(
    input_spec: InputSpec,
    num_outputs: int,
    *,
    output_activation: str | None = "softmax",
    filters: int = 32,
    conv_blocks: int = 3,
    rnn: str = "gru",
    units: int = 64,
    bidirectional: bool = True,
    dropout: float = 0.3,
) -> keras.Model:
    """Builds a conv-recurrent network.

    Args:
        input_spec: ``image`` ``(time, freq[, channels])`` or ``sequence`` ``(time, features)``;
            a sequence is treated as a one-channel image.
        num_outputs: width of the output layer.
        output_activation: activation of the output layer (``None`` for logits).
        filters: channels of the first conv block; each later block doubles them.
        conv_blocks: conv blocks; each halves the frequency axis while it is at
            least 2, and every second block also halves time.
        rnn: recurrent layer, ``"gru"`` or ``"lstm"``.
        units: recurrent units (per direction).
        bidirectional: read the frames in both directions.
        dropout: dropout before the recurrent layer and before the output layer.

    Returns:
        An uncompiled ``keras.Model`` named ``"crnn"``.
    """
    check_positive("crnn", filters=filters, conv_blocks=conv_blocks, units=units)
    check_rate("crnn", "dropout", dropout)
    if rnn not in RNN_CELLS:
        raise DlsuiteError(f"crnn rnn must be one of {', '.join(RNN_CELLS)}, got {rnn!r}.")
    shape = tuple(input_spec.shape)
    if len(shape) not in (2, 3) or any(s is None for s in shape[1:]):
        raise DlsuiteError(
            f"crnn takes (time, freq[, channels]) inputs with known freq and channels, got shape {shape}."
        )
    inputs = keras.Input(shape=shape, dtype=input_spec.dtype, name="spectrogram")
    x = layers.Reshape((*shape, 1), name="add_channel")(inputs) if len(shape) == 2 else inputs
    for i in range(conv_blocks):
        x = conv_bn(x, filters * 2**i, 3, name=f"block{i + 1}")
        time_pool = 2 if i % 2 == 1 and (x.shape[1] is None or x.shape[1] >= 8) else 1
        freq_pool = 2 if x.shape[2] >= 2 else 1
        if time_pool > 1 or freq_pool > 1:
            x = layers.MaxPooling2D((time_pool, freq_pool), name=f"block{i + 1}_pool")(x)
    x = layers.Reshape((-1, x.shape[2] * x.shape[3]), name="frames")(x)
    if dropout:
        x = layers.Dropout(dropout, name="rnn_dropout")(x)
    recurrent = RNN_CELLS[rnn](units, name=rnn)
    x = layers.Bidirectional(recurrent, name=f"bi{rnn}")(x) if bidirectional else recurrent(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_outputs, activation=output_activation, dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="crnn")
