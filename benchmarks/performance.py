"""Performance benchmark: input pipeline, serving latency, XLA / mixed precision, scaling and memory per task.

    .venv/bin/python benchmarks/performance.py --write-results

Every figure is a ratio of two things measured side by side on this machine, for each
of the five tasks on its embedded default data (the config ``dlsuite run TASK`` uses):

1. Input pipeline: examples/s of ``fit`` fed by the task's tf.data pipeline (the very
   training dataset ``runner.fit`` builds with ``data.pipeline.batched``: preprocessing
   mapped inside tf.data, cached, shuffled, augmented) / examples/s of the same compiled
   network fed the same batches already materialized in memory, epoch by epoch in turn
   after a warm-up epoch each. Goal: >= 0.95. Then the same with one iterator per ``fit``:
   the same ``batched`` call with ``repeat=True`` against the in-memory batches repeated,
   both fitted with ``steps_per_epoch`` (what ``runner.fit`` would do to stop Keras from
   starting a new iterator, and the pipeline from starting over, every epoch).
2. Serving latency: p50 and p99 of the reloaded SavedModel's ``serving_default``
   (``runner.export_run``, ``tf.saved_model.load``) at batch 1 and 64 / the in-process
   Keras inference model, ``model(x, training=False)`` on the same raw test inputs
   (preprocessing included), and / the same call inside a ``tf.function``. Calls of
   the three alternate. Goal: <= 1.2 against the Keras call.
3. XLA and mixed precision: training-pass time per epoch with ``train.jit_compile``
   true / false (both with ``train.deterministic=false``, which XLA needs), and with
   the global policy ``mixed_bfloat16`` / ``float32`` while the network is built (both
   with the defaults; the preprocessing layers stay float32), with the headline test
   metric of each run after the same epochs.
4. Scaling: training-pass time per epoch at 1x, 2x, 4x and 8x the data (digits and the
   speech clips upsampled; the review generator's ``data.generated_size``, the fraud
   simulator's ``data.num_transactions``, the sensor generator's length), with the
   slope of log(time) against log(size): 1 is linear.
5. Memory: peak RSS of ``dlsuite run TASK`` (the largest process of the run).

Each configuration (task x {float32, no-determinism, xla, bfloat16, x2, x4, x8}) runs
in its own process, a child of this script, one after the other. A child trains with
``runner.fit`` itself for one warm-up epoch plus ``--repeats`` timed epochs (no early
stopping); an epoch's time is its training pass (validation excluded), and the figure
is the median of the timed epochs.

Options:
    --tasks a,b        a subset of the tasks (default: all five)
    --repeats N        timed epochs per figure, after a warm-up epoch (default 5)
    --calls N          timed calls per latency figure, after 5 warm-up calls (default 200)
    --parts a,b        a subset of pipeline,serving,precision,scaling,memory (default: all)
    --set KEY=VALUE    a config override for every configuration, repeatable
    --out DIR          keep runs, exports and child logs in DIR (default: a temporary directory)
    --write-results    rewrite the performance section of benchmarks/RESULTS.md

The tables go to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import json
import logging
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence
from unittest import mock

import numpy as np

import common

NAME = "performance"
TASKS = ("image_classification", "sentiment", "speech", "anomaly", "fraud")
PARTS = ("pipeline", "serving", "precision", "scaling", "memory")
SCALES = (1, 2, 4, 8)
LATENCY_BATCHES = (1, 64)
PIPELINE_GOAL = 0.95
SERVING_GOAL = 1.2
SAME = 0.05  # time ratios within 5% of 1 count as neither faster nor slower
METRIC_NOISE = 0.01  # the least difference in a headline metric (accuracy, AUC) that counts
SIZE_KEYS = ("generated_size", "num_transactions")  # generator sizes among a task's data settings

log = logging.getLogger("bench")


@dataclasses.dataclass(frozen=True)
class Config:
    """One measured configuration of a task; each runs in its own process."""

    name: str
    overrides: tuple[str, ...] = ()
    policy: str = "float32"
    scale: int = 1


REFERENCE = Config("float32")
CONFIGS = {
    c.name: c
    for c in (
        REFERENCE,
        Config("no-determinism", ("train.deterministic=false", "train.jit_compile=false")),
        Config("xla", ("train.deterministic=false", "train.jit_compile=true")),
        Config("bfloat16", policy="mixed_bfloat16"),
        *(Config(f"x{k}", scale=k) for k in SCALES[1:]),
    )
}
PRECISION_CONFIGS = ("no-determinism", "xla", "bfloat16")
SCALING_CONFIGS = tuple(f"x{k}" for k in SCALES[1:])


# -- child: data and training ------------------------------------------------------------
def resolve(task_name: str, config: Config, repeats: int, out: Path,
            extra: Sequence[str] = ()) -> tuple[Any, dict[str, Any]]:
    """The task's default config (and ``extra`` overrides) with one warm-up plus ``repeats`` epochs,
    no early stopping, quiet."""
    from dlsuite.tasks import runner

    epochs = 1 + repeats
    task, cfg = runner.resolve_config(
        task_name,
        overrides=[f"train.epochs={epochs}", f"train.early_stopping_patience={epochs}", "train.verbose=0",
                   "export.verify=false", *extra, *config.overrides],
        values={"export.root": str(out / "saved_models"), "run.root": str(out / "runs")},
    )
    for key in SIZE_KEYS:
        if config.scale > 1 and key in cfg["data"]:
            cfg["data"][key] = int(cfg["data"][key]) * config.scale
    return task, cfg


def upsampled(splits: Any, scale: int) -> Any:
    """The splits with every training example repeated ``scale`` times (validation and test unchanged)."""
    counts = dict(splits.metadata.get("num_examples") or {})
    if "train" in counts:
        counts["train"] *= scale
    return dataclasses.replace(
        splits, train=splits.train.repeat(scale), metadata={**splits.metadata, "num_examples": counts}
    )


def longer_sensor_series(cfg: Mapping[str, Any], scale: int) -> Any:
    """The embedded ``sensors`` series generated ``scale`` times as long, with as many more anomalies."""
    from dlsuite.data import anomaly_data, synthetic_anomalies

    defaults = inspect.signature(synthetic_anomalies.sensor_series).parameters
    values, labels, channels, _ = synthetic_anomalies.sensor_series(
        num_points=defaults["num_points"].default * scale, num_events=defaults["num_events"].default * scale
    )
    data = cfg["data"]
    return anomaly_data.series_splits(
        values, labels, channels, window=data["window"], stride=data["stride"],
        val_fraction=data["val_fraction"], test_fraction=data["test_fraction"], source=f"embedded:sensors x{scale}",
    )


def load_splits(task: Any, cfg: Mapping[str, Any], scale: int) -> Any:
    """The task's default data at ``scale`` times its size.

    A generator with a size setting (``SIZE_KEYS``, already scaled by :func:`resolve`)
    makes more data; the anomaly task's sensor series is generated longer; image and
    speech sets are fixed recordings, so their training examples are repeated.
    """
    if scale == 1 or any(key in cfg["data"] for key in SIZE_KEYS):
        return task.load(cfg)
    if task.name == "anomaly" and cfg["data"]["dataset"] == "sensors":
        return longer_sensor_series(cfg, scale)
    return upsampled(task.load(cfg), scale)


def epoch_timer() -> Any:
    """A callback timing each epoch's training pass: from epoch begin to validation (or epoch end)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self._started: float | None = None

        def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            self._started = time.perf_counter()

        def on_test_begin(self, logs: Mapping[str, Any] | None = None) -> None:
            self._stop()

        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            self._stop()

        def _stop(self) -> None:
            if self._started is not None:
                self.seconds.append(time.perf_counter() - self._started)
                self._started = None

    return EpochTimer()


