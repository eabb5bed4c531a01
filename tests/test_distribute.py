"""Strategy resolution, and whole runs under MirroredStrategy and two local multi-worker processes."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from conftest import FAST, run_cli, set_args
from dlsuite import DlsuiteError, distribute


def test_auto_takes_the_default_strategy_without_accelerators():
    strategy = distribute.resolve("auto")
    assert strategy.num_replicas_in_sync == 1
    assert not distribute.is_tpu(strategy)


def test_tpu_without_a_tpu_is_a_clear_error():
    with pytest.raises(DlsuiteError, match="no TPU found.*--strategy auto"):
        distribute.resolve("tpu")


def test_multi_worker_without_tf_config_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(DlsuiteError, match="TF_CONFIG"):
        distribute.resolve("multi_worker")


def test_unknown_strategy():
    with pytest.raises(DlsuiteError, match="unknown strategy 'gpu'"):
        distribute.resolve("gpu")


def test_one_device_and_default():
    assert isinstance(distribute.resolve("one_device"), tf.distribute.OneDeviceStrategy)
    assert distribute.resolve("default").num_replicas_in_sync == 1


def test_batch_is_per_replica():
    class Two:
        num_replicas_in_sync = 2

    assert distribute.global_batch_size(32, Two()) == 64


@pytest.mark.parametrize(
    "tf_config, chief",
    [
        (None, True),
        ({"cluster": {"worker": ["a", "b"]}, "task": {"type": "worker", "index": 0}}, True),
        ({"cluster": {"worker": ["a", "b"]}, "task": {"type": "worker", "index": 1}}, False),
        ({"cluster": {"chief": ["c"], "worker": ["a"]}, "task": {"type": "worker", "index": 0}}, False),
        ({"cluster": {"chief": ["c"], "worker": ["a"]}, "task": {"type": "chief", "index": 0}}, True),
    ],
)
def test_chief_from_tf_config(monkeypatch, tf_config, chief):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert distribute.is_chief() is chief


def test_tpu_saves_through_the_local_host():
    class FakeTPU(tf.distribute.TPUStrategy):
        def __init__(self):  # no TPU here: only the type matters
            pass

    options = distribute.save_options(FakeTPU())
    assert options.experimental_io_device == "/job:localhost"
    assert distribute.save_options(tf.distribute.get_strategy()) is None


@pytest.mark.slow
def test_full_run_under_mirrored_strategy_on_two_logical_cpus(tmp_path):
    proc = run_cli(
        "run", "image_classification", "--strategy", "mirrored", "--run-dir", str(tmp_path / "run"),
        *set_args(*FAST, "distribute.logical_cpus=2", f"export.root={tmp_path / 'saved_models'}"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "MirroredStrategy" in proc.stderr and "'replicas': 2" in proc.stderr
    assert metrics["reload_max_abs_diff"] < 1e-5
    assert (tmp_path / "saved_models" / "image_classification" / "1" / "saved_model.pb").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multi_worker_two_local_processes_train_and_chief_exports(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(2)]}
    procs = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        }
        cmd = [
            sys.executable, "-m", "dlsuite.cli", "run", "image_classification", "--strategy", "multi_worker",
            "--run-dir", str(tmp_path / "run"),
            *set_args(*FAST, f"export.root={tmp_path / 'saved_models'}"),
        ]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    deadline = time.time() + 300
    outputs = []
    for p in procs:
        try:
            outputs.append(p.communicate(timeout=max(1, deadline - time.time()))[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("multi-worker run hung")
    assert [p.returncode for p in procs] == [0, 0], "\n\n".join(o[-3000:] for o in outputs)
    assert "MultiWorkerMirroredStrategy" in outputs[0]
    # Both workers trained in lockstep; only the chief evaluated and exported.
    chief_history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    worker_history = (tmp_path / "run" / "workers" / "worker-1" / "history.csv").read_text().splitlines()
    assert len(chief_history) == len(worker_history) > 1
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["reload_max_abs_diff"] < 1e-5
    versions = list((tmp_path / "saved_models" / "image_classification").iterdir())
    assert [v.name for v in versions] == ["1"]
