"""The one training-loop driver for every task.

``run`` is the whole flow of ``dlsuite run``: strategy -> run directory ->
data -> preprocessing adapted on train -> network built under the strategy ->
fit (progress, early stopping, backup/restore, best checkpoint, TensorBoard)
-> evaluation report -> export -> reload check. ``fit`` is the part the
scikit-learn estimators reuse.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import keras
import tensorflow as tf

from dlsuite import architectures, compat, config, distribute, export, optimization, reporting
from dlsuite.data.pipeline import batched, epoch_steps
from dlsuite.data.splits import Splits
from dlsuite.errors import DlsuiteError
from dlsuite.tasks import get as get_task
from dlsuite.tasks.base import Task

log = logging.getLogger("dlsuite")

BACKUP_DIR = "backup"
BEST_WEIGHTS = "best.weights.h5"
HISTORY_CSV = "history.csv"
MODEL_FILE = "model.keras"
DATA_METADATA = "data_metadata.json"


@dataclasses.dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: str
    metrics: dict[str, Any]
    model: keras.Model
    export_dir: str | None = None
    reload_max_abs_diff: float | None = None


def resolve_config(
    task_name: str,
    config_file: str | os.PathLike | None = None,
    overrides: Iterable[str] = (),
    values: Mapping[str, Any] | None = None,
) -> tuple[Task, dict[str, Any]]:
    """Task defaults <- the architecture's training defaults <- YAML file <- ``--set`` overrides <- CLI flags.

    The architecture is known only once every layer is read; a family with its
    own training recipe (``Architecture.train_defaults``: a pretrained encoder's
    fine-tuning schedule) is then layered under the user's settings and the
    configuration resolved again.
    """
    task = get_task(task_name)
    defaults = task.default_config()

    def layered() -> dict[str, Any]:
        cfg = config.resolve(defaults, config_file, overrides)
        for dotted, value in (values or {}).items():
            if value is not None:
                config.merge(cfg, config.nest(dotted, value), source=f"--{dotted}")
        config.check_choices(cfg, task.choices())
        config.check_ranges(cfg)
        return cfg

    cfg = layered()
    family = architectures.get(cfg["architecture"])
    if family.train_defaults:
        config.merge(defaults, {"train": family.train_defaults}, source=f"architecture {family.name}'s defaults")
        cfg = layered()
    architectures.check_hparams(cfg["architecture"], cfg["model"])
    if cfg["train"]["jit_compile"] is True and cfg["train"]["deterministic"]:
        raise DlsuiteError(
            "train.jit_compile=true needs train.deterministic=false: Keras compiles without XLA "
            "while TensorFlow op determinism is on."
        )
    return task, cfg


def make_strategy(cfg: Mapping[str, Any]) -> tf.distribute.Strategy:
    d = cfg["distribute"]
    return distribute.resolve(cfg["strategy"], devices=d["devices"], tpu=d["tpu"], logical_cpus=d["logical_cpus"])


def prepare_run_dir(cfg: Mapping[str, Any], run_dir: str | os.PathLike | None) -> Path:
    """Create the run directory, or check that an existing one holds this very run (to resume it)."""
    if run_dir is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path(cfg["run"]["root"]) / cfg["task"] / stamp
        path, n = base, 1
        while path.exists():
            n += 1
            path = base.with_name(f"{stamp}-{n}")
    else:
        path = Path(run_dir)
    saved = path / "config.yaml"
    if saved.exists():
        if (path / "metrics.json").exists():
            raise DlsuiteError(f"run directory {path} holds a finished run; pass a new --run-dir (or none).")
        previous = config.flatten(config.load_yaml(saved))
        current = config.flatten(dict(cfg))
        changed = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
        if changed:
            raise DlsuiteError(
                f"run directory {path} holds an unfinished run with a different config ({', '.join(changed)}); "
                "resume it with the same settings or pass a new --run-dir."
            )
        log.info("resuming the unfinished run in %s", path)
    else:
        path.mkdir(parents=True, exist_ok=True)
        config.save(cfg, saved)
    return path


def _discard_untrained(path: Path) -> None:
    """Remove a run directory this run created, when it failed before any epoch was saved.

    A bad data path or setting then leaves no directory behind that holds only
    ``config.yaml``; a directory with a backup or best weights is kept to resume.
    """
    if (path / BACKUP_DIR).exists() or (path / BEST_WEIGHTS).exists():
        return
    log.info("removing %s: the run failed before any training was saved", path)
    shutil.rmtree(path, ignore_errors=True)


def _worker_dir(cfg: Mapping[str, Any], run_dir: str | os.PathLike | None, worker: str) -> Path:
    """A non-chief worker's own run directory for its backups and checkpoints.

    Inside the shared ``--run-dir`` when one is given (so the worker resumes too),
    else a fresh temporary directory: workers cannot agree on a timestamped name.
    """
    if run_dir is not None:
        return Path(run_dir) / "workers" / worker
    return Path(tempfile.mkdtemp(prefix=f"dlsuite-{cfg['task']}-{worker}-"))


def training_callbacks(run_dir: Path, cfg: Mapping[str, Any], resumable: bool = True) -> list[keras.callbacks.Callback]:
    """Best-weights checkpoint and early stopping; with ``resumable``, also a backup, history and logs.

    Args:
        run_dir: the run's folder.
        cfg: the run's configuration.
        resumable: write what a killed run resumes from (backup, ``history.csv``) and TensorBoard
            logs; not for a folder that is thrown away after training (an estimator's ``fit``).
    """
    history = reporting.read_history(run_dir / HISTORY_CSV)
    best_so_far = min(history["val_loss"]) if history.get("val_loss") else None
    record = [
        # Backup first: an epoch shown in history.csv is always one the backup holds. A kill or a
        # full disk while the backup is being written leaves a truncated file; the double
        # checkpoint keeps the one before it, which compat.BackupAndRestore falls back to on resume.
        compat.BackupAndRestore(str(run_dir / BACKUP_DIR), double_checkpoint=True),
    ] if resumable else []
    return record + [
        keras.callbacks.ModelCheckpoint(
            str(run_dir / BEST_WEIGHTS),
            monitor="val_loss",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best_so_far,
        ),
        compat.EarlyStopping(
            history.get("val_loss", []) if resumable else [],
            monitor="val_loss", patience=cfg["train"]["early_stopping_patience"],
        ),
    ] + ([
        keras.callbacks.CSVLogger(str(run_dir / HISTORY_CSV), append=True),
        keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False),
    ] if resumable else [])


@contextlib.contextmanager
def op_determinism(enabled: bool) -> Iterator[None]:
    """TF op determinism for the span of one fit, then the process's previous setting.

    Without it threaded CPU kernels reorder float sums and one seed drifts apart over a
    run (digits: 355-359 of 360 from one config); with it training is ~10-20% slower, and
    Keras compiles without XLA. The setting is process-wide, so it is not left behind
    for the caller (an estimator user's own models).
    """
    from tensorflow.python.framework import config as tf_config  # disable_* is not public

    switch = enabled and not tf_config.is_op_determinism_enabled()
    if switch:
        tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if switch:
            tf_config.disable_op_determinism()


def fit(
    task: Task,
    cfg: Mapping[str, Any],
    splits: Splits,
    run_dir: Path,
    strategy: tf.distribute.Strategy,
    resumable: bool = True,
) -> keras.Model:
    """Adapt preprocessing, build and train the network, and return the inference model.

    Args:
        task: the task.
        cfg: a resolved configuration.
        splits: the data.
        run_dir: where the checkpoints (and, when ``resumable``, backup, history and logs) go.
        strategy: the distribution strategy.
        resumable: see :func:`training_callbacks`.

    Returns:
        A ``keras.Model`` from raw features to network outputs (preprocessing
        included), holding the best weights seen on the validation split.
    """
    with op_determinism(cfg["train"]["deterministic"]):
        train_cfg, data_cfg, seed = cfg["train"], cfg["data"], cfg["seed"]
        keras.utils.set_random_seed(seed)
        preprocessor = task.preprocessor(splits, cfg)
        augmenter = task.augmenter(splits, cfg, preprocessor)
        global_batch = distribute.global_batch_size(train_cfg["batch_size"], strategy)
        tpu = distribute.is_tpu(strategy)
        options = task.pipeline_options(splits, cfg)
        counts = splits.metadata.get("num_examples") or {}
        train_examples = task.training_examples(splits, cfg)
        # A hook that filters or resamples states its own size (assert_cardinality) when it knows it;
        # the split's recorded size holds only for the split itself.
        if train_examples is splits.train:
            train_count = counts.get("train")
        else:
            train_count = int(train_examples.cardinality())
            train_count = train_count if train_count >= 0 else None
        # One iterator for the whole fit when the sizes are known: Keras otherwise starts the pipeline
        # over every epoch (shuffle buffer refilled, map functions set up again; 0.7-0.9 of in-memory
        # speed on the embedded sets, benchmarks/performance.py). Length buckets state their own steps.
        train_steps = epoch_steps(train_count, global_batch, tpu)
        val_steps = epoch_steps(counts.get("val"), global_batch, tpu)
        endless = bool(train_steps and val_steps and not options.get("length_buckets"))
        common = dict(
            global_batch_size=global_batch,
            seed=seed,
            preprocess=lambda x, y: (preprocessor(x), y),
            cache=data_cfg["cache"],
            shuffle_buffer=data_cfg["shuffle_buffer"],
            drop_remainder=tpu,
            repeat=endless,
            **options,
        )
        train_ds = batched(
            train_examples,
            training=True,
            num_examples=train_count,
            augment=(lambda x, y: (augmenter(x, training=True), y)) if augmenter is not None else None,
            **common,
        )
        val_ds = batched(splits.val, training=False, num_examples=counts.get("val"), **common)
        resumed_epochs = compat.backed_up_epochs(run_dir / BACKUP_DIR) if resumable else 0
        if endless and resumed_epochs:
            # The one seeded, shuffled stream goes on where the killed run stopped, so the resumed
            # run sees the batches the uninterrupted run would have (same seed, same final weights).
            train_ds = train_ds.skip(resumed_epochs * train_steps)

        steps = train_cfg["steps_per_execution"] or (32 if tpu else 1)
        jit = train_cfg["jit_compile"]
        if train_cfg["lr_schedule"] == "constant":
            schedule_steps = None
        else:
            schedule_steps = train_steps if endless else steps_per_epoch(train_ds)
        with strategy.scope():
            network = task.build_network(splits, cfg)
            loss, metrics = task.loss_and_metrics(splits, cfg)
            optimizer = optimization.make_optimizer(train_cfg, schedule_steps)
            network.compile(
                optimizer=optimizer,
                loss=loss,
                metrics=metrics,
                jit_compile="auto" if jit is None else jit,
                steps_per_execution=steps,
            )
            compat.build_before_fit(network, train_ds)
        log.info(
            "training %s (%s parameters) for up to %d epochs, global batch %d on %s",
            cfg["architecture"], f"{network.count_params():,}", train_cfg["epochs"], global_batch,
            distribute.describe(strategy),
        )
        verbose = train_cfg["verbose"]
        network.fit(
            train_ds,
            validation_data=val_ds,
            epochs=train_cfg["epochs"],
            shuffle=False,  # the pipeline shuffles
            steps_per_epoch=train_steps if endless else None,
            validation_steps=val_steps if endless else None,
            callbacks=training_callbacks(run_dir, cfg, resumable),
            verbose=(1 if sys.stdout.isatty() else 2) if verbose is None else verbose,
            **task.fit_options(splits, cfg),
        )
        if (run_dir / BEST_WEIGHTS).exists():
            try:
                network.load_weights(str(run_dir / BEST_WEIGHTS))
            except OSError as e:  # a kill while it was being written, and no better epoch since
                log.warning("%s is unreadable (%s); keeping the last epoch's weights", BEST_WEIGHTS, e)
        model = task.inference_model(task.raw_input(splits), preprocessor, network, splits)
        task.calibrate(model, splits, cfg)
        return model


def steps_per_epoch(train_ds: tf.data.Dataset) -> int | None:
    """Batches per epoch of a batched training dataset: its cardinality, else counted once (None if empty)."""
    steps = int(train_ds.cardinality())
    if steps == tf.data.INFINITE_CARDINALITY:
        return None
    if steps == tf.data.UNKNOWN_CARDINALITY:
        log.info("counting the training batches (the source does not state its size)")
        steps = int(train_ds.reduce(0, lambda count, _: count + 1))
    return steps if steps > 0 else None


def run(
    task: Task,
    cfg: Mapping[str, Any],
    run_dir: str | os.PathLike | None = None,
    *,
    splits: Splits | None = None,
    do_export: bool = True,
) -> RunResult:
    """Train, evaluate, export and verify one task; see the module docstring.

    Args:
        task: the task.
        cfg: a resolved configuration (:func:`resolve_config`).
        run_dir: where to write (``None``: ``runs/<task>/<timestamp>``); an
            unfinished run there with the same config is resumed.
        splits: data to use instead of ``task.load(cfg)`` (in-memory arrays).
        do_export: write and verify a SavedModel.

    Returns:
        A :class:`RunResult`.
    """
    started = time.perf_counter()
    strategy = make_strategy(cfg)
    chief, worker = distribute.worker_id()
    requested = run_dir if chief else _worker_dir(cfg, run_dir, worker)
    existed = requested is not None and Path(requested).exists()
    path = prepare_run_dir(cfg, requested)
    log.info("run directory: %s", path)
    try:
        if splits is None:
            log.info("loading data (%s)", cfg["data"]["path"] or cfg["data"]["dataset"])
            splits = task.load(cfg)
        log.info("examples: %s", splits.metadata.get("num_examples", "?"))
        reporting.write_json(splits.metadata, path / DATA_METADATA)

        fit_started = time.perf_counter()
        model = fit(task, cfg, splits, path, strategy)
        train_seconds = time.perf_counter() - fit_started
    except BaseException:
        if not existed:
            _discard_untrained(path)
        raise
    if not chief:
        # Every worker takes part in fit; only the chief reports and exports.
        return RunResult(str(path), {"train_seconds": round(train_seconds, 2)}, model)
    model.save(path / MODEL_FILE)

    metrics = evaluate_run(task, model, splits, path, cfg)
    metrics["train_seconds"] = round(train_seconds, 2)
    result = RunResult(str(path), metrics, model)
    if do_export:
        result.export_dir, result.reload_max_abs_diff = export_run(task, model, splits, cfg, metrics, strategy)
        metrics["export_dir"] = result.export_dir
        metrics["reload_max_abs_diff"] = result.reload_max_abs_diff
    metrics["total_seconds"] = round(time.perf_counter() - started, 2)
    reporting.write_json(metrics, path / "metrics.json")
    return result


def evaluate_run(task: Task, model: keras.Model, splits: Splits, run_dir: Path, cfg: Mapping[str, Any]) -> dict[str, Any]:
    log.info("evaluating on the test split")
    metrics = task.evaluate(model, splits, str(run_dir), cfg["train"]["batch_size"])
    history = reporting.read_history(run_dir / HISTORY_CSV)
    reporting.plot_history(history, run_dir / "training_curves.png")
    metrics["epochs_run"] = len(history.get("loss", []))
    return {"task": task.name, "architecture": cfg["architecture"], **metrics}


def export_run(
    task: Task,
    model: keras.Model,
    splits: Splits,
    cfg: Mapping[str, Any],
    metrics: Mapping[str, Any],
    strategy: tf.distribute.Strategy | None = None,
    prepare: Callable[[Path], None] | None = None,
) -> tuple[str, float | None]:
    """Export the inference model as the next version and check the reloaded export.

    ``prepare`` adds files to the version before it appears (:func:`dlsuite.export.export`).
    """
    metadata = export_metadata(splits, cfg, metrics)
    export_dir = export.export(task, model, metadata, cfg["export"]["root"], strategy, prepare)
    log.info("exported %s", export_dir)
    diff = None
    if cfg["export"]["verify"]:
        inputs = task.verification_inputs(splits, metadata)
        diff = export.verify(export_dir, task.serving_endpoints(model, metadata), inputs)
        log.info("reloaded with TensorFlow alone: max abs difference %.2e", diff)
    return export_dir, diff


def export_metadata(splits: Splits, cfg: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict[str, Any]:
    headline = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {
        **splits.metadata,
        "architecture": cfg["architecture"],
        "metrics": headline,
        "config": dict(cfg),
    }
