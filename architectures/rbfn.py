"""Radial basis function network: Gaussian units around k-means centers, then a linear output.

Each hidden unit ``j`` answers ``exp(-gamma_j * ||x - c_j||^2)``; the output
layer is a dense layer over those activations. As in the classic two-stage
recipe (Moody & Darken, 1989), the centers are the k-means centroids of the
training inputs and each width starts from the spread of its cluster; then the
widths, the output layer and (by default) the centers are trained by backprop.

Where the data comes from: the registry builds networks from the input spec
alone, so the centers are fitted from the data the network is trained on.
:class:`RBFNetwork` overrides ``fit``: the first ``fit`` call on a network whose
centers were never fitted draws up to ``init_samples`` inputs from ``x`` (arrays
or a ``tf.data.Dataset`` of ``x`` or ``(x, y)`` batches, as the runner passes)
and calls :meth:`RBFNetwork.adapt` on them, eagerly, before Keras starts
training. Assigning the centers there happens in cross-replica context, so it
holds under every ``tf.distribute`` strategy. Callers may also call ``adapt``
themselves first (as with Keras preprocessing layers); a network that was
adapted, loaded from a ``.keras`` file or restored from weights keeps its
centers (the layer records this in a saved ``adapted`` weight).

k-means itself is scikit-learn's (k-means++ seeding, several restarts): it runs
once, on the host, outside any traced function, so there is no reason to
re-implement it in TF ops.
"""

from __future__ import annotations

import logging
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from dlsuite.architectures.registry import InputSpec, register
from dlsuite.errors import DlsuiteError

log = logging.getLogger("dlsuite")

# Restarts of k-means++ when fitting the centers; the best inertia wins.
KMEANS_RESTARTS = 3


def _spread_gammas(samples: np.ndarray, centers: np.ndarray, assignment: np.ndarray) -> np.ndarray:
    """``gamma_j = 1 / (2 sigma_j^2)``, ``sigma_j^2`` the mean squared distance of cluster ``j`` to its center.

    A typical member of a cluster then activates its unit at ``exp(-1/2)``.
    Clusters with fewer than two members (no spread to measure) take the median
    spread of the others.
    """
    sq_dist = np.sum((samples - centers[assignment]) ** 2, axis=1)
    spread = np.full(len(centers), np.nan)
    for j in range(len(centers)):
        members = sq_dist[assignment == j]
        if len(members) > 1 and members.mean() > 0:
            spread[j] = members.mean()
    fallback = np.nanmedian(spread) if np.isfinite(spread).any() else 1.0
    spread = np.where(np.isfinite(spread), spread, fallback)
    return 1.0 / (2.0 * spread)