@dataclasses.dataclass
class Recorded:
    """What ``runner.fit`` built: its ``batched`` calls (train first) and its network."""

    timer: Any
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = dataclasses.field(default_factory=list)
    network: Any = None


@contextlib.contextmanager
def global_policy(name: str) -> Iterator[None]:
    """``keras.mixed_precision.set_global_policy(name)`` within the block, the previous policy after it."""
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


@contextlib.contextmanager
def recording(task: Any, policy: str = "float32") -> Iterator[Recorded]:
    """Within the block ``runner.fit`` records its ``batched`` calls and its network
    (built under the global dtype ``policy``), and times its epochs.

    The policy covers the network only: the preprocessing layers, built and adapted before it,
    stay float32 (under a global ``mixed_bfloat16`` policy ``Normalization.adapt`` fails).
    """
    from dlsuite.tasks import runner

    seen = Recorded(epoch_timer())
    batched, build_network, callbacks = runner.batched, task.build_network, runner.training_callbacks

    def recording_batched(*args: Any, **kwargs: Any) -> Any:
        seen.calls.append((args, kwargs))
        return batched(*args, **kwargs)

    def recording_build(*args: Any, **kwargs: Any) -> Any:
        with global_policy(policy):
            seen.network = build_network(*args, **kwargs)
        return seen.network

    with mock.patch.object(runner, "batched", recording_batched), \
            mock.patch.object(task, "build_network", recording_build), \
            mock.patch.object(runner, "training_callbacks", lambda *a: [*callbacks(*a), seen.timer]):
        yield seen


