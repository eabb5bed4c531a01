"""Transfer learning: a pretrained backbone, frozen or fine-tuned, under a new head.

The backbone is either

* a TF Hub module (``handle``: a tfhub.dev / Kaggle URL or a local SavedModel
  directory, resolved with ``tensorflow_hub.resolve``), wrapped by
  :class:`HubBackbone`; image modules take float images, text modules raw
  strings (input kind ``text``); or
* a ``keras.applications`` network by name (``application``), with weights from
  a local ``.h5`` file or none; or a whole backbone saved as a ``.keras`` file
  (``weights=path.keras``).

Why not ``hub.KerasLayer`` or ``keras.layers.TFSMLayer``: the first is a
tf_keras (Keras 2) layer that a Keras 3 model refuses. The second copies the
SavedModel's variables into new Keras variables while its restored functions
keep reading the originals, so fine-tuning cannot reach the backbone (and its
``.keras`` reload needs ``safe_mode=False``). :class:`HubBackbone` instead wraps
the very ``tf.Variable`` objects the module's functions capture in Keras
variables, so the optimizer updates the weights the module computes with.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import keras
import tensorflow as tf
from keras import layers

from dlsuite import hubmodule
from dlsuite.architectures.registry import InputSpec, register
from dlsuite.errors import DlsuiteError
from dlsuite.safe_load import load_keras_file

log = logging.getLogger("dlsuite")

# keras.applications refuse inputs smaller than this (and pretrained ImageNet weights expect 3 channels).
MIN_APPLICATION_SIDE = 32


class _ModuleVariable(keras.Variable):
    """A Keras variable over an existing ``tf.Variable`` of a loaded SavedModel (no copy).

    ``keras.Variable`` copies any value it is given; the TensorFlow backend's
    ``_initialize`` hook is where it creates its ``tf.Variable``, so this
    subclass hands it the module's own variable there instead.
    """

    def __init__(self, variable: tf.Variable, *, trainable: bool, name: str):
        self._module_variable = variable
        super().__init__(
            initializer=lambda shape, dtype: None,  # never called: _initialize takes the existing variable
            shape=tuple(variable.shape),
            dtype=variable.dtype.name,
            trainable=trainable,
            name=name,
        )

    def _initialize(self, value: Any) -> None:
        self._value = self._module_variable


def _variable_name(variable: tf.Variable, index: int) -> str:
    # Keras variable names may not hold "/" (it separates the path), and ":0" breaks the
    # optimizer's name scopes; the index keeps names unique within the layer.
    return f"v{index}_" + variable.name.split(":")[0].replace("/", "_")


def _takes_training(function: Any) -> bool:
    """Whether a restored ``__call__`` was traced with a ``training`` argument."""
    for concrete in getattr(function, "concrete_functions", ()):
        args, kwargs = concrete.structured_input_signature
        if len(args) > 1 or "training" in kwargs:
            return True
    return False


@keras.saving.register_keras_serializable(package="dlsuite")
class HubBackbone(keras.layers.Layer):
    """A TF Hub reusable SavedModel as a Keras 3 layer whose weights are the module's variables.

    The module is loaded when the layer is created (inside the strategy scope
    when the network is built under one, so its variables are distributed).
    With ``trainable=True`` the module runs in training mode during ``fit``
    (dropout, batch-norm statistics) and the optimizer updates its trainable
    variables; frozen, it runs in inference mode and nothing in it changes.

    ``.keras`` files store the handle and the (fine-tuned) weights, not the
    module's graph: loading one needs the handle to resolve again (the same
    local directory, or the URL through the TF Hub cache). Loading it needs no
    ``safe_mode=False``. Keras's ``TFSMLayer`` refuses safe-mode loading because a
    SavedModel's graph may hold file or network ops; this layer accepts it, so
    treat a ``.keras`` file holding it like the hub module its handle names: load
    it only from a source you trust.

    Args:
        handle: TF Hub URL or local SavedModel directory.
        **kwargs: base ``Layer`` arguments (``trainable``, ``name``).
    """

    def __init__(self, handle: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.handle = os.fspath(handle)
        self._module = tf.saved_model.load(hubmodule.resolve(self.handle))
        if not callable(self._module):
            raise DlsuiteError(
                f"hub module {self.handle!r} has no __call__ function; dlsuite takes TF2 reusable SavedModels "
                "(TF Hub 'TF2' format), not TF1 hub modules or signature-only SavedModels."
            )
        self._call_takes_training = _takes_training(self._module.__call__)
        # XLA (and so TPUs) run no string ops: Keras then compiles the model without jit.
        self.supports_jit = not any(
            spec.dtype == tf.string for spec in self._input_specs() if isinstance(spec, tf.TensorSpec)
        )
        variables = list(getattr(self._module, "variables", ()))
        trainable_ids = {id(v) for v in getattr(self._module, "trainable_variables", ())}
        for i, variable in enumerate(variables):
            self._track_variable(
                _ModuleVariable(variable, trainable=id(variable) in trainable_ids, name=_variable_name(variable, i))
            )
        self.built = True

    def _input_specs(self) -> list[Any]:
        """The input spec of each traced ``__call__`` of the module."""
        functions = getattr(self._module.__call__, "concrete_functions", ())
        return [f.structured_input_signature[0][0] for f in functions if f.structured_input_signature[0]]

    def _check_input(self, inputs: Any) -> None:
        for spec in self._input_specs()[:1]:
            if isinstance(spec, tf.TensorSpec) and not spec.shape.is_compatible_with(inputs.shape):
                raise DlsuiteError(
                    f"hub module {self.handle!r} takes inputs of shape {tuple(spec.shape)[1:]}, got "
                    f"{tuple(inputs.shape)[1:]}; resize the data to match (e.g. data.image_size) or pick a "
                    "module made for this input."
                )

    def compute_output_spec(self, inputs: Any, training: bool | None = None) -> Any:
        # Checked here, before Keras traces call(): errors raised while tracing reach the user
        # wrapped in Keras's "could not infer the output shape" message.
        self._check_input(inputs)
        return super().compute_output_spec(inputs, training=training)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if self._call_takes_training:
            return self._module(inputs, training=bool(training) and self.trainable)
        return self._module(inputs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "handle": self.handle}


def _pool_features(x: keras.KerasTensor) -> keras.KerasTensor:
    """Feature maps -> one vector per example (backbones may return (B, H, W, C) or (B, T, C))."""
    if len(x.shape) == 4:
        return layers.GlobalAveragePooling2D(name="backbone_pool")(x)
    if len(x.shape) == 3:
        return layers.GlobalAveragePooling1D(name="backbone_pool")(x)
    if len(x.shape) != 2:
        raise DlsuiteError(f"the backbone returns features of shape {x.shape[1:]}; transfer needs vectors or maps.")
    return x


def _application_backbone(
    inputs: keras.KerasTensor, application: str, weights: str | None, fine_tune: bool
) -> keras.KerasTensor:
    """Images -> features of a keras.applications network (or a backbone saved as .keras)."""
    x = inputs
    if len(x.shape) == 3:
        x = layers.Reshape((*x.shape[1:], 1), name="add_channel")(x)
    if weights is not None and str(weights).endswith(".keras"):
        backbone = load_keras_file(weights, "backbone")
        if not isinstance(backbone, keras.Model):
            raise DlsuiteError(f"{weights} holds a {type(backbone).__name__}, not a Keras model to use as a backbone.")
    else:
        constructor = getattr(keras.applications, application, None)
        if not callable(constructor):
            known = sorted(n for n in dir(keras.applications) if n[0].isupper())
            raise DlsuiteError(
                f"keras.applications has no {application!r}; pick one of {', '.join(known)} "
                "(or set model.handle to a TF Hub module)."
            )
        height, width, channels = x.shape[1:]
        if min(height, width) < MIN_APPLICATION_SIDE:
            side = MIN_APPLICATION_SIDE
            x = layers.Resizing(max(height, side), max(width, side), name="resize")(x)
        if channels == 1:
            x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
        backbone = constructor(include_top=False, weights=weights, input_shape=tuple(x.shape[1:]), pooling="avg")
    backbone.trainable = fine_tune
    # Batch-norm layers stay in inference mode even when fine-tuning (the Keras transfer-learning
    # guide's advice: small target sets wreck their statistics). Calling the backbone with
    # training=False does not do it in Keras 3: a functional model passes fit's training=True to
    # every layer. A frozen BatchNormalization layer always runs in inference mode.
    for layer in backbone._flatten_layers():
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False
    return backbone(x)


@register(
    "transfer",
    input_kinds=("image", "text"),
    summary="pretrained backbone (TF Hub handle or keras.applications), frozen or fine-tuned, + dense head",
)
def build_transfer(
    input_spec: InputSpec,
    num_outputs: int,
    *,
    output_activation: str | None = "softmax",
    handle: str | None = None,
    application: str | None = "MobileNetV2",
    weights: str | None = None,
    fine_tune: bool = False,
    head_units: int = 0,
    dropout: float = 0.2,
) -> keras.Model:
    """Builds a pretrained backbone with a new classification/regression head.

    Args:
        input_spec: ``image`` (float pixels, as the task preprocesses them) or
            ``text`` (raw strings, shape ``()``; needs a text hub module).
        num_outputs: width of the output layer.
        output_activation: activation of the output layer (``None`` for logits).
        handle: TF Hub module URL or local SavedModel directory (a TF2 reusable
            SavedModel). Takes precedence over ``application``. URLs need network
            access or a TF Hub cache holding them.
        application: ``keras.applications`` name (e.g. ``"MobileNetV2"``), used
            when ``handle`` is empty (and ``weights`` is no ``.keras`` backbone).
            Images smaller than 32 pixels are resized up.
        weights: for ``application``: a local ``.h5`` weights file, a ``.keras``
            file holding a whole backbone model, or ``None`` (random init).
        fine_tune: train the backbone's weights too (``False``: frozen, only the head trains).
        head_units: width of a hidden dense layer in the head (0: linear head).
        dropout: dropout rate before the head's layers.

    Returns:
        An uncompiled ``keras.Model`` named ``"transfer"``.
    """
    if head_units < 0:
        raise DlsuiteError(f"transfer head_units must be 0 or more, got {head_units}.")
    if not 0.0 <= dropout < 1.0:
        raise DlsuiteError(f"transfer dropout must be in [0, 1), got {dropout}.")
    if weights is not None and not os.path.isfile(weights):
        raise DlsuiteError(
            f"transfer weights {weights!r} is not a file; pass a local .h5 weights file or .keras "
            "backbone (downloads such as 'imagenet' need network access: fetch the file elsewhere)."
        )

    if input_spec.kind == "text":
        inputs = keras.Input(shape=(), dtype="string", name="text")
    else:
        inputs = keras.Input(shape=input_spec.shape, dtype=input_spec.dtype, name=input_spec.kind)
    if handle:
        features = HubBackbone(handle, trainable=fine_tune, name="backbone")(inputs)
    elif application or weights:
        if input_spec.kind != "image":
            raise DlsuiteError(
                f"keras.applications backbones take images, not {input_spec.kind}; "
                "set model.handle to a TF Hub text embedding module."
            )
        if weights is None and not fine_tune:
            log.warning("transfer: a frozen %s with random weights; pass model.weights=PATH or model.fine_tune=true",
                        application)
        features = _application_backbone(inputs, application, weights, fine_tune)
    else:
        raise DlsuiteError(
            "transfer needs a backbone: set model.handle to a TF Hub module (URL or local SavedModel "
            "directory) or model.application to a keras.applications name."
        )
    outputs = new_head(_pool_features(features), num_outputs, output_activation, dropout, head_units)
    return keras.Model(inputs, outputs, name="transfer")


def new_head(
    features: keras.KerasTensor,
    num_outputs: int,
    output_activation: str | None,
    dropout: float,
    head_units: int,
    hidden_activation: str = "relu",
) -> keras.KerasTensor:
    """The head a pretrained backbone's pooled features get: dropout, an optional hidden layer, the outputs.

    Args:
        features: ``(batch, features)`` vectors from the backbone.
        num_outputs: width of the output layer.
        output_activation: its activation (``None`` for logits).
        dropout: dropout rate before each of the head's layers (0: none).
        head_units: width of the hidden layer (0: a linear head).
        hidden_activation: activation of the hidden layer.

    Returns:
        The outputs, float32 whatever the compute dtype.
    """
    x = features
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    if head_units:
        x = layers.Dense(head_units, activation=hidden_activation, name="head_dense")(x)
        if dropout:
            x = layers.Dropout(dropout, name="head_dense_dropout")(x)
    return layers.Dense(num_outputs, activation=output_activation, dtype="float32", name="predictions")(x)