@keras.saving.register_keras_serializable(package="dlsuite")
class RadialBasis(keras.layers.Layer):
    """Gaussian radial basis units: ``exp(-gamma_j * ||x - c_j||^2)`` for each center ``c_j``.

    Widths are learned as ``log(gamma_j)`` so they stay positive. Until
    :meth:`adapt` fits the centers they are random draws from a unit normal,
    which is rarely what a network wants: adapt first (or train through
    :class:`RBFNetwork`, which does it for you).

    Args:
        units: number of centers.
        trainable_centers: whether backprop moves the centers after k-means
            placed them (widths are always trained).
        seed: seed of the initial random centers and of k-means.
        **kwargs: base ``Layer`` arguments.

    Input shape: ``(batch, features)``. Output shape: ``(batch, units)``.
    """

    def __init__(self, units: int, *, trainable_centers: bool = True, seed: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        if int(units) < 1:
            raise DlsuiteError(f"RadialBasis units must be at least 1, got {units}.")
        self.units = int(units)
        self.trainable_centers = bool(trainable_centers)
        self.seed = int(seed)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        features = input_shape[-1]
        if features is None:
            raise DlsuiteError("RadialBasis needs a known feature size; flatten inputs of a fixed shape first.")
        self.centers = self.add_weight(
            shape=(self.units, features),
            initializer=keras.initializers.RandomNormal(seed=self.seed),
            trainable=self.trainable_centers,
            name="centers",
        )
        self.log_gamma = self.add_weight(shape=(self.units,), initializer="zeros", name="log_gamma")
        # 1 once adapt() placed the centers; saved with the weights so reloads keep them.
        self.adapted = self.add_weight(shape=(), initializer="zeros", trainable=False, name="adapted")

    @property
    def is_adapted(self) -> bool:
        """Whether :meth:`adapt` has fitted the centers (also true after loading fitted weights)."""
        return self.built and bool(keras.ops.convert_to_numpy(self.adapted) > 0.5)

    def adapt(self, samples: np.ndarray) -> None:
        """Place the centers by k-means on ``samples`` and set each width from its cluster's spread.

        Args:
            samples: ``(n, features)`` training inputs, ``n >= units``.
        """
        from sklearn.cluster import KMeans

        samples = np.asarray(samples, dtype=np.float64).reshape(len(samples), -1)
        if len(samples) < self.units:
            raise DlsuiteError(
                f"RadialBasis needs at least as many training examples as centers: got {len(samples)} "
                f"examples for {self.units} centers; lower model.centers."
            )
        if not self.built:
            self.build((None, samples.shape[1]))
        kmeans = KMeans(self.units, n_init=KMEANS_RESTARTS, random_state=self.seed).fit(samples)
        gammas = _spread_gammas(samples, kmeans.cluster_centers_, kmeans.labels_)
        self.centers.assign(kmeans.cluster_centers_.astype("float32"))
        self.log_gamma.assign(np.log(gammas).astype("float32"))
        self.adapted.assign(1.0)

    def call(self, inputs: Any) -> Any:
        inputs = ops.cast(inputs, self.compute_dtype)
        centers = ops.cast(self.centers, self.compute_dtype)
        # ||x||^2 - 2 x.c + ||c||^2: one matmul instead of a (batch, units, features) difference tensor.
        sq_dist = (
            ops.sum(ops.square(inputs), axis=-1, keepdims=True)
            - 2.0 * ops.matmul(inputs, ops.transpose(centers))
            + ops.sum(ops.square(centers), axis=-1)[None, :]
        )
        gamma = ops.cast(ops.exp(self.log_gamma), self.compute_dtype)
        return ops.exp(-gamma * ops.maximum(sq_dist, 0.0))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "trainable_centers": self.trainable_centers,
            "seed": self.seed,
        }


def _take_samples(x: Any, limit: int) -> np.ndarray:
    """Up to ``limit`` input rows from what ``fit`` was given (arrays or a dataset of x / (x, y) batches)."""
    if isinstance(x, tf.data.Dataset):
        rows, count = [], 0
        for batch in x:
            features = batch[0] if isinstance(batch, (tuple, list)) else batch
            if isinstance(features, dict):
                raise DlsuiteError("RBFNetwork takes a single input tensor, not a dict of features.")
            features = np.asarray(features)
            rows.append(features.reshape(len(features), -1))
            count += len(features)
            if count >= limit:
                break
        if not rows:
            raise DlsuiteError("RBFNetwork.fit got an empty dataset; its centers are fitted from the training inputs.")
        return np.concatenate(rows)[:limit]
    if isinstance(x, (np.ndarray, tf.Tensor)) or hasattr(x, "__array__"):
        x = np.asarray(x)
        return x.reshape(len(x), -1)[:limit]
    raise DlsuiteError(
        f"RBFNetwork cannot draw samples from a {type(x).__name__} to fit its centers; "
        "call model.adapt(<array of training inputs>) before fit, or pass arrays or a tf.data.Dataset."
    )


