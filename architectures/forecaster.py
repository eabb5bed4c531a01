"""Forecasting detector: predict each window's last step from the steps before it.

Trained on normal data (labels are ignored), a recurrent network learns how a series goes
on; where it goes on differently, the prediction error is large. This is the detector of
LSTM-AD (Malhotra et al., 2015): a stacked LSTM predicts the next values and the anomaly
score is the prediction error. Here a ``[T, F]`` window scores the point it ends on: the
network reads steps ``0 .. T-2`` and predicts step ``T-1``, and the score is the squared
error per feature, divided by that feature's usual squared error in training (a moving
average over the training steps), averaged over features. A score near 1 is a typical
step; 10 is an error ten times the usual. The features arrive
standardized (the anomaly task's preprocessor), so the network works in standard units.

Unlike a reconstruction autoencoder, nothing in the window's last step reaches the network
before it predicts it, so an unusual step cannot be copied through: it has to be expected.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import tensorflow as tf
from keras import layers, ops

from dlsuite.architectures.custom_steps import CustomStepModel, scale_for_replicas, split_batch
from dlsuite.architectures.registry import InputSpec, register
from dlsuite.errors import DlsuiteError

CELLS = {"lstm": layers.LSTM, "gru": layers.GRU}


@keras.saving.register_keras_serializable(package="dlsuite")
class Forecaster(CustomStepModel):
    """A network from ``[batch, T-1, F]`` history to ``[batch, F]`` next step, scored by its error.

    ``call(x)`` on ``[batch, T, F]`` windows returns the prediction of each window's last
    step. ``fit`` ignores labels and any compiled loss; it logs ``loss``, the mean squared
    prediction error. Each training step also moves ``error_scale``, every feature's usual
    squared error, towards the batch's (exponential moving average), and
    :meth:`anomaly_score` divides by it.

    Args:
        network: a model from ``[T-1, F]`` to ``[F]``.
        momentum: weight of the old ``error_scale`` at each step (the first step sets it).
        **kwargs: ``keras.Model`` arguments.
    """

    def __init__(self, network: keras.Model, momentum: float = 0.9, **kwargs: Any):
        super().__init__(**kwargs)
        self.network = network
        self.momentum = float(momentum)
        features = int(network.output_shape[-1])
        # Replicas each see their own batch; their updates are averaged.
        self.error_scale = self.add_weight(
            shape=(features,), initializer="ones", trainable=False, aggregation="mean", name="error_scale"
        )
        self.scale_set = self.add_weight(
            shape=(), initializer="zeros", trainable=False, aggregation="only_first_replica", name="scale_set"
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.built = True

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.loss_tracker]

    def call(self, inputs: Any, training: bool = False) -> Any:
        return self.network(inputs[:, :-1], training=training)

    def _errors(self, x: Any, training: bool) -> Any:
        x = ops.cast(x, "float32")
        return ops.square(x[:, -1] - ops.cast(self(x, training=training), "float32"))

    def anomaly_score(self, x: Any) -> Any:
        """Squared error of the last step's prediction over the feature's usual one, averaged over features.

        Args:
            x: ``[batch, T, F]`` windows.

        Returns:
            float32 tensor ``[batch]``.
        """
        scale = ops.maximum(ops.cast(self.error_scale, "float32"), 1e-12)
        return ops.mean(self._errors(x, training=False) / scale, axis=-1)

    def train_step(self, data: Any) -> dict[str, Any]:
        x, _ = split_batch(data)
        with tf.GradientTape() as tape:
            errors = self._errors(x, training=True)
            loss = ops.mean(errors)
            if self.losses:
                loss = loss + ops.sum(self.losses)
            scaled = self.optimizer.scale_loss(scale_for_replicas(loss))
        gradients = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        self._track_errors(ops.stop_gradient(errors))
        self.loss_tracker.update_state(loss, sample_weight=ops.shape(x)[0])
        return {"loss": self.loss_tracker.result()}

    def _track_errors(self, errors: Any) -> None:
        batch = ops.mean(errors, axis=0)
        old = ops.where(self.scale_set > 0, ops.cast(self.error_scale, "float32"), batch)
        self.error_scale.assign(self.momentum * old + (1.0 - self.momentum) * batch)
        self.scale_set.assign(1.0)

    def test_step(self, data: Any) -> dict[str, Any]:
        x, _ = split_batch(data)
        loss = ops.mean(self._errors(x, training=False))
        self.loss_tracker.update_state(loss, sample_weight=ops.shape(x)[0])
        return {"loss": self.loss_tracker.result()}

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "network": keras.saving.serialize_keras_object(self.network),
            "momentum": self.momentum,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Forecaster":
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        return cls(**config)


@register(
    "forecaster",
    input_kinds=("sequence",),
    summary="LSTM/GRU forecaster of each window's last step (LSTM-AD); unsupervised; "
    "anomaly_score = squared prediction error over its usual size",
)
def build_forecaster(
    input_spec: InputSpec,
    num_outputs: int,
    *,
    output_activation: str | None = None,
    cell: str = "lstm",
    hidden_units: Sequence[int] = (32,),
    dropout: float = 0.0,
    momentum: float = 0.9,
) -> Forecaster:
    """Builds a forecasting detector.

    Args:
        input_spec: ``sequence`` ``[T, F]`` windows, ``T >= 2``.
        num_outputs: ignored: the prediction has the window's ``F`` features.
        output_activation: ignored (the registry passes the task head's activation).
        cell: ``lstm`` or ``gru``.
        hidden_units: widths of the stacked recurrent layers, first to last.
        dropout: dropout rate of the recurrent layers' inputs.
        momentum: of the moving average of the training errors that scales the score.

    Returns:
        An uncompiled :class:`Forecaster` named ``"forecaster"``.
    """
    del num_outputs, output_activation
    shape = tuple(input_spec.shape)
    if len(shape) != 2 or shape[0] is None or shape[1] is None or int(shape[0]) < 2:
        raise DlsuiteError(f"the forecaster takes [time, features] windows of at least 2 steps, got shape {shape}.")
    if cell not in CELLS:
        raise DlsuiteError(f"forecaster cell must be one of {', '.join(CELLS)}, got {cell!r}.")
    if isinstance(hidden_units, int):
        hidden_units = (hidden_units,)
    hidden_units = tuple(int(u) for u in hidden_units)
    if not hidden_units or any(u < 1 for u in hidden_units):
        raise DlsuiteError(f"forecaster hidden_units must be positive integers (at least one), got {list(hidden_units)}.")
    if not 0.0 <= dropout < 1.0:
        raise DlsuiteError(f"forecaster dropout must be in [0, 1), got {dropout}.")
    if not 0.0 <= momentum < 1.0:
        raise DlsuiteError(f"forecaster momentum must be in [0, 1), got {momentum}.")
    steps, features = int(shape[0]), int(shape[1])
    history = keras.Input(shape=(steps - 1, features), name="history")
    x = history
    for i, units in enumerate(hidden_units, start=1):
        last = i == len(hidden_units)
        x = CELLS[cell](units, return_sequences=not last, dropout=dropout, name=f"{cell}{i}")(x)
    prediction = layers.Dense(features, dtype="float32", name="next_step")(x)
    return Forecaster(keras.Model(history, prediction, name="network"), momentum=momentum, name="forecaster")
