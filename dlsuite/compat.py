"""Workarounds for upstream bugs and costs, each applied only where it is needed and only on versions it was checked on.

Keras 3 ``fit`` under ``tf.distribute.MultiWorkerMirroredStrategy`` fails twice
before the first step (checked on Keras 3.15.1 / TensorFlow 2.21.0):

* keras-team/keras#20585: ``TensorFlowTrainer._maybe_symbolic_build`` reduces a
  tuple of ``PerReplica`` batches with ``strategy.reduce``; the multi-worker
  strategy does not map over tuples ("Attempt to convert a value (PerReplica...)").
  Building from the local replica's batch only needs its shapes, not a reduction.
* tensorflow/tensorflow#72388: ``reduce_per_replica`` averages scalar logs with
  ``axis=0`` ("Invalid reduction dimension 0 for input with 0 dimensions");
  the mean across replicas is ``axis=None``.

:func:`patch_keras_multi_worker` replaces those two private functions. On other
Keras versions it leaves Keras alone and says so: the fix may have landed, or the
private code moved.

Without a distribution strategy Keras 3 defers creating the optimizer, metric and
loss variables to the first trace of the train step, and TensorFlow traces a
``tf.function`` that creates variables twice. :func:`build_before_fit` creates
them first, as Keras itself does under a strategy, so the step is traced once.

Keras's ``BackupAndRestore`` falls back to its previous backup only on ``OSError``;
:class:`BackupAndRestore` also survives a truncated backup that h5py reports otherwise,
and one with no readable backup left.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

log = logging.getLogger("dlsuite")

CHECKED_KERAS = ("3.15.",)
_patched = False


def patch_keras_multi_worker() -> bool:
    """Make Keras 3 ``fit`` work under MultiWorkerMirroredStrategy; True when patched."""
    global _patched
    if _patched:
        return True
    if not keras.__version__.startswith(CHECKED_KERAS):
        log.warning(
            "Keras %s: the multi-worker workaround was checked on %s only and is not applied; "
            "see keras-team/keras#20585 and tensorflow/tensorflow#72388 if fit fails.",
            keras.__version__, ", ".join(v + "x" for v in CHECKED_KERAS),
        )
        return False
    from keras.src.backend.tensorflow import trainer

    original_reduce = trainer.reduce_per_replica

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = keras.tree.map_structure(
                    lambda v: self.distribute_strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues)
                    else v,
                    next(it),
                )
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return keras.tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original_reduce(values, strategy, reduction)

    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer.reduce_per_replica = reduce_per_replica
    _patched = True
    return True


def build_before_fit(model: keras.Model, example: Any) -> bool:
    """Create a compiled model's optimizer, metric and loss variables before ``fit`` traces its step.

    Keras 3 does this itself only under a distribution strategy; otherwise the train step
    creates them while it is traced, and TensorFlow traces it a second time. Measured on a
    small Inception under XLA: the first epoch 17.9 s -> 11.9 s, the same losses.

    Args:
        model: a compiled model.
        example: one batch (``(x, y)`` or ``(x, y, sample_weight)``) as tensors, arrays or
            ``tf.TensorSpec``s, or a ``tf.data.Dataset`` yielding such batches; only shapes
            and dtypes are read.

    Returns:
        True when the variables were created here; False when Keras builds them itself (a
        distribution strategy, an unchecked Keras version) or already has.
    """
    if getattr(model, "_distribute_strategy", None) is not None or not keras.__version__.startswith(CHECKED_KERAS):
        return False
    if model.optimizer is None or model.optimizer.built:
        return False
    if isinstance(example, tf.data.Dataset):
        example = example.element_spec
    specs = tf.nest.map_structure(
        lambda v: v if isinstance(v, tf.TypeSpec) else tf.type_spec_from_value(v), example
    )
    if not all(type(s) is tf.TensorSpec for s in tf.nest.flatten(specs)):
        return False  # ragged or sparse batches: left to Keras
    model._symbolic_build(data_batch=tf.nest.map_structure(lambda s: tf.TensorSpec([None, *s.shape[1:]], s.dtype), specs))
    return True


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """``keras.callbacks.BackupAndRestore`` that survives a backup cut short.

    A backup written while the disk fills up, or while the process is killed, is a
    truncated HDF5 file. With ``double_checkpoint`` Keras falls back to the previous
    backup, but only when loading raises ``OSError``; h5py reports some truncations as
    ``RuntimeError`` ("address of object past end of allocation"), and when the very
    first backup is cut short there is no previous one, so the resumed run crashed
    (checked on Keras 3.15.1 with h5py 3.x). Here an unreadable backup falls back to the
    previous one for any such error, and with none readable training starts again from
    the first epoch, with a warning, instead of failing.
    """

    SEED_STATES = "seed_generators.json"

    def _seed_states(self) -> list[Any]:
        """The model's random-number state variables (dropout, noise), which weight files leave out."""
        return [v for v in self.model.variables if v.path.endswith("seed_generator_state")]

    def _save_model(self) -> None:
        super()._save_model()
        # Saved with the epoch they belong to, so a resume continues the dropout masks and noise
        # the uninterrupted run would have drawn.
        states = {"epoch": self._current_epoch, "states": [v.numpy().tolist() for v in self._seed_states()]}
        with open(os.path.join(self.backup_dir, self.SEED_STATES), "w", encoding="utf-8") as f:
            json.dump(states, f)

    def _restore_seed_states(self) -> None:
        epoch = backed_up_epochs(self.backup_dir)
        try:
            with open(os.path.join(self.backup_dir, self.SEED_STATES), encoding="utf-8") as f:
                saved = json.load(f)
        except (OSError, ValueError):
            return
        variables = self._seed_states()
        if saved.get("epoch") != epoch or len(saved.get("states", [])) != len(variables):
            return  # from another epoch (a kill between the two writes) or another model
        for variable, state in zip(variables, saved["states"]):
            variable.assign(np.asarray(state, dtype=variable.dtype))

    def on_train_begin(self, logs: Any = None) -> None:
        self._restore_backup()
        if getattr(self.model, "_initial_epoch", 0):
            self._restore_seed_states()

    def _restore_backup(self) -> None:
        pairs = [(self._weights_path, self._training_metadata_path)]
        if self.double_checkpoint:
            pairs.append((self._prev_weights_path, self._prev_training_metadata_path))
        errors = []
        for weights, metadata in pairs:
            if not os.path.exists(weights):
                continue
            if weights != self._weights_path:
                shutil.copyfile(weights, self._weights_path)
                if os.path.exists(metadata):
                    shutil.copyfile(metadata, self._training_metadata_path)
                elif os.path.exists(self._training_metadata_path):
                    os.remove(self._training_metadata_path)
            try:
                self._load_model()
            except (OSError, RuntimeError, ValueError, KeyError) as e:
                errors.append(f"{os.path.basename(weights)}: {e}")
                continue
            if errors:
                log.warning("the latest backup was unreadable (%s); resumed from the one before it", errors[0])
            return
        if errors:
            log.warning(
                "no backup in %s is readable (%s); training starts again from the first epoch",
                self.backup_dir, "; ".join(errors),
            )
            for path in (p for pair in pairs for p in pair):
                if os.path.exists(path):
                    os.remove(path)


