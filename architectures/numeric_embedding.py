"""Per-feature embeddings of numeric values, for tabular networks.

Gorishniy, Rubachev and Babenko (2022), "On Embeddings for Numerical Features in
Tabular Deep Learning", found that an MLP gains most when each scalar feature is
first mapped to a vector of its own. This module holds their periodic variant
with a learned linear map and ReLU on top ("PLR").
"""

from __future__ import annotations

import math
from typing import Any

import keras

from dlsuite.errors import DlsuiteError

NUMERIC_EMBEDDINGS = ("none", "periodic")


@keras.saving.register_keras_serializable(package="dlsuite")
class PeriodicEmbedding(keras.layers.Layer):
    """Each numeric feature ``x_i`` as ``relu(W_i [sin(2 pi c_i x_i), cos(2 pi c_i x_i)] + b_i)``.

    The frequencies ``c_i`` (``frequencies`` per feature, initialised from
    ``N(0, frequency_scale^2)``) and the per-feature linear maps ``W_i``, ``b_i`` are
    trained; no weight is shared between features.

    Args:
        frequencies: frequencies per feature (the sin/cos vector has twice as many entries).
        embedding_dim: width of each feature's embedding.
        frequency_scale: standard deviation of the initial frequencies; larger values let
            the network resolve finer detail of a standardized feature.
        **kwargs: ``keras.layers.Layer`` arguments.

    Input shape: ``[batch, features]``. Output shape: ``[batch, features * embedding_dim]``.
    """

    def __init__(self, frequencies: int = 16, embedding_dim: int = 8, frequency_scale: float = 0.5, **kwargs: Any):
        super().__init__(**kwargs)
        if frequencies < 1 or embedding_dim < 1 or frequency_scale <= 0:
            raise DlsuiteError(
                "periodic numeric embedding needs frequencies >= 1, embedding_dim >= 1 and frequency_scale > 0, "
                f"got {frequencies}, {embedding_dim}, {frequency_scale}."
            )
        self.frequencies = int(frequencies)
        self.embedding_dim = int(embedding_dim)
        self.frequency_scale = float(frequency_scale)

    def build(self, input_shape: Any) -> None:
        features = int(input_shape[-1])
        self.coefficients = self.add_weight(
            name="coefficients", shape=(features, self.frequencies),
            initializer=keras.initializers.RandomNormal(stddev=self.frequency_scale),
        )
        self.kernel = self.add_weight(
            name="kernel", shape=(features, 2 * self.frequencies, self.embedding_dim),
            initializer="glorot_uniform",
        )
        self.bias = self.add_weight(name="bias", shape=(features, self.embedding_dim), initializer="zeros")
        super().build(input_shape)

    def call(self, x: Any) -> Any:
        ops = keras.ops
        angles = 2.0 * math.pi * ops.expand_dims(ops.cast(x, self.compute_dtype), -1) * self.coefficients
        periodic = ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)
        embedded = ops.relu(ops.einsum("bfk,fkd->bfd", periodic, self.kernel) + self.bias)
        return ops.reshape(embedded, (-1, embedded.shape[1] * self.embedding_dim))

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, int]:
        return (input_shape[0], int(input_shape[-1]) * self.embedding_dim)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "frequencies": self.frequencies,
            "embedding_dim": self.embedding_dim,
            "frequency_scale": self.frequency_scale,
        }
