"""The run loop: artifacts of a run, resuming after SIGKILL, refusing to mix runs."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import FAST, run_cli, set_args
from dlsuite import DlsuiteError
from dlsuite.tasks import runner


def test_a_run_leaves_its_report(digits_run):
    run_dir = digits_run.run_dir
    for name in ("config.yaml", "data_metadata.json", "history.csv", "best.weights.h5", "model.keras",
                 "metrics.json", "training_curves.png", "confusion_matrix.png"):
        assert os.path.getsize(os.path.join(run_dir, name)) > 0, name
    assert any(f.startswith("events.out.tfevents") for _, _, files in os.walk(os.path.join(run_dir, "logs")) for f in files)
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    assert set(metrics["per_class"]) == {str(d) for d in range(10)}
    assert {"precision", "recall", "f1", "support"} <= set(metrics["per_class"]["3"])
    cm = metrics["confusion_matrix"]
    assert len(cm) == 10 and sum(map(sum, cm)) == metrics["num_test_examples"] == 360
    assert 0 <= metrics["macro_f1"] <= 1 and metrics["epochs_run"] >= 1
    # Even a 4-epoch mlp run learns digits far beyond chance (10%).
    assert metrics["accuracy"] > 0.5


def test_a_finished_run_dir_is_not_reused(digits_run):
    _, cfg = runner.resolve_config("image_classification", overrides=FAST)
    with pytest.raises(DlsuiteError, match="holds a finished run"):
        runner.prepare_run_dir(cfg, digits_run.run_dir)


def test_an_unfinished_run_with_another_config_is_refused(tmp_path):
    _, cfg = runner.resolve_config("image_classification", overrides=["train.epochs=3"])
    runner.prepare_run_dir(cfg, tmp_path)
    _, other = runner.resolve_config("image_classification", overrides=["train.epochs=5"])
    with pytest.raises(DlsuiteError, match=r"different config \(train.epochs\)"):
        runner.prepare_run_dir(other, tmp_path)


def test_a_run_that_fails_before_training_leaves_no_directory(tmp_path):
    task, cfg = runner.resolve_config(
        "image_classification", overrides=FAST, values={"data.path": str(tmp_path / "absent"),
                                                         "run.root": str(tmp_path / "runs")}
    )
    with pytest.raises(DlsuiteError, match="absent"):
        runner.run(task, cfg)
    with pytest.raises(DlsuiteError, match="absent"):
        runner.run(task, cfg, tmp_path / "named")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("config.yaml"))
    assert not (tmp_path / "named").exists()
    # A directory the user made beforehand is theirs: it stays.
    (tmp_path / "mine").mkdir()
    with pytest.raises(DlsuiteError):
        runner.run(task, cfg, tmp_path / "mine")
    assert (tmp_path / "mine").is_dir()


def history_epochs(path):
    if not path.exists():
        return []
    lines = path.read_text().splitlines()[1:]
    return [int(line.split(",")[0]) for line in lines if line.strip()]


def test_the_same_config_and_seed_train_the_same_model(tmp_path):
    # At the default width, three epochs without train.deterministic already differ in the
    # later digits of the losses (threaded CPU reductions); with it they match to the bit.
    histories = []
    for name in ("a", "b"):
        task, cfg = runner.resolve_config("image_classification", overrides=["train.epochs=3", "train.verbose=0"])
        runner.run(task, cfg, tmp_path / name, do_export=False)
        histories.append((tmp_path / name / "history.csv").read_text())
    assert histories[0] == histories[1]
    # The process-wide switch is not left on for the caller's own models.
    from tensorflow.python.framework import config as tf_config

    assert not tf_config.is_op_determinism_enabled()


def stop_after(epochs: int):
    """A callback that ends ``fit`` like a killed process, after ``epochs`` epochs."""
    import keras

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == epochs:
                raise KeyboardInterrupt

    return Stop()


def test_a_truncated_backup_falls_back_to_the_one_before_it(tmp_path, caplog):
    import keras
    import numpy as np

    from dlsuite import compat

    x, y = np.random.default_rng(0).normal(size=(64, 3)).astype("float32"), np.zeros((64, 1), "float32")

    def model():
        m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        m.compile("sgd", "mse")
        return m

    backup = tmp_path / "backup"
    with pytest.raises(KeyboardInterrupt):  # epochs 0 and 1 backed up, then "killed"
        model().fit(x, y, epochs=5, verbose=0, callbacks=[compat.BackupAndRestore(str(backup), double_checkpoint=True), stop_after(2)])
    latest = backup / "latest.weights.h5"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # the disk filled up mid-write
    history = model().fit(x, y, epochs=5, verbose=0, callbacks=[compat.BackupAndRestore(str(backup), double_checkpoint=True)])
    assert history.epoch == [1, 2, 3, 4]  # resumed after epoch 0, the previous backup
    assert "latest backup was unreadable" in caplog.text


@pytest.mark.slow
def test_a_full_disk_is_one_clear_error_and_the_run_resumes(tmp_path):
    import resource

    def small_files():  # in the child: files above 200 KB cannot be written (as on a full disk)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200 * 1024, resource.RLIM_INFINITY))

    args = [sys.executable, "-m", "dlsuite.cli", "run", "anomaly", "--run-dir", "runs/a", "--set", "train.epochs=2"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    full = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, preexec_fn=small_files)
    assert full.returncode == 2, full.stderr[-2000:]
    last = full.stderr.strip().splitlines()[-1]
    assert last.startswith("dlsuite: error: out of space") and "--run-dir" in last
    assert not (tmp_path / "saved_models").exists() or not any((tmp_path / "saved_models" / "anomaly").glob("[0-9]*"))
    again = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Traceback" not in again.stderr and (tmp_path / "runs" / "a" / "metrics.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("task_name, network", [
    ("anomaly", []), ("fraud", []), ("image_classification", ["architecture=mlp"]), ("sentiment", ["architecture=mlp"]),
    ("speech", ["model.filters=8", "model.blocks=2"]),
])
def test_a_run_killed_with_sigkill_resumes_to_exactly_the_uninterrupted_result(task_name, network, tmp_path, caplog):
    # Killed during its third epoch (just after the second was logged), then resumed: the data stream,
    # the weights, the optimizer, the dropout/noise random state and early stopping all go on, so
    # the same seed gives the same epochs and the same test metrics as a run never killed.
    overrides = network + ["train.epochs=5", "train.early_stopping_patience=2", "train.verbose=0"]
    task, cfg = runner.resolve_config(task_name, overrides=overrides)
    whole = runner.run(task, cfg, tmp_path / "whole", do_export=False)

    killed = tmp_path / "killed"
    args = [sys.executable, "-m", "dlsuite.cli", "run", task_name, "--run-dir", str(killed), "--no-export",
            *set_args(*overrides)]
    proc = subprocess.Popen(args, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while len(history_epochs(killed / "history.csv")) < 2:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline, "no epoch finished in time"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not (killed / "metrics.json").exists()

    caplog.set_level("INFO", logger="dlsuite")
    task, cfg = runner.resolve_config(task_name, overrides=overrides)
    resumed = runner.run(task, cfg, killed, do_export=False)
    assert "resuming the unfinished run" in caplog.text
    assert (killed / "history.csv").read_text() == (tmp_path / "whole" / "history.csv").read_text()
    for name, value in whole.metrics.items():
        if isinstance(value, float) and "seconds" not in name:
            assert resumed.metrics[name] == pytest.approx(value, rel=1e-6, abs=1e-9), name
