"""Restricted Boltzmann machines trained by contrastive divergence.

An RBM is an energy model over visible units ``v`` and binary hidden units
``h`` with weights ``W``, visible bias ``b`` and hidden bias ``c``. Its free
energy (the hidden units summed out) is

* Bernoulli visible units (inputs in [0, 1]):
  ``F(v) = -v.b - sum_j softplus(v.W_j + c_j)``
* Gaussian visible units of unit variance (standardized inputs):
  ``F(v) = ||v - b||^2 / 2 - sum_j softplus(v.W_j + c_j)``

Training is CD-k (Hinton, "A Practical Guide to Training RBMs", 2010): a Gibbs
chain started at the data runs ``k`` steps with sampled hidden units and
mean-field visible units, and the gradient of ``mean F(data) - mean F(chain
end)`` (chain end held constant) is the CD estimate of the negative
log-likelihood gradient. It goes through the compiled optimizer's
``apply_gradients``, so replicas' estimates are all-reduced under any
tf.distribute strategy.

:class:`RBMLayer` holds the parameters and the math; :class:`RBM` is the
``keras.Model`` the registry builds (family ``rbm``); the DBN family stacks
``RBMLayer`` s.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dlsuite.architectures.custom_steps import CustomStepModel
from dlsuite.architectures.registry import InputSpec, register
from dlsuite.errors import DlsuiteError

VISIBLE_TYPES = ("bernoulli", "gaussian")


def check_visible(visible: str, family: str) -> str:
    if visible not in VISIBLE_TYPES:
        raise DlsuiteError(
            f"{family} visible={visible!r} is not one of {VISIBLE_TYPES}: use 'bernoulli' for inputs "
            "scaled to [0, 1] and 'gaussian' for standardized inputs (mean 0, variance 1)."
        )
    return visible


def check_positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise DlsuiteError(f"{what} must be a positive integer, got {value!r}.")
    return int(value)


def check_fixed_shape(input_spec: InputSpec, family: str) -> None:
    if any(d is None for d in input_spec.shape):
        raise DlsuiteError(
            f"{family} needs a fixed input shape, got {input_spec.shape}; resize or pad the inputs."
        )


def replica_scale() -> float:
    """1 / replicas: replicas' gradients are summed by the optimizer's all-reduce."""
    return 1.0 / tf.distribute.get_strategy().num_replicas_in_sync


def step_seed(model: keras.Model, seed: int, salt: int) -> tf.Tensor:
    """A stateless-RNG seed that changes every optimizer step (no RNG state to mirror)."""
    iterations = model.optimizer.iterations if model.optimizer is not None else 0
    return tf.stack([tf.cast(seed * 1_000_003 + salt, tf.int64), tf.cast(iterations, tf.int64)])


@keras.saving.register_keras_serializable(package="dlsuite")
class RBMLayer(keras.layers.Layer):
    """The parameters of one RBM and its conditionals, free energy and CD-k chain.

    Calling the layer gives ``p(h = 1 | v)``.

    Args:
        units: number of hidden units.
        visible: ``"bernoulli"`` (inputs in [0, 1]) or ``"gaussian"``
            (unit-variance Gaussian visible units: standardize the inputs).
        kernel_initializer: initializer of the weights (default: normal with
            standard deviation 0.01, as Hinton's guide recommends).
        **kwargs: ``keras.layers.Layer`` arguments (name, dtype).
    """

    def __init__(self, units: int, visible: str = "bernoulli", kernel_initializer: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.units = check_positive_int(units, "RBM hidden units")
        self.visible = check_visible(visible, "RBM")
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or keras.initializers.RandomNormal(stddev=0.01)
        )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        num_visible = int(input_shape[-1])
        self.kernel = self.add_weight(
            shape=(num_visible, self.units),
            initializer=self.kernel_initializer,
            name="kernel",
        )
        self.visible_bias = self.add_weight(shape=(num_visible,), initializer="zeros", name="visible_bias")
        self.hidden_bias = self.add_weight(shape=(self.units,), initializer="zeros", name="hidden_bias")

    def call(self, v: tf.Tensor) -> tf.Tensor:
        return self.hidden_probs(v)

    def hidden_probs(self, v: tf.Tensor) -> tf.Tensor:
        """``p(h = 1 | v)``, shape [batch, units]."""
        return tf.sigmoid(tf.matmul(v, self.kernel) + self.hidden_bias)

    def visible_mean(self, h: tf.Tensor) -> tf.Tensor:
        """``E[v | h]``: probabilities (Bernoulli) or means (Gaussian), shape [batch, visible]."""
        pre = tf.matmul(h, self.kernel, transpose_b=True) + self.visible_bias
        return tf.sigmoid(pre) if self.visible == "bernoulli" else pre

    def free_energy(self, v: tf.Tensor) -> tf.Tensor:
        """``F(v)`` per example, shape [batch] (see the module docstring)."""
        hidden_term = tf.reduce_sum(tf.nn.softplus(tf.matmul(v, self.kernel) + self.hidden_bias), axis=-1)
        if self.visible == "bernoulli":
            visible_term = -tf.linalg.matvec(v, self.visible_bias)
        else:
            visible_term = 0.5 * tf.reduce_sum(tf.square(v - self.visible_bias), axis=-1)
        return visible_term - hidden_term

    def reconstruct(self, v: tf.Tensor) -> tf.Tensor:
        """Mean-field reconstruction ``E[v | p(h | v)]``."""
        return self.visible_mean(self.hidden_probs(v))

    def gibbs_chain(self, v: tf.Tensor, steps: int, seed: tf.Tensor) -> tf.Tensor:
        """The end of a ``steps``-long Gibbs chain from ``v`` (held constant for gradients).

        Hidden units are sampled, visible units kept at their means (the
        usual choice, which lowers the variance of the negative statistics).
        """
        for i in range(steps):
            probs = self.hidden_probs(v)
            noise = tf.random.stateless_uniform(tf.shape(probs), seed=seed + [0, 7919 * (i + 1)])
            h = tf.cast(noise < probs, v.dtype)
            v = self.visible_mean(h)
        return tf.stop_gradient(v)

    def contrastive_divergence(self, v: tf.Tensor, steps: int, seed: tf.Tensor) -> tf.Tensor:
        """A scalar whose gradient is the CD-k estimate of the negative log-likelihood gradient."""
        negative = self.gibbs_chain(v, steps, seed)
        return tf.reduce_mean(self.free_energy(v)) - tf.reduce_mean(self.free_energy(negative))

    def pseudo_likelihood(self, v: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Stochastic pseudo-log-likelihood per example, as scikit-learn's ``BernoulliRBM.score_samples``.

        One randomly chosen visible unit per example is flipped (``v_i -> 1 - v_i``)
        and ``num_visible * log sigmoid(F(flipped) - F(v))`` estimates the
        pseudo-log-likelihood. Defined for Bernoulli visible units.
        """
        num_visible = tf.shape(v)[-1]
        index = tf.random.stateless_uniform(tf.shape(v)[:1], seed=seed, maxval=num_visible, dtype=tf.int32)
        flip = tf.one_hot(index, num_visible, dtype=v.dtype)
        flipped = v + flip * (1.0 - 2.0 * v)
        gap = self.free_energy(flipped) - self.free_energy(v)
        return tf.cast(num_visible, v.dtype) * tf.math.log_sigmoid(gap)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "visible": self.visible,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


def _flatten(x: tf.Tensor, num_visible: int) -> tf.Tensor:
    return tf.reshape(tf.cast(x, tf.float32), (-1, num_visible))


@keras.saving.register_keras_serializable(package="dlsuite")
class RBM(CustomStepModel):
    """A restricted Boltzmann machine as a detector / feature extractor trained with ``fit``.

    ``call(x)`` returns the hidden features ``p(h = 1 | v)`` [batch, hidden_units];
    inputs of any shape are flattened. ``fit`` takes ``x`` or ``(x, y)`` batches and
    ignores ``y``; ``compile`` drops a loss or metrics (see :class:`CustomStepModel`). Logs: ``loss``
    (mean squared reconstruction error per visible unit), ``free_energy`` (mean)
    and, for Bernoulli visible units, ``pseudo_likelihood`` (mean, higher is better).

    Args:
        visible_shape: per-example input shape (flattened to ``prod(shape)`` visible units).
        hidden_units: number of hidden units.
        visible: ``"bernoulli"`` for inputs in [0, 1], ``"gaussian"`` for standardized inputs.
        cd_steps: Gibbs steps ``k`` of CD-k.
        weight_std: standard deviation of the initial weights.
        seed: seed of the sampling in the Gibbs chains and pseudo-likelihood.
        **kwargs: ``keras.Model`` arguments (name).
    """

    def __init__(
        self,
        visible_shape: tuple[int, ...],
        hidden_units: int = 256,
        visible: str = "gaussian",
        cd_steps: int = 1,
        weight_std: float = 0.01,
        seed: int = 0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.visible_shape = tuple(int(d) for d in visible_shape)
        self.num_visible = int(np.prod(self.visible_shape))
        self.hidden_units = check_positive_int(hidden_units, "rbm hidden_units")
        self.visible = check_visible(visible, "rbm")
        self.cd_steps = check_positive_int(cd_steps, "rbm cd_steps")
        self.weight_std = float(weight_std)
        self.seed = int(seed)
        self.rbm = RBMLayer(
            self.hidden_units,
            self.visible,
            keras.initializers.RandomNormal(stddev=self.weight_std, seed=self.seed),
            name="rbm_layer",
        )
        self.rbm.build((None, self.num_visible))
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.free_energy_tracker = keras.metrics.Mean(name="free_energy")
        self.pseudo_likelihood_tracker = keras.metrics.Mean(name="pseudo_likelihood")

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        tracked = [self.loss_tracker, self.free_energy_tracker]
        if self.visible == "bernoulli":
            tracked.append(self.pseudo_likelihood_tracker)
        return tracked

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        return self.rbm.hidden_probs(_flatten(x, self.num_visible))

    def hidden_features(self, x: tf.Tensor) -> tf.Tensor:
        """``p(h = 1 | v)`` [batch, hidden_units]."""
        return self.rbm.hidden_probs(_flatten(x, self.num_visible))

    def free_energy(self, x: tf.Tensor) -> tf.Tensor:
        """Free energy ``F(v)`` [batch] (lower = more probable under the model)."""
        return self.rbm.free_energy(_flatten(x, self.num_visible))

    def anomaly_score(self, x: tf.Tensor) -> tf.Tensor:
        """Free energy, float32 [batch]: higher = less probable = more unusual."""
        return tf.cast(self.free_energy(x), tf.float32)

    def reconstruct(self, x: tf.Tensor) -> tf.Tensor:
        """Mean-field reconstruction in the input's shape."""
        v = self.rbm.reconstruct(_flatten(x, self.num_visible))
        return tf.reshape(v, tf.concat([[-1], self.visible_shape], axis=0))

    def pseudo_likelihood(self, x: tf.Tensor, seed: int = 0) -> tf.Tensor:
        """Stochastic pseudo-log-likelihood [batch] (scikit-learn's ``BernoulliRBM.score_samples``).

        Args:
            x: inputs in [0, 1].
            seed: seed choosing the flipped unit of each example.

        Returns:
            float32 [batch]; higher is better.
        """
        if self.visible != "bernoulli":
            raise DlsuiteError(
                "pseudo_likelihood flips binary visible units and is defined for visible='bernoulli' "
                "only; use free_energy for a Gaussian RBM."
            )
        return self.rbm.pseudo_likelihood(_flatten(x, self.num_visible), tf.constant([seed, 0], tf.int64))

    def _track(self, v: tf.Tensor, salt: int) -> dict[str, tf.Tensor]:
        error = tf.reduce_mean(tf.square(v - self.rbm.reconstruct(v)))
        self.loss_tracker.update_state(error)
        self.free_energy_tracker.update_state(tf.reduce_mean(self.rbm.free_energy(v)))
        if self.visible == "bernoulli":
            pl = self.rbm.pseudo_likelihood(v, step_seed(self, self.seed, salt))
            self.pseudo_likelihood_tracker.update_state(tf.reduce_mean(pl))
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        v = _flatten(x, self.num_visible)
        with tf.GradientTape() as tape:
            cd = self.rbm.contrastive_divergence(v, self.cd_steps, step_seed(self, self.seed, 1))
            cd = cd * replica_scale()
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(cd, variables), variables))
        return self._track(v, salt=2)

    def test_step(self, data: Any) -> dict[str, tf.Tensor]:
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._track(_flatten(x, self.num_visible), salt=3)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "visible_shape": list(self.visible_shape),
            "hidden_units": self.hidden_units,
            "visible": self.visible,
            "cd_steps": self.cd_steps,
            "weight_std": self.weight_std,
            "seed": self.seed,
        }


