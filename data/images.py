"""Image sources: the embedded ``digits`` set, TFDS by name, a folder of class subfolders, arrays.

Every source yields :class:`~dlsuite.data.splits.Splits` whose features are raw
pixel values (0-255, uint8 or float32) of shape ``(height, width, channels)``.
Scaling and normalization belong to the task's preprocessing, so the exported
model takes the same raw pixels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf

from dlsuite.data import tfds_source
from dlsuite.data.splits import Splits, check_labels, from_arrays, split_indices
from dlsuite.errors import DlsuiteError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
COLOR_CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}
DEFAULT_FOLDER_SIZE = (64, 64)

EMBEDDED = {
    "digits": "scikit-learn's handwritten digits: 1,797 grayscale 8x8 images, 10 classes (offline, embedded)",
}


def digits(*, val_fraction: float, test_fraction: float, seed: int) -> Splits:
    """scikit-learn's ``load_digits`` as uint8 images of shape (8, 8, 1).

    The 0-16 intensities are scaled to 0-255 so the set looks like any other image data.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return from_arrays(
        images,
        bunch.target,
        [str(c) for c in bunch.target_names],
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        source="digits",
    )


def image_arrays(
    images: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> Splits:
    """In-memory images ``(n, h, w)`` or ``(n, h, w, c)`` with integer labels."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise DlsuiteError(
            f"images must have shape (n, height, width) or (n, height, width, channels), got {images.shape}."
        )
    return from_arrays(
        images, labels, class_names, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, source="arrays"
    )


def decode_image(encoded: tf.Tensor, image_size: Sequence[int], channels: int) -> tf.Tensor:
    """PNG/JPEG/BMP/GIF bytes -> float32 pixels resized to ``image_size``.

    The same ops as ``keras.utils.image_dataset_from_directory`` (decode_image,
    then bilinear ``tf.image.resize``), so served bytes match training pixels.
    """
    image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
    image = tf.image.resize(image, image_size, method="bilinear")
    image.set_shape((image_size[0], image_size[1], channels))
    return image


def folder(
    path: str | os.PathLike,
    *,
    image_size: Sequence[int] | None,
    color_mode: str,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> Splits:
    """A folder of class subfolders (``path/<class>/<image>``), split stratified by class."""
    import keras
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    if not root.is_dir():
        raise DlsuiteError(f"data folder {root} does not exist or is not a directory.")
    files = sorted(p for p in root.glob("*/*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise DlsuiteError(
            f"{root} holds no images ({', '.join(IMAGE_EXTENSIONS)}) in class subfolders; "
            f"lay it out as {root}/<class name>/<image file>."
        )
    for file in files:
        try:
            with Image.open(file) as im:
                im.verify()
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            raise DlsuiteError(f"cannot read image {file}: {e}. Fix or remove the file.") from None
        except Image.DecompressionBombError as e:  # decoding it would take gigabytes
            raise DlsuiteError(f"image {file} is too large to read: {e} Shrink or remove the file.") from None
    size = tuple(image_size) if image_size else DEFAULT_FOLDER_SIZE
    if color_mode not in COLOR_CHANNELS:
        raise DlsuiteError(f"data.color_mode must be one of {', '.join(COLOR_CHANNELS)}, got {color_mode!r}.")
    ds = keras.utils.image_dataset_from_directory(
        root, labels="inferred", label_mode="int", color_mode=color_mode,
        batch_size=None, image_size=size, shuffle=False, verbose=False,
    )
    class_names = list(ds.class_names)
    labels = np.array([class_names.index(Path(p).parent.name) for p in ds.file_paths], dtype=np.int64)
    check_labels(labels, class_names, f"image folder {root}")
    train, val, test = split_indices(labels, val_fraction, test_fraction, seed)

    def subset(idx: np.ndarray) -> tf.data.Dataset:
        mask = np.zeros(len(labels), dtype=bool)
        mask[idx] = True
        keep = tf.constant(mask)

        def selected(i, example):
            return keep[i]

        def drop_index(i, example):
            return example

        return ds.enumerate().filter(selected).map(drop_index)

    channels = COLOR_CHANNELS[color_mode]
    return Splits(
        subset(train), subset(val), subset(test),
        {
            "class_names": class_names,
            "input_shape": [size[0], size[1], channels],
            "input_dtype": "float32",
            "source": f"folder:{root}",
            "num_examples": {"train": len(train), "val": len(val), "test": len(test)},
        },
    )


def tfds_images(
    name: str, *, data_dir: str | None, image_size: Sequence[int] | None, val_fraction: float, download: bool = True
) -> Splits:
    """Any TFDS image classification dataset; resized when ``image_size`` is set or sizes vary."""
    datasets, info, counts = tfds_source.load(name, data_dir, val_fraction, download)
    image_key, label_key = info.supervised_keys
    shape = tuple(info.features[image_key].shape)
    label_feature = info.features[label_key]
    if not hasattr(label_feature, "names") or len(shape) != 3:
        raise DlsuiteError(f"TFDS dataset {name!r} is not an image classification dataset (image + class label).")
    channels = shape[-1]
    size = tuple(image_size) if image_size else shape[:2]
    if None in size:
        size = DEFAULT_FOLDER_SIZE
    if tuple(size) != tuple(shape[:2]):
        datasets = {
            k: ds.map(lambda x, y: (tf.image.resize(x, size, method="bilinear"), y), num_parallel_calls=tf.data.AUTOTUNE)
            for k, ds in datasets.items()
        }
        dtype = "float32"
    else:
        dtype = "uint8"
    return Splits(
        datasets["train"], datasets["val"], datasets["test"],
        {
            "class_names": list(label_feature.names),
            "input_shape": [size[0], size[1], channels],
            "input_dtype": dtype,
            "source": f"tfds:{name}",
            "num_examples": counts,
        },
    )
