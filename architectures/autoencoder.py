"""Autoencoders: learn to reconstruct the input through a narrow latent code.

Trained without labels (``y`` in ``(x, y)`` batches is ignored) to minimize the
reconstruction mean squared error, an autoencoder reconstructs rows like the
ones it was trained on well and unusual rows badly, so its per-example
reconstruction error (:meth:`Autoencoder.anomaly_score`) is an anomaly score.

Variants (hyperparameter ``variant``):

- ``dense``: flatten -> dense blocks -> latent -> mirrored dense blocks. Any
  input kind (tabular rows, flattened sequence windows or images).
- ``variational``: the dense network as a VAE (Kingma & Welling, 2014): the
  encoder outputs a Gaussian over the latent code, training samples from it and
  adds the KL divergence to the standard normal prior to the loss.
- ``conv``: strided convolutions down, transposed convolutions up (images).
- ``lstm``: LSTM encoder over a ``[T, F]`` window, latent repeated ``T`` times,
  LSTM decoder (sequences of fixed length).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import keras
import tensorflow as tf
from keras import layers, ops

from dlsuite.architectures.cnn import image_inputs
from dlsuite.architectures.custom_steps import (
    CustomStepModel,
    per_example_mean,
    scale_for_replicas,
    split_batch,
)
from dlsuite.architectures.mlp import dense_block
from dlsuite.architectures.registry import InputSpec, register
from dlsuite.errors import DlsuiteError

# Which input kinds each variant takes.
VARIANTS: dict[str, tuple[str, ...]] = {
    "dense": ("tabular", "sequence", "image"),
    "variational": ("tabular", "sequence", "image"),
    "conv": ("image",),
    "lstm": ("sequence",),
}


@keras.saving.register_keras_serializable(package="dlsuite")
class Autoencoder(CustomStepModel):
    """An encoder and a decoder trained to reconstruct their input.

    ``call(x)`` returns the reconstruction (for a variational autoencoder, the
    decoding of the mean latent code), with the input's shape. ``fit`` ignores
    labels and any loss or metrics given to ``compile``; it logs ``loss`` (the
    objective), ``reconstruction_loss`` (mean squared error) and, for the
    variational model, ``kl_loss``. Labels are never used, so to learn what
    "normal" looks like, train on normal examples only.

    Args:
        encoder: model from the input to the latent code; for a variational
            autoencoder, to ``[z_mean, z_log_var]``.
        decoder: model from the latent code to the reconstruction.
        variational: whether the encoder outputs a Gaussian to sample from.
        kl_weight: weight of the KL term (variational only); the KL divergence
            is divided by the number of input values, to be on the scale of the
            per-value mean squared error.
        **kwargs: ``keras.Model`` arguments (``name``, ...).
    """

    def __init__(
        self,
        encoder: keras.Model,
        decoder: keras.Model,
        *,
        variational: bool = False,
        kl_weight: float = 0.1,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.variational = bool(variational)
        self.kl_weight = float(kl_weight)
        self.input_values = math.prod(int(d) for d in encoder.input_shape[1:])
        self.seed_generator = keras.random.SeedGenerator() if self.variational else None
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss") if self.variational else None
        self.built = True  # the encoder and decoder are built models

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [t for t in (self.loss_tracker, self.reconstruction_tracker, self.kl_tracker) if t is not None]

    def encode(self, x: Any, training: bool = False) -> Any:
        """The latent code of ``x`` (the mean code for a variational autoencoder)."""
        code = self.encoder(x, training=training)
        return code[0] if self.variational else code

    def call(self, inputs: Any, training: bool = False) -> Any:
        return self.decoder(self.encode(inputs, training=training), training=training)

    def anomaly_score(self, x: Any) -> Any:
        """Per-example mean squared reconstruction error (higher = more unusual).

        Args:
            x: a batch shaped like the network input.

        Returns:
            float32 tensor ``[batch]``.
        """
        x = ops.cast(x, "float32")
        reconstruction = ops.cast(self(x, training=False), "float32")
        return per_example_mean(ops.square(x - reconstruction))

    def _objective(self, x: Any, training: bool) -> dict[str, Any]:
        x = ops.cast(x, "float32")
        if self.variational:
            z_mean, z_log_var = self.encoder(x, training=training)
            noise = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
            z = z_mean + ops.exp(0.5 * z_log_var) * noise
            reconstruction = self.decoder(z, training=training)
        else:
            reconstruction = self(x, training=training)
        errors = ops.square(x - ops.cast(reconstruction, "float32"))
        losses = {"reconstruction_loss": ops.mean(per_example_mean(errors))}
        if self.variational:
            z_mean, z_log_var = ops.cast(z_mean, "float32"), ops.cast(z_log_var, "float32")
            kl = -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)
            losses["kl_loss"] = ops.mean(kl) / self.input_values
            losses["loss"] = losses["reconstruction_loss"] + self.kl_weight * losses["kl_loss"]
        else:
            losses["loss"] = losses["reconstruction_loss"]
        # Dropout and other layers may add regularization losses of their own.
        if self.losses:
            losses["loss"] = losses["loss"] + ops.sum(self.losses)
        return losses

    def detector_loss(self, x: Any) -> Any:
        """The training objective on one batch (what ``train_step`` minimizes)."""
        return self._objective(x, training=True)["loss"]

    def validation_loss(self, x: Any) -> Any:
        """The objective on held-out rows, in inference mode."""
        return self._objective(x, training=False)["loss"]

    def update_statistics(self, x: Any) -> None:
        """Nothing to track after a step."""

    def _log(self, losses: dict[str, Any], batch_size: Any) -> dict[str, Any]:
        self.loss_tracker.update_state(losses["loss"], sample_weight=batch_size)
        self.reconstruction_tracker.update_state(losses["reconstruction_loss"], sample_weight=batch_size)
        if self.kl_tracker is not None:
            self.kl_tracker.update_state(losses["kl_loss"], sample_weight=batch_size)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data: Any) -> dict[str, Any]:
        x, _ = split_batch(data)
        with tf.GradientTape() as tape:
            losses = self._objective(x, training=True)
            loss = self.optimizer.scale_loss(scale_for_replicas(losses["loss"]))
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return self._log(losses, ops.shape(x)[0])

    def test_step(self, data: Any) -> dict[str, Any]:
        x, _ = split_batch(data)
        return self._log(self._objective(x, training=False), ops.shape(x)[0])

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "variational": self.variational,
            "kl_weight": self.kl_weight,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Autoencoder":
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
        return cls(**config)


def _check_variant(variant: str, kind: str) -> None:
    if variant not in VARIANTS:
        raise DlsuiteError(
            f"autoencoder variant {variant!r} is unknown; set model.variant to one of "
            f"{', '.join(VARIANTS)}."
        )
    if kind not in VARIANTS[variant]:
        fitting = [v for v, kinds in VARIANTS.items() if kind in kinds]
        raise DlsuiteError(
            f"autoencoder variant {variant!r} takes {' or '.join(VARIANTS[variant])} inputs, not {kind}; "
            f"for {kind} inputs set model.variant to one of {', '.join(fitting)}."
        )


def _known_shape(input_spec: InputSpec) -> tuple[int, ...]:
    if any(d is None for d in input_spec.shape):
        raise DlsuiteError(
            f"autoencoders reconstruct fixed-size inputs, got shape {input_spec.shape}; "
            "give the data a fixed shape (fixed-length windows, resized images)."
        )
    return tuple(int(d) for d in input_spec.shape)


def _dense_networks(
    shape: tuple[int, ...],
    *,
    latent_dim: int,
    hidden_units: tuple[int, ...],
    activation: str,
    dropout: float,
    variational: bool,
    reconstruction_activation: str | None,
) -> tuple[keras.Model, keras.Model]:
    inputs = keras.Input(shape=shape, name="input")
    x = layers.Flatten(name="flatten")(inputs) if len(shape) > 1 else inputs
    for i, units in enumerate(hidden_units, start=1):
        x = dense_block(x, units, activation=activation, batchnorm=False, dropout=dropout, name=f"enc{i}")
    if variational:
        z_mean = layers.Dense(latent_dim, dtype="float32", name="z_mean")(x)
        z_log_var = layers.Dense(latent_dim, dtype="float32", name="z_log_var")(x)
        encoder = keras.Model(inputs, [z_mean, z_log_var], name="encoder")
    else:
        encoder = keras.Model(inputs, layers.Dense(latent_dim, name="latent")(x), name="encoder")

    code = keras.Input(shape=(latent_dim,), name="code")
    y = code
    for i, units in enumerate(reversed(hidden_units), start=1):
        y = dense_block(y, units, activation=activation, batchnorm=False, dropout=dropout, name=f"dec{i}")
    y = layers.Dense(
        math.prod(shape), activation=reconstruction_activation, dtype="float32", name="reconstruction"
    )(y)
    if len(shape) > 1:
        y = layers.Reshape(shape, name="unflatten")(y)
    return encoder, keras.Model(code, y, name="decoder")


def _conv_networks(
    input_spec: InputSpec,
    *,
    latent_dim: int,
    filters: int,
    conv_blocks: int,
    activation: str,
    reconstruction_activation: str | None,
) -> tuple[keras.Model, keras.Model]:
    shape = _known_shape(input_spec)
    inputs, x = image_inputs(input_spec)
    height, width, channels = x.shape[1:]
    # Pad up to a multiple of 2**conv_blocks so the transposed convolutions land on the same size.
    step = 2**conv_blocks
    pad_h, pad_w = -height % step, -width % step
    if pad_h or pad_w:
        x = layers.ZeroPadding2D(((0, pad_h), (0, pad_w)), name="pad")(x)
    for i in range(conv_blocks):
        x = layers.Conv2D(
            filters * 2**i, 3, strides=2, padding="same", activation=activation, name=f"enc{i + 1}_conv"
        )(x)
    feature_shape = tuple(x.shape[1:])
    x = layers.Flatten(name="flatten")(x)
    encoder = keras.Model(inputs, layers.Dense(latent_dim, name="latent")(x), name="encoder")

    code = keras.Input(shape=(latent_dim,), name="code")
    y = layers.Dense(math.prod(feature_shape), activation=activation, name="dec_dense")(code)
    y = layers.Reshape(feature_shape, name="dec_reshape")(y)
    for i in reversed(range(conv_blocks)):
        y = layers.Conv2DTranspose(
            filters * 2**i, 3, strides=2, padding="same", activation=activation, name=f"dec{i + 1}_deconv"
        )(y)
    y = layers.Conv2D(
        channels,
        3,
        padding="same",
        activation=reconstruction_activation,
        dtype="float32",
        name="reconstruction",
    )(y)
    if pad_h or pad_w:
        y = layers.Cropping2D(((0, pad_h), (0, pad_w)), name="crop")(y)
    if len(shape) == 2:
        y = layers.Reshape(shape, name="drop_channel")(y)
    return encoder, keras.Model(code, y, name="decoder")


def _lstm_networks(
    input_spec: InputSpec,
    *,
    latent_dim: int,
    hidden_units: tuple[int, ...],
    dropout: float,
    reconstruction_activation: str | None,
) -> tuple[keras.Model, keras.Model]:
    shape = _known_shape(input_spec)
    if len(shape) != 2:
        raise DlsuiteError(f"the lstm autoencoder takes [time, features] windows, got shape {shape}.")
    steps, features = shape
    inputs = keras.Input(shape=shape, name="input")
    x = inputs
    for i, units in enumerate(hidden_units, start=1):
        last = i == len(hidden_units)
        x = layers.LSTM(units, return_sequences=not last, dropout=dropout, name=f"enc{i}_lstm")(x)
    encoder = keras.Model(inputs, layers.Dense(latent_dim, name="latent")(x), name="encoder")

    code = keras.Input(shape=(latent_dim,), name="code")
    y = layers.RepeatVector(steps, name="repeat")(code)
    for i, units in enumerate(reversed(hidden_units), start=1):
        y = layers.LSTM(units, return_sequences=True, dropout=dropout, name=f"dec{i}_lstm")(y)
    y = layers.Dense(
        features, activation=reconstruction_activation, dtype="float32", name="reconstruction"
    )(y)
    return encoder, keras.Model(code, y, name="decoder")


@register(
    "autoencoder",
    input_kinds=("tabular", "sequence", "image"),
    summary="reconstruction autoencoder, variants dense, variational, conv, lstm; unsupervised; "
    "anomaly_score = per-example reconstruction MSE",
)
def build_autoencoder(
    input_spec: InputSpec,
    num_outputs: int,
    *,
    output_activation: str | None = None,
    variant: str = "dense",
    latent_dim: int = 8,
    hidden_units: Sequence[int] = (64, 32),
    activation: str = "relu",
    dropout: float = 0.0,
    filters: int = 16,
    conv_blocks: int = 2,
    kl_weight: float = 0.1,
    reconstruction_activation: str | None = None,
) -> Autoencoder:
    """Builds an autoencoder.

    Args:
        input_spec: the network input: ``tabular`` ``[F]`` (dense, variational),
            ``sequence`` ``[T, F]`` windows of fixed length (lstm; dense and
            variational flatten them) or ``image`` ``[H, W(, C)]`` (conv; dense
            and variational flatten it).
        num_outputs: ignored: the reconstruction has the input's shape.
        output_activation: ignored (the registry passes the task head's
            activation); the reconstruction's is ``reconstruction_activation``.
        variant: ``dense``, ``variational``, ``conv`` or ``lstm`` (module docstring).
        latent_dim: width of the latent code.
        hidden_units: encoder widths, first to last (dense blocks, or LSTM
            layers for ``lstm``); the decoder mirrors them.
        activation: hidden activation (dense, variational, conv).
        dropout: dropout rate of the hidden layers (dense, variational, lstm).
        filters: channels of the first conv layer; each later one doubles (conv).
        conv_blocks: stride-2 conv layers, i.e. the encoder downsamples by
            ``2**conv_blocks`` (conv; the input is zero-padded to a multiple).
        kl_weight: weight of the KL term of the loss (variational). The KL
            divergence is taken per input value; at 1.0 it blurs the
            reconstructions of standardized features (synthetic outliers:
            ROC-AUC 0.92 at 1.0, 1.00 at 0.1, see the tests).
        reconstruction_activation: activation of the reconstruction layer:
            ``None`` (linear) for standardized features, ``"sigmoid"`` for
            values in [0, 1].

    Returns:
        An uncompiled :class:`Autoencoder` named ``"autoencoder"``.
    """
    del num_outputs, output_activation
    _check_variant(variant, input_spec.kind)
    if isinstance(hidden_units, int):
        hidden_units = (hidden_units,)
    hidden_units = tuple(int(u) for u in hidden_units)
    if any(u < 1 for u in hidden_units) or (variant == "lstm" and not hidden_units):
        raise DlsuiteError(
            "autoencoder hidden_units must be positive integers (at least one for lstm), "
            f"got {list(hidden_units)}."
        )
    for key, value in (("latent_dim", latent_dim), ("filters", filters), ("conv_blocks", conv_blocks)):
        if int(value) < 1:
            raise DlsuiteError(f"autoencoder {key} must be at least 1, got {value}.")
    if not 0.0 <= dropout < 1.0:
        raise DlsuiteError(f"autoencoder dropout must be in [0, 1), got {dropout}.")
    if kl_weight < 0:
        raise DlsuiteError(f"autoencoder kl_weight must be >= 0, got {kl_weight}.")

    if variant in ("dense", "variational"):
        encoder, decoder = _dense_networks(
            _known_shape(input_spec),
            latent_dim=latent_dim,
            hidden_units=hidden_units,
            activation=activation,
            dropout=dropout,
            variational=variant == "variational",
            reconstruction_activation=reconstruction_activation,
        )
    elif variant == "conv":
        encoder, decoder = _conv_networks(
            input_spec,
            latent_dim=latent_dim,
            filters=filters,
            conv_blocks=conv_blocks,
            activation=activation,
            reconstruction_activation=reconstruction_activation,
        )
    else:
        encoder, decoder = _lstm_networks(
            input_spec,
            latent_dim=latent_dim,
            hidden_units=hidden_units,
            dropout=dropout,
            reconstruction_activation=reconstruction_activation,
        )
    return Autoencoder(
        encoder, decoder, variational=variant == "variational", kl_weight=kl_weight, name="autoencoder"
    )
