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
"""

from __future__ import annotations

import logging
from typing import Any

import keras
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
