"""Workarounds for upstream bugs, each applied only where it is needed and only on versions it was checked on.

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
"""

from __future__ import annotations

import logging

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
