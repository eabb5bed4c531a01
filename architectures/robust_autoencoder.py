"""A denoising, robust autoencoder whose score weighs each feature's error by its usual size.

Three changes to the plain reconstruction autoencoder, each aimed at real tables:

- denoising (Vincent et al., 2008): training reconstructs each row from a copy with Gaussian
  noise added, so the network learns the rows' structure rather than the identity map;
- a robust loss: the Huber loss, quadratic for small errors and linear for large ones, so the
  few anomalies of a contaminated training set (the unsupervised protocol) pull less on the fit;
- a standardized score: each feature's squared error is divided by that feature's usual
  squared error on the training rows (a moving average over training steps, like the
  forecaster's), then averaged. A feature the network always reconstructs poorly (noise)
  no longer dominates the score, and a feature it reconstructs well counts when it fails.

The anomaly task feeds it rows scaled per feature with the training median and interquartile
range (``data.scaling=auto``), which outliers do not shift as they shift a mean and a standard
deviation; that scaling lives in the task's preprocessing layer, inside the exported model.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
from keras import ops

from dlsuite.architectures.autoencoder import _dense_networks
from dlsuite.architectures.custom_steps import ObjectiveDetector
from dlsuite.architectures.registry import InputSpec, register
from dlsuite.errors import DlsuiteError

SCALE_FLOOR = 0.01  # a feature's error scale is at least this share of the mean scale


def huber(errors: Any, delta: float) -> Any:
    """Elementwise Huber loss of ``errors`` (quadratic up to ``delta``, linear beyond)."""
    magnitude = ops.abs(errors)
    quadratic = ops.minimum(magnitude, delta)
    return 0.5 * ops.square(quadratic) + delta * (magnitude - quadratic)


def floored(scale: Any) -> Any:
    """Per-feature error scales, none below ``SCALE_FLOOR`` of their mean (nor below 1e-12)."""
    scale = ops.cast(scale, "float32")
    return ops.maximum(scale, ops.maximum(SCALE_FLOOR * ops.mean(scale), 1e-12))


def track_scale(scale: keras.Variable, scale_set: keras.Variable, errors: Any, momentum: float) -> None:
    """Move ``scale`` towards the batch's mean squared error per feature (the first batch sets it)."""
    batch = ops.mean(ops.stop_gradient(errors), axis=0)
    old = ops.where(scale_set > 0, ops.cast(scale, "float32"), batch)
    scale.assign(momentum * old + (1.0 - momentum) * batch)