def backed_up_epochs(backup_dir: str | os.PathLike) -> int:
    """The epochs a :class:`BackupAndRestore` backup in ``backup_dir`` holds (0: none).

    Read before ``fit``, so a resumed run can position its data where the killed one was.
    It is the latest backup's count; when that backup turns out unreadable, ``fit`` resumes
    one epoch earlier from the previous backup.
    """
    path = os.path.join(backup_dir, "training_metadata.json")
    try:
        with open(path, encoding="utf-8") as f:
            return max(int(json.load(f)["epoch"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return 0


class EarlyStopping(keras.callbacks.EarlyStopping):
    """``keras.callbacks.EarlyStopping`` that goes on counting across a resume.

    Keras starts counting afresh in every ``fit``, so a run resumed after a kill would
    wait ``patience`` epochs more than the uninterrupted run. Given the monitored values
    of the epochs done before, this one starts from their best and from the epochs since.

    Args:
        previous: the monitored value of each epoch already trained (oldest first).
        **kwargs: ``keras.callbacks.EarlyStopping`` arguments (a ``min`` or ``max`` monitor).
    """

    def __init__(self, previous: Sequence[float] = (), **kwargs: Any):
        super().__init__(**kwargs)
        self.previous = [float(v) for v in previous]

    def on_train_begin(self, logs: Any = None) -> None:
        super().on_train_begin(logs)
        if not self.previous:
            return
        if self.monitor_op is None:
            self._set_monitor_op()
        for epoch, value in enumerate(self.previous):  # as on_epoch_end would have counted them
            self.wait += 1
            if self._is_improvement(value, self.best):
                self.best, self.best_epoch, self.wait = value, epoch, 0
