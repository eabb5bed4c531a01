import pytest
import yaml

from dlsuite import DlsuiteError, config
from dlsuite.tasks import runner


def test_defaults_then_yaml_then_set(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  epochs: 7\n  learning_rate: 0.01\n")
    _, cfg = runner.resolve_config("image_classification", f, ["train.epochs=3", "model.filters=16"])
    assert cfg["train"]["epochs"] == 3  # --set wins over the file
    assert cfg["train"]["learning_rate"] == 0.01  # the file wins over the default
    assert cfg["train"]["batch_size"] == 64  # the default stays
    assert cfg["model"] == {"filters": 16}


def test_unknown_key_names_valid_keys_and_suggests():
    with pytest.raises(DlsuiteError) as e:
        runner.resolve_config("image_classification", overrides=["train.epoch=3"])
    msg = str(e.value)
    assert "unknown config key 'train.epoch'" in msg and "Did you mean 'train.epochs'" in msg
    assert "train.batch_size" in msg


def test_yaml_with_a_typo_in_a_key(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("trian:\n  epochs: 3\n")
    with pytest.raises(DlsuiteError, match=r"unknown config key 'trian'.*Did you mean 'train'"):
        runner.resolve_config("image_classification", f)


def test_invalid_yaml_says_where(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  epochs: [3\n")
    with pytest.raises(DlsuiteError, match=r"not valid YAML at line"):
        runner.resolve_config("image_classification", f)


def test_yaml_cannot_construct_python_objects(tmp_path):
    marker = tmp_path / "ran"
    f = tmp_path / "c.yaml"
    f.write_text(f"train: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(DlsuiteError, match=r"not valid YAML at line 1"):
        runner.resolve_config("image_classification", f)
    with pytest.raises(DlsuiteError, match=r"must be int"):
        runner.resolve_config("image_classification", overrides=[f"train.epochs=!!python/object/apply:os.system ['touch {marker}']"])
    assert not marker.exists()


@pytest.mark.parametrize(
    "override, pattern",
    [
        ("train.epochs=many", r"'train.epochs' must be int"),
        ("train.epochs=2.5", r"'train.epochs' must be int"),
        ("data.augment=3", r"'data.augment' must be bool"),
        ("strategy=gpu", r"strategy='gpu' is not valid.*Valid values: auto, tpu, mirrored"),
        ("architecture=lstmm", r"architecture='lstmm' is not valid.*cnn, resnet, inception, mlp"),
        ("train.optimizer=adamm", r"Did you mean 'adam'"),
        ("model.filter=3", r"'cnn' has no hyperparameter 'filter'.*Did you mean 'filters'"),
        ("train=5", r"'train' is a section"),
        ("epochs", r"must look like key.sub=value"),
        ("train.jit_compile=true", r"train.jit_compile=true needs train.deterministic=false"),
        ("train.epochs=-1", r"train.epochs=-1 is out of range: it must be at least 1"),
        ("train.epochs=0", r"train.epochs=0 is out of range"),
        ("train.batch_size=0", r"train.batch_size=0 is out of range"),
        ("train.learning_rate=-0.1", r"train.learning_rate=-0.1 is out of range: it must be a positive number"),
        ("train.early_stopping_patience=-2", r"early_stopping_patience=-2 is out of range"),
        ("data.val_fraction=1.5", r"data.val_fraction=1.5 is out of range: it must be in \[0, 1\)"),
        ("data.val_fraction=0.8", r"val_fraction \+ data.test_fraction = 1 leaves nothing to train on"),
        ("seed=-3", r"seed=-3 is out of range: it must be a non-negative integer"),
    ],
)
def test_bad_values_are_clear_errors(override, pattern):
    with pytest.raises(DlsuiteError, match=pattern):
        runner.resolve_config("image_classification", overrides=[override])


def test_int_widens_to_float():
    _, cfg = runner.resolve_config("image_classification", overrides=["train.learning_rate=1"])
    assert cfg["train"]["learning_rate"] == 1.0 and isinstance(cfg["train"]["learning_rate"], float)


def test_exponents_without_a_dot_are_numbers(tmp_path):
    # PyYAML (YAML 1.1) reads 1e-4 as the string "1e-4"; a float setting takes it as the number.
    _, cfg = runner.resolve_config("image_classification", overrides=["train.learning_rate=1e-4"])
    assert cfg["train"]["learning_rate"] == 1e-4
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  learning_rate: 5E-5\n")
    assert runner.resolve_config("image_classification", f)[1]["train"]["learning_rate"] == 5e-5
    with pytest.raises(DlsuiteError, match=r"'train.learning_rate' must be float"):
        runner.resolve_config("image_classification", overrides=["train.learning_rate=1e-4x"])


def test_unknown_task_is_clear():
    with pytest.raises(DlsuiteError, match=r"unknown task 'image'.*Did you mean 'image_classification'"):
        runner.resolve_config("image")


def test_resolved_config_is_saved_and_round_trips(tmp_path):
    _, cfg = runner.resolve_config("image_classification", overrides=["train.epochs=2"])
    path = runner.prepare_run_dir(cfg, tmp_path / "run")
    saved = yaml.safe_load((path / "config.yaml").read_text())
    assert saved == cfg
    assert config.flatten(saved)["train.epochs"] == 2
