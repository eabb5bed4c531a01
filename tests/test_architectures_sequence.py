"""The sequence families (rnn, lstm, gru, transformer; cnn over tokens and frames): their own behaviour.

Training, XLA, save/load and MirroredStrategy are in test_architectures_standard.py;
here: padding is invisible, variants build the layers they claim, bad values
are user errors naming the parameter, and the positional encodings serialize.
"""

from __future__ import annotations

import numpy as np
import pytest

import keras

import dlsuite
from dlsuite.architectures import InputSpec, build
from dlsuite.architectures.transformer import PositionalEncoding, TransformerEncoderBlock

RECURRENT = ("rnn", "lstm", "gru")
NUM_OUTPUTS = 3
VOCAB = 20
FEATURES = 4
TOKENS = InputSpec("tokens", (None,), dtype="int32", vocab_size=VOCAB)
FRAMES = InputSpec("sequence", (None, FEATURES))
SMALL = {
    "rnn": {"units": 8, "embedding_dim": 8},
    "lstm": {"units": 8, "embedding_dim": 8},
    "gru": {"units": 8, "embedding_dim": 8},
    "transformer": {"num_layers": 2, "num_heads": 2, "model_dim": 8, "ff_dim": 16},
}
# Variants whose padding handling differs: both directions and stacking; mean pooling; both encodings.
MASKING_VARIANTS = [
    *[(name, {"bidirectional": True, "num_layers": 2}) for name in RECURRENT],
    *[(name, {"pooling": "mean"}) for name in RECURRENT],
    ("transformer", {"positional": "learned", "max_length": 16}),
    ("transformer", {"positional": "sinusoidal"}),
]


