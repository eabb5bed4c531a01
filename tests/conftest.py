"""Shared fixtures: a fast config, a CLI runner and one trained digits run reused by many tests."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# LLVM's optimization passes are about half of an XLA CPU compile (a small Inception's train step:
# 8.3 s -> 4.6 s at level 0). The tests check what compiles under XLA and what it computes, not how
# fast the compiled code runs; a user's XLA_FLAGS wins.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import dlsuite  # noqa: E402,F401  before any test module imports TensorFlow: its environment defaults apply

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"

# Small and quick, still a real network on real data.
FAST = ["architecture=mlp", "train.epochs=4", "train.early_stopping_patience=4"]


# The longest files (measured with --durations=0), handed out first: `--dist loadfile` gives files to
# the workers in collection order, and a long file started last leaves the other worker idle.
# test_serving.py trains the shared task_run fixtures early; the other files reading them go last, so
# they find the runs made instead of waiting on the lock.
LONGEST_FIRST = (
    "test_architectures_standard.py", "test_architectures_mirrored.py", "test_speech.py", "test_bert.py",
    "test_sklearn_checks.py", "test_serving.py", "test_accuracy.py", "test_sentiment.py", "test_fraud.py",
)
LAST = ("test_tflite.py", "test_batch_predict.py", "test_fuzz_serving.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    rank.update({name: len(LONGEST_FIRST) + 1 + i for i, name in enumerate(LAST)})
    others = len(LONGEST_FIRST)
    items.sort(key=lambda item: rank.get(item.path.name, others))  # stable: other files keep their order


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``dlsuite`` in a fresh process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "dlsuite.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )


def set_args(*overrides: str) -> list[str]:
    out: list[str] = []
    for o in overrides:
        out += ["--set", o]
    return out


def anomaly_config(tmp_path: Path, *overrides: str):
    """The anomaly task's config with its files under ``tmp_path``, quiet, plus ``overrides``."""
    from dlsuite.tasks import runner

    return runner.resolve_config(
        "anomaly",
        overrides=[f"export.root={tmp_path / 'saved_models'}", f"run.root={tmp_path / 'runs'}", "train.verbose=0",
                   *overrides],
    )


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """One finished digits run (cnn, few epochs) with its export, shared by read-only tests."""
    from dlsuite.tasks import runner

    work = tmp_path_factory.mktemp("digits_run")
    task, cfg = runner.resolve_config(
        "image_classification",
        overrides=FAST + [f"export.root={work / 'saved_models'}"],
    )
    return runner.run(task, cfg, work / "run")


@dataclasses.dataclass(frozen=True)
class FinishedRun:
    """What tests read of a finished run (see :class:`dlsuite.tasks.runner.RunResult`)."""

    run_dir: str
    export_dir: str
    metrics: dict


@pytest.fixture(scope="session")
def task_run(tmp_path_factory, worker_id):
    """A function ``task_run(name)``: one finished fast run of task ``name`` with its export.

    Shared by read-only tests of what every task's export does (serving, batch prediction, TFLite).
    Each task trains its default network (image classification: the mlp) for three epochs, once per
    pytest session: xdist workers share the runs through a folder of this session, under a lock.
    """
    from dlsuite.tasks import runner

    base = tmp_path_factory.getbasetemp()
    shared = (base if worker_id == "master" else base.parent) / "task_runs"
    shared.mkdir(exist_ok=True)

    def make(name: str) -> FinishedRun:
        work = shared / name
        with open(shared / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be training it; wait for its result
            done = work / "finished.json"
            if not done.exists():
                network = ["architecture=mlp"] if name == "image_classification" else []  # its cnn takes 30 s
                overrides = network + [
                    "train.epochs=3", "train.early_stopping_patience=3", f"export.root={work / 'saved_models'}"
                ]
                task, cfg = runner.resolve_config(name, overrides=overrides)
                result = runner.run(task, cfg, work / "run")
                finished = FinishedRun(result.run_dir, result.export_dir, result.metrics)
                done.write_text(json.dumps(dataclasses.asdict(finished)))
            return FinishedRun(**json.loads(done.read_text()))

    return make
