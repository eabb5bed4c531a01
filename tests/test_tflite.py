"""TFLite: `dlsuite export --format tflite`, parity with the SavedModel, the error for what does not convert."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dlsuite import cli, config, export, tflite
from dlsuite.tasks import get as get_task


def held_out(run):
    """The test split of a fixture run, loaded from its saved config."""
    cfg = config.load_yaml(Path(run.run_dir) / "config.yaml")
    return get_task(cfg["task"]).load(cfg).test


@pytest.mark.parametrize("name", ["image_classification", "speech", "anomaly", "fraud"])
def test_tflite_matches_the_saved_model_on_the_test_split(task_run, name):
    run = task_run(name)
    flatbuffer = tflite.convert(run.export_dir, name)
    metadata = export.load_metadata(run.export_dir)
    report = tflite.compare_on_split(get_task(name), run.export_dir, flatbuffer, held_out(run), metadata)
    assert report["num_examples"] == metadata["num_examples"]["test"]
    assert report["max_abs_diff"] < 1e-4
    assert report["decisions_agree"] == 1.0  # every class, flag and label the same
    assert report["tflite"] == pytest.approx(report["savedmodel"], abs=1e-3)
    # The SavedModel's figure through its signature is the run's own headline metric.
    assert report["savedmodel"] == pytest.approx(run.metrics[report["metric"]], abs=1e-3)


def test_cli_export_tflite_writes_it_inside_the_new_version_and_reports_both(task_run, tmp_path, capsys):
    run = task_run("image_classification")
    run_dir = tmp_path / "run"
    shutil.copytree(run.run_dir, run_dir, ignore=shutil.ignore_patterns("logs", "backup"))  # the fixture stays as it is
    assert cli.main(["export", "--run", str(run_dir), "--format", "tflite", "--export-root", str(tmp_path / "out")]) == 0
    printed = Path(capsys.readouterr().out.strip())
    assert printed == tmp_path / "out" / "image_classification" / "1" / tflite.TFLITE_FILE and printed.is_file()
    version = printed.parent
    report = json.loads((run_dir / "metrics.json").read_text())["tflite"]
    assert report["export_dir"] == str(version)
    assert report["metric"] == "accuracy" and report["tflite"] == pytest.approx(report["savedmodel"])
    assert report["tflite_bytes"] == printed.stat().st_size
    assert report["savedmodel_bytes"] > (version / "saved_model.pb").stat().st_size
    assert export.load_metadata(version)["tflite"]["tflite"] == report["tflite"]
    # The flatbuffer runs on its own: uint8 pixels in, the served class names out.
    runner = tflite.signature_runner(printed)
    out = runner(images=np.zeros((3, 8, 8, 1), np.uint8))
    assert out["probabilities"].shape == (3, 10) and {c.decode() for c in out["class_name"]} <= set("0123456789")


def test_sentiment_does_not_convert_names_the_ops_and_leaves_no_version(task_run, tmp_path, capsys):
    run = task_run("sentiment")
    out_root = tmp_path / "out"
    assert cli.main(["export", "--run", run.run_dir, "--format", "tflite", "--export-root", str(out_root)]) == 2
    err = capsys.readouterr().err
    assert "does not convert to TFLite" in err and "tf.StringLower" in err and "tf.StringSplitV2" in err
    assert list((out_root / "sentiment").iterdir()) == []  # not even the SavedModel half
    assert "tflite" not in json.loads((Path(run.run_dir) / "metrics.json").read_text())