def batch_size(batch: Any) -> int:
    import tensorflow as tf

    return int(tf.nest.flatten(batch)[0].shape[0])


def one_epoch(seen: Recorded) -> Any:
    """The runner's training dataset as one epoch: the recorded ``batched`` call without ``repeat``.

    The runner asks for endless epochs when the split sizes are known (one iterator per fit).
    """
    from dlsuite.data import pipeline

    args, kwargs = seen.calls[0]
    return pipeline.batched(*args, **{**kwargs, "repeat": False})


def examples_per_epoch(ds: Any) -> int:
    return sum(batch_size(b) for b in ds)


# -- child: the measurements ---------------------------------------------------------------
def materialized(ds: Any) -> Any:
    """One epoch of ``ds`` held in memory: its batches, served as they are (no per-example work)."""
    import tensorflow as tf

    batches = list(ds)
    full = [b for b in batches if batch_size(b) == batch_size(batches[0])]
    stacked = tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(lambda *t: tf.stack(t), *full))
    for rest in batches[len(full):]:
        stacked = stacked.concatenate(tf.data.Dataset.from_tensors(rest))
    return stacked.prefetch(tf.data.AUTOTUNE)


def fit_epochs(network: Any, ds: Any, fit_options: Mapping[str, Any], epochs: int,
               steps_per_epoch: int | None = None) -> list[float]:
    """Seconds of the training pass of each epoch of one more ``fit`` of ``network`` on ``ds``."""
    timer = epoch_timer()
    network.fit(ds, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=0, shuffle=False,
                callbacks=[timer], **fit_options)
    return timer.seconds


def alternating(arms: Mapping[str, Callable[[], list[float]]], rounds: int) -> dict[str, float]:
    """Median epoch seconds of each arm, the arms called in turn (A B, then B A, ...) ``rounds`` times."""
    seconds: dict[str, list[float]] = {name: [] for name in arms}
    for r in range(rounds):
        for name in (list(arms) if r % 2 == 0 else list(reversed(arms))):
            seconds[name] += arms[name]()
    return {name: statistics.median(times) for name, times in seconds.items()}