@keras.saving.register_keras_serializable(package="dlsuite")
class RobustAutoencoder(ObjectiveDetector):
    """A denoising autoencoder trained with the Huber loss, scored by standardized feature errors.

    ``call(x)`` returns the reconstruction of ``x``. ``fit`` ignores labels and any compiled
    loss; it logs ``loss`` (the mean Huber loss of reconstructing clean rows from noisy ones).

    Args:
        encoder: model from rows ``[F]`` to the latent code.
        decoder: model from the latent code to ``[F]``.
        noise_stddev: standard deviation of the training noise (in scaled units).
        huber_delta: where the loss turns from quadratic to linear.
        momentum: of the moving average of the per-feature squared errors.
        **kwargs: ``keras.Model`` arguments.
    """

    def __init__(
        self,
        encoder: keras.Model,
        decoder: keras.Model,
        *,
        noise_stddev: float = 0.1,
        huber_delta: float = 1.0,
        momentum: float = 0.9,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.noise_stddev = float(noise_stddev)
        self.huber_delta = float(huber_delta)
        self.momentum = float(momentum)
        features = int(decoder.output_shape[-1])
        self.error_scale = self.add_weight(
            shape=(features,), initializer="ones", trainable=False, aggregation="mean", name="error_scale"
        )
        self.scale_set = self.add_weight(
            shape=(), initializer="zeros", trainable=False, aggregation="only_first_replica", name="scale_set"
        )
        self.seed_generator = keras.random.SeedGenerator()
        self.built = True

    def call(self, inputs: Any, training: bool = False) -> Any:
        return self.decoder(self.encoder(inputs, training=training), training=training)

    def feature_errors(self, x: Any) -> Any:
        """Squared reconstruction error of each feature of clean rows, ``[batch, F]``."""
        x = ops.cast(x, "float32")
        return ops.square(x - ops.cast(self(x, training=False), "float32"))

    def anomaly_score(self, x: Any) -> Any:
        """Mean over features of the squared error over that feature's usual squared error.

        Args:
            x: a batch of rows.

        Returns:
            float32 tensor ``[batch]``; about 1 for a typical training row.
        """
        return ops.mean(self.feature_errors(x) / floored(self.error_scale), axis=-1)

    def detector_loss(self, x: Any) -> Any:
        """Mean Huber loss of reconstructing ``x`` from a noisy copy (plus layer penalties)."""
        x = ops.cast(x, "float32")
        noisy = x + self.noise_stddev * keras.random.normal(ops.shape(x), seed=self.seed_generator)
        reconstruction = ops.cast(self(noisy, training=True), "float32")
        loss = ops.mean(huber(x - reconstruction, self.huber_delta))
        return loss + ops.sum(self.losses) if self.losses else loss

    def validation_loss(self, x: Any) -> Any:
        """Mean Huber loss of reconstructing clean held-out rows."""
        x = ops.cast(x, "float32")
        return ops.mean(huber(x - ops.cast(self(x, training=False), "float32"), self.huber_delta))

    def update_statistics(self, x: Any) -> None:
        """Track each feature's usual squared error on the training rows."""
        track_scale(self.error_scale, self.scale_set, self.feature_errors(x), self.momentum)
        self.scale_set.assign(1.0)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "noise_stddev": self.noise_stddev,
            "huber_delta": self.huber_delta,
            "momentum": self.momentum,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "RobustAutoencoder":
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
        return cls(**config)


def check_settings(name: str, hidden_units: Sequence[int] | int, latent_dim: int, noise_stddev: float,
                   huber_delta: float, momentum: float) -> tuple[int, ...]:
    """Validate the shared autoencoder settings; returns ``hidden_units`` as a tuple."""
    if isinstance(hidden_units, int):
        hidden_units = (hidden_units,)
    hidden_units = tuple(int(u) for u in hidden_units)
    if any(u < 1 for u in hidden_units) or int(latent_dim) < 1:
        raise DlsuiteError(
            f"{name} hidden_units and latent_dim must be positive, got {list(hidden_units)} and {latent_dim}."
        )
    if noise_stddev < 0 or huber_delta <= 0 or not 0.0 <= momentum < 1.0:
        raise DlsuiteError(
            f"{name} needs noise_stddev >= 0, huber_delta > 0 and momentum in [0, 1), "
            f"got {noise_stddev}, {huber_delta} and {momentum}."
        )
    return hidden_units


def row_width(name: str, input_spec: InputSpec) -> int:
    """The number of features of a ``tabular`` input."""
    if len(input_spec.shape) != 1 or input_spec.shape[0] is None:
        raise DlsuiteError(f"{name} takes rows of a fixed number of features, got shape {input_spec.shape}.")
    return int(input_spec.shape[0])


@register(
    "robust_autoencoder",
    input_kinds=("tabular",),
    summary="denoising autoencoder with Huber loss on median/IQR-scaled rows; unsupervised; "
    "anomaly_score = mean per-feature squared error over its usual size",
)
def build_robust_autoencoder(
    input_spec: InputSpec,
    num_outputs: int,
    *,
    output_activation: str | None = None,
    hidden_units: Sequence[int] = (64, 32),
    latent_dim: int = 8,
    noise_stddev: float = 0.1,
    huber_delta: float = 1.0,
    momentum: float = 0.9,
) -> RobustAutoencoder:
    """Builds a robust denoising autoencoder.

    Args:
        input_spec: ``tabular`` ``[F]`` rows (the anomaly task flattens windows).
        num_outputs: ignored: the reconstruction has the row's width.
        output_activation: ignored (the registry passes the task head's activation).
        hidden_units: encoder widths, first to last; the decoder mirrors them.
        latent_dim: width of the latent code.
        noise_stddev: Gaussian noise added to training rows (scaled units).
        huber_delta: where the Huber loss turns linear.
        momentum: of the moving average of each feature's squared error.

    Returns:
        An uncompiled :class:`RobustAutoencoder` named ``"robust_autoencoder"``.
    """
    del num_outputs, output_activation
    width = row_width("robust_autoencoder", input_spec)
    hidden_units = check_settings(
        "robust_autoencoder", hidden_units, latent_dim, noise_stddev, huber_delta, momentum
    )
    encoder, decoder = _dense_networks(
        (width,),
        latent_dim=int(latent_dim),
        hidden_units=hidden_units,
        activation="relu",
        dropout=0.0,
        variational=False,
        reconstruction_activation=None,
    )
    return RobustAutoencoder(
        encoder, decoder, noise_stddev=noise_stddev, huber_delta=huber_delta, momentum=momentum,
        name="robust_autoencoder",
    )
