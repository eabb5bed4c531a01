"""What the classification tasks share: label smoothing as a training option."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from dlsuite import DlsuiteError
from dlsuite.tasks import runner
from dlsuite.tasks.classification import SmoothedSparseCrossentropy


def test_smoothed_loss_equals_keras_categorical_smoothing_on_one_hot_labels():
    labels = np.array([0, 2, 1, 2])
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3], [0.5, 0.25, 0.25]], np.float32)
    expected = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(np.eye(3)[labels], probs)
    np.testing.assert_allclose(SmoothedSparseCrossentropy(0.1)(labels, probs), expected, rtol=1e-6)
    # Smoothing 0 is the plain sparse cross-entropy.
    np.testing.assert_allclose(
        SmoothedSparseCrossentropy(0.0)(labels, probs), keras.losses.SparseCategoricalCrossentropy()(labels, probs),
        rtol=1e-6,
    )
    restored = SmoothedSparseCrossentropy.from_config(SmoothedSparseCrossentropy(0.2).get_config())
    assert restored.label_smoothing == 0.2


@pytest.mark.parametrize("task_name", ["image_classification", "sentiment", "speech"])
def test_every_classification_task_takes_label_smoothing(task_name):
    task, cfg = runner.resolve_config(task_name, overrides=["train.label_smoothing=0.1"])
    loss, _ = task.loss_and_metrics(None, cfg)
    assert isinstance(loss, SmoothedSparseCrossentropy) and loss.label_smoothing == 0.1
    _, default = runner.resolve_config(task_name)
    assert isinstance(task.loss_and_metrics(None, default)[0], keras.losses.SparseCategoricalCrossentropy)


def test_out_of_range_smoothing_and_non_classification_tasks_are_refused():
    task, cfg = runner.resolve_config("image_classification", overrides=["train.label_smoothing=1.0"])
    with pytest.raises(DlsuiteError, match=r"label_smoothing must be in \[0, 1\), got 1.0"):
        task.loss_and_metrics(None, cfg)
    with pytest.raises(DlsuiteError, match="label_smoothing"):
        runner.resolve_config("anomaly", overrides=["train.label_smoothing=0.1"])


def test_a_smoothed_run_trains_and_exports(tmp_path):
    task, cfg = runner.resolve_config(
        "image_classification",
        overrides=["architecture=mlp", "train.epochs=3", "train.label_smoothing=0.1"],
        values={"export.root": str(tmp_path / "sm")},
    )
    result = runner.run(task, cfg, tmp_path / "run")
    assert result.metrics["accuracy"] > 0.8
    assert result.reload_max_abs_diff is not None and result.reload_max_abs_diff < 1e-5
