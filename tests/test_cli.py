"""The dlsuite command: help, listings and one-line errors for bad input."""

import errno
import os

import pytest

from conftest import run_cli
from dlsuite.cli import main


@pytest.mark.parametrize("command", [[], ["run"], ["list"], ["evaluate"], ["predict"], ["export"], ["fetch"]])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([*command, "--help"])
    assert e.value.code == 0
    assert "usage: dlsuite" in capsys.readouterr().out


def test_list_tasks_architectures_datasets_pretrained(capsys):
    assert main(["list", "tasks"]) == 0
    assert "image_classification" in capsys.readouterr().out
    assert main(["list", "architectures"]) == 0
    out = capsys.readouterr().out
    for name in ("cnn", "resnet", "inception", "mlp"):
        assert f"| {name} " in out
    assert "image_classification" in out and "depth" in out
    assert main(["list", "datasets"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "TensorFlow Datasets" in out
    assert main(["list", "pretrained"]) == 0
    assert "| minilm " in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "imagenet"], "unknown task 'imagenet'"),
        (["run", "image_classification", "--arch", "vgg"], "architecture='vgg' is not valid"),
        (["run", "image_classification", "--dataset", "no_such_set", "--no-export"], "'no_such_set' is neither"),
        (["run", "image_classification", "--set", "train.epoch=1"], "unknown config key 'train.epoch'"),
        (["run", "image_classification", "--config", "missing.yaml"], "config file missing.yaml does not exist"),
        (["evaluate", "--run", "nowhere"], "nowhere is not a finished dlsuite run"),
        (["run", "anomaly", "--set", "model.hidden_units=abc"], "model.hidden_units='abc' must be a list of numbers"),
        (["run", "fraud", "--set", "model.dropout=high"], "model.dropout='high' must be a number"),
    ],
)
def test_bad_input_ends_with_one_clear_line(args, message, tmp_path, monkeypatch, capsys):
    # In-process: main() is the whole command (the entry point adds only sys.exit); an exception
    # escaping it would fail the test, as a traceback would fail a user.
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("dlsuite: error:") and message in last


@pytest.mark.parametrize("code, says", [
    (errno.EACCES, "Permission denied"), (errno.EROFS, "Read-only file system"), (errno.ENOSPC, "out of space"),
])
def test_a_folder_it_cannot_write_ends_with_one_clear_line(code, says, tmp_path, monkeypatch, capsys):
    from dlsuite.tasks import runner

    # As root (CI) no permission bit stops a write, so the file system's refusal is raised where
    # the run folder is made.
    def refuse(cfg, run_dir):
        raise OSError(code, os.strerror(code), str(run_dir))

    def exit_now(status):
        raise SystemExit(status)

    monkeypatch.setattr(runner, "prepare_run_dir", refuse)
    monkeypatch.setattr(os, "_exit", exit_now)
    with pytest.raises(SystemExit) as ended:
        main(["run", "anomaly", "--run-dir", str(tmp_path / "ro" / "run")])
    assert ended.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("dlsuite: error:") and says in last and str(tmp_path / "ro" / "run") in last
    assert "--run-dir" in last


def test_the_installed_command_exits_2_with_one_line_and_no_traceback(tmp_path):
    proc = run_cli("run", "image_classification", "--set", "train.epoch=1", cwd=tmp_path)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("dlsuite: error:") and "unknown config key 'train.epoch'" in last
    assert "Traceback" not in proc.stderr


def test_folder_with_one_class_via_cli(tmp_path, monkeypatch, capsys):
    from PIL import Image
    import numpy as np

    (tmp_path / "imgs" / "cats").mkdir(parents=True)
    for i in range(12):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "imgs" / "cats" / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "image_classification", "--data", str(tmp_path / "imgs")]) == 2
    assert "holds a single class ('cats')" in capsys.readouterr().err.strip().splitlines()[-1]


def test_a_run_whose_model_holds_python_code_is_refused(tmp_path, monkeypatch, capsys):
    import keras

    from dlsuite import config
    from dlsuite.tasks import runner

    run = tmp_path / "run"
    run.mkdir()
    _, cfg = runner.resolve_config("image_classification")
    config.save(cfg, run / "config.yaml")
    marker = tmp_path / "ran"
    inputs = keras.Input((3,))
    # Bytecode that would write a file if Keras ran it while loading.
    code = eval(f"lambda x: x + float(__import__('pathlib').Path({str(marker)!r}).touch() or 0)")
    outputs = keras.layers.Lambda(code)(inputs)
    keras.Model(inputs, outputs).save(run / "model.keras")
    marker.unlink()
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--run", str(run)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("dlsuite: error:") and "holds a Lambda layer or other Python code" in last
    assert not marker.exists()
    (run / "model.keras").write_text("not a zip")
    assert main(["evaluate", "--run", str(run)]) == 2
    assert "is not a .keras file" in capsys.readouterr().err