def pipeline_ratio(network: Any, seen: Recorded, fit_options: Mapping[str, Any], deterministic: bool,
                   repeats: int) -> dict[str, float]:
    """Epochs fed by the runner's training pipeline against epochs fed its batches materialized in memory.

    Twice: as ``runner.fit`` calls ``fit`` (no ``steps_per_epoch``: Keras starts a new iterator
    every epoch), epoch by epoch in turn after a warm-up epoch each; and with one iterator per
    ``fit`` (the same ``batched`` call with ``repeat=True``, and the in-memory batches repeated,
    with ``steps_per_epoch``), in two blocks of epochs each, the first epoch of a block untimed.

    Returns:
        ``examples`` per epoch; median epoch seconds ``pipeline_s``, ``memory_s``,
        ``one_iterator_pipeline_s``, ``one_iterator_memory_s``.
    """
    from dlsuite.data import pipeline
    from dlsuite.tasks import runner

    args, kwargs = seen.calls[0]
    train = one_epoch(seen)
    memory = materialized(train)
    steps = sum(1 for _ in memory)
    repeated = {"pipeline": pipeline.batched(*args, **{**kwargs, "repeat": True}), "memory": memory.repeat()}
    block = -(-repeats // 2)
    with runner.op_determinism(deterministic):
        for ds in (train, memory):
            fit_epochs(network, ds, fit_options, 1)  # warm-up: a trace for the new input signature
        per_epoch = alternating(
            {name: (lambda ds=ds: fit_epochs(network, ds, fit_options, 1)) for name, ds in
             {"pipeline": train, "memory": memory}.items()},
            repeats,
        )
        one_iterator = alternating(
            {name: (lambda ds=ds: fit_epochs(network, ds, fit_options, 1 + block, steps)[1:])
             for name, ds in repeated.items()},
            2,
        )
    return {
        "examples": examples_per_epoch(memory),
        "pipeline_s": per_epoch["pipeline"],
        "memory_s": per_epoch["memory"],
        "one_iterator_pipeline_s": one_iterator["pipeline"],
        "one_iterator_memory_s": one_iterator["memory"],
        "runner_one_iterator": bool(kwargs.get("repeat")),
    }


def signature_inputs(features: Any, signature: Any) -> dict[str, Any]:
    """Raw test features as the keyword arguments of a loaded signature (cast to its dtypes)."""
    import tensorflow as tf

    specs = signature.structured_input_signature[1]
    if isinstance(features, Mapping):
        if set(features) != set(specs):
            raise AssertionError(f"features {sorted(features)} do not match the signature's {sorted(specs)}")
        return {name: tf.cast(features[name], spec.dtype) for name, spec in specs.items()}
    if len(specs) != 1:
        raise AssertionError(f"one feature tensor for a signature of {sorted(specs)}")
    (name, spec), = specs.items()
    return {name: tf.cast(features, spec.dtype)}


def latencies(calls: Mapping[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, float]]:
    """p50 and p99 milliseconds of each call, the calls alternating, after warm-up calls."""
    for call in calls.values():
        for _ in range(common.WARMUP_CALLS):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            times[name].append(1000.0 * (time.perf_counter() - started))
    return {name: (float(np.percentile(t, 50)), float(np.percentile(t, 99))) for name, t in times.items()}


def serving_latency(task: Any, model: Any, splits: Any, cfg: Mapping[str, Any], metrics: Mapping[str, Any],
                    repeats: int) -> dict[str, dict[str, tuple[float, float]]]:
    """Latency of the reloaded export's ``serving_default``, the Keras call and a ``tf.function`` of it.

    Returns:
        batch size (as a string) -> ``savedmodel`` / ``keras`` / ``tf.function`` -> (p50 ms, p99 ms).
    """
    import tensorflow as tf

    from dlsuite.tasks import runner

    export_dir, _ = runner.export_run(task, model, splits, cfg, metrics)
    loaded = tf.saved_model.load(export_dir)  # keep a reference: the signature needs the object alive
    serve = loaded.signatures["serving_default"]
    features = next(iter(splits.test.batch(max(LATENCY_BATCHES))))[0]
    if batch_size(features) < max(LATENCY_BATCHES):
        raise AssertionError(f"only {batch_size(features)} test examples for a batch of {max(LATENCY_BATCHES)}")
    graph = tf.function(lambda x: model(x, training=False))
    out = {}
    for size in LATENCY_BATCHES:
        x = tf.nest.map_structure(lambda t: t[:size], features)
        kwargs = signature_inputs(x, serve)
        out[str(size)] = latencies(
            {
                "savedmodel": lambda: serve(**kwargs),
                "keras": lambda: model(x, training=False),
                "tf.function": lambda: graph(x),
            },
            repeats,
        )
    return out


def measure(task_name: str, config: Config, args: argparse.Namespace) -> dict[str, Any]:
    """One configuration of one task, in this process: the child's whole job."""
    from dlsuite.tasks import runner

    load_at_start = common.load_average()
    repeats, out = args.repeats, args.out
    task, cfg = resolve(task_name, config, repeats, out, args.set)
    splits = load_splits(task, cfg, config.scale)
    run_dir = runner.prepare_run_dir(cfg, out / "runs" / f"{task_name}-{config.name}")
    with recording(task, config.policy) as seen:
        model = runner.fit(task, cfg, splits, run_dir, runner.make_strategy(cfg))
    result: dict[str, Any] = {
        "examples": examples_per_epoch(one_epoch(seen)),
        "epoch_s": statistics.median(seen.timer.seconds[1:]),
        "epochs_s": seen.timer.seconds,
    }
    metrics: dict[str, Any] = {}
    if config.scale == 1:
        metrics = runner.evaluate_run(task, model, splits, run_dir, cfg)
        headline = getattr(task, "headline_metric", "accuracy")
        result["metric"] = [headline, float(metrics[headline])]
    if config == REFERENCE and "pipeline" in args.parts:
        result["pipeline"] = pipeline_ratio(
            seen.network, seen, task.fit_options(splits, cfg), cfg["train"]["deterministic"], repeats
        )
    if config == REFERENCE and "serving" in args.parts:
        result["serving"] = serving_latency(task, model, splits, cfg, metrics, args.calls)
    result["load"] = [load_at_start, common.load_average()]
    return result


# -- parent: processes -----------------------------------------------------------------------
def run_process(cmd: Sequence[str], log_path: Path) -> tuple[int, float, float]:
    """Run ``cmd`` with its output in ``log_path``.

    Returns:
        (exit status, wall seconds, peak RSS in MB of the largest process of its tree).
    """
    started = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, unlike RUSAGE_CHILDREN's maximum
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - started, usage.ru_maxrss / 1024.0


def failed(what: str, log_path: Path) -> None:
    tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
    log.error("%s failed; the end of %s:\n%s", what, log_path, "\n".join(tail))


def run_config(task_name: str, config: Config, args: argparse.Namespace, out: Path) -> dict[str, Any] | None:
    """Measure one configuration in a child process of this script; ``None`` if it failed."""
    name = f"{task_name}-{config.name}"
    result_path, log_path = out / "results" / f"{name}.json", out / "logs" / f"{name}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", f"{task_name}:{config.name}",
           "--result", str(result_path), "--repeats", str(args.repeats), "--calls", str(args.calls),
           "--parts", ",".join(args.parts), "--out", str(out), *(f"--set={o}" for o in args.set)]
    log.info("%s (load %s)", name, common.load_average())
    status, seconds, _ = run_process(cmd, log_path)
    if status != 0 or not result_path.exists():
        failed(name, log_path)
        return None
    result = json.loads(result_path.read_text(encoding="utf-8"))
    log.info("%s: %.3f s/epoch over %d examples (%.0f s)", name, result["epoch_s"], result["examples"], seconds)
    return result


