"""The one thing every data source yields: train/val/test datasets plus metadata."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
import tensorflow as tf
from sklearn.model_selection import train_test_split

from dlsuite.errors import DlsuiteError


@dataclasses.dataclass
class Splits:
    """Unbatched ``(features, label)`` datasets and what the task needs to know about them.

    Attributes:
        train, val, test: unbatched ``tf.data.Dataset`` of ``(features, label)``.
        metadata: at least ``class_names`` (classification) and ``input_shape`` /
            ``input_dtype`` of the raw features; sources add what they know
            (``source``, ``num_examples``).
        fitted: in-memory objects one task hook fits on the training split for
            a later hook (an embedding matrix for ``build_network``); unlike
            ``metadata`` they are never written out.
    """

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    metadata: dict[str, Any]
    fitted: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata["class_names"])


def split_indices(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded train/val/test index split, stratified when every class has enough examples.

    ``test_fraction`` is of the whole set, ``val_fraction`` of what remains for training.
    """
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < frac < 1.0:
            raise DlsuiteError(f"data.{name} must be between 0 and 1 (exclusive), got {frac}.")
    index = np.arange(len(labels))
    try:
        train, test = train_test_split(
            index, test_size=test_fraction, random_state=seed, stratify=_stratify(labels, test_fraction)
        )
        train, val = train_test_split(
            train, test_size=val_fraction, random_state=seed, stratify=_stratify(labels[train], val_fraction)
        )
    except ValueError:  # scikit-learn's words for a split that would leave a part empty
        raise DlsuiteError(
            f"{len(labels)} examples are too few to split into train, validation ({val_fraction:g}) and test "
            f"({test_fraction:g}) parts that each hold one; add examples."
        ) from None
    return np.sort(train), np.sort(val), np.sort(test)


def _stratify(labels: np.ndarray, fraction: float) -> np.ndarray | None:
    _, counts = np.unique(labels, return_counts=True)
    smallest_side = min(fraction, 1 - fraction) * len(labels)
    enough = counts.min() >= 2 and smallest_side >= len(counts)
    return labels if enough else None


def check_labels(labels: np.ndarray, class_names: Sequence[str], where: str) -> None:
    """Refuse data that cannot train a classifier: too few examples or a single class."""
    present = np.unique(labels)
    if len(present) < 2:
        only = class_names[int(present[0])] if len(present) else "none"
        raise DlsuiteError(
            f"{where} holds a single class ({only!r}); a classifier needs examples of at least two classes."
        )
    if len(labels) < 10:
        raise DlsuiteError(f"{where} holds only {len(labels)} examples; at least 10 are needed to split and train.")


def from_arrays(
    features: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    source: str,
) -> Splits:
    """Split in-memory arrays (labels already integer ids) into :class:`Splits`."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(features) != len(labels):
        raise DlsuiteError(f"{source}: {len(features)} feature rows but {len(labels)} labels; they must match.")
    check_labels(labels, class_names, source)
    train, val, test = split_indices(labels, val_fraction, test_fraction, seed)

    def subset(idx: np.ndarray) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices((features[idx], labels[idx]))

    return Splits(
        subset(train),
        subset(val),
        subset(test),
        {
            "class_names": [str(c) for c in class_names],
            "input_shape": list(features.shape[1:]),
            "input_dtype": str(features.dtype),
            "source": source,
            "num_examples": {"train": len(train), "val": len(val), "test": len(test)},
        },
    )

