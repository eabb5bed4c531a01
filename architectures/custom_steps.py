"""Helpers for families that write their own ``train_step`` (autoencoders, GANs).

Keras's built-in step divides the loss by the number of replicas before taking
gradients, because a tf.distribute optimizer *sums* the replicas' gradients;
custom steps must do the same to train at the same effective learning rate
under a ``MirroredStrategy`` or a TPU as on one device.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from keras import ops


def split_batch(data: Any) -> tuple[Any, Any]:
    """``(x, y)`` from a ``fit`` batch: ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``.

    Args:
        data: one batch as Keras hands it to ``train_step``.

    Returns:
        ``(x, y)``; ``y`` is ``None`` when the batch has no labels.
    """
    x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
    return x, y


def scale_for_replicas(loss: Any) -> Any:
    """Divide a per-replica mean loss by the replica count before its gradient is taken.

    Args:
        loss: scalar loss, averaged over this replica's examples.

    Returns:
        The loss whose gradients, summed over replicas by the optimizer, give
        the gradient of the global mean.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1:
        loss = ops.multiply(loss, ops.cast(1.0 / replicas, loss.dtype))
    return loss


def per_example_mean(values: Any) -> Any:
    """Mean over every axis but the first: ``[batch, ...] -> [batch]`` (float32)."""
    values = ops.cast(values, "float32")
    axes = tuple(range(1, len(values.shape)))
    return ops.mean(values, axis=axes) if axes else values


class CustomStepModel(keras.Model):
    """Base of models whose ``train_step``/``test_step`` compute their own objective.

    ``compile`` accepts the task's loss and metrics, as the runner passes them,
    and drops them: the objective is the model's own, and a supervised loss
    could not even be built against its outputs (a reconstruction shaped like
    the input, for instance). Optimizers are built in ``compile``, i.e. inside
    the caller's strategy scope, and again when a ``.keras`` file is loaded.
    """

    def compile(
        self,
        optimizer: Any = "adam",
        loss: Any = None,
        loss_weights: Any = None,
        metrics: Any = None,
        weighted_metrics: Any = None,
        **kwargs: Any,
    ) -> None:
        """``keras.Model.compile``; ``loss`` and the metrics are accepted and ignored."""
        del loss, loss_weights, metrics, weighted_metrics
        super().compile(optimizer=optimizer, **kwargs)
        self.build_optimizers()

    def build_optimizers(self) -> None:
        """Create the optimizers' variables (subclasses with several optimizers override)."""
        self.optimizer.build(self.trainable_variables)

    def compile_from_config(self, config: dict[str, Any]) -> None:
        self.compile(**keras.saving.deserialize_keras_object(config))


class ObjectiveDetector(CustomStepModel):
    """Base of anomaly detectors trained on rows alone by an objective of their own.

    Subclasses implement :meth:`detector_loss` and may override :meth:`validation_loss`
    (default: the same objective) and :meth:`update_statistics` (what a detector tracks
    after each training step, e.g. its usual reconstruction error). Labels in the batches
    are ignored; the one reported metric is ``loss``.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.loss_tracker]

    def detector_loss(self, x: Any) -> Any:
        """The training objective on one batch of rows (a scalar)."""
        raise NotImplementedError

    def validation_loss(self, x: Any) -> Any:
        """The objective on held-out rows (a scalar); by default the training one."""
        return self.detector_loss(x)

    def update_statistics(self, x: Any) -> None:
        """Called with each training batch after the weights were updated; by default nothing."""

    def train_step(self, data: Any) -> dict[str, Any]:
        x, _ = split_batch(data)
        with tf.GradientTape() as tape:
            loss = self.detector_loss(x)
            scaled = self.optimizer.scale_loss(scale_for_replicas(loss))
        gradients = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        self.update_statistics(x)
        self.loss_tracker.update_state(loss, sample_weight=ops.shape(x)[0])
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data: Any) -> dict[str, Any]:
        x, _ = split_batch(data)
        self.loss_tracker.update_state(self.validation_loss(x), sample_weight=ops.shape(x)[0])
        return {"loss": self.loss_tracker.result()}
