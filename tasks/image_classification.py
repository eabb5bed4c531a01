"""Image classification: raw pixels (or PNG/JPEG bytes) in, class out."""

from __future__ import annotations

import os
from typing import Any, Iterator, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from dlsuite.architectures import InputSpec
from dlsuite.data import images
from dlsuite.data.splits import Splits
from dlsuite.errors import DlsuiteError
from dlsuite.tasks.base import Endpoints, register
from dlsuite.tasks.classification import ClassificationTask

BYTES_SIGNATURE = "classify_image_bytes"


@register
class ImageClassification(ClassificationTask):
    name = "image_classification"
    summary = "images -> one of N classes; export takes uint8 pixels or PNG/JPEG bytes"
    input_kind = "image"
    architectures = ("cnn", "resnet", "inception", "mlp", "dbn", "rbfn", "transfer")
    embedded_datasets = images.EMBEDDED

    def config_overrides(self) -> dict[str, Any]:
        return {
            # Measured on digits (benchmarks/RESULTS.md): shifted copies are what lift the
            # networks past an RBF SVC, and a 144-image validation split is noisy enough that
            # patience 10 stops some seeds early; most runs end within 40-75 epochs.
            "data": {"image_size": None, "color_mode": "rgb", "augment": True},
            "train": {"epochs": 100, "batch_size": 64, "early_stopping_patience": 20},
        }

    def choices(self) -> dict[str, Sequence[Any]]:
        return {**super().choices(), "data.color_mode": list(images.COLOR_CHANNELS)}

    def load(self, cfg: Mapping[str, Any]) -> Splits:
        data, seed = cfg["data"], cfg["seed"]
        if data["path"]:
            return images.folder(
                data["path"],
                image_size=data["image_size"],
                color_mode=data["color_mode"],
                val_fraction=data["val_fraction"],
                test_fraction=data["test_fraction"],
                seed=seed,
            )
        if data["dataset"] == "digits":
            return images.digits(val_fraction=data["val_fraction"], test_fraction=data["test_fraction"], seed=seed)
        return images.tfds_images(
            data["dataset"], data_dir=data["data_dir"], image_size=data["image_size"],
            val_fraction=data["val_fraction"], download=data["download"],
        )

    def raw_input(self, splits: Splits) -> keras.KerasTensor:
        return keras.Input(shape=tuple(splits.metadata["input_shape"]), dtype="float32", name="images")

    def preprocessor(self, splits: Splits, cfg: Mapping[str, Any]) -> keras.layers.Layer:
        normalize = keras.layers.Normalization(axis=-1, name="normalize")
        normalize.adapt(splits.train.map(lambda x, y: tf.cast(x, tf.float32)).batch(512))
        return normalize

    def augmenter(
        self, splits: Splits, cfg: Mapping[str, Any], preprocessor: keras.layers.Layer
    ) -> keras.layers.Layer | None:
        if not cfg["data"]["augment"]:
            return None
        # Augmentation runs on normalized batches: fill the uncovered border with black as normalized.
        channels = splits.metadata["input_shape"][-1]
        black = float(np.mean(preprocessor(np.zeros((1, 1, 1, channels), np.float32))))
        return keras.layers.RandomTranslation(
            0.1, 0.1, fill_mode="constant", fill_value=black, seed=cfg["seed"], name="augment"
        )

    def network_input(self, splits: Splits) -> InputSpec:
        return InputSpec("image", tuple(splits.metadata["input_shape"]))

    def serving_endpoints(self, model: keras.Model, metadata: Mapping[str, Any]) -> Endpoints:
        height, width, channels = metadata["input_shape"]
        class_names = metadata["class_names"]

        def classify_images(images: tf.Tensor) -> dict[str, tf.Tensor]:
            return self.postprocess(model(tf.cast(images, tf.float32), training=False), class_names)

        def classify_image_bytes(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
            decoded = tf.map_fn(
                lambda b: images.decode_image(b, (height, width), channels),
                image_bytes,
                fn_output_signature=tf.TensorSpec((height, width, channels), tf.float32),
            )
            return self.postprocess(model(decoded, training=False), class_names)

        return {
            "serving_default": (
                classify_images,
                [tf.TensorSpec((None, height, width, channels), tf.uint8, name="images")],
            ),
            BYTES_SIGNATURE: (classify_image_bytes, [tf.TensorSpec((None,), tf.string, name="image_bytes")]),
        }

    def verification_inputs(self, splits: Splits, metadata: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
        batch = next(iter(splits.test.batch(16)))[0].numpy()
        pixels = np.clip(np.round(batch), 0, 255).astype(np.uint8)
        encoded = np.array([tf.io.encode_png(img).numpy() for img in pixels], dtype=object)
        return {"serving_default": {"images": pixels}, BYTES_SIGNATURE: {"image_bytes": encoded}}

    def serving_batches(
        self, ds: tf.data.Dataset, metadata: Mapping[str, Any], batch_size: int
    ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        for x, y in ds.batch(batch_size):
            yield {"images": np.clip(np.round(x.numpy()), 0, 255).astype(np.uint8)}, y.numpy()

    def predict_inputs(self, inputs: Sequence[str], metadata: Mapping[str, Any]) -> tuple[str, dict[str, np.ndarray]]:
        encoded = []
        for path in inputs:
            if not os.path.isfile(path):
                raise DlsuiteError(f"image file {path} does not exist; pass paths of PNG/JPEG/BMP/GIF files.")
            with open(path, "rb") as f:
                data = f.read()
            if not tf.io.is_jpeg(data) and not data.startswith((b"\x89PNG", b"BM", b"GIF8")):
                raise DlsuiteError(f"{path} is not a PNG, JPEG, BMP or GIF image.")
            encoded.append(data)
        return BYTES_SIGNATURE, {"image_bytes": np.array(encoded, dtype=object)}
