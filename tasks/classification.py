"""What every single-label classification task shares: head, loss, report, outputs."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from dlsuite import reporting
from dlsuite.data.pipeline import batched
from dlsuite.data.splits import Splits
from dlsuite.errors import DlsuiteError
from dlsuite.tasks.base import Task


@keras.saving.register_keras_serializable(package="dlsuite")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer labels against probabilities, with label smoothing.

    Keras's ``SparseCategoricalCrossentropy`` has no ``label_smoothing``; this
    one-hot encodes the labels and uses ``categorical_crossentropy``, whose
    smoothing moves ``label_smoothing`` of each target's mass evenly onto all classes.

    Args:
        label_smoothing: in ``[0, 1)``.
        name: the loss name.
        **kwargs: ``keras.losses.Loss`` arguments (``reduction``, ``dtype``).
    """

    def __init__(self, label_smoothing: float = 0.1, name: str = "smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        targets = keras.ops.one_hot(labels, keras.ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(targets, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


class ClassificationTask(Task):
    """A softmax classifier over ``metadata["class_names"]``.

    Class attributes:
        output_names: names of the (probabilities, class index, class name)
            outputs of the exported signatures.
    """

    output_names: tuple[str, str, str] = ("probabilities", "class_id", "class_name")

    def head(self, splits: Splits) -> tuple[int, str | None]:
        return len(splits.class_names), "softmax"

    def default_config(self) -> dict[str, Any]:
        cfg = super().default_config()
        cfg["train"].setdefault("label_smoothing", 0.0)
        return cfg

    def loss_and_metrics(self, splits: Splits, cfg: Mapping[str, Any]) -> tuple[Any, list[Any]]:
        smoothing = cfg["train"]["label_smoothing"]
        if not 0.0 <= smoothing < 1.0:
            raise DlsuiteError(f"train.label_smoothing must be in [0, 1), got {smoothing}; 0.1 is a usual value.")
        loss = SmoothedSparseCrossentropy(smoothing) if smoothing else keras.losses.SparseCategoricalCrossentropy()
        return loss, [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def predict_split(self, model: keras.Model, ds: tf.data.Dataset, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(true labels, predicted probabilities) over an unbatched split, in one pass."""
        labels, probs = [], []
        for x, y in batched(ds, batch_size, training=False, seed=0, cache=False):
            probs.append(np.asarray(model(x, training=False)))
            labels.append(y.numpy())
        return np.concatenate(labels), np.concatenate(probs)

    def evaluate(self, model: keras.Model, splits: Splits, run_dir: str, batch_size: int) -> dict[str, Any]:
        y_true, probs = self.predict_split(model, splits.test, batch_size)
        metrics = reporting.classification_metrics(y_true, probs.argmax(axis=1), splits.class_names)
        reporting.plot_confusion_matrix(
            metrics["confusion_matrix"], splits.class_names, os.path.join(run_dir, "confusion_matrix.png")
        )
        return metrics

    def postprocess(self, probabilities: tf.Tensor, class_names: Sequence[str]) -> dict[str, tf.Tensor]:
        """Probabilities -> the named outputs of every exported signature."""
        probs_name, id_name, label_name = self.output_names
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return {
            probs_name: tf.cast(probabilities, tf.float32),
            id_name: class_id,
            label_name: tf.gather(tf.constant(list(class_names)), class_id),
        }

    def served_score(self, outputs: Mapping[str, np.ndarray], labels: np.ndarray) -> float | None:
        """Accuracy of the served class ids."""
        _, id_name, _ = self.output_names
        return float(np.mean(np.asarray(outputs[id_name]).reshape(-1) == np.asarray(labels).reshape(-1)))

    def format_predictions(self, inputs: Sequence[str], outputs: Mapping[str, np.ndarray]) -> list[str]:
        probs_name, _, label_name = self.output_names
        lines = []
        for item, label, probs in zip(inputs, outputs[label_name], outputs[probs_name]):
            text = label.decode() if isinstance(label, bytes) else str(label)
            lines.append(f"{item}\t{text}\t{float(np.max(probs)):.4f}")
        return lines
