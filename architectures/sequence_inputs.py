"""The input end shared by the sequence families (rnn, lstm, gru, transformer, cnn over sequences).

Two input kinds reach them:

* ``tokens``: integer ids of shape ``(T,)``, id 0 meaning padding. They go
  through an ``Embedding``; with ``mask_zero=True`` the padding is masked, so
  mask-aware layers downstream (recurrent layers, attention, masked pooling)
  skip it.
* ``sequence``: float frames of shape ``(T, F)`` (audio frames, a numeric time
  series). A ``Masking`` layer marks all-zero frames as padding when asked to.
"""

from __future__ import annotations

import keras
from keras import layers

from dlsuite.architectures.registry import InputSpec
from dlsuite.errors import DlsuiteError

SEQUENCE_KINDS = ("tokens", "sequence")


def sequence_inputs(
    input_spec: InputSpec,
    family: str,
    *,
    embedding_dim: int,
    mask_padding: bool = True,
) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The model input and a ``(batch, T, features)`` tensor to build on.

    Args:
        input_spec: a ``tokens`` spec of shape ``(T,)`` with ``vocab_size``, or a
            ``sequence`` spec of shape ``(T, F)``. ``T`` may be ``None``.
        family: the family's name, for error messages.
        embedding_dim: width of the token embedding (``tokens`` only).
        mask_padding: whether padding (token id 0, all-zero frames) is masked.

    Returns:
        ``(inputs, x)``: the ``keras.Input`` and the embedded or (masked) frames.

    Raises:
        DlsuiteError: on a shape or vocabulary that does not fit the kind.
    """
    shape = tuple(input_spec.shape)
    if input_spec.kind == "tokens":
        return _token_inputs(input_spec, shape, family, embedding_dim, mask_padding)
    if input_spec.kind == "sequence":
        if len(shape) != 2:
            raise DlsuiteError(
                f"{family} takes sequence inputs of shape (timesteps, features), got {shape}; "
                "add a feature axis to 1-D series (shape (T, 1))."
            )
        inputs = keras.Input(shape=shape, dtype=input_spec.dtype, name="sequence")
        x = layers.Masking(mask_value=0.0, name="padding_mask")(inputs) if mask_padding else inputs
        return inputs, x
    raise DlsuiteError(
        f"{family} takes {' or '.join(SEQUENCE_KINDS)} inputs, not {input_spec.kind}; "
        "choose a family that does (`dlsuite list architectures`)."
    )


def _token_inputs(
    input_spec: InputSpec, shape: tuple, family: str, embedding_dim: int, mask_padding: bool
) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    if len(shape) != 1:
        raise DlsuiteError(f"{family} takes token inputs of shape (timesteps,), got {shape}.")
    if not input_spec.vocab_size or input_spec.vocab_size < 2:
        raise DlsuiteError(
            f"{family} over tokens needs input_spec.vocab_size (at least 2: padding id 0 and one token), "
            f"got {input_spec.vocab_size!r}; take it from the vectorizer's vocabulary size."
        )
    if embedding_dim < 1:
        raise DlsuiteError(f"{family} embedding_dim must be at least 1, got {embedding_dim}.")
    dtype = input_spec.dtype if "int" in str(input_spec.dtype) else "int32"
    inputs = keras.Input(shape=shape, dtype=dtype, name="tokens")
    x = layers.Embedding(input_spec.vocab_size, embedding_dim, mask_zero=mask_padding, name="embedding")(inputs)
    return inputs, x


def check_choice(family: str, key: str, value: object, choices: tuple) -> None:
    """Raise a user error unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise DlsuiteError(
            f"{family} {key} must be one of {', '.join(map(repr, choices))}, got {value!r}."
        )


@keras.saving.register_keras_serializable(package="dlsuite")
class MaskedMeanPooling1D(layers.Layer):
    """Mean over the unmasked timesteps, and zeros for a sequence that is all padding.

    ``keras.layers.GlobalAveragePooling1D`` divides by the number of unmasked
    steps, which is 0/0 = NaN for an all-padding row (an empty or unknown-word
    text): one such row turns a whole training batch's loss into NaN.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs: keras.KerasTensor, mask: keras.KerasTensor | None = None) -> keras.KerasTensor:
        if mask is None:
            return keras.ops.mean(inputs, axis=1)
        weights = keras.ops.expand_dims(keras.ops.cast(mask, inputs.dtype), -1)
        total = keras.ops.sum(inputs * weights, axis=1)
        return total / keras.ops.maximum(keras.ops.sum(weights, axis=1), 1.0)

    def compute_mask(self, inputs: keras.KerasTensor, mask: keras.KerasTensor | None = None) -> None:
        return None

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], input_shape[2])
