"""The standard every registered family meets, for every input kind it declares.

The cases are read from the registry when the tests are collected, so a new
family is held to the standard as soon as its module is imported by
``dlsuite.architectures``. For each (family, kind):

* it builds from the registry, its hyperparameters are keyword-only with
  defaults, and an unknown one is a user error naming the valid ones;
* it trains under XLA (``jit_compile=True``, checked after training) on a small
  learnable synthetic problem of that kind, and its loss falls clearly;
* a ``.keras`` save + ``keras.models.load_model`` (default safe mode) predicts
  the same;
* it trains under ``MirroredStrategy`` over two logical CPUs
  (``test_architectures_mirrored.py``, one subprocess for all cases: logical
  devices must be set before TensorFlow initializes).

What differs between families goes in :data:`HOOKS` (small hyperparameters, a
loss, how to read outputs), never into the test bodies.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import inspect
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import keras

import dlsuite
from dlsuite import compat
from dlsuite.architectures import InputSpec, build, get, names

NUM_OUTPUTS = 3
EXAMPLES = 96
BATCH = 32

# The input each kind gets in the standard: small enough to compile and train in seconds.
SPECS = {
    "image": InputSpec("image", (8, 8, 1)),
    "tabular": InputSpec("tabular", (6,)),
    "sequence": InputSpec("sequence", (12, 4)),
    "tokens": InputSpec("tokens", (12,), dtype="int32", vocab_size=30),
    "waveform": InputSpec("waveform", (256,)),
    "text": InputSpec("text", (), dtype="string"),
}
WORDS = (("good", "great", "fine", "nice"), ("bad", "awful", "poor", "sad"), ("red", "blue", "green", "grey"))


def predictions(model: keras.Model, x: np.ndarray) -> list[np.ndarray]:
    """Every output of an inference-mode call, flattened, as numpy arrays."""
    return [np.asarray(out) for out in keras.tree.flatten(model(x, training=False))]


@dataclasses.dataclass(frozen=True)
class Hooks:
    """What a family needs to meet the standard, beyond its defaults.

    Attributes:
        hparams: small hyperparameters (same code paths, cheaper compile).
        specs: per-kind input specs replacing :data:`SPECS` entries.
        learning_rate: Adam learning rate for the synthetic problem.
        epochs: training epochs on the synthetic problem.
        loss_key: the ``fit`` log whose fall is checked.
        loss_ratio: the last epoch's loss must be below this times the first's
            (``None``: the family documents that its loss need not fall, as a
            GAN's adversarial sum; it must still be finite).
        outputs: ``(model, x) -> [arrays]`` compared after save/load.
        required: ``kind -> hyperparameters`` the family cannot build without, even
            from its defaults (transfer: a pretrained hub module for that kind).
    """

    hparams: dict[str, Any] = dataclasses.field(default_factory=dict)
    specs: dict[str, InputSpec] = dataclasses.field(default_factory=dict)
    learning_rate: float = 0.01
    epochs: int = 4
    loss_key: str = "loss"
    loss_ratio: float = 0.7
    outputs: Callable[[keras.Model, np.ndarray], list[np.ndarray]] = predictions
    required: Callable[[str], dict[str, Any]] = lambda kind: {}


SMALL_RECURRENT = Hooks(hparams={"units": 16, "embedding_dim": 16, "dropout": 0.0})

HOOKS: dict[str, Hooks] = {
    "mlp": Hooks(hparams={"hidden_units": (32,), "dropout": 0.0}),
    "cnn": Hooks(hparams={"filters": 8, "blocks": 2, "embedding_dim": 16, "dropout": 0.0}),
    "resnet": Hooks(hparams={"filters": 8, "depth": 1, "stages": 2}),
    "inception": Hooks(hparams={"filters": 8, "modules": 2, "modules_per_stage": 1}),
    "rnn": SMALL_RECURRENT,
    "lstm": SMALL_RECURRENT,
    "gru": SMALL_RECURRENT,
    "transformer": Hooks(hparams={"num_layers": 1, "num_heads": 2, "model_dim": 16, "ff_dim": 32, "dropout": 0.0}),
    "crnn": Hooks(hparams={"filters": 8, "units": 16, "dropout": 0.0}),
    # loss = d_loss + g_loss, adversarial (see architectures/gan.py)
    "gan": Hooks(hparams={"hidden_units": (16, 16), "filters": 8, "latent_dim": 8, "dropout": 0.0}, loss_ratio=None),
}


@functools.cache
def _hub_module(kind: str) -> str:
    """A tiny hub module for ``transfer`` (written once per process by dlsuite.hubmodule)."""
    from dlsuite import hubmodule

    if kind == "text":
        backbone = hubmodule.text_embedding_backbone([" ".join(w) for w in WORDS], max_tokens=20, output_dim=8)
    else:
        inputs = keras.Input(SPECS[kind].shape)
        features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs))
        backbone = keras.Model(inputs, features)
    path = Path(tempfile.mkdtemp(prefix="dlsuite-hub-")) / kind
    atexit.register(shutil.rmtree, path.parent, ignore_errors=True)
    return hubmodule.write_hub_module(backbone, path)


@functools.cache
def _tiny_bert() -> str:
    """A tiny BERT preset for ``bert`` in the Hugging Face layout (written once per process)."""
    from dlsuite import pretrained

    size = SPECS["tokens"].vocab_size
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + [f"token{i}" for i in range(size - 4)]
    path = Path(tempfile.mkdtemp(prefix="dlsuite-bert-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return str(pretrained.write_bert_preset(path, vocabulary))


HOOKS["bert"] = Hooks(hparams={"dropout": 0.0}, required=lambda kind: {"preset": _tiny_bert()})
HOOKS["transfer"] = Hooks(hparams={"fine_tune": True, "dropout": 0.0}, learning_rate=0.05, required=lambda kind: {"handle": _hub_module(kind)})
HOOKS["rbfn"] = Hooks(hparams={"centers": 12}, learning_rate=0.05)
# rbm / som losses (reconstruction / quantization error) have a floor at the problems' unit noise.
HOOKS["rbm"] = Hooks(hparams={"hidden_units": 16}, loss_ratio=0.9)
HOOKS["som"] = Hooks(
    hparams={"grid_rows": 5, "grid_cols": 5, "sigma": 1.0, "sigma_final": 0.3, "decay_steps": 12, "learning_rate_final": 0.2},
    loss_ratio=0.9,
)
# Reconstruction of the unit-noise sequence frames through an 8-wide code has a floor well above
# 0.7 x the first epoch's error (observed 1.05 -> 0.78 in 4 epochs); tabular and image clear 0.7.
HOOKS.setdefault("autoencoder", Hooks(loss_ratio=0.8))
# The last step of a synthetic sequence is unit noise around its class's shift (or padding): the
# forecast's error has that noise as its floor (observed 0.237 -> 0.172 in 4 epochs).
HOOKS["forecaster"] = Hooks(loss_ratio=0.8)
# Each ensemble member is its own graph to trace and compile: two members are enough for the standard.
HOOKS["ae_ensemble"] = Hooks(hparams={"members": 2})
HOOKS["auto"] = Hooks(hparams={"ensemble_members": 2})
# One pretraining epoch, then fine-tuning: the default (2 epochs x 2 layers) pretrains for all 4 epochs.
HOOKS["dbn"] = Hooks(hparams={"hidden_units": (16,), "pretrain_epochs": 1}, learning_rate=0.05)


def hooks(name: str) -> Hooks:
    return HOOKS.get(name, Hooks())


def spec_for(name: str, kind: str) -> InputSpec:
    spec = hooks(name).specs.get(kind, SPECS.get(kind))
    assert spec is not None, f"input kind {kind!r} has no standard spec and problem here: add them"
    return spec


def cases() -> list[tuple[str, str]]:
    """Every (family, input kind) pair the registry declares."""
    return [(name, kind) for name in names() for kind in get(name).input_kinds]


# --------------------------------------------------------------------------- problems


def _padded_lengths(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    """A ``[n, length]`` bool mask of valid steps: each example keeps 4..length steps."""
    lengths = rng.integers(min(4, length), length + 1, size=n)
    return np.arange(length)[None, :] < lengths[:, None]


def learnable_problem(spec: InputSpec, n: int = EXAMPLES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: ``n`` examples of ``spec`` whose class (0..2) is plainly visible in the input.

    image: stripe orientation (rows, columns, none) under noise; tabular and
    sequence: a class-specific shift of a noisy mean (sequences zero-padded at
    the end); tokens: ids drawn from a class-specific range, 0-padded;
    waveform: a sine whose frequency is the class; text: five words from a
    class-specific list.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n) % NUM_OUTPUTS
    shape = tuple(spec.shape)
    if spec.kind == "image":
        height, width = shape[:2]
        rows = np.broadcast_to(np.where(np.arange(height) % 2, 1.0, -1.0)[:, None], (height, width))
        cols = rows.T if height == width else np.broadcast_to(np.where(np.arange(width) % 2, 1.0, -1.0), (height, width))
        patterns = np.stack([rows, cols, np.zeros((height, width))]).reshape(3, height, width, *shape[2:3])
        x = rng.normal(0.0, 0.5, size=(n, *shape)) + patterns[y].reshape(n, *shape)
    elif spec.kind == "tabular":
        centers = 2.0 * np.eye(NUM_OUTPUTS, shape[0])
        x = rng.normal(size=(n, *shape)) + centers[y]
    elif spec.kind == "sequence":
        centers = 1.5 * np.eye(NUM_OUTPUTS, shape[1])
        x = (rng.normal(size=(n, *shape)) + centers[y][:, None, :]) * _padded_lengths(rng, n, shape[0])[..., None]
    elif spec.kind == "tokens":
        width = (spec.vocab_size - 1) // NUM_OUTPUTS
        ids = 1 + width * y[:, None] + rng.integers(0, width, size=(n, shape[0]))
        return np.where(_padded_lengths(rng, n, shape[0]), ids, 0).astype(spec.dtype), y
    elif spec.kind == "text":
        picks = rng.integers(0, len(WORDS[0]), size=(n, 5))
        return np.array([" ".join(WORDS[label][i] for i in row) for label, row in zip(y, picks)], dtype=object), y
    elif spec.kind == "waveform":
        t = np.arange(shape[0])[None, :] / shape[0]
        x = np.sin(2 * np.pi * (4 + 8 * y[:, None]) * t + rng.uniform(0, 2 * np.pi, size=(n, 1)))
        x = (x + rng.normal(0.0, 0.3, size=x.shape)).reshape(n, *shape)
    else:
        raise AssertionError(f"no synthetic problem for input kind {spec.kind!r}")
    return x.astype("float32"), y


def build_case(name: str, kind: str) -> keras.Model:
    return build(name, spec_for(name, kind), num_outputs=NUM_OUTPUTS, **hooks(name).required(kind), **hooks(name).hparams)


def compile_case(model: keras.Model, name: str, *, jit_compile: bool) -> None:
    """Compile as the runner does: the task's loss and metrics (custom-step families drop them)."""
    model.compile(
        optimizer=keras.optimizers.Adam(hooks(name).learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )


def has_own_steps(model: keras.Model) -> bool:
    return type(model).train_step is not keras.Model.train_step


# --------------------------------------------------------------------------- fast checks

CASES = [pytest.param(name, kind, id=f"{name}-{kind}") for name, kind in cases()]


@pytest.mark.parametrize("name", names())
def test_hyperparameters_are_keyword_only_with_defaults(name):
    params = list(inspect.signature(get(name).builder).parameters.values())
    assert [p.name for p in params[:2]] == ["input_spec", "num_outputs"]
    for p in params[2:]:
        assert p.kind is inspect.Parameter.KEYWORD_ONLY, f"{name}: {p.name} is not keyword-only"
        assert p.default is not inspect.Parameter.empty, f"{name}: {p.name} has no default"
    assert get(name).builder.__doc__, f"{name}: builder has no docstring"


@pytest.mark.parametrize("name, kind", CASES)
def test_unknown_hyperparameter_is_a_user_error(name, kind):
    with pytest.raises(dlsuite.DlsuiteError, match="no_such_knob") as info:
        build(name, spec_for(name, kind), num_outputs=NUM_OUTPUTS, no_such_knob=1)
    for hparam in get(name).hparams():
        assert hparam in str(info.value)


@pytest.mark.parametrize("name, kind", CASES)
def test_builds_from_the_registry_with_defaults(name, kind):
    model = build(name, spec_for(name, kind), num_outputs=NUM_OUTPUTS, **hooks(name).required(kind))
    assert isinstance(model, keras.Model)
    x, _ = learnable_problem(spec_for(name, kind), n=4)
    for out in hooks(name).outputs(model, x):
        assert out.shape[0] == 4
        assert np.all(np.isfinite(out)), f"{name}/{kind}: non-finite outputs"


# --------------------------------------------------------------------------- training


@pytest.fixture
def xla_allowed():
    """TF op determinism off for the test: Keras silently compiles without XLA while it is on."""
    from tensorflow.python.framework import config as tf_config  # disable_* is not public

    was_on = tf_config.is_op_determinism_enabled()
    if was_on:
        tf_config.disable_op_determinism()
    yield
    if was_on:
        tf_config.enable_op_determinism()


@pytest.mark.slow
@pytest.mark.parametrize("name, kind", CASES)
def test_learns_under_xla_and_round_trips_keras_file(name, kind, tmp_path, xla_allowed):
    keras.utils.set_random_seed(0)
    h = hooks(name)
    model = build_case(name, kind)
    compile_case(model, name, jit_compile=True)
    x, y = learnable_problem(spec_for(name, kind))
    compat.build_before_fit(model, (x, y))  # as the runner does: the train step is traced once
    # Custom-step families must also report "loss" from test_step (the runner early-stops on val_loss).
    validation = (x[:BATCH], y[:BATCH]) if has_own_steps(model) else None
    history = model.fit(x, y, batch_size=BATCH, epochs=h.epochs, validation_data=validation, verbose=0).history

    # XLA (like a TPU) runs no string ops: raw-text models must fall back, all others must not.
    xla = spec_for(name, kind).dtype != "string"
    assert model.jit_compile is xla, f"{name}/{kind}: jit_compile is {model.jit_compile}, expected {xla}"
    losses = history[h.loss_key]
    assert np.all(np.isfinite(losses)), f"{name}/{kind}: {h.loss_key} {losses}"
    if h.loss_ratio is not None:
        assert losses[-1] < h.loss_ratio * losses[0], f"{name}/{kind}: {h.loss_key} {losses[0]:.4f} -> {losses[-1]:.4f}"
    if validation is not None:
        assert "val_loss" in history, f"{name}/{kind}: test_step returns no loss"

    expected = h.outputs(model, x)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    for got, want in zip(h.outputs(reloaded, x), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"{name}/{kind} after reload")
