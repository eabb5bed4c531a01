"""tf.distribute strategy by name, and what a run must do differently under each.

``resolve("auto")`` takes a TPU when a TPU cluster resolver finds one, else a
MirroredStrategy over several GPUs, else the default strategy. Batch sizes in
the configuration are per replica; :func:`global_batch_size` scales them.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Sequence

import tensorflow as tf

from dlsuite.errors import DlsuiteError

STRATEGIES = ("auto", "tpu", "mirrored", "multi_worker", "one_device", "default")

log = logging.getLogger("dlsuite")


def split_cpu(num_devices: int) -> None:
    """Split the host CPU into ``num_devices`` logical devices (for Mirrored runs without GPUs).

    Must run before TensorFlow initializes its devices; a second call with the same
    number is a no-op.
    """
    if num_devices <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current and len(current) == num_devices:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
        )
    except RuntimeError:
        raise DlsuiteError(
            f"cannot split the CPU into {num_devices} logical devices: TensorFlow is already initialized "
            "in this process. Set distribute.logical_cpus before anything else runs (a fresh process)."
        ) from None


def resolve(
    name: str = "auto",
    *,
    devices: Sequence[str] | None = None,
    tpu: str | None = None,
    logical_cpus: int = 0,
) -> tf.distribute.Strategy:
    """Return the strategy called ``name``.

    Args:
        name: one of ``STRATEGIES``.
        devices: devices for ``mirrored`` (default: all GPUs, else all logical CPUs).
        tpu: TPU name or address for the cluster resolver (``None``: the environment's).
        logical_cpus: split the CPU into this many logical devices first (0/1: don't).

    Returns:
        A ``tf.distribute.Strategy``.
    """
    if name not in STRATEGIES:
        raise DlsuiteError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}.")
    split_cpu(logical_cpus)
    if name == "auto":
        strategy = _try_tpu(tpu)
        if strategy is not None:
            return strategy
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy([d.name for d in gpus])
        return tf.distribute.get_strategy()
    if name == "tpu":
        strategy = _try_tpu(tpu, required=True)
        assert strategy is not None
        return strategy
    if name == "mirrored":
        if not devices:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(list(devices))
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise DlsuiteError(
                "strategy multi_worker needs the TF_CONFIG environment variable (cluster spec and this "
                "worker's task index) on every worker; see README, 'Distributed training'."
            )
        from dlsuite.compat import patch_keras_multi_worker

        patch_keras_multi_worker()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    return tf.distribute.get_strategy()


def _try_tpu(tpu: str | None, required: bool = False) -> tf.distribute.Strategy | None:
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        if required:
            raise DlsuiteError(
                f"no TPU found ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                "run on a TPU VM or pass distribute.tpu=<name or grpc address>, or use --strategy auto."
            ) from None
        return None
    log.info("TPU found: %s", resolver.master())
    return tf.distribute.TPUStrategy(resolver)


def is_tpu(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.TPUStrategy)


def global_batch_size(per_replica: int, strategy: tf.distribute.Strategy) -> int:
    return per_replica * strategy.num_replicas_in_sync


def worker_id() -> tuple[bool, str]:
    """(is this process the chief?, a name for it) from TF_CONFIG.

    Without TF_CONFIG a process is its own chief. With a cluster that has no
    ``chief`` job, worker 0 is the chief (TensorFlow's convention).
    """
    spec = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = spec.get("task", {})
    kind, index = task.get("type"), int(task.get("index", 0))
    if kind is None:
        return True, "chief"
    has_chief = "chief" in spec.get("cluster", {})
    chief = kind == "chief" or (kind == "worker" and index == 0 and not has_chief)
    return chief, f"{kind}-{index}"


def is_chief() -> bool:
    return worker_id()[0]


def save_options(strategy: tf.distribute.Strategy) -> tf.saved_model.SaveOptions | None:
    """Under a TPU, variables live on the TPU workers: save through the local host."""
    if is_tpu(strategy):
        return tf.saved_model.SaveOptions(experimental_io_device="/job:localhost")
    return None


def describe(strategy: tf.distribute.Strategy) -> dict[str, Any]:
    return {"strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync}
