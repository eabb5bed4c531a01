"""Self-organizing map (Kohonen): a 2-D grid of prototypes trained by competitive learning.

Each training batch finds every example's best-matching unit (BMU, the
nearest prototype) and moves each unit ``j`` toward the examples whose BMU is
near ``j`` on the grid, weighted by a Gaussian neighbourhood
``h_ij = exp(-d_grid(bmu_i, j)^2 / (2 sigma^2))``::

    w_j += lr * sum_i h_ij (x_i - w_j) / max(1, sum_i h_ij)

(a unit moves at most ``lr`` of the way to the neighbourhood-weighted batch
mean). ``sigma`` and ``lr`` decay exponentially from their initial to their
final values over ``decay_steps`` training steps, then stay there. The
prototypes start at random examples of the first training batch (plus a
little jitter to separate duplicates).

The prototypes are non-trainable variables updated with ``assign`` in
``train_step`` (the compiled optimizer is not used). Under a tf.distribute
strategy they aggregate by mean, so each replica's update is averaged.
"""

from __future__ import annotations

import math
import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dlsuite.architectures.custom_steps import CustomStepModel
from dlsuite.architectures.rbm import check_fixed_shape, check_positive_int
from dlsuite.architectures.registry import InputSpec, register
from dlsuite.errors import DlsuiteError

_INIT_JITTER = 1e-3


