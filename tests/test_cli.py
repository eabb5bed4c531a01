"""The dlsuite command: help, listings and one-line errors for bad input."""

import pytest

from conftest import run_cli
from dlsuite.cli import main


@pytest.mark.parametrize("command", [[], ["run"], ["list"], ["evaluate"], ["predict"], ["export"]])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([*command, "--help"])
    assert e.value.code == 0
    assert "usage: dlsuite" in capsys.readouterr().out


def test_list_tasks_architectures_datasets(capsys):
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


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "imagenet"], "unknown task 'imagenet'"),
        (["run", "image_classification", "--arch", "vgg"], "architecture='vgg' is not valid"),
        (["run", "image_classification", "--dataset", "no_such_set", "--no-export"], "'no_such_set' is neither"),
        (["run", "image_classification", "--set", "train.epoch=1"], "unknown config key 'train.epoch'"),
        (["run", "image_classification", "--config", "missing.yaml"], "config file missing.yaml does not exist"),
        (["evaluate", "--run", "nowhere"], "nowhere is not a finished dlsuite run"),
    ],
)
def test_bad_input_ends_with_one_clear_line(args, message, tmp_path):
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("dlsuite: error:") and message in last
    assert "Traceback" not in proc.stderr


def test_folder_with_one_class_via_cli(tmp_path):
    from PIL import Image
    import numpy as np

    (tmp_path / "imgs" / "cats").mkdir(parents=True)
    for i in range(12):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "imgs" / "cats" / f"{i}.png")
    proc = run_cli("run", "image_classification", "--data", str(tmp_path / "imgs"), cwd=tmp_path)
    assert proc.returncode == 2 and "holds a single class ('cats')" in proc.stderr.strip().splitlines()[-1]