def peak_rss(task_name: str, out: Path) -> dict[str, Any] | None:
    """Peak RSS and wall time of ``dlsuite run TASK`` with its runs and exports in ``out``."""
    root = out / "dlsuite-run"
    cmd = [str(Path(sys.executable).with_name("dlsuite")), "run", task_name,
           "--set", f"export.root={root}", "--set", f"run.root={root}"]
    log_path = out / "logs" / f"{task_name}-dlsuite-run.log"
    load_at_start = common.load_average()
    status, seconds, rss_mb = run_process(cmd, log_path)
    if status != 0:
        failed(shlex.join(cmd), log_path)
        return None
    log.info("dlsuite run %s: peak RSS %.0f MB, %.0f s", task_name, rss_mb, seconds)
    return {"rss_mb": rss_mb, "seconds": seconds, "load": [load_at_start, common.load_average()]}


def configs_for(parts: Sequence[str]) -> list[Config]:
    names = [REFERENCE.name]
    names += list(PRECISION_CONFIGS) if "precision" in parts else []
    names += list(SCALING_CONFIGS) if "scaling" in parts else []
    return [CONFIGS[n] for n in names]


def benchmark(args: argparse.Namespace, out: Path) -> dict[str, dict[str, Any]]:
    """task -> configuration name (and ``memory``) -> its measurements (``None``: failed)."""
    for sub in ("results", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for task_name in args.tasks:
        results[task_name] = {c.name: run_config(task_name, c, args, out) for c in configs_for(args.parts)}
        if "memory" in args.parts:
            results[task_name]["memory"] = peak_rss(task_name, out)
    return results


# -- parent: tables ------------------------------------------------------------------------
def load_range(*measured: Mapping[str, Any] | None) -> str:
    """The 1-minute load averages recorded by measurements, as ``low-high``."""
    values = [float(x) for m in measured if m for x in m["load"] if x != "n/a"]
    if not values:
        return "n/a"
    low, high = min(values), max(values)
    return f"{low:.1f}" if low == high else f"{low:.1f}-{high:.1f}"


def ratio_or_dash(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}"


def pipeline_rows(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    rows = []
    for task_name, by_config in results.items():
        ref = by_config.get(REFERENCE.name) or {}
        p = ref.get("pipeline")
        if p is None:
            continue
        per_epoch = p["memory_s"] / p["pipeline_s"]
        one_iterator = p["one_iterator_memory_s"] / p["one_iterator_pipeline_s"]
        # The goal applies to the way the runner feeds fit for this task.
        used = p.get("runner_one_iterator", False)
        ratio = one_iterator if used else per_epoch
        rows.append({
            "task": task_name,
            "examples/epoch": f"{p['examples']:,}",
            "runner feeds": "1 iterator" if used else "iterator per epoch",
            f"runner's ratio >= {PIPELINE_GOAL}": f"{ratio:.2f} " + ("yes" if ratio >= PIPELINE_GOAL else "**no**"),
            "1 iterator: pipeline ex/s": f"{p['examples'] / p['one_iterator_pipeline_s']:,.0f}",
            "1 iterator: in-memory ex/s": f"{p['examples'] / p['one_iterator_memory_s']:,.0f}",
            "1 iterator: ratio": f"{one_iterator:.2f}",
            "per epoch: pipeline ex/s": f"{p['examples'] / p['pipeline_s']:,.0f}",
            "per epoch: in-memory ex/s": f"{p['examples'] / p['memory_s']:,.0f}",
            "per epoch: ratio": f"{per_epoch:.2f}",
            "load": load_range(ref),
        })
    return rows


def serving_rows(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    rows = []
    for task_name, by_config in results.items():
        ref = by_config.get(REFERENCE.name) or {}
        for size, lat in (ref.get("serving") or {}).items():
            sm, keras_call, graph = lat["savedmodel"], lat["keras"], lat["tf.function"]
            worst = max(sm[0] / keras_call[0], sm[1] / keras_call[1])
            rows.append({
                "task": task_name,
                "batch": size,
                "SavedModel p50/p99 ms": f"{sm[0]:.2f} / {sm[1]:.2f}",
                "Keras call p50/p99 ms": f"{keras_call[0]:.2f} / {keras_call[1]:.2f}",
                "tf.function p50/p99 ms": f"{graph[0]:.2f} / {graph[1]:.2f}",
                "ratio vs Keras p50/p99": f"{sm[0] / keras_call[0]:.2f} / {sm[1] / keras_call[1]:.2f}",
                "ratio vs tf.function p50/p99": f"{sm[0] / graph[0]:.2f} / {sm[1] / graph[1]:.2f}",
                f"<= {SERVING_GOAL}": "yes" if worst <= SERVING_GOAL else "**no**",
                "load": load_range(ref),
            })
    return rows


def faster(ratio: float | None, slower_name: str, faster_name: str) -> str:
    """Which of two configurations is faster, from the time ratio faster_name / slower_name."""
    if ratio is None:
        return "-"
    if abs(ratio - 1) <= SAME:
        return "same"
    return faster_name if ratio < 1 else slower_name


def within_noise(value: float, reference: Sequence[float]) -> str:
    """``value`` against the float32 runs' metrics: within when it is at most their spread (or
    ``METRIC_NOISE``, whichever is larger) from their mean."""
    mean, tolerance = statistics.mean(reference), max(max(reference) - min(reference), METRIC_NOISE)
    if abs(value - mean) <= tolerance:
        return "within"
    return "below" if value < mean else "above"


def epoch_s(by_config: Mapping[str, Any], name: str) -> float | None:
    measured = by_config.get(name)
    return None if measured is None else measured["epoch_s"]


def precision_rows(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    rows = []
    for task_name, by_config in results.items():
        ref = by_config.get(REFERENCE.name)
        if ref is None or not any(by_config.get(n) for n in PRECISION_CONFIGS):
            continue
        t = {name: epoch_s(by_config, name) for name in (REFERENCE.name, *PRECISION_CONFIGS)}
        metric = {name: by_config[name]["metric"][1] for name in t if by_config.get(name)}
        float32_metrics = [metric[n] for n in (REFERENCE.name, "no-determinism", "xla") if n in metric]
        xla = None if None in (t["xla"], t["no-determinism"]) else t["xla"] / t["no-determinism"]
        bf16 = None if t["bfloat16"] is None else t["bfloat16"] / t[REFERENCE.name]
        rows.append({
            "task": task_name,
            "float32 s/epoch": f"{t[REFERENCE.name]:.3f}",
            "no-determinism / float32": ratio_or_dash(t["no-determinism"], t[REFERENCE.name]),
            "xla / no-xla": "-" if xla is None else f"{xla:.2f}",
            "faster (jit)": faster(xla, "jit false", "jit true"),
            "bf16 / float32": "-" if bf16 is None else f"{bf16:.2f}",
            "faster (policy)": faster(bf16, "float32", "bfloat16"),
            "test metric: float32 / no-det. / xla / bf16": f"{ref['metric'][0]} "
            + " / ".join(f"{metric[n]:.4f}" if n in metric else "-" for n in t),
            "bf16 metric": within_noise(metric["bfloat16"], float32_metrics) if "bfloat16" in metric else "-",
            "load": load_range(*(by_config.get(n) for n in t)),
        })
    return rows


def scaling_slope(sizes: Sequence[float], seconds: Sequence[float]) -> float:
    """Slope of log(seconds) against log(size): 1 when cost grows linearly."""
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def scaling_rows(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    rows = []
    for task_name, by_config in results.items():
        points = [(by_config[c]["examples"], by_config[c]["epoch_s"])
                  for c in (REFERENCE.name, *SCALING_CONFIGS) if by_config.get(c)]
        if len(points) < 2:
            continue
        (n1, t1), slope = points[0], scaling_slope(*zip(*points))
        rows.append({
            "task": task_name,
            "1x examples": f"{n1:,}",
            "1x s/epoch": f"{t1:.3f}",
            **{f"{round(n / n1)}x / 1x": f"{t / t1:.2f}" for n, t in points[1:]},
            "slope (log-log)": f"{slope:.2f}",
            "linear": "yes" if abs(slope - 1) <= 0.1 else ("sublinear" if slope < 1 else "**superlinear**"),
            "load": load_range(*(by_config.get(c) for c in (REFERENCE.name, *SCALING_CONFIGS))),
        })
    return rows


def memory_rows(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    rows = []
    for task_name, by_config in results.items():
        m = by_config.get("memory")
        if m is not None:
            rows.append({"task": task_name, "peak RSS MB": f"{m['rss_mb']:,.0f}",
                         "wall s": f"{m['seconds']:.1f}", "load": load_range(m)})
    return rows


TABLES: tuple[tuple[str, Callable[[Mapping[str, Mapping[str, Any]]], list[dict[str, str]]]], ...] = (
    ("Input pipeline: fit fed by the tf.data pipeline / fed the same batches in memory", pipeline_rows),
    ("Serving latency: reloaded SavedModel serving_default / in-process Keras model", serving_rows),
    ("XLA and mixed precision: training-pass time per epoch (ratio < 1: faster)", precision_rows),
    ("Scaling: training-pass time per epoch against data size", scaling_rows),
    ("Memory: peak RSS of `dlsuite run TASK`", memory_rows),
)


def tables(results: Mapping[str, Mapping[str, Any]]) -> str:
    from dlsuite import reporting

    blocks = []
    for title, rows_of in TABLES:
        rows = rows_of(results)
        if rows:
            columns = list(dict.fromkeys(c for r in rows for c in r))
            blocks.append(f"**{title}**\n\n{reporting.format_table(rows, columns)}")
    return "\n\n".join(blocks)


def failures(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return [f"{task}/{name}" for task, by_config in results.items() for name, r in by_config.items() if r is None]


def results_section(command: str, body: str, args: argparse.Namespace, results: Mapping[str, Mapping[str, Any]],
                    total_seconds: float, loads_at: tuple[str, str]) -> str:
    block = -(-args.repeats // 2)
    notes = [
        "Each task on its embedded default data and default config, each configuration in its own process, one "
        "after the other. An epoch's time is its training pass (validation excluded).",
        "",
        "- Input pipeline: `fit` on the training dataset `runner.fit` built vs on the same batches materialized in "
        "memory, the same compiled network; ratio = pipeline examples/s / in-memory examples/s. `1 iterator`: "
        "the `batched` call with `repeat=True` (what the runner uses when the split sizes are known) vs the "
        f"in-memory batches repeated, both fitted with `steps_per_epoch`, two blocks of 1 + {block} epochs each "
        f"(first untimed); `per epoch`: the same call without `repeat` (Keras starts a new iterator every epoch), "
        f"{args.repeats} epochs each, alternating, after a warm-up epoch each. The goal is checked on the way the "
        "runner fed this task.",
        f"- Serving: raw test inputs, p50/p99 of {args.calls} calls, the three kinds in turn, after "
        f"{common.WARMUP_CALLS} warm-up calls each. `Keras call` is `model(x, training=False)` (eager: what a user "
        "of the in-process inference model calls); `tf.function` is the same call traced once.",
        f"- XLA and precision: `runner.fit` with its callbacks, median of {args.repeats} epochs after a warm-up "
        "epoch. XLA: `train.jit_compile` true / false, both with `train.deterministic=false`; `no-determinism / "
        "float32` is the cost of the default op determinism. bfloat16: "
        "`keras.mixed_precision.set_global_policy(\"mixed_bfloat16\")` while the network is built (the "
        "preprocessing layers stay float32: under a global `mixed_bfloat16` policy `Normalization.adapt` fails for "
        "image_classification and speech), default config otherwise; its metric is "
        f"`within` when it is at most the spread of the three float32 runs (or {METRIC_NOISE}) from their mean, "
        f"all after {1 + args.repeats} epochs. Time ratios within {SAME:.0%} of 1 count as `same`.",
        "- Scaling: as XLA; digits and speech clips repeated, the generators run at 2x, 4x, 8x their size.",
        "- `load`: 1-minute load average at start and end of each measurement (several: one per process); "
        "absolute times mean little when it is far above 0.",
    ]
    failed_names = failures(results)
    if failed_names:
        notes.append(f"Failed (see the logs of a run with `--out`): {', '.join(failed_names)}.")
    return common.section(NAME, "Performance (input pipeline, serving, XLA / bfloat16, scaling, memory)", command,
                          total_seconds, loads_at, [*notes, "", body, ""])


# -- main ----------------------------------------------------------------------------------
def names_list(parser: argparse.ArgumentParser, value: str, valid: Sequence[str], option: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = sorted(set(names) - set(valid))
    if unknown or not names:
        parser.error(f"{option} takes names from {','.join(valid)}; got {value!r}")
    return names


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated subset of {','.join(TASKS)}")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per figure, after a warm-up epoch")
    parser.add_argument("--calls", type=int, default=200, help="timed calls per latency figure")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every configuration (repeatable), e.g. data.shuffle_buffer=100000")
    parser.add_argument("--out", type=Path, help="keep runs, exports and logs here (default: a temp dir)")
    parser.add_argument("--write-results", action="store_true",
                        help=f"rewrite this section of {common.RESULTS_FILE.name}")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # TASK:CONFIG, run by the parent in its own process
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.tasks = names_list(parser, args.tasks, TASKS, "--tasks")
    args.parts = names_list(parser, args.parts, PARTS, "--parts")
    if args.repeats < 1 or args.calls < 1:
        parser.error("--repeats and --calls need at least 1")
    if args.child and (args.result is None or args.out is None or args.child.partition(":")[2] not in CONFIGS):
        parser.error("--child TASK:CONFIG goes with --result and --out")
    return args


def child(args: argparse.Namespace) -> int:
    task_name, _, config_name = args.child.partition(":")
    result = measure(task_name, CONFIGS[config_name], args)
    args.result.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    if args.child:
        logging.getLogger("tensorflow").setLevel(logging.WARNING)
        return child(args)
    started, load_at_start = time.perf_counter(), common.load_average()
    command = shlex.join(["python", "benchmarks/performance.py", *(sys.argv[1:] if argv is None else argv)])
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        results = benchmark(args, args.out.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="dlsuite-perf-") as tmp:
            results = benchmark(args, Path(tmp))
    body = tables(results)
    total = time.perf_counter() - started
    print(body)
    log.info("total runtime %.1f min", total / 60)
    if args.write_results:
        section = results_section(command, body, args, results, total, (load_at_start, common.load_average()))
        common.write_results(NAME, section)
        log.info("wrote %s", common.RESULTS_FILE)
    return 1 if failures(results) else 0


if __name__ == "__main__":
    sys.exit(main())
