"""The optimizer and learning-rate schedule of a run, from its ``train`` section.

``train.optimizer`` names a Keras optimizer; ``train.lr_schedule`` shapes its
learning rate over the run: ``constant``, or ``warmup_linear`` (BERT's
fine-tuning schedule: linear warm-up from 0 to ``train.learning_rate`` over the
first ``train.warmup_fraction`` of the steps, then linear decay to 0 at the
last step). ``train.weight_decay`` is decoupled weight decay (``None``: the
optimizer's default; AdamW's is 0.004); with ``adamw``, biases and
normalization scales and offsets are exempt, as in BERT.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import keras

from dlsuite.errors import DlsuiteError

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "warmup_linear")
NO_DECAY = ("bias", "gamma", "beta")


@keras.saving.register_keras_serializable(package="dlsuite")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak_learning_rate``, then linear decay to 0 at ``total_steps``.

    Args:
        peak_learning_rate: the rate at the end of the warm-up.
        total_steps: optimizer steps of the whole run; later steps get 0.
        warmup_steps: steps of the warm-up (0: start at the peak).
    """

    def __init__(self, peak_learning_rate: float, total_steps: int, warmup_steps: int):
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step: Any) -> Any:
        step = keras.ops.cast(step, "float32")
        warm = self.peak_learning_rate * (step + 1.0) / max(self.warmup_steps, 1)
        remaining = (self.total_steps - step) / max(self.total_steps - self.warmup_steps, 1)
        decay = self.peak_learning_rate * keras.ops.clip(remaining, 0.0, 1.0)
        return keras.ops.where(step < self.warmup_steps, warm, decay)

    def get_config(self) -> dict[str, Any]:
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
        }


def learning_rate(train_cfg: Mapping[str, Any], steps_per_epoch: int | None) -> float | WarmupLinearDecay:
    """``train.learning_rate`` shaped by ``train.lr_schedule`` over ``train.epochs`` x ``steps_per_epoch``."""
    peak, schedule = train_cfg["learning_rate"], train_cfg["lr_schedule"]
    if schedule == "constant":
        return peak
    fraction = train_cfg["warmup_fraction"]
    if not 0.0 <= fraction < 1.0:
        raise DlsuiteError(f"train.warmup_fraction must be in [0, 1), got {fraction}; BERT uses 0.1.")
    if not steps_per_epoch:
        raise DlsuiteError(
            f"train.lr_schedule={schedule} needs the number of training batches, and the training data "
            "does not state its size; use train.lr_schedule=constant for this source."
        )
    total = int(train_cfg["epochs"]) * int(steps_per_epoch)
    return WarmupLinearDecay(peak, total, math.ceil(fraction * total))


def make_optimizer(train_cfg: Mapping[str, Any], steps_per_epoch: int | None) -> keras.optimizers.Optimizer:
    """The configured optimizer (create it inside the strategy scope).

    Args:
        train_cfg: the run's ``train`` section.
        steps_per_epoch: training batches per epoch (schedules need it).

    Returns:
        A ``keras.optimizers.Optimizer``.
    """
    config: dict[str, Any] = {"learning_rate": learning_rate(train_cfg, steps_per_epoch)}
    if train_cfg.get("weight_decay") is not None:
        config["weight_decay"] = float(train_cfg["weight_decay"])
    optimizer = keras.optimizers.get({"class_name": train_cfg["optimizer"], "config": config})
    if train_cfg["optimizer"] == "adamw":
        optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY))
    return optimizer
