"""Class-conditional generative adversarial networks (Goodfellow et al., 2014; Mirza & Osindero, 2014).

A generator maps noise and a class label to a synthetic example; a
discriminator scores whether an example is a real one of the given class. Both
see the label through a learned embedding concatenated to their input, so a
trained generator synthesizes examples *of a chosen class*:
:meth:`ConditionalGAN.generate` oversamples a rare class with new rows. Both
losses average over each class, then over classes (``balance_classes``), so a
class of 2% of the rows is learned as well as the other 98%.

Variants (hyperparameter ``variant``):

- ``tabular``: dense generator and discriminator over ``[F]`` feature rows.
- ``dcgan`` (Radford et al., 2016): transposed-convolution generator,
  strided-convolution discriminator, for small images (8x8 digits, 28x28).
- ``auto``: ``dcgan`` for images, ``tabular`` for tabular inputs.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from dlsuite.architectures.cnn import image_inputs
from dlsuite.architectures.custom_steps import CustomStepModel, scale_for_replicas, split_batch
from dlsuite.architectures.mlp import dense_block
from dlsuite.architectures.registry import InputSpec, register
from dlsuite.errors import DlsuiteError

# Which input kind each variant takes.
VARIANTS: dict[str, str] = {"tabular": "tabular", "dcgan": "image"}


@keras.saving.register_keras_serializable(package="dlsuite")
class ConditionalGAN(CustomStepModel):
    """A generator and a discriminator trained against each other, both conditioned on a class.

    Each ``fit`` step first updates the discriminator on a batch of real
    examples and as many generated ones (same labels), then the generator to
    make the discriminator call its samples real (the non-saturating loss).
    The compiled optimizer trains the discriminator; a copy of it (same class
    and settings, ``generator_learning_rate`` if given) trains the generator.
    Labels come from ``(x, y)`` batches as integer class ids (or one-hot rows);
    batches without labels train class 0. Logs ``d_loss``, ``g_loss`` and
    ``loss = d_loss + g_loss``; adversarial losses do not fall steadily as a
    classifier's do, so early stopping on ``val_loss`` needs a generous patience.

    ``call(x)`` returns the discriminator's probability that ``x`` is a real
    example of each class, ``[batch, num_classes]``.

    Args:
        generator: model ``[noise [latent_dim], label [1]] -> example``.
        discriminator: model ``[example, label [1]] -> realness logit [1]``.
        num_classes: number of classes the label may take.
        latent_dim: width of the generator's noise input.
        generator_learning_rate: learning rate of the generator's optimizer
            (``None``: the compiled optimizer's).
        label_smoothing: target for real examples is ``1 - label_smoothing``
            (one-sided smoothing keeps the discriminator from overconfidence).
        balance_classes: average the losses per class, then over classes, so
            that a rare class is learned as well as a common one (without it,
            rows generated for a 2% class look like the 98% class).
        **kwargs: ``keras.Model`` arguments (``name``, ...).
    """

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        *,
        num_classes: int,
        latent_dim: int,
        generator_learning_rate: float | None = None,
        label_smoothing: float = 0.1,
        balance_classes: bool = True,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.num_classes = int(num_classes)
        self.latent_dim = int(latent_dim)
        self.generator_learning_rate = (
            None if generator_learning_rate is None else float(generator_learning_rate)
        )
        self.label_smoothing = float(label_smoothing)
        self.balance_classes = bool(balance_classes)
        self.generator_optimizer = None
        self.seed_generator = keras.random.SeedGenerator()
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.built = True  # the generator and discriminator are built models

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.loss_tracker, self.d_loss_tracker, self.g_loss_tracker]

    def build_optimizers(self) -> None:
        """Build the compiled optimizer for the discriminator and a copy of it for the generator."""
        config = self.optimizer.get_config()
        config["name"] = f"generator_{config.get('name') or 'optimizer'}"
        if self.generator_learning_rate is not None:
            config["learning_rate"] = self.generator_learning_rate
        self.generator_optimizer = type(self.optimizer).from_config(config)
        self.optimizer.build(self.discriminator.trainable_variables)
        self.generator_optimizer.build(self.generator.trainable_variables)

    def call(self, inputs: Any, training: bool = False) -> Any:
        x = ops.cast(inputs, "float32")
        batch = ops.shape(x)[0]
        # Score every example against every class: repeat each example num_classes times.
        repeated = ops.repeat(x, self.num_classes, axis=0)
        labels = ops.tile(ops.arange(self.num_classes, dtype="int32"), [batch])
        logits = self.discriminator([repeated, ops.expand_dims(labels, -1)], training=training)
        return ops.sigmoid(ops.reshape(ops.cast(logits, "float32"), (-1, self.num_classes)))

    def sample(self, labels: Any, noise: Any = None) -> Any:
        """Synthetic examples of the given classes.

        Args:
            labels: integer class ids, ``[n]``.
            noise: generator input ``[n, latent_dim]`` (default: standard normal).

        Returns:
            float32 tensor ``[n, *example_shape]``.
        """
        labels = ops.reshape(ops.cast(labels, "int32"), (-1, 1))
        if noise is None:
            noise = keras.random.normal((ops.shape(labels)[0], self.latent_dim), seed=self.seed_generator)
        noise = ops.convert_to_tensor(noise, "float32")
        return ops.cast(self.generator([noise, labels], training=False), "float32")

    def generate(self, n: int, class_id: int = 0, *, batch_size: int = 1024) -> np.ndarray:
        """``n`` synthetic examples of class ``class_id``, as a NumPy array.

        Args:
            n: number of examples.
            class_id: class to synthesize, in ``[0, num_classes)``.
            batch_size: examples generated per generator call.

        Returns:
            float32 array ``[n, *example_shape]``.
        """
        if not 0 <= int(class_id) < self.num_classes:
            raise DlsuiteError(
                f"class_id {class_id} is out of range: this GAN was trained on classes "
                f"0..{self.num_classes - 1}."
            )
        if n < 0:
            raise DlsuiteError(f"n must be >= 0, got {n}.")
        out_shape = tuple(self.generator.output_shape[1:])
        chunks = [
            np.asarray(self.sample(np.full((min(batch_size, n - start),), class_id, "int32")))
            for start in range(0, n, batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, *out_shape), "float32")

    def _labels(self, y: Any, batch: Any) -> Any:
        if y is None:
            return ops.zeros((batch, 1), "int32")
        if len(y.shape) == 2 and y.shape[-1] == self.num_classes and self.num_classes > 1:
            y = ops.argmax(y, axis=-1)
        return ops.reshape(ops.cast(y, "int32"), (-1, 1))

    def _noise(self, batch: Any) -> Any:
        return keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)

    def _mean(self, values: Any, labels: Any) -> Any:
        """Mean of per-example ``values`` ``[batch, 1]``; class-balanced when ``balance_classes``.

        Balanced: the mean over the classes present in the batch of each class's
        mean, so a rare class steers both networks as much as a common one does
        (in expectation, as if batches were drawn class-balanced).
        """
        values = ops.reshape(values, (-1,))
        if not self.balance_classes or self.num_classes == 1:
            return ops.mean(values)
        onehot = ops.one_hot(ops.reshape(labels, (-1,)), self.num_classes, dtype="float32")
        counts = ops.sum(onehot, axis=0)
        present = ops.cast(counts > 0, "float32")
        class_means = ops.sum(onehot * values[:, None], axis=0) / ops.maximum(counts, 1.0)
        return ops.sum(class_means * present) / ops.sum(present)

    def _d_loss(self, real: Any, fake: Any, labels: Any, training: bool) -> Any:
        real_logits = ops.cast(self.discriminator([real, labels], training=training), "float32")
        fake_logits = ops.cast(self.discriminator([fake, labels], training=training), "float32")
        real_target = ops.full_like(real_logits, 1.0 - self.label_smoothing)
        real_loss = ops.binary_crossentropy(real_target, real_logits, from_logits=True)
        fake_loss = ops.binary_crossentropy(ops.zeros_like(fake_logits), fake_logits, from_logits=True)
        return self._mean(real_loss, labels) + self._mean(fake_loss, labels)

    def _g_loss(self, labels: Any, training: bool) -> Any:
        fake = self.generator([self._noise(ops.shape(labels)[0]), labels], training=training)
        logits = ops.cast(self.discriminator([fake, labels], training=training), "float32")
        return self._mean(ops.binary_crossentropy(ops.ones_like(logits), logits, from_logits=True), labels)

    def _log(self, d_loss: Any, g_loss: Any, batch: Any) -> dict[str, Any]:
        self.d_loss_tracker.update_state(d_loss, sample_weight=batch)
        self.g_loss_tracker.update_state(g_loss, sample_weight=batch)
        self.loss_tracker.update_state(d_loss + g_loss, sample_weight=batch)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data: Any) -> dict[str, Any]:
        if self.generator_optimizer is None:
            raise DlsuiteError("compile the GAN before fitting it (model.compile(optimizer=...)).")
        x, y = split_batch(data)
        real = ops.cast(x, "float32")
        batch = ops.shape(real)[0]
        labels = self._labels(y, batch)

        fake = self.generator([self._noise(batch), labels], training=True)
        with tf.GradientTape() as tape:
            d_loss = self._d_loss(real, ops.stop_gradient(fake), labels, training=True)
            scaled = self.optimizer.scale_loss(scale_for_replicas(d_loss))
        d_weights = self.discriminator.trainable_weights
        self.optimizer.apply(tape.gradient(scaled, d_weights), d_weights)

        with tf.GradientTape() as tape:
            g_loss = self._g_loss(labels, training=True)
            scaled = self.generator_optimizer.scale_loss(scale_for_replicas(g_loss))
        g_weights = self.generator.trainable_weights
        self.generator_optimizer.apply(tape.gradient(scaled, g_weights), g_weights)
        return self._log(d_loss, g_loss, batch)

    def test_step(self, data: Any) -> dict[str, Any]:
        x, y = split_batch(data)
        real = ops.cast(x, "float32")
        batch = ops.shape(real)[0]
        labels = self._labels(y, batch)
        fake = self.generator([self._noise(batch), labels], training=False)
        d_loss = self._d_loss(real, fake, labels, training=False)
        g_loss = self._g_loss(labels, training=False)
        return self._log(d_loss, g_loss, batch)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "num_classes": self.num_classes,
            "latent_dim": self.latent_dim,
            "generator_learning_rate": self.generator_learning_rate,
            "label_smoothing": self.label_smoothing,
            "balance_classes": self.balance_classes,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ConditionalGAN":
        config = dict(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        return cls(**config)


def _label_input() -> keras.KerasTensor:
    return keras.Input(shape=(1,), dtype="int32", name="label")


def _embedded_label(label: keras.KerasTensor, num_classes: int, embedding_dim: int) -> keras.KerasTensor:
    """``[batch, 1]`` class ids -> ``[batch, embedding_dim]`` learned embeddings."""
    embedded = layers.Embedding(num_classes, embedding_dim, name="label_embedding")(label)
    return layers.Flatten(name="label_flat")(embedded)


def _tabular_networks(
    features: int,
    *,
    num_classes: int,
    latent_dim: int,
    hidden_units: tuple[int, ...],
    embedding_dim: int,
    dropout: float,
    sample_activation: str | None,
) -> tuple[keras.Model, keras.Model]:
    noise, label = keras.Input(shape=(latent_dim,), name="noise"), _label_input()
    embedded = _embedded_label(label, num_classes, embedding_dim)
    h = layers.Concatenate(name="condition")([noise, embedded])
    for i, units in enumerate(hidden_units, start=1):
        h = dense_block(h, units, activation="relu", batchnorm=True, dropout=0.0, name=f"gen{i}")
    sample = layers.Dense(features, activation=sample_activation, dtype="float32", name="sample")(h)
    generator = keras.Model([noise, label], sample, name="generator")

    row, label = keras.Input(shape=(features,), name="row"), _label_input()
    embedded = _embedded_label(label, num_classes, embedding_dim)
    h = layers.Concatenate(name="condition")([row, embedded])
    for i, units in enumerate(reversed(hidden_units), start=1):
        h = dense_block(h, units, activation="leaky_relu", batchnorm=False, dropout=dropout, name=f"disc{i}")
    logit = layers.Dense(1, dtype="float32", name="realness")(h)
    return generator, keras.Model([row, label], logit, name="discriminator")


def _dcgan_networks(
    input_spec: InputSpec,
    *,
    num_classes: int,
    latent_dim: int,
    filters: int,
    upsampling_blocks: int,
    embedding_dim: int,
    dropout: float,
    sample_activation: str | None,
) -> tuple[keras.Model, keras.Model]:
    shape = tuple(input_spec.shape)
    if any(d is None for d in shape):
        raise DlsuiteError(
            f"the dcgan variant generates fixed-size images, got shape {shape}; resize the images."
        )
    image, x = image_inputs(input_spec)
    height, width, channels = x.shape[1:]
    step = 2**upsampling_blocks
    base_h, base_w = math.ceil(height / step), math.ceil(width / step)

    # Generator: project to a small feature map, then double it upsampling_blocks times.
    noise, label = keras.Input(shape=(latent_dim,), name="noise"), _label_input()
    embedded = _embedded_label(label, num_classes, embedding_dim)
    h = layers.Concatenate(name="condition")([noise, embedded])
    top = filters * 2 ** (upsampling_blocks - 1) if upsampling_blocks else filters
    h = dense_block(
        h, base_h * base_w * top, activation="relu", batchnorm=True, dropout=0.0, name="gen_project"
    )
    h = layers.Reshape((base_h, base_w, top), name="gen_reshape")(h)
    for i in reversed(range(upsampling_blocks)):
        h = layers.Conv2DTranspose(
            filters * 2**i, 4, strides=2, padding="same", use_bias=False, name=f"gen{i + 1}_deconv"
        )(h)
        h = layers.BatchNormalization(name=f"gen{i + 1}_bn")(h)
        h = layers.Activation("relu", name=f"gen{i + 1}_relu")(h)
    h = layers.Conv2D(
        channels, 3, padding="same", activation=sample_activation, dtype="float32", name="sample"
    )(h)
    extra_h, extra_w = base_h * step - height, base_w * step - width
    if extra_h or extra_w:
        h = layers.Cropping2D(((0, extra_h), (0, extra_w)), name="crop")(h)
    if len(shape) == 2:
        h = layers.Reshape(shape, name="drop_channel")(h)
    generator = keras.Model([noise, label], h, name="generator")

    # Discriminator: the label as an extra image channel, then strided convolutions.
    label = _label_input()
    label_map = layers.Embedding(num_classes, height * width, name="label_embedding")(label)
    label_map = layers.Reshape((height, width, 1), name="label_map")(label_map)
    d = layers.Concatenate(name="condition")([x, label_map])
    for i in range(max(upsampling_blocks, 1)):
        d = layers.Conv2D(filters * 2**i, 4, strides=2, padding="same", name=f"disc{i + 1}_conv")(d)
        d = layers.LeakyReLU(0.2, name=f"disc{i + 1}_lrelu")(d)
        if dropout:
            d = layers.Dropout(dropout, name=f"disc{i + 1}_dropout")(d)
    d = layers.Flatten(name="flatten")(d)
    logit = layers.Dense(1, dtype="float32", name="realness")(d)
    return generator, keras.Model([image, label], logit, name="discriminator")


@register(
    "gan",
    input_kinds=("tabular", "image"),
    summary="class-conditional GAN, variants tabular (dense) and dcgan (images); "
    "generate(n, class_id) synthesizes examples of a class; call = per-class P(real)",
)
def build_gan(
    input_spec: InputSpec,
    num_outputs: int,
    *,
    output_activation: str | None = None,
    variant: str = "auto",
    latent_dim: int = 16,
    hidden_units: Sequence[int] = (64, 64),
    filters: int = 32,
    upsampling_blocks: int = 2,
    embedding_dim: int = 8,
    dropout: float = 0.2,
    generator_learning_rate: float | None = None,
    label_smoothing: float = 0.1,
    balance_classes: bool = True,
    sample_activation: str | None = None,
) -> ConditionalGAN:
    """Builds a class-conditional GAN.

    Args:
        input_spec: the examples to synthesize: ``tabular`` ``[F]`` or
            ``image`` ``[H, W(, C)]``.
        num_outputs: number of classes to condition on (1: unconditional);
            ``call`` returns one realness probability per class.
        output_activation: ignored (the registry passes the task head's);
            see ``sample_activation``.
        variant: ``auto``, ``tabular`` or ``dcgan`` (module docstring).
        latent_dim: width of the generator's noise input.
        hidden_units: generator widths (tabular); the discriminator mirrors them.
        filters: channels of the largest-resolution conv layer (dcgan).
        upsampling_blocks: stride-2 transposed convolutions of the generator;
            the discriminator has as many strided convolutions (dcgan).
        embedding_dim: width of the label embedding.
        dropout: dropout rate in the discriminator.
        generator_learning_rate: the generator optimizer's learning rate
            (``None``: the compiled optimizer's).
        label_smoothing: one-sided label smoothing of the real targets, in [0, 1).
        balance_classes: weight the classes equally in both losses, whatever
            their frequency (what oversampling a rare class needs).
        sample_activation: activation of the generator's output: ``None``
            (linear) for standardized features, ``"sigmoid"`` for [0, 1] pixels,
            ``"tanh"`` for [-1, 1].

    Returns:
        An uncompiled :class:`ConditionalGAN` named ``"gan"``.
    """
    del output_activation
    kind = input_spec.kind
    if variant == "auto":
        variant = "dcgan" if kind == "image" else "tabular"
    if variant not in VARIANTS:
        raise DlsuiteError(
            f"gan variant {variant!r} is unknown; set model.variant to one of auto, {', '.join(VARIANTS)}."
        )
    if VARIANTS[variant] != kind:
        fitting = [v for v, k in VARIANTS.items() if k == kind]
        raise DlsuiteError(
            f"gan variant {variant!r} takes {VARIANTS[variant]} inputs, not {kind}; "
            f"for {kind} inputs set model.variant to auto or {', '.join(fitting)}."
        )
    if int(num_outputs) < 1:
        raise DlsuiteError(
            f"gan num_outputs is the number of classes and must be at least 1, got {num_outputs}."
        )
    if isinstance(hidden_units, int):
        hidden_units = (hidden_units,)
    hidden_units = tuple(int(u) for u in hidden_units)
    if not hidden_units or any(u < 1 for u in hidden_units):
        raise DlsuiteError(
            f"gan hidden_units must be one or more positive integers, got {list(hidden_units)}."
        )
    for key, value in (("latent_dim", latent_dim), ("filters", filters), ("embedding_dim", embedding_dim)):
        if int(value) < 1:
            raise DlsuiteError(f"gan {key} must be at least 1, got {value}.")
    if int(upsampling_blocks) < 0:
        raise DlsuiteError(f"gan upsampling_blocks must be >= 0, got {upsampling_blocks}.")
    for key, value in (("dropout", dropout), ("label_smoothing", label_smoothing)):
        if not 0.0 <= value < 1.0:
            raise DlsuiteError(f"gan {key} must be in [0, 1), got {value}.")
    if generator_learning_rate is not None and generator_learning_rate <= 0:
        raise DlsuiteError(f"gan generator_learning_rate must be positive, got {generator_learning_rate}.")

    common = dict(
        num_classes=int(num_outputs),
        latent_dim=int(latent_dim),
        embedding_dim=int(embedding_dim),
        dropout=dropout,
        sample_activation=sample_activation,
    )
    if variant == "tabular":
        if len(input_spec.shape) != 1 or input_spec.shape[0] is None:
            raise DlsuiteError(
                f"the tabular gan takes [features] rows of fixed width, got shape {input_spec.shape}."
            )
        generator, discriminator = _tabular_networks(
            int(input_spec.shape[0]), hidden_units=hidden_units, **common
        )
    else:
        generator, discriminator = _dcgan_networks(
            input_spec, filters=int(filters), upsampling_blocks=int(upsampling_blocks), **common
        )
    return ConditionalGAN(
        generator,
        discriminator,
        num_classes=int(num_outputs),
        latent_dim=int(latent_dim),
        generator_learning_rate=generator_learning_rate,
        label_smoothing=label_smoothing,
        balance_classes=balance_classes,
        name="gan",
    )