def _pair(kind: str, length: int = 5, pad: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two examples unpadded, and the same two with ``pad`` padding steps appended."""
    rng = np.random.default_rng(seed)
    if kind == "tokens":
        x = rng.integers(1, VOCAB, size=(2, length)).astype("int32")
        return x, np.concatenate([x, np.zeros((2, pad), "int32")], axis=1)
    x = rng.normal(size=(2, length, FEATURES)).astype("float32")
    return x, np.concatenate([x, np.zeros((2, pad, FEATURES), "float32")], axis=1)


def _output(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x, training=False))


@pytest.mark.parametrize("spec", [TOKENS, FRAMES], ids=["tokens", "sequence"])
@pytest.mark.parametrize(
    "name, variant", MASKING_VARIANTS, ids=[f"{n}-{'-'.join(map(str, v.values()))}" for n, v in MASKING_VARIANTS]
)
def test_padding_is_invisible_and_masking_is_what_hides_it(name, variant, spec):
    keras.utils.set_random_seed(0)
    hparams = {**SMALL[name], **variant, "dropout": 0.0}
    unpadded, padded = _pair(spec.kind)
    masked = build(name, spec, NUM_OUTPUTS, **hparams)
    np.testing.assert_allclose(_output(masked, padded), _output(masked, unpadded), rtol=1e-5, atol=1e-6)

    # Without the mask the padding changes the output: the check above can fail.
    unmasked = build(name, spec, NUM_OUTPUTS, **hparams, mask_padding=False)
    unmasked.set_weights(masked.get_weights())
    assert np.abs(_output(unmasked, padded) - _output(unmasked, unpadded)).max() > 1e-4


@pytest.mark.parametrize("name, layer_class", [("rnn", "SimpleRNN"), ("lstm", "LSTM"), ("gru", "GRU")])
def test_stacked_bidirectional_variant_builds_the_layers_it_names(name, layer_class):
    model = build(name, TOKENS, NUM_OUTPUTS, units=8, num_layers=3, bidirectional=True)
    wrappers = [layer for layer in model.layers if isinstance(layer, keras.layers.Bidirectional)]
    assert len(wrappers) == 3
    assert {type(w.forward_layer).__name__ for w in wrappers} == {layer_class}
    assert [w.forward_layer.return_sequences for w in wrappers] == [True, True, False]
    assert wrappers[-1].output.shape == (None, 16)  # both directions concatenated
    single = build(name, TOKENS, NUM_OUTPUTS, units=8)
    assert single.count_params() < model.count_params()


@pytest.mark.parametrize("name", RECURRENT)
def test_recurrent_families_share_one_builder(name):
    from dlsuite.architectures import get, recurrent

    assert get(name).hparams() == get("lstm").hparams()
    assert get(name).builder.__name__ == f"build_{name}"
    assert recurrent.RECURRENT_LAYERS[name].__name__ in get(name).builder.__doc__


@pytest.mark.parametrize(
    "name, hparams",
    [
        ("lstm", {"units": 0}),
        ("gru", {"num_layers": 0}),
        ("rnn", {"dropout": 1.0}),
        ("lstm", {"pooling": "max"}),
        ("gru", {"embedding_dim": 0}),
        ("transformer", {"num_heads": 0}),
        ("transformer", {"positional": "rotary"}),
        ("transformer", {"model_dim": 0}),
        ("transformer", {"dropout": -0.1}),
        ("cnn", {"embedding_dim": 0}),
    ],
)
def test_bad_values_are_user_errors_naming_the_parameter(name, hparams):
    with pytest.raises(dlsuite.DlsuiteError, match=next(iter(hparams))):
        build(name, TOKENS, NUM_OUTPUTS, **hparams)


@pytest.mark.parametrize("name", [*RECURRENT, "transformer", "cnn"])
def test_inputs_that_do_not_fit_the_kind_are_user_errors(name):
    with pytest.raises(dlsuite.DlsuiteError, match="vocab_size"):
        build(name, InputSpec("tokens", (10,)), NUM_OUTPUTS)
    with pytest.raises(dlsuite.DlsuiteError, match=r"\(timesteps, features\)"):
        build(name, InputSpec("sequence", (10,)), NUM_OUTPUTS)


def test_learned_positions_must_cover_the_input_length():
    with pytest.raises(dlsuite.DlsuiteError, match="max_length"):
        build("transformer", InputSpec("tokens", (64,), vocab_size=VOCAB), NUM_OUTPUTS, positional="learned", max_length=32)
    # Sinusoids have no table, so any length goes.
    build("transformer", InputSpec("tokens", (64,), vocab_size=VOCAB), NUM_OUTPUTS, max_length=32, **SMALL["transformer"])


def test_sinusoidal_encoding_values():
    layer = PositionalEncoding("sinusoidal")
    table = np.asarray(layer(np.zeros((1, 3, 4), "float32")))[0]
    np.testing.assert_allclose(table[0], [0.0, 1.0, 0.0, 1.0], atol=1e-6)  # sin 0, cos 0
    np.testing.assert_allclose(table[2], [np.sin(2), np.cos(2), np.sin(2 / 100), np.cos(2 / 100)], atol=1e-5)
    assert not layer.weights


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_positional_variants_serialize_and_reload(positional, tmp_path):
    layer = PositionalEncoding(positional, max_length=16, name="pe")
    clone = PositionalEncoding.from_config(layer.get_config())
    assert (clone.mode, clone.max_length, clone.name) == (positional, 16, "pe")

    keras.utils.set_random_seed(0)
    model = build("transformer", TOKENS, NUM_OUTPUTS, positional=positional, max_length=16, **SMALL["transformer"])
    x = np.random.default_rng(1).integers(0, VOCAB, size=(3, 7)).astype("int32")
    model.save(tmp_path / "t.keras")
    reloaded = keras.models.load_model(tmp_path / "t.keras")
    assert isinstance(reloaded.get_layer("positional_encoding"), PositionalEncoding)
    assert reloaded.get_layer("positional_encoding").mode == positional
    assert isinstance(reloaded.get_layer("encoder1"), TransformerEncoderBlock)
    np.testing.assert_allclose(_output(reloaded, x), _output(model, x), rtol=1e-5, atol=1e-6)


def test_encoder_block_config_round_trips():
    block = TransformerEncoderBlock(num_heads=2, key_dim=4, ff_dim=16, dropout=0.2, name="b")
    config = block.get_config()
    assert {k: config[k] for k in ("num_heads", "key_dim", "ff_dim", "dropout")} == {
        "num_heads": 2, "key_dim": 4, "ff_dim": 16, "dropout": 0.2,
    }
    assert TransformerEncoderBlock.from_config(config).get_config() == config


@pytest.mark.parametrize("spec", [TOKENS, FRAMES], ids=["tokens", "sequence"])
def test_cnn_over_sequences_is_one_dimensional(spec):
    model = build("cnn", spec, NUM_OUTPUTS, filters=8, blocks=3)
    assert [model.get_layer(f"block{i}_2_conv").filters for i in (1, 2, 3)] == [8, 16, 32]
    assert isinstance(model.get_layer("block1_1_conv"), keras.layers.Conv1D)
    assert isinstance(model.get_layer("max_pool"), keras.layers.GlobalMaxPooling1D)
    unpadded, _ = _pair(spec.kind, length=9)
    out = _output(model, unpadded)
    assert out.shape == (2, NUM_OUTPUTS)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)


def test_cnn_pools_short_sequences_no_further_than_two_steps():
    model = build("cnn", InputSpec("sequence", (8, FEATURES)), NUM_OUTPUTS, filters=4, blocks=4)
    assert model.get_layer("max_pool").input.shape[1] == 2


@pytest.mark.parametrize("name, hparams", [("transformer", {}), ("lstm", {"pooling": "mean"})])
def test_an_all_padding_sequence_gives_finite_outputs(name, hparams):
    # An empty text vectorizes to all padding; Keras's masked average pooling divides 0 by 0 there.
    model = build(name, InputSpec("tokens", (6,), "int32", vocab_size=20), 2, **hparams)
    tokens = np.array([[0, 0, 0, 0, 0, 0], [3, 4, 0, 0, 0, 0]], "int32")
    assert np.all(np.isfinite(model.predict(tokens, verbose=0)))
