"""TF Hub modules: write a Keras backbone as a reusable SavedModel, and resolve handles offline.

A *reusable SavedModel* (the TF Hub convention for TF2 modules) is a SavedModel
whose root object has a ``__call__(inputs, training=False)`` function traced for
both values of ``training``, and ``variables``, ``trainable_variables`` and
``regularization_losses`` attributes. dlsuite's ``transfer`` family loads any
such module by handle (a tfhub.dev / Kaggle URL or a local path); this module
writes one from a Keras feature extractor, so tests, benchmarks and users can
make their own pretrained backbones offline::

    backbone = keras.Model(inputs, features)        # trained on some source task
    write_hub_module(backbone, "modules/digits_cnn")
    dlsuite run image_classification --arch transfer --set model.handle=modules/digits_cnn

:func:`text_embedding_backbone` builds the text counterpart (raw strings in,
a mean of token embeddings out) that a text module is written from.
"""

from __future__ import annotations

import os
from typing import Iterable

import keras
import tensorflow as tf

from dlsuite.architectures.sequence_inputs import MaskedMeanPooling1D
from dlsuite.errors import DlsuiteError


def resolve(handle: str) -> str:
    """The local directory of a TF Hub handle (downloaded into the TF Hub cache if it is a URL).

    Args:
        handle: a local SavedModel directory, or a tfhub.dev / Kaggle model URL.

    Returns:
        Path of the SavedModel directory.

    Raises:
        DlsuiteError: the handle is a URL that cannot be downloaded, or a path that does not exist.
    """
    import tensorflow_hub as hub

    handle = os.fspath(handle)
    is_url = "://" in handle
    if not is_url and not os.path.isdir(handle):
        raise DlsuiteError(
            f"hub module {handle!r} does not exist; pass the path of a SavedModel directory or a TF Hub URL."
        )
    try:
        path = hub.resolve(handle)
    except OSError as e:  # urllib's URLError is an OSError
        raise DlsuiteError(
            f"cannot download the hub module {handle!r} ({e}). Without network access, download it "
            "elsewhere (or set TFHUB_CACHE_DIR to a cache holding it) and pass the local SavedModel "
            "directory as the handle."
        ) from e
    if not tf.saved_model.contains_saved_model(path):
        raise DlsuiteError(f"{path} (from hub handle {handle!r}) holds no SavedModel (saved_model.pb).")
    return path


def write_hub_module(
    backbone: keras.Model,
    path: str | os.PathLike,
    *,
    input_signature: tf.TensorSpec | None = None,
) -> str:
    """Export a Keras feature extractor as a TF Hub reusable SavedModel.

    Args:
        backbone: a built Keras model, inputs -> features (no classifier head).
        path: directory to write; must not exist yet.
        input_signature: spec of the module's input; by default the backbone's
            input shape and dtype with a free batch dimension.

    Returns:
        The path written, usable as a ``transfer`` handle.
    """
    path = os.fspath(path)
    if os.path.exists(path):
        raise DlsuiteError(f"{path} already exists; write the hub module to a new directory.")
    if not backbone.built:
        raise DlsuiteError("write_hub_module needs a built backbone; call it on data or build it first.")
    if input_signature is None:
        (shape,) = [tuple(t.shape) for t in backbone.inputs]
        input_signature = tf.TensorSpec(shape, backbone.inputs[0].dtype, name="inputs")

    @tf.function
    def call(inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        return backbone(inputs, training=training)

    # Reusable SavedModels are called with training=True when fine-tuned, False otherwise.
    for training in (False, True):
        call.get_concrete_function(input_signature, training)

    module = tf.train.Checkpoint()  # a plain trackable root; tf.Module would not allow these attributes
    module.backbone = backbone
    module.variables = [v.value for v in backbone.variables]
    module.trainable_variables = [v.value for v in backbone.trainable_variables]
    module.regularization_losses = []
    module.__call__ = call
    tf.saved_model.save(module, path)
    return path


def text_embedding_backbone(
    texts: Iterable[str] | tf.data.Dataset,
    *,
    max_tokens: int = 5000,
    output_dim: int = 32,
    sequence_length: int = 64,
    name: str = "text_embedding",
) -> keras.Model:
    """Raw strings -> mean of their token embeddings: the body of a text hub module.

    Args:
        texts: training texts the vocabulary is adapted on.
        max_tokens: vocabulary size (including padding and out-of-vocabulary ids).
        output_dim: embedding width.
        sequence_length: tokens kept per text.
        name: model name.

    Returns:
        A Keras model from ``(batch,)`` strings to ``(batch, output_dim)`` embeddings,
        with a randomly initialized embedding (train it on a source task before
        writing it as a module).
    """
    vectorize = keras.layers.TextVectorization(
        max_tokens=max_tokens, output_sequence_length=sequence_length, name="vectorize"
    )
    vectorize.adapt(texts if isinstance(texts, tf.data.Dataset) else tf.constant(list(texts)))
    inputs = keras.Input(shape=(), dtype="string", name="text")
    tokens = vectorize(inputs)
    embedded = keras.layers.Embedding(max_tokens, output_dim, mask_zero=True, name="embedding")(tokens)
    outputs = MaskedMeanPooling1D(name="mean")(embedded)  # an empty text embeds to zeros, not NaN
    return keras.Model(inputs, outputs, name=name)

