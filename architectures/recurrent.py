"""Recurrent families: ``rnn`` (SimpleRNN), ``lstm`` and ``gru`` over tokens or frame sequences.

The three share one builder, :func:`build_recurrent`; each registered name only
picks the recurrent layer. The network is an embedding (tokens) or masking
(frames) input end, ``num_layers`` stacked (optionally bidirectional) recurrent
layers with dropout between them, then either the last layer's final state or
the masked mean of its outputs, and a dense output layer. Padding is masked
all the way, so a padded sequence gives the same output as the unpadded one.

On CPU and TPU Keras runs the recurrent layers as a plain loop (cuDNN is used
only on GPUs, and only for unmasked or right-padded input), which compiles
under XLA (``jit_compile=True``).
"""

from __future__ import annotations

from typing import Callable

import keras
from keras import layers

from dlsuite.architectures.cnn import check_positive, check_rate
from dlsuite.architectures.registry import InputSpec, register
from dlsuite.architectures.sequence_inputs import SEQUENCE_KINDS, MaskedMeanPooling1D, check_choice, sequence_inputs

POOLINGS = ("last", "mean")

RECURRENT_LAYERS: dict[str, type[layers.Layer]] = {
    "rnn": layers.SimpleRNN,
    "lstm": layers.LSTM,
    "gru": layers.GRU,
}


def recurrent_stack(
    x: keras.KerasTensor,
    layer_class: type[layers.Layer],
    *,
    units: int,
    num_layers: int,
    bidirectional: bool,
    dropout: float,
    return_sequences: bool,
) -> keras.KerasTensor:
    """``num_layers`` recurrent layers, each but the last returning its full sequence.

    Args:
        x: ``(batch, T, features)`` input (its Keras mask, if any, is honoured).
        layer_class: ``SimpleRNN``, ``LSTM`` or ``GRU``.
        units: units per layer (per direction when bidirectional).
        num_layers: number of stacked layers.
        bidirectional: whether each layer reads the sequence both ways.
        dropout: dropout rate between layers.
        return_sequences: whether the last layer returns its full sequence.

    Returns:
        ``(batch, T, width)`` when ``return_sequences``, else ``(batch, width)``.
    """
    for i in range(1, num_layers + 1):
        last = i == num_layers
        layer = layer_class(units, return_sequences=return_sequences or not last, name=f"recurrent{i}")
        if bidirectional:
            layer = layers.Bidirectional(layer, name=f"bidirectional{i}")
        x = layer(x)
        if dropout and not last:
            x = layers.Dropout(dropout, name=f"recurrent{i}_dropout")(x)
    return x


def build_recurrent(
    family: str,
    input_spec: InputSpec,
    num_outputs: int,
    *,
    output_activation: str | None,
    units: int,
    num_layers: int,
    bidirectional: bool,
    dropout: float,
    embedding_dim: int,
    pooling: str,
    mask_padding: bool,
) -> keras.Model:
    """Builds the recurrent network ``family`` (one of ``RECURRENT_LAYERS``).

    The hyperparameters are documented on the registered builders.

    Returns:
        An uncompiled ``keras.Model`` named ``family``.
    """
    check_positive(family, units=units, num_layers=num_layers)
    check_rate(family, "dropout", dropout)
    check_choice(family, "pooling", pooling, POOLINGS)

    inputs, x = sequence_inputs(input_spec, family, embedding_dim=embedding_dim, mask_padding=mask_padding)
    x = recurrent_stack(
        x,
        RECURRENT_LAYERS[family],
        units=units,
        num_layers=num_layers,
        bidirectional=bidirectional,
        dropout=dropout,
        return_sequences=pooling == "mean",
    )
    if pooling == "mean":
        x = MaskedMeanPooling1D(name="avg_pool")(x)  # padding is left out
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_outputs, activation=output_activation, dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=family)


def _register_family(family: str, layer_name: str) -> Callable[..., keras.Model]:
    """Register ``family`` as :func:`build_recurrent` with its recurrent layer fixed."""

    def builder(
        input_spec: InputSpec,
        num_outputs: int,
        *,
        output_activation: str | None = "softmax",
        units: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.2,
        embedding_dim: int = 64,
        pooling: str = "last",
        mask_padding: bool = True,
    ) -> keras.Model:
        return build_recurrent(
            family,
            input_spec,
            num_outputs,
            output_activation=output_activation,
            units=units,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            embedding_dim=embedding_dim,
            pooling=pooling,
            mask_padding=mask_padding,
        )

    builder.__name__ = builder.__qualname__ = f"build_{family}"
    builder.__doc__ = f"""Builds a {layer_name} network over tokens or frame sequences.

    Args:
        input_spec: ``tokens`` ``(T,)`` with ``vocab_size``, or ``sequence`` ``(T, F)``.
        num_outputs: width of the output layer.
        output_activation: activation of the output layer (``None`` for logits).
        units: units per recurrent layer (per direction when bidirectional).
        num_layers: number of stacked recurrent layers.
        bidirectional: whether each layer also reads the sequence backwards.
        dropout: dropout rate between recurrent layers and before the output layer.
        embedding_dim: width of the token embedding (``tokens`` inputs only).
        pooling: ``"last"`` (final state) or ``"mean"`` (masked mean of all steps).
        mask_padding: mask padding (token id 0; all-zero frames) so it is skipped.

    Returns:
        An uncompiled ``keras.Model`` named ``"{family}"``.
    """
    summary = f"stacked {layer_name} layers (units, num_layers, bidirectional), masked padding"
    return register(family, input_kinds=SEQUENCE_KINDS, summary=summary)(builder)


build_rnn = _register_family("rnn", "SimpleRNN")
build_lstm = _register_family("lstm", "LSTM")
build_gru = _register_family("gru", "GRU")
