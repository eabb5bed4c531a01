"""An ensemble of small autoencoders on bootstrap samples and feature subsets (RandNet-style).

Chen et al. (2017, "Outlier detection with autoencoder ensembles", RandNet) showed that many
varied autoencoders, each fit to a different sample of the data, detect outliers more reliably
than one: their errors on normal rows disagree and average out, while an outlier is hard for
all of them. Here each member:

- sees a random subset of the features (feature bagging, Lazarevic & Kumar 2005): between
  half and all of them, drawn once from ``seed`` and kept in the config;
- trains on a bootstrap sample of the rows: each row carries a Poisson(1) weight per member
  (how often it would be drawn), computed from a hash of the row's values, so a row keeps its
  weights across epochs, shuffles and replicas without any row index;
- is a denoising autoencoder with the Huber loss, scored like ``robust_autoencoder``: each
  feature's squared error over its usual size, averaged over the member's features.

The ensemble's score is the median of its members' scores (RandNet combines by the median).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import keras
import numpy as np
from keras import ops

from dlsuite.architectures.autoencoder import _dense_networks
from dlsuite.architectures.custom_steps import ObjectiveDetector
from dlsuite.architectures.registry import InputSpec, register
from dlsuite.architectures.robust_autoencoder import check_settings, floored, huber, row_width, track_scale
from dlsuite.errors import DlsuiteError

# P(Poisson(1) <= k) for k = 0..4: a uniform number above k of these cuts is a weight of k.
POISSON_CDF = (0.36788, 0.73576, 0.91970, 0.98101, 0.99634)


def feature_subsets(width: int, members: int, seed: int) -> list[list[int]]:
    """Per member, a sorted random subset of ``ceil(width / 2)`` to ``width`` feature indices."""
    rng = np.random.default_rng(seed)
    low = max(1, math.ceil(width / 2))
    return [sorted(rng.choice(width, size=int(rng.integers(low, width + 1)), replace=False).tolist())
            for _ in range(members)]


@keras.saving.register_keras_serializable(package="dlsuite")
class AutoencoderEnsemble(ObjectiveDetector):
    """Autoencoders on feature subsets and hashed bootstrap weights; the median member score.

    ``call(x)`` returns each member's score, ``[batch, members]``. ``fit`` ignores labels and
    any compiled loss; it logs ``loss``, the members' mean weighted Huber loss.

    Args:
        autoencoders: per member, a model from its feature subset to its reconstruction.
        subsets: per member, the feature indices it reads.
        width: features of a row.
        seed: of the hash that gives each row its bootstrap weights.
        noise_stddev: Gaussian noise added to training rows.
        huber_delta: where the Huber loss turns linear.
        momentum: of the moving averages of each member's per-feature squared errors.
        **kwargs: ``keras.Model`` arguments.
    """

    def __init__(
        self,
        autoencoders: Sequence[keras.Model],
        subsets: Sequence[Sequence[int]],
        width: int,
        *,
        seed: int = 0,
        noise_stddev: float = 0.1,
        huber_delta: float = 1.0,
        momentum: float = 0.9,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if len(autoencoders) != len(subsets):
            raise ValueError(f"{len(autoencoders)} autoencoders but {len(subsets)} feature subsets")
        self.autoencoders = list(autoencoders)
        self.subsets = [[int(i) for i in s] for s in subsets]
        self.width = int(width)
        self.seed = int(seed)
        self.noise_stddev = float(noise_stddev)
        self.huber_delta = float(huber_delta)
        self.momentum = float(momentum)
        self.error_scales = [
            self.add_weight(shape=(len(s),), initializer="ones", trainable=False, aggregation="mean",
                            name=f"error_scale_{k}")
            for k, s in enumerate(self.subsets)
        ]
        self.scale_set = self.add_weight(
            shape=(), initializer="zeros", trainable=False, aggregation="only_first_replica", name="scale_set"
        )
        # A fixed random projection per member hashes a row to its bootstrap weight.
        self.hash_projection = ops.convert_to_tensor(
            np.random.default_rng(self.seed).normal(size=(self.width, len(self.subsets))).astype(np.float32)
        )
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.built = True

    def _member_errors(self, x: Any, k: int, training: bool, noise: Any = None) -> Any:
        target = ops.take(x, self.subsets[k], axis=1)
        source = target if noise is None else target + ops.take(noise, self.subsets[k], axis=1)
        reconstruction = ops.cast(self.autoencoders[k](source, training=training), "float32")
        return target - reconstruction

    def call(self, inputs: Any, training: bool = False) -> Any:
        x = ops.cast(inputs, "float32")
        scores = [
            ops.mean(ops.square(self._member_errors(x, k, training)) / floored(self.error_scales[k]), axis=-1)
            for k in range(len(self.subsets))
        ]
        return ops.stack(scores, axis=1)

    def anomaly_score(self, x: Any) -> Any:
        """The median over members of each member's standardized reconstruction error.

        Args:
            x: a batch of rows.

        Returns:
            float32 tensor ``[batch]``.
        """
        return ops.median(self(x, training=False), axis=1)

    def bootstrap_weights(self, x: Any) -> Any:
        """Per row and member, a Poisson(1) weight that depends only on the row's values.

        Returns:
            float32 tensor ``[batch, members]``.
        """
        mixed = ops.matmul(ops.cast(x, "float32"), self.hash_projection)
        uniform = ops.abs(ops.sin(mixed * 12.9898 + 78.233) * 43758.5453) % 1.0
        return ops.sum(ops.stack([ops.cast(uniform > c, "float32") for c in POISSON_CDF], axis=0), axis=0)

    def detector_loss(self, x: Any) -> Any:
        """Mean over members of the bootstrap-weighted Huber loss of denoising ``x``."""
        x = ops.cast(x, "float32")
        weights = self.bootstrap_weights(x)
        noise = self.noise_stddev * keras.random.normal(ops.shape(x), seed=self.seed_generator)
        losses = []
        for k in range(len(self.subsets)):
            per_row = ops.mean(huber(self._member_errors(x, k, True, noise), self.huber_delta), axis=-1)
            losses.append(ops.sum(weights[:, k] * per_row) / ops.maximum(ops.sum(weights[:, k]), 1.0))
        loss = ops.mean(ops.stack(losses))
        return loss + ops.sum(self.losses) if self.losses else loss

    def validation_loss(self, x: Any) -> Any:
        """Mean over members of the Huber loss of reconstructing clean held-out rows (unweighted)."""
        x = ops.cast(x, "float32")
        losses = [ops.mean(huber(self._member_errors(x, k, False), self.huber_delta))
                  for k in range(len(self.subsets))]
        return ops.mean(ops.stack(losses))

    def update_statistics(self, x: Any) -> None:
        """Track each member's per-feature squared error on the training rows."""
        x = ops.cast(x, "float32")
        for k, scale in enumerate(self.error_scales):
            track_scale(scale, self.scale_set, ops.square(self._member_errors(x, k, False)), self.momentum)
        self.scale_set.assign(1.0)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "autoencoders": [keras.saving.serialize_keras_object(m) for m in self.autoencoders],
            "subsets": self.subsets,
            "width": self.width,
            "seed": self.seed,
            "noise_stddev": self.noise_stddev,
            "huber_delta": self.huber_delta,
            "momentum": self.momentum,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "AutoencoderEnsemble":
        config = dict(config)
        config["autoencoders"] = [keras.saving.deserialize_keras_object(m) for m in config["autoencoders"]]
        return cls(**config)