@keras.saving.register_keras_serializable(package="dlsuite")
class SOM(CustomStepModel):
    """A self-organizing map trained with ``fit``.

    ``call(x)`` returns the Euclidean distance of each example to every unit,
    float32 [batch, grid_rows * grid_cols], units in row-major grid order
    (unit ``r * grid_cols + c`` is at row ``r``, column ``c``). Inputs of any
    shape are flattened. ``fit`` takes ``x`` or ``(x, y)`` batches and ignores
    ``y``; ``compile`` drops a loss or metrics and the optimizer goes unused. Logs: ``loss``
    (quantization error: mean distance to the BMU before the update; the batch the
    prototypes start from is left out),
    ``sigma`` and ``som_learning_rate`` (current schedule values).

    Args:
        input_shape_: per-example input shape.
        grid_rows: rows of the unit grid.
        grid_cols: columns of the unit grid.
        sigma: initial neighbourhood radius in grid units (``None``: half the larger grid side).
        sigma_final: neighbourhood radius after ``decay_steps``.
        learning_rate: initial learning rate.
        learning_rate_final: learning rate after ``decay_steps``.
        decay_steps: training steps over which sigma and the learning rate decay.
        seed: seed of the initialization.
        **kwargs: ``keras.Model`` arguments (name).
    """

    def __init__(
        self,
        input_shape_: tuple[int, ...],
        grid_rows: int = 10,
        grid_cols: int = 10,
        sigma: float | None = None,
        sigma_final: float = 0.5,
        learning_rate: float = 0.5,
        learning_rate_final: float = 0.01,
        decay_steps: int = 1000,
        seed: int = 0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.input_shape_ = tuple(int(d) for d in input_shape_)
        self.num_features = int(np.prod(self.input_shape_))
        self.grid_rows = check_positive_int(grid_rows, "som grid_rows")
        self.grid_cols = check_positive_int(grid_cols, "som grid_cols")
        self.num_units = self.grid_rows * self.grid_cols
        if self.num_units < 2:
            raise DlsuiteError("som needs at least 2 units: raise grid_rows or grid_cols.")
        self.sigma = None if sigma is None else float(sigma)
        self.sigma_final = float(sigma_final)
        self.learning_rate = float(learning_rate)
        self.learning_rate_final = float(learning_rate_final)
        self.decay_steps = check_positive_int(decay_steps, "som decay_steps")
        self.seed = int(seed)
        initial_sigma = self.sigma if self.sigma is not None else max(self.grid_rows, self.grid_cols) / 2.0
        for name, value in (("sigma", initial_sigma), ("sigma_final", self.sigma_final)):
            if not math.isfinite(value) or value <= 0:
                raise DlsuiteError(f"som {name} must be a positive number of grid cells, got {value!r}.")
        rates = (("learning_rate", self.learning_rate), ("learning_rate_final", self.learning_rate_final))
        for name, value in rates:
            if not 0.0 < value <= 1.0:
                raise DlsuiteError(f"som {name} must be in (0, 1], got {value!r}.")
        self._initial_sigma = initial_sigma

        rows, cols = np.meshgrid(np.arange(self.grid_rows), np.arange(self.grid_cols), indexing="ij")
        self._coords = np.stack([rows.ravel(), cols.ravel()], axis=1).astype("float32")  # [units, 2]
        diff = self._coords[:, None, :] - self._coords[None, :, :]
        self._grid_sq_dist = tf.constant(np.sum(diff**2, axis=-1), tf.float32)  # [units, units]
        # Adjacent on the grid = one of the 8 surrounding cells (as MiniSom's topographic error).
        self._adjacent = tf.constant(np.max(np.abs(diff), axis=-1) <= 1)

        self.prototypes = self.add_weight(
            shape=(self.num_units, self.num_features),
            initializer=keras.initializers.RandomNormal(stddev=0.01, seed=self.seed),
            trainable=False,
            aggregation="mean",
            name="prototypes",
        )
        self.step = self.add_weight(
            shape=(), initializer="zeros", dtype="int64", trainable=False,
            aggregation="only_first_replica", name="step",
        )
        self.initialized = self.add_weight(
            shape=(), initializer="zeros", dtype="float32", trainable=False,
            aggregation="only_first_replica", name="initialized",
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.built = True

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.loss_tracker]

    def _flat(self, x: tf.Tensor) -> tf.Tensor:
        return tf.reshape(tf.cast(x, tf.float32), (-1, self.num_features))

    def _squared_distances(self, v: tf.Tensor) -> tf.Tensor:
        w = tf.convert_to_tensor(self.prototypes)
        sq = (
            tf.reduce_sum(tf.square(v), axis=1, keepdims=True)
            - 2.0 * tf.matmul(v, w, transpose_b=True)
            + tf.reduce_sum(tf.square(w), axis=1)[None, :]
        )
        return tf.maximum(sq, 0.0)

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        return tf.sqrt(self._squared_distances(self._flat(x)))

    def best_matching_units(self, x: tf.Tensor) -> tf.Tensor:
        """Grid position of each example's BMU, int32 [batch, 2] as (row, col)."""
        index = tf.argmin(self._squared_distances(self._flat(x)), axis=1, output_type=tf.int32)
        return tf.stack([index // self.grid_cols, index % self.grid_cols], axis=1)

    def anomaly_score(self, x: tf.Tensor) -> tf.Tensor:
        """Distance to the best-matching unit, float32 [batch]: higher = more unusual."""
        return tf.sqrt(tf.reduce_min(self._squared_distances(self._flat(x)), axis=1))

    def quantization_error(self, x: tf.Tensor) -> tf.Tensor:
        """Mean distance of the examples to their BMU (scalar)."""
        return tf.reduce_mean(self.anomaly_score(x))

    def topographic_error(self, x: tf.Tensor) -> tf.Tensor:
        """Fraction of examples whose two nearest units are not grid neighbours (scalar in [0, 1])."""
        _, top2 = tf.math.top_k(-self._squared_distances(self._flat(x)), k=2)
        adjacent = tf.gather_nd(self._adjacent, top2)
        return tf.reduce_mean(tf.cast(tf.logical_not(adjacent), tf.float32))

    def u_matrix(self) -> np.ndarray:
        """Mean distance of each unit's prototype to its (up to 8) grid neighbours, numpy [rows, cols]."""
        w = np.asarray(self.prototypes).reshape(self.grid_rows, self.grid_cols, -1)
        total = np.zeros((self.grid_rows, self.grid_cols))
        count = np.zeros((self.grid_rows, self.grid_cols))
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                if dr == dc == 0:
                    continue
                r0, r1 = max(0, -dr), self.grid_rows - max(0, dr)
                c0, c1 = max(0, -dc), self.grid_cols - max(0, dc)
                d = np.linalg.norm(w[r0:r1, c0:c1] - w[r0 + dr : r1 + dr, c0 + dc : c1 + dc], axis=-1)
                total[r0:r1, c0:c1] += d
                count[r0:r1, c0:c1] += 1
        return total / np.maximum(count, 1)

    def schedule(self) -> tuple[tf.Tensor, tf.Tensor]:
        """Current (sigma, learning rate): exponential decay over ``decay_steps``, then constant."""
        progress = tf.minimum(tf.cast(self.step, tf.float32) / float(self.decay_steps), 1.0)
        sigma = self._initial_sigma * (self.sigma_final / self._initial_sigma) ** progress
        lr = self.learning_rate * (self.learning_rate_final / self.learning_rate) ** progress
        return sigma, lr

    def _initialize_from(self, v: tf.Tensor) -> None:
        """Prototypes := random examples of this batch (+ jitter), the first time only."""

        def from_batch() -> tf.Tensor:
            seed = tf.constant([self.seed, 1], tf.int64)
            index = tf.random.stateless_uniform(
                [self.num_units], seed=seed, maxval=tf.shape(v)[0], dtype=tf.int32
            )
            jitter = tf.random.stateless_normal([self.num_units, self.num_features], seed=seed + [0, 1])
            return tf.gather(v, index) + _INIT_JITTER * jitter

        fresh = self.initialized < 0.5
        self.prototypes.assign(tf.cond(fresh, from_batch, lambda: tf.convert_to_tensor(self.prototypes)))
        self.initialized.assign(1.0)

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        v = self._flat(x)
        # The batch the prototypes start from would show a flattering error: leave it out of "loss".
        counted = tf.cast(self.initialized, tf.float32)
        self._initialize_from(v)
        sq = self._squared_distances(v)
        bmu = tf.argmin(sq, axis=1, output_type=tf.int32)
        error = tf.reduce_mean(tf.sqrt(tf.reduce_min(sq, axis=1)))
        self.loss_tracker.update_state(error, sample_weight=counted)

        sigma, lr = self.schedule()
        h = tf.exp(-tf.gather(self._grid_sq_dist, bmu) / (2.0 * sigma**2))  # [batch, units]
        w = tf.convert_to_tensor(self.prototypes)
        weight = tf.reduce_sum(h, axis=0)[:, None]  # [units, 1]
        pull = tf.matmul(h, v, transpose_a=True) - weight * w  # sum_i h_ij (x_i - w_j)
        self.prototypes.assign(w + lr * pull / tf.maximum(weight, 1.0))
        self.step.assign_add(1)
        return {"loss": self.loss_tracker.result(), "sigma": sigma, "som_learning_rate": lr}

    def test_step(self, data: Any) -> dict[str, tf.Tensor]:
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        self.loss_tracker.update_state(self.quantization_error(x))
        return {"loss": self.loss_tracker.result()}

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_shape_": list(self.input_shape_),
            "grid_rows": self.grid_rows,
            "grid_cols": self.grid_cols,
            "sigma": self.sigma,
            "sigma_final": self.sigma_final,
            "learning_rate": self.learning_rate,
            "learning_rate_final": self.learning_rate_final,
            "decay_steps": self.decay_steps,
            "seed": self.seed,
        }


def plot_u_matrix(model: SOM, path: str | os.PathLike) -> None:
    """Write the U-matrix of a trained SOM as a PNG (dark = large distances: cluster borders).

    Args:
        model: a trained :class:`SOM`.
        path: the PNG file to write.
    """
    from dlsuite.reporting import plt, save_figure  # Agg backend, set up by the reporting module

    u = model.u_matrix()
    size = (max(4.0, 0.4 * model.grid_cols + 2), max(3.5, 0.4 * model.grid_rows + 1.5))
    fig, ax = plt.subplots(figsize=size)
    image = ax.imshow(u, cmap="bone_r", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="mean distance to neighbours")
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_title(f"SOM U-matrix ({model.grid_rows}x{model.grid_cols})")
    save_figure(fig, path)


@register(
    "som",
    input_kinds=("tabular", "image"),
    summary="self-organizing map (2-D grid); call = distances to units, anomaly_score = BMU distance",
)
def build_som(
    input_spec: InputSpec,
    num_outputs: int,
    *,
    output_activation: str | None = None,
    grid_rows: int = 10,
    grid_cols: int = 10,
    sigma: float | None = None,
    sigma_final: float = 0.5,
    learning_rate: float = 0.5,
    learning_rate_final: float = 0.01,
    decay_steps: int = 1000,
    seed: int = 0,
) -> keras.Model:
    """Builds a self-organizing map (unsupervised; ``num_outputs``, ``output_activation`` ignored).

    Args:
        input_spec: tabular features or images (flattened).
        num_outputs: ignored: the output has one distance per unit (``grid_rows * grid_cols``).
        output_activation: ignored.
        grid_rows: rows of the unit grid.
        grid_cols: columns of the unit grid.
        sigma: initial neighbourhood radius in grid cells (``None``: half the larger side).
        sigma_final: neighbourhood radius reached after ``decay_steps``.
        learning_rate: initial learning rate, in (0, 1].
        learning_rate_final: learning rate reached after ``decay_steps``.
        decay_steps: training steps (batches) of the exponential decay; about
            the number of batches in the planned training.
        seed: seed of the initialization.

    Returns:
        An uncompiled :class:`SOM` named ``"som"``.
    """
    del num_outputs, output_activation
    check_fixed_shape(input_spec, "som")
    return SOM(
        input_spec.shape,
        grid_rows=grid_rows,
        grid_cols=grid_cols,
        sigma=sigma,
        sigma_final=sigma_final,
        learning_rate=learning_rate,
        learning_rate_final=learning_rate_final,
        decay_steps=decay_steps,
        seed=seed,
        name="som",
    )
