"""The image families (mlp, cnn, resnet, inception): build, train under XLA, save/load.

Fast: tiny inputs and a handful of steps; the real-data accuracy lives in the
task's slow tests.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import keras

import dlsuite
from dlsuite import compat
from dlsuite.architectures import InputSpec, build, get

FAMILIES = ("mlp", "cnn", "resnet", "inception")
SHAPES = ((8, 8, 1), (32, 32, 3))
NUM_OUTPUTS = 3

# Small widths keep the XLA compile + a few training steps cheap on 2 CPU cores,
# while exercising the same code paths as the defaults (projection shortcuts,
# inception stage reductions, batchnorm in the mlp).
SMALL = {
    "mlp": {"hidden_units": (32, 16), "batchnorm": True},
    "cnn": {"filters": 8, "blocks": 2},
    "resnet": {"filters": 8, "depth": 1, "stages": 2},
    "inception": {"filters": 8, "modules": 2, "modules_per_stage": 1},
}
TRAIN_STEPS = 12


def _spec(shape: tuple[int, ...]) -> InputSpec:
    return InputSpec("image", shape)


def _learnable_problem(shape: tuple[int, ...], n: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy images whose class is the stripe orientation: rows, columns or none.

    Orientation is translation invariant, so globally pooled convnets can learn
    it as easily as an mlp.
    """
    rng = np.random.default_rng(seed)
    height, width = shape[:2]
    rows = np.broadcast_to(np.where(np.arange(height) % 2, 1.0, -1.0)[:, None], (height, width))
    cols = np.broadcast_to(np.where(np.arange(width) % 2, 1.0, -1.0)[None, :], (height, width))
    patterns = [rows, cols, np.zeros((height, width))]
    y = np.arange(n) % NUM_OUTPUTS
    x = rng.normal(0.0, 0.5, size=(n, *shape))
    for i, label in enumerate(y):
        x[i] += patterns[label].reshape(height, width, *([1] * (len(shape) - 2)))
    return x.astype("float32"), y