@register(
    "ae_ensemble",
    input_kinds=("tabular",),
    summary="ensemble of denoising autoencoders on bootstrap samples and feature subsets (RandNet-style); "
    "unsupervised; anomaly_score = median member's standardized error",
)
def build_ae_ensemble(
    input_spec: InputSpec,
    num_outputs: int,
    *,
    output_activation: str | None = None,
    members: int = 8,
    hidden_units: Sequence[int] = (32,),
    latent_dim: int = 4,
    noise_stddev: float = 0.1,
    huber_delta: float = 1.0,
    momentum: float = 0.9,
    seed: int = 0,
) -> AutoencoderEnsemble:
    """Builds an autoencoder ensemble.

    Args:
        input_spec: ``tabular`` ``[F]`` rows (the anomaly task flattens windows).
        num_outputs: ignored.
        output_activation: ignored (the registry passes the task head's activation).
        members: number of autoencoders.
        hidden_units: each member's encoder widths; its decoder mirrors them.
        latent_dim: each member's code width (at most its number of features).
        noise_stddev: Gaussian noise added to training rows.
        huber_delta: where the Huber loss turns linear.
        momentum: of the moving averages of the members' per-feature squared errors.
        seed: draws the feature subsets and the bootstrap hash.

    Returns:
        An uncompiled :class:`AutoencoderEnsemble` named ``"ae_ensemble"``.
    """
    del num_outputs, output_activation
    width = row_width("ae_ensemble", input_spec)
    hidden_units = check_settings(
        "ae_ensemble", hidden_units, latent_dim, noise_stddev, huber_delta, momentum
    )
    if int(members) < 1:
        raise DlsuiteError(f"ae_ensemble members must be at least 1, got {members}.")
    subsets = feature_subsets(width, int(members), int(seed))
    autoencoders = []
    for k, subset in enumerate(subsets):
        encoder, decoder = _dense_networks(
            (len(subset),),
            latent_dim=min(int(latent_dim), len(subset)),
            hidden_units=hidden_units,
            activation="relu",
            dropout=0.0,
            variational=False,
            reconstruction_activation=None,
        )
        code = encoder.output
        autoencoders.append(keras.Model(encoder.input, decoder(code), name=f"member{k}"))
    return AutoencoderEnsemble(
        autoencoders, subsets, width, seed=seed, noise_stddev=noise_stddev, huber_delta=huber_delta,
        momentum=momentum, name="ae_ensemble",
    )
