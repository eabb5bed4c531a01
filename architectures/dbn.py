"""Deep belief network: stacked RBMs pretrained greedily, then fine-tuned as a classifier.

The network is ``x -> sigmoid(x W1 + c1) -> ... -> sigmoid(. Wn + cn) -> Dense``
(every hidden layer an :class:`~dlsuite.architectures.rbm.RBMLayer`, used for
``p(h | v)``). Everything happens in ONE ``model.fit``, in epochs:

* epochs ``[k * pretrain_epochs, (k + 1) * pretrain_epochs)`` pretrain RBM
  layer ``k`` by CD-k on the (mean-field) output of the layers below it,
  which stay fixed. In the same steps the output head learns by backprop on
  the current top features (also held fixed), so ``val_loss`` is the
  validation loss of a real classifier from the first epoch on and keeps
  improving: EarlyStopping and best-checkpointing on ``val_loss`` see a
  sensible curve instead of an untrained head's.
* the following epochs fine-tune the whole network by backprop.

The model tracks the epoch in a non-trainable variable set by a callback its
``fit`` adds (resumed runs get the right epoch from BackupAndRestore), and
``train_step`` picks the phase from it, so the phase switch costs no
retracing and works under XLA and any tf.distribute strategy. Plan for
``epochs > len(hidden_units) * pretrain_epochs``. With ``pretrain=False`` the
same network starts from its random initialization and every epoch is a
fine-tuning epoch (the baseline a benchmark compares against).

``test_step`` is Keras's own: the compiled (supervised) loss and metrics.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from dlsuite.architectures.rbm import (
    RBMLayer,
    check_fixed_shape,
    check_positive_int,
    check_visible,
    replica_scale,
    step_seed,
)
from dlsuite.architectures.registry import InputSpec, register
from dlsuite.errors import DlsuiteError


class _EpochCounter(keras.callbacks.Callback):
    """Writes the current epoch index into the model's ``epoch`` variable."""

    def __init__(self, variable: keras.Variable):
        super().__init__()
        self.variable = variable

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.variable.assign(epoch)


def _gradients(tape: tf.GradientTape, target: tf.Tensor, variables: list[keras.Variable]) -> list[tf.Tensor]:
    """Gradients with zeros for unconnected variables (the visible biases never reach the classifier)."""
    grads = tape.gradient(target, variables)
    return [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]