@keras.saving.register_keras_serializable(package="dlsuite")
class RBFNetwork(keras.Model):
    """Flatten -> :class:`RadialBasis` -> dense output, with centers fitted by k-means on the first ``fit``.

    Args:
        centers: number of radial basis units.
        num_outputs: width of the output layer.
        output_activation: activation of the output layer (``None`` for regression or logits).
        trainable_centers: whether backprop moves the centers after k-means.
        init_samples: at most this many training inputs feed k-means.
        seed: seed of k-means and of the initial weights.
        **kwargs: base ``Model`` arguments (``name``).
    """

    def __init__(
        self,
        centers: int,
        num_outputs: int,
        output_activation: str | None = "softmax",
        *,
        trainable_centers: bool = True,
        init_samples: int = 5000,
        seed: int = 0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.num_centers = int(centers)
        self.num_outputs = int(num_outputs)
        self.output_activation = output_activation
        self.trainable_centers = bool(trainable_centers)
        self.init_samples = int(init_samples)
        self.seed = int(seed)
        self.flatten = layers.Flatten(name="flatten")
        self.rbf = RadialBasis(self.num_centers, trainable_centers=trainable_centers, seed=seed, name="rbf")
        self.predictions = layers.Dense(
            self.num_outputs,
            activation=output_activation,
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
            dtype="float32",
            name="predictions",
        )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        flat = self.flatten.compute_output_shape(input_shape)
        self.flatten.build(input_shape)
        self.rbf.build(flat)
        self.predictions.build((flat[0], self.num_centers))

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return self.predictions(self.rbf(self.flatten(inputs)))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.num_outputs)

    def adapt(self, data: Any) -> None:
        """Fit the centers and widths on training inputs by k-means.

        Args:
            data: an array of inputs, or a ``tf.data.Dataset`` of input batches
                or ``(inputs, labels)`` batches; at most ``init_samples`` rows are used.
        """
        samples = _take_samples(data, self.init_samples)
        if not self.built:
            self.build((None, *samples.shape[1:]))
        log.info("rbfn: fitting %d centers by k-means on %d training inputs", self.num_centers, len(samples))
        self.rbf.adapt(samples)

    def fit(self, x: Any = None, y: Any = None, *args: Any, **kwargs: Any) -> keras.callbacks.History:
        """``keras.Model.fit``, fitting the centers on ``x`` first if they were never fitted."""
        if not self.rbf.is_adapted:
            self.adapt(x)
        return super().fit(x, y, *args, **kwargs)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "centers": self.num_centers,
            "num_outputs": self.num_outputs,
            "output_activation": self.output_activation,
            "trainable_centers": self.trainable_centers,
            "init_samples": self.init_samples,
            "seed": self.seed,
        }


@register(
    "rbfn",
    input_kinds=("tabular", "image"),
    summary="radial basis function network: Gaussian units on k-means centers (fitted on train), linear output",
)
def build_rbfn(
    input_spec: InputSpec,
    num_outputs: int,
    *,
    output_activation: str | None = "softmax",
    centers: int = 100,
    trainable_centers: bool = True,
    init_samples: int = 5000,
    seed: int = 0,
) -> keras.Model:
    """Builds a radial basis function network (inputs are flattened).

    Args:
        input_spec: the network input; any fixed shape, flattened first.
        num_outputs: width of the output layer.
        output_activation: activation of the output layer (``None`` for regression or logits).
        centers: number of Gaussian units, placed by k-means on the training inputs
            at the start of the first ``fit``.
        trainable_centers: whether backprop moves the centers after k-means
            (widths and the output layer are always trained).
        init_samples: at most this many training inputs feed k-means.
        seed: seed of k-means and of the initial weights.

    Returns:
        An uncompiled, built :class:`RBFNetwork` named ``"rbfn"``.
    """
    if centers < 1:
        raise DlsuiteError(f"rbfn centers must be at least 1, got {centers}.")
    if init_samples < centers:
        raise DlsuiteError(f"rbfn init_samples ({init_samples}) must be at least centers ({centers}).")
    if any(s is None for s in input_spec.shape):
        raise DlsuiteError(f"rbfn needs a fixed input shape, got {input_spec.shape}.")
    model = RBFNetwork(
        centers,
        num_outputs,
        output_activation,
        trainable_centers=trainable_centers,
        init_samples=init_samples,
        seed=seed,
        name="rbfn",
    )
    model.build((None, *input_spec.shape))
    return model