@register(
    "rbm",
    input_kinds=("tabular", "image"),
    summary="restricted Boltzmann machine, CD-k; call = p(h|v), anomaly_score = free energy",
)
def build_rbm(
    input_spec: InputSpec,
    num_outputs: int,
    *,
    output_activation: str | None = None,
    hidden_units: int = 256,
    visible: str = "gaussian",
    cd_steps: int = 1,
    weight_std: float = 0.01,
    seed: int = 0,
) -> keras.Model:
    """Builds an RBM (unsupervised; ``num_outputs`` and ``output_activation`` are ignored).

    Args:
        input_spec: tabular features or images (flattened to visible units).
        num_outputs: ignored (the output is the ``hidden_units`` features).
        output_activation: ignored.
        hidden_units: number of binary hidden units.
        visible: ``"gaussian"`` (standardized inputs, the suite's preprocessing)
            or ``"bernoulli"`` (inputs scaled to [0, 1]).
        cd_steps: Gibbs steps ``k`` of contrastive divergence CD-k.
        weight_std: standard deviation of the initial weights.
        seed: seed of the Gibbs sampling.

    Returns:
        An uncompiled :class:`RBM` named ``"rbm"``.
    """
    del num_outputs, output_activation
    check_fixed_shape(input_spec, "rbm")
    if not math.isfinite(weight_std) or weight_std <= 0:
        raise DlsuiteError(f"rbm weight_std must be a positive number, got {weight_std!r}.")
    model = RBM(
        input_spec.shape,
        hidden_units=hidden_units,
        visible=visible,
        cd_steps=cd_steps,
        weight_std=weight_std,
        seed=seed,
        name="rbm",
    )
    model.build((None, *input_spec.shape))  # weights exist before fit, as for every family
    return model