@keras.saving.register_keras_serializable(package="dlsuite")
class DBN(keras.Model):
    """A deep belief network classifier (see the module docstring for the training schedule).

    ``call(x)`` returns the head's output [batch, num_outputs]; inputs of any
    shape are flattened.

    Args:
        visible_shape: per-example input shape.
        num_outputs: width of the output layer.
        hidden_units: width of each RBM layer, bottom to top.
        visible: visible units of the first RBM: ``"gaussian"`` (standardized
            inputs) or ``"bernoulli"`` (inputs in [0, 1]); upper RBMs are Bernoulli.
        cd_steps: Gibbs steps of CD-k pretraining.
        pretrain: greedy layer-wise pretraining before fine-tuning (``False``: random init).
        pretrain_epochs: pretraining epochs per RBM layer.
        pretrain_learning_rate: learning rate of the plain SGD that applies the CD
            updates (``None``: 0.1 for Bernoulli, 0.01 for Gaussian visible units).
        output_activation: activation of the output layer (``None`` for logits).
        seed: seed of the Gibbs sampling.
        **kwargs: ``keras.Model`` arguments (name).
    """

    def __init__(
        self,
        visible_shape: Sequence[int],
        num_outputs: int,
        hidden_units: Sequence[int] = (256, 128),
        visible: str = "gaussian",
        cd_steps: int = 1,
        pretrain: bool = True,
        pretrain_epochs: int = 2,
        pretrain_learning_rate: float | None = None,
        output_activation: str | None = "softmax",
        seed: int = 0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.visible_shape = tuple(int(d) for d in visible_shape)
        self.num_visible = int(np.prod(self.visible_shape))
        self.num_outputs = check_positive_int(num_outputs, "dbn num_outputs")
        self.hidden_units = tuple(check_positive_int(u, "every dbn hidden_units entry") for u in hidden_units)
        if not self.hidden_units:
            raise DlsuiteError("dbn hidden_units needs at least one layer width, e.g. [256, 128].")
        self.visible = check_visible(visible, "dbn")
        self.cd_steps = check_positive_int(cd_steps, "dbn cd_steps")
        self.pretrain = bool(pretrain)
        self.pretrain_epochs = check_positive_int(pretrain_epochs, "dbn pretrain_epochs")
        if pretrain_learning_rate is None:
            # Gaussian visible units diverge at the rates binary RBMs like (Hinton's guide, 13.2).
            pretrain_learning_rate = 0.1 if self.visible == "bernoulli" else 0.01
        self.pretrain_learning_rate = float(pretrain_learning_rate)
        if not 0.0 < self.pretrain_learning_rate <= 1.0:
            raise DlsuiteError(
                f"dbn pretrain_learning_rate must be in (0, 1], got {pretrain_learning_rate!r}."
            )
        self.output_activation = output_activation
        self.seed = int(seed)
        # CD needs steps far larger than a fine-tuning optimizer's (Adam at 1e-3 barely moves the
        # weights in a few epochs), so pretraining has its own plain SGD.
        self.pretrain_optimizer = keras.optimizers.SGD(self.pretrain_learning_rate, name="pretrain_sgd")

        self.rbms = []
        width = self.num_visible
        for i, units in enumerate(self.hidden_units):
            layer = RBMLayer(
                units,
                self.visible if i == 0 else "bernoulli",
                kernel_initializer=keras.initializers.GlorotUniform(seed=self.seed + i),
                name=f"rbm{i + 1}",
            )
            layer.build((None, width))
            self.rbms.append(layer)
            width = units
        self.head = keras.layers.Dense(
            self.num_outputs, activation=output_activation, dtype="float32", name="predictions"
        )
        self.head.build((None, width))
        self.epoch = self.add_weight(
            shape=(), initializer="zeros", dtype="int64", trainable=False,
            aggregation="only_first_replica", name="epoch",
        )
        self.built = True

    def fit(self, *args: Any, callbacks: Any = None, **kwargs: Any) -> keras.callbacks.History:
        """``keras.Model.fit`` plus the callback telling ``train_step`` the epoch (callbacks by keyword)."""
        counter = _EpochCounter(self.epoch)
        if isinstance(callbacks, keras.callbacks.CallbackList):
            callbacks.append(counter)
        else:
            callbacks = [*(callbacks or []), counter]
        return super().fit(*args, callbacks=callbacks, **kwargs)

    def _features(self, x: tf.Tensor) -> list[tf.Tensor]:
        """The input (flattened) and every RBM layer's ``p(h | v)``, bottom to top."""
        out = [tf.reshape(tf.cast(x, tf.float32), (-1, self.num_visible))]
        for layer in self.rbms:
            out.append(layer.hidden_probs(out[-1]))
        return out

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        return self.head(self._features(x)[-1])

    def phase(self) -> tf.Tensor:
        """Index of the RBM layer being pretrained, or ``len(hidden_units)`` when fine-tuning."""
        n = len(self.rbms)
        if not self.pretrain:
            return tf.constant(n, tf.int64)
        return tf.minimum(tf.convert_to_tensor(self.epoch) // self.pretrain_epochs, n)

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        phase = self.phase()
        fine_tuning = tf.cast(tf.equal(phase, len(self.rbms)), tf.float32)
        cd_total = tf.constant(0.0)
        with tf.GradientTape(persistent=True) as tape:
            features = self._features(x)
            top = features[-1]
            # While pretraining, the head learns on fixed features: no gradient reaches the RBMs.
            top = fine_tuning * top + (1.0 - fine_tuning) * tf.stop_gradient(top)
            y_pred = self.head(top)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            if self.pretrain:
                for k, layer in enumerate(self.rbms):
                    v = tf.stop_gradient(features[k])
                    cd = tf.cond(
                        tf.equal(phase, k),
                        lambda layer=layer, v=v, k=k: layer.contrastive_divergence(
                            v, self.cd_steps, step_seed(self, self.seed, k)
                        ),
                        lambda: tf.constant(0.0),
                    )
                    cd_total = cd_total + cd * replica_scale()
            scaled = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        if self.pretrain:
            rbm_variables = [v for layer in self.rbms for v in layer.trainable_variables]
            cd_grads = _gradients(tape, cd_total, rbm_variables)
            self.pretrain_optimizer.apply_gradients(zip(cd_grads, rbm_variables))
        self.optimizer.apply_gradients(zip(_gradients(tape, scaled, variables), variables))
        del tape
        for metric in self.metrics:
            if metric.name == "loss":
                # compute_loss scaled the loss by 1 / replicas for the gradient all-reduce.
                metric.update_state(loss / replica_scale(), sample_weight=tf.shape(top)[0])
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "visible_shape": list(self.visible_shape),
            "num_outputs": self.num_outputs,
            "hidden_units": list(self.hidden_units),
            "visible": self.visible,
            "cd_steps": self.cd_steps,
            "pretrain": self.pretrain,
            "pretrain_epochs": self.pretrain_epochs,
            "pretrain_learning_rate": self.pretrain_learning_rate,
            "output_activation": self.output_activation,
            "seed": self.seed,
        }


@register(
    "dbn",
    input_kinds=("tabular", "image"),
    summary="deep belief net: RBM stack pretrained greedily (CD-k), fine-tuned with a dense head, one fit",
)
def build_dbn(
    input_spec: InputSpec,
    num_outputs: int,
    *,
    output_activation: str | None = "softmax",
    hidden_units: Sequence[int] = (256, 128),
    visible: str = "gaussian",
    cd_steps: int = 1,
    pretrain: bool = True,
    pretrain_epochs: int = 2,
    pretrain_learning_rate: float | None = None,
    seed: int = 0,
) -> keras.Model:
    """Builds a deep belief network classifier.

    Args:
        input_spec: tabular features or images (flattened).
        num_outputs: width of the output layer.
        output_activation: activation of the output layer (``None`` for logits).
        hidden_units: width of each RBM layer, bottom to top (an int: one layer).
        visible: first RBM's visible units: ``"gaussian"`` for standardized
            inputs (the suite's preprocessing), ``"bernoulli"`` for inputs in [0, 1].
        cd_steps: Gibbs steps ``k`` of CD-k pretraining.
        pretrain: pretrain the RBMs greedily (``False``: the same network, randomly initialized).
        pretrain_epochs: pretraining epochs per RBM layer; fine-tuning starts at
            epoch ``len(hidden_units) * pretrain_epochs``.
        pretrain_learning_rate: learning rate of the plain SGD applying the CD
            updates (``None``: 0.1 for Bernoulli, 0.01 for Gaussian visible
            units); the compiled optimizer trains the head and fine-tunes.
        seed: seed of the Gibbs sampling.

    Returns:
        An uncompiled :class:`DBN` named ``"dbn"``.
    """
    check_fixed_shape(input_spec, "dbn")
    if isinstance(hidden_units, int):
        hidden_units = (hidden_units,)
    return DBN(
        input_spec.shape,
        num_outputs,
        hidden_units=tuple(hidden_units),
        visible=visible,
        cd_steps=cd_steps,
        pretrain=pretrain,
        pretrain_epochs=pretrain_epochs,
        pretrain_learning_rate=pretrain_learning_rate,
        output_activation=output_activation,
        seed=seed,
        name="dbn",
    )
