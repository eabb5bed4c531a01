"""Deep SVDD (Ruff et al., 2018): map normal rows close to one centre, score by the distance.

A network without bias terms maps each row to a point in a small feature space; training
shrinks the mean squared distance of the training rows to a fixed centre ``c`` (the
one-class objective). The centre is the mean of the untrained network's outputs over the
training data (an initial forward pass, as in the paper), with coordinates too close to
zero pushed out to ``+-eps`` so that the all-zero map, which any bias-free network with
zero weights produces, cannot sit on it. Without bias terms and with a fixed centre, the
network cannot collapse every input onto ``c`` by a constant output: it has to learn what
the training rows share. The anomaly score is the squared distance to ``c``.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from dlsuite.architectures.custom_steps import ObjectiveDetector, split_batch
from dlsuite.architectures.registry import InputSpec, register
from dlsuite.errors import DlsuiteError

CENTRE_BATCHES = 64  # batches of the initial forward pass that sets the centre


def batches_of(x: Any, batch_size: int | None, limit: int) -> list[Any]:
    """Up to ``limit`` feature batches of what ``fit`` was given (a dataset of ``(x, y)`` or an array).

    Args:
        x: the ``x`` argument of ``fit``.
        batch_size: the ``batch_size`` argument of ``fit`` (arrays only).
        limit: most batches to take.

    Returns:
        A list of feature batches.
    """
    if isinstance(x, tf.data.Dataset):
        return [split_batch(batch)[0] for batch in x.take(limit)]
    values = np.asarray(x, np.float32)
    size = batch_size or 32
    return [values[i : i + size] for i in range(0, min(len(values), size * limit), size)]


@keras.saving.register_keras_serializable(package="dlsuite")
class DeepSVDD(ObjectiveDetector):
    """One-class Deep SVDD: a bias-free network and the centre its training rows are pulled to.

    ``call(x)`` returns the feature-space image of ``x``. ``fit`` first sets the centre from
    an initial forward pass over (up to ``CENTRE_BATCHES`` batches of) its data unless it is
    already set, then minimizes the mean squared distance to it; labels and any compiled
    loss are ignored. Weight decay comes from the network's kernel regularizers.

    Args:
        network: a bias-free model from rows to ``[batch, D]`` features.
        eps: smallest magnitude of a centre coordinate.
        **kwargs: ``keras.Model`` arguments.
    """

    def __init__(self, network: keras.Model, eps: float = 0.1, **kwargs: Any):
        super().__init__(**kwargs)
        self.network = network
        self.eps = float(eps)
        dims = int(network.output_shape[-1])
        self.centre = self.add_weight(
            shape=(dims,), initializer="zeros", trainable=False, aggregation="only_first_replica",
            name="centre",
        )
        self.centre_set = self.add_weight(
            shape=(), initializer="zeros", trainable=False, aggregation="only_first_replica",
            name="centre_set",
        )
        self.built = True

    def call(self, inputs: Any, training: bool = False) -> Any:
        return self.network(inputs, training=training)

    def initialize(self, batches: Sequence[Any]) -> None:
        """Set the centre to the mean network output over ``batches`` (unless it is set already)."""
        if float(self.centre_set.numpy()) > 0 or not batches:
            return
        total, count = 0.0, 0
        for x in batches:
            features = np.asarray(self.network(ops.cast(x, "float32"), training=False), np.float64)
            total = total + features.sum(axis=0)
            count += len(features)
        centre = total / max(count, 1)
        small = np.abs(centre) < self.eps
        centre[small] = np.where(centre[small] < 0, -self.eps, self.eps)
        self.centre.assign(centre.astype(np.float32))
        self.centre_set.assign(1.0)

    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, **kwargs: Any) -> Any:
        """``keras.Model.fit``, after setting the centre from an initial forward pass over ``x``."""
        self.initialize(batches_of(x, batch_size, CENTRE_BATCHES))
        return super().fit(x, y, batch_size=batch_size, **kwargs)

    def anomaly_score(self, x: Any) -> Any:
        """Squared distance of each row's features to the centre (higher = more unusual).

        Args:
            x: a batch of rows.

        Returns:
            float32 tensor ``[batch]``.
        """
        return self.distances(x, training=False)

    def distances(self, x: Any, training: bool) -> Any:
        features = ops.cast(self(ops.cast(x, "float32"), training=training), "float32")
        return ops.sum(ops.square(features - ops.cast(self.centre, "float32")), axis=-1)

    def detector_loss(self, x: Any) -> Any:
        """The training objective on one batch: mean squared distance plus weight decay."""
        loss = ops.mean(self.distances(x, training=True))
        return loss + ops.sum(self.losses) if self.losses else loss

    def validation_loss(self, x: Any) -> Any:
        """The objective without weight decay on held-out rows."""
        return ops.mean(self.distances(x, training=False))

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "network": keras.saving.serialize_keras_object(self.network),
            "eps": self.eps,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "DeepSVDD":
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        return cls(**config)


def bias_free_network(
    width: int, hidden_units: Sequence[int], rep_dim: int, weight_decay: float, name: str = "network"
) -> keras.Model:
    """Dense layers without bias terms, leaky ReLU between them, a linear ``rep_dim`` output."""
    regularizer = keras.regularizers.L2(weight_decay) if weight_decay > 0 else None
    inputs = keras.Input(shape=(width,), name="input")
    x = inputs
    for i, units in enumerate(hidden_units, start=1):
        x = layers.Dense(units, use_bias=False, kernel_regularizer=regularizer, name=f"dense{i}")(x)
        x = layers.LeakyReLU(negative_slope=0.1, name=f"leaky_relu{i}")(x)
    outputs = layers.Dense(
        rep_dim, use_bias=False, kernel_regularizer=regularizer, dtype="float32", name="features"
    )(x)
    return keras.Model(inputs, outputs, name=name)


@register(
    "deep_svdd",
    input_kinds=("tabular",),
    summary="Deep SVDD (one-class): bias-free dense network pulled to a fixed centre; unsupervised; "
    "anomaly_score = squared distance to the centre",
)
def build_deep_svdd(
    input_spec: InputSpec,
    num_outputs: int,
    *,
    output_activation: str | None = None,
    hidden_units: Sequence[int] = (64, 32),
    rep_dim: int = 16,
    weight_decay: float = 1e-5,
    eps: float = 0.1,
) -> DeepSVDD:
    """Builds a Deep SVDD detector.

    Args:
        input_spec: ``tabular`` ``[F]`` rows (the anomaly task flattens windows).
        num_outputs: ignored: the output is the ``rep_dim`` feature space.
        output_activation: ignored (the registry passes the task head's activation).
        hidden_units: widths of the bias-free hidden layers.
        rep_dim: dimension of the feature space the centre lives in.
        weight_decay: L2 penalty on every kernel (the paper's weight decay).
        eps: smallest magnitude of a centre coordinate.

    Returns:
        An uncompiled :class:`DeepSVDD` named ``"deep_svdd"``.
    """
    del num_outputs, output_activation
    if len(input_spec.shape) != 1 or input_spec.shape[0] is None:
        raise DlsuiteError(
            f"deep_svdd takes rows of a fixed number of features, got shape {input_spec.shape}."
        )
    if isinstance(hidden_units, int):
        hidden_units = (hidden_units,)
    hidden_units = tuple(int(u) for u in hidden_units)
    if any(u < 1 for u in hidden_units) or int(rep_dim) < 1:
        raise DlsuiteError(
            f"deep_svdd hidden_units and rep_dim must be positive, got {list(hidden_units)} and {rep_dim}."
        )
    if weight_decay < 0 or eps <= 0:
        raise DlsuiteError(f"deep_svdd weight_decay must be >= 0 and eps > 0, got {weight_decay} and {eps}.")
    network = bias_free_network(int(input_spec.shape[0]), hidden_units, int(rep_dim), float(weight_decay))
    return DeepSVDD(network, eps=eps, name="deep_svdd")