def _assert_probabilities(out: np.ndarray, batch: int) -> None:
    assert out.shape == (batch, NUM_OUTPUTS)
    assert np.all(np.isfinite(out))
    assert np.all(out >= 0.0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", FAMILIES)
def test_default_build_outputs_probabilities(name, shape):
    model = build(name, _spec(shape), num_outputs=NUM_OUTPUTS)
    assert isinstance(model, keras.Model)
    assert model.name == name
    assert model.output_shape == (None, NUM_OUTPUTS)
    x = np.random.default_rng(1).normal(size=(5, *shape)).astype("float32")
    _assert_probabilities(np.asarray(model(x, training=False)), 5)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", FAMILIES)
def test_trains_under_xla_and_round_trips_keras_file(name, shape, tmp_path):
    keras.utils.set_random_seed(0)
    model = build(name, _spec(shape), num_outputs=NUM_OUTPUTS, **SMALL[name])
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        jit_compile=True,
    )
    # Keras silently falls back to no XLA (e.g. under TF op determinism): make sure it did not.
    assert model.jit_compile is True
    x, y = _learnable_problem(shape)
    compat.build_before_fit(model, (x, y))  # as the runner does: the train step is traced once
    losses = [model.train_on_batch(x, y, return_dict=True)["loss"] for _ in range(TRAIN_STEPS)]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0], f"{name}: training loss {losses[0]:.3f} -> {losses[-1]:.3f}"

    # Eager calls (no extra XLA compile): inference mode, after training.
    expected = np.asarray(model(x, training=False))
    _assert_probabilities(expected, len(x))

    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert reloaded.name == name
    np.testing.assert_allclose(np.asarray(reloaded(x, training=False)), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", FAMILIES)
def test_unknown_hyperparameter_names_the_valid_ones(name):
    with pytest.raises(dlsuite.DlsuiteError) as info:
        build(name, _spec((8, 8, 1)), num_outputs=NUM_OUTPUTS, no_such_knob=1)
    message = str(info.value)
    assert "no_such_knob" in message
    valid = get(name).hparams()
    assert valid, f"{name} declares no hyperparameters"
    for hparam in valid:
        assert hparam in message


@pytest.mark.parametrize("name", FAMILIES)
def test_hyperparameters_are_keyword_only_with_defaults(name):
    # Every parameter after (input_spec, num_outputs) is keyword-only with a default,
    # so the family builds from its name alone and `--set model.<name>=...` covers them all.
    params = list(inspect.signature(get(name).builder).parameters.values())
    assert [p.name for p in params[:2]] == ["input_spec", "num_outputs"]
    for p in params[2:]:
        assert p.kind is inspect.Parameter.KEYWORD_ONLY, p.name
        assert p.default is not inspect.Parameter.empty, p.name


def test_mlp_accepts_tabular_inputs_and_image_families_do_not():
    model = build("mlp", InputSpec("tabular", (7,)), num_outputs=NUM_OUTPUTS)
    _assert_probabilities(np.asarray(model(np.zeros((2, 7), "float32"))), 2)
    for name in ("cnn", "resnet", "inception"):
        with pytest.raises(dlsuite.DlsuiteError, match="image"):
            build(name, InputSpec("tabular", (7,)), num_outputs=NUM_OUTPUTS)


def _residual_blocks(model: keras.Model) -> int:
    return sum(isinstance(layer, keras.layers.Add) for layer in model.layers)


def test_resnet_depth_sets_residual_blocks_per_stage():
    spec = _spec((8, 8, 1))
    shallow = build("resnet", spec, num_outputs=NUM_OUTPUTS, depth=1, stages=3, filters=8)
    deep = build("resnet", spec, num_outputs=NUM_OUTPUTS, depth=3, stages=3, filters=8)
    assert _residual_blocks(shallow) == 3
    assert _residual_blocks(deep) == 9
    assert deep.count_params() > shallow.count_params()


def test_resnet_uses_projection_shortcuts_only_where_shapes_change():
    model = build("resnet", _spec((32, 32, 3)), num_outputs=NUM_OUTPUTS, depth=2, stages=3, filters=8)
    projections = [layer.name for layer in model.layers if layer.name.endswith("_proj_conv")]
    # Stem and stage 1 both have 8 channels (identity); stages 2 and 3 change shape once each.
    assert projections == ["stage2_block1_proj_conv", "stage3_block1_proj_conv"]
    assert model.get_layer("stage2_block1_proj_conv").strides == (2, 2)


def test_inception_modules_have_four_parallel_branches():
    model = build("inception", _spec((8, 8, 1)), num_outputs=NUM_OUTPUTS, modules=3, filters=8)
    concats = [layer for layer in model.layers if isinstance(layer, keras.layers.Concatenate)]
    assert len(concats) == 3
    assert all(len(layer.input) == 4 for layer in concats)
    # The factorized 5x5: a 1x1 reduction then two 3x3 convs.
    assert model.get_layer("module1_dbl3x3_reduce_conv").kernel_size == (1, 1)
    assert model.get_layer("module1_dbl3x3_a_conv").kernel_size == (3, 3)
    assert model.get_layer("module1_dbl3x3_b_conv").kernel_size == (3, 3)


@pytest.mark.parametrize("name", ("cnn", "resnet", "inception"))
@pytest.mark.parametrize(
    "shape, smallest_side",
    [((8, 8, 1), 2), ((5, 5, 1), 2), ((32, 32, 3), 2), ((224, 224, 3), 7)],
    ids=["8x8", "5x5", "32x32", "224x224"],
)
def test_feature_map_is_sized_from_the_input(name, shape, smallest_side):
    model = build(name, _spec(shape), num_outputs=NUM_OUTPUTS)
    height, width = model.get_layer("avg_pool").input.shape[1:3]
    # Never downsampled below 2x2 ...
    assert min(height, width) >= smallest_side
    # ... and large inputs get a strided stem, small ones do not.
    has_strided_stem = "stem_pool" in [layer.name for layer in model.layers]
    assert has_strided_stem == (shape[0] >= 64)


def test_cnn_doubles_filters_per_block():
    model = build("cnn", _spec((32, 32, 3)), num_outputs=NUM_OUTPUTS, filters=8, blocks=3)
    widths = [model.get_layer(f"block{i}_2_conv").filters for i in (1, 2, 3)]
    assert widths == [8, 16, 32]


@pytest.mark.parametrize(
    "name, hparams",
    [
        ("cnn", {"blocks": 0}),
        ("resnet", {"depth": 0}),
        ("inception", {"modules": 0}),
        ("mlp", {"dropout": 1.0}),
    ],
)
def test_invalid_hyperparameter_values_are_user_errors(name, hparams):
    with pytest.raises(dlsuite.DlsuiteError, match=next(iter(hparams))):
        build(name, _spec((8, 8, 1)), num_outputs=NUM_OUTPUTS, **hparams)
