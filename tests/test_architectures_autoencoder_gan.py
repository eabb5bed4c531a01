"""The autoencoder and gan families: what the anomaly and fraud tasks rely on.

Autoencoders: the reconstruction error falls with training, ``anomaly_score``
ranks off-distribution rows above normal ones, encoder and decoder have the
advertised shapes, the VAE logs its KL term. GAN: rows generated for a class
land near that class's real rows. Both: bad hyperparameters are user errors.
Under MirroredStrategy a custom step takes the same step as on one device.
Build, XLA, ``.keras`` round trip and MirroredStrategy training for the default
variants are covered by tests/test_architectures_standard.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import roc_auc_score

import keras

import dlsuite
from dlsuite.architectures import InputSpec, build

FEATURES = 12
TABULAR = InputSpec("tabular", (4,))
IMAGE = InputSpec("image", (8, 8))


def _subspace_rows(n: int, rng: np.random.Generator, basis: np.ndarray) -> np.ndarray:
    """Normal rows: a 3-dimensional linear subspace of R^12, plus a little noise."""
    rows = rng.normal(size=(n, basis.shape[0])) @ basis + 0.05 * rng.normal(size=(n, FEATURES))
    return rows.astype("float32")


@pytest.fixture(scope="module")
def anomaly_problem() -> dict[str, np.ndarray]:
    """Train on normal rows only; test on normal rows plus 10% rows off the subspace (same scale)."""
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(3, FEATURES)) / np.sqrt(3.0)
    train = _subspace_rows(512, rng, basis)
    normal = _subspace_rows(200, rng, basis)
    outliers = rng.normal(size=(20, FEATURES)).astype("float32") * train.std(axis=0)
    test = np.concatenate([normal, outliers])
    is_outlier = np.r_[np.zeros(len(normal)), np.ones(len(outliers))]
    return {"train": train, "test": test, "is_outlier": is_outlier}


@pytest.mark.parametrize("variant", ["dense", "variational"])
def test_autoencoder_learns_and_its_score_ranks_outliers_first(variant, anomaly_problem):
    keras.utils.set_random_seed(0)
    model = build("autoencoder", InputSpec("tabular", (FEATURES,)), 1, variant=variant, latent_dim=3)
    # Compiled as the runner does: a task loss and metrics, which the model ignores.
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", metrics=["mae"])
    train = anomaly_problem["train"]
    labels = np.zeros(len(train))  # (x, y) batches: y is ignored
    history = model.fit(
        train, labels, validation_data=(train[:128], labels[:128]), epochs=10, batch_size=32, verbose=0
    ).history

    errors = history["reconstruction_loss"]
    assert errors[-1] < 0.5 * errors[0], f"{variant}: reconstruction MSE {errors[0]:.3f} -> {errors[-1]:.3f}"
    assert "val_loss" in history
    if variant == "variational":
        kl = np.array(history["kl_loss"])
        assert np.all(np.isfinite(kl)) and np.all(kl > 0.0)
        np.testing.assert_allclose(history["loss"], np.array(errors) + model.kl_weight * kl, rtol=1e-4)
    else:
        assert "kl_loss" not in history

    # anomaly_score runs inside a tf.function (as in an exported SavedModel) and is per-example float32.
    score = tf.function(model.anomaly_score, input_signature=[tf.TensorSpec([None, FEATURES], tf.float32)])
    scores = score(tf.constant(anomaly_problem["test"])).numpy()
    assert scores.shape == (len(anomaly_problem["test"]),) and scores.dtype == np.float32
    auc = roc_auc_score(anomaly_problem["is_outlier"], scores)
    assert auc > 0.9, f"{variant}: ROC-AUC of anomaly_score {auc:.3f}"
    # ... and it is the per-example reconstruction error of call().
    x = anomaly_problem["test"][:5]
    np.testing.assert_allclose(
        scores[:5], np.mean((x - np.asarray(model(x))) ** 2, axis=1), rtol=1e-5, atol=1e-7
    )


@pytest.mark.parametrize(
    "variant, spec, latent_output",
    [
        ("dense", InputSpec("tabular", (FEATURES,)), (None, 4)),
        ("variational", InputSpec("tabular", (FEATURES,)), [(None, 4), (None, 4)]),
        ("dense", InputSpec("sequence", (10, 3)), (None, 4)),
        ("lstm", InputSpec("sequence", (10, 3)), (None, 4)),
        ("conv", InputSpec("image", (28, 28, 1)), (None, 4)),
        ("conv", InputSpec("image", (5, 7)), (None, 4)),  # padded to 8x8 inside, cropped back
    ],
    ids=["dense", "variational", "dense-windows", "lstm", "conv-28x28", "conv-5x7"],
)
def test_encoder_and_decoder_shapes(variant, spec, latent_output):
    model = build("autoencoder", spec, 1, variant=variant, latent_dim=4)
    assert model.encoder.input_shape == (None, *spec.shape)
    assert model.encoder.output_shape == latent_output
    assert model.decoder.input_shape == (None, 4)
    assert model.decoder.output_shape == (None, *spec.shape)
    x = np.random.default_rng(0).normal(size=(3, *spec.shape)).astype("float32")
    assert model(x).shape == x.shape
    assert model.encode(x).shape == (3, 4)
    assert model.anomaly_score(x).shape == (3,)


def test_autoencoder_reconstruction_activation_bounds_the_output():
    model = build(
        "autoencoder", InputSpec("image", (8, 8)), 1, variant="conv", reconstruction_activation="sigmoid"
    )
    out = np.asarray(model(np.random.default_rng(0).normal(size=(4, 8, 8)).astype("float32") * 10))
    assert out.min() >= 0.0 and out.max() <= 1.0


def _blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two well-separated Gaussian blobs in 4-D, the second one rare (5%), as in fraud data."""
    rng = np.random.default_rng(seed)
    centers = np.array([[-2.0, -2.0, -2.0, -2.0], [2.0, -2.0, 2.0, 2.0]])
    y = (rng.random(n) < 0.05).astype("int32")
    x = (centers[y] + 0.5 * rng.normal(size=(n, 4))).astype("float32")
    return x, y, centers


@pytest.mark.slow
def test_conditional_gan_generates_rows_of_the_requested_class(tmp_path):
    keras.utils.set_random_seed(0)
    x, y, centers = _blobs(1000, seed=0)
    model = build("gan", TABULAR, num_outputs=2)
    model.compile(optimizer=keras.optimizers.Adam(5e-3, beta_1=0.5), loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, validation_data=(x[:200], y[:200]), epochs=6, batch_size=64, verbose=0).history
    for key in ("d_loss", "g_loss", "loss", "val_loss"):
        assert np.all(np.isfinite(history[key])), key
    np.testing.assert_allclose(history["loss"], np.add(history["d_loss"], history["g_loss"]), rtol=1e-5)

    for class_id in (0, 1):
        rows = model.generate(500, class_id)
        assert rows.shape == (500, 4) and rows.dtype == np.float32
        nearest = np.argmin(((rows[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
        share = np.mean(nearest == class_id)
        assert share > 0.8, f"{share:.0%} of rows generated for class {class_id} lie nearest its centroid"
        # Not collapsed onto one point: the spread is of the order of the real class's.
        spread, real_spread = rows.std(axis=0).mean(), x[y == class_id].std(axis=0).mean()
        assert 0.2 * real_spread < spread < 3 * real_spread

    # The discriminator (call) scores a real row higher as its own class than as the other.
    probs = np.asarray(model(x[:200]))
    assert probs.shape == (200, 2)
    assert np.mean(probs[np.arange(200), y[:200]] > probs[np.arange(200), 1 - y[:200]]) > 0.8

    # The generator survives a .keras round trip: same noise and labels, same rows.
    path = tmp_path / "gan.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    noise = np.random.default_rng(1).normal(size=(6, model.latent_dim)).astype("float32")
    labels = np.array([0, 1, 0, 1, 1, 0])
    expected = np.asarray(model.sample(labels, noise))
    np.testing.assert_allclose(np.asarray(reloaded.sample(labels, noise)), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(8, 8), (28, 28, 1), (5, 7, 3)], ids=["8x8", "28x28x1", "5x7x3"])
def test_dcgan_generates_images_of_the_input_shape(shape):
    model = build("gan", InputSpec("image", shape), num_outputs=10, filters=8)
    assert model.generator.output_shape == (None, *shape)
    assert model.generate(3, class_id=9).shape == (3, *shape)
    x = np.random.default_rng(0).normal(size=(2, *shape)).astype("float32")
    probs = np.asarray(model(x))
    assert probs.shape == (2, 10) and np.all((probs > 0) & (probs < 1))


def test_gan_losses_weight_classes_equally_when_balancing():
    values = np.array([[1.0], [1.0], [1.0], [4.0]], "float32")  # three rows of class 0, one of class 1
    labels = np.array([[0], [0], [0], [1]], "int32")
    balanced = build("gan", TABULAR, num_outputs=3)
    plain = build("gan", TABULAR, num_outputs=3, balance_classes=False)
    # Mean over the classes present (0 and 1; class 2 is absent) of each class's mean.
    np.testing.assert_allclose(float(balanced._mean(values, labels)), (1.0 + 4.0) / 2)
    np.testing.assert_allclose(float(plain._mean(values, labels)), 7.0 / 4)


def test_generate_rejects_a_class_the_gan_does_not_know():
    model = build("gan", TABULAR, num_outputs=2)
    with pytest.raises(dlsuite.DlsuiteError, match="classes 0..1"):
        model.generate(5, class_id=2)


@pytest.mark.parametrize(
    "name, spec, hparams, expected",
    [
        ("autoencoder", TABULAR, {"variant": "sparse"}, "dense, variational, conv, lstm"),
        ("autoencoder", TABULAR, {"variant": "conv"}, "takes image inputs, not tabular.*dense, variational"),
        ("autoencoder", IMAGE, {"variant": "lstm"}, "takes sequence inputs.*dense, variational, conv"),
        ("autoencoder", InputSpec("sequence", (None, 3)), {"variant": "lstm"}, "fixed-size"),
        ("autoencoder", TABULAR, {"dropout": 1.0}, "dropout"),
        ("autoencoder", TABULAR, {"latent_dim": 0}, "latent_dim"),
        ("gan", TABULAR, {"variant": "wgan"}, "auto, tabular, dcgan"),
        ("gan", TABULAR, {"variant": "dcgan"}, "takes image inputs, not tabular.*auto or tabular"),
        ("gan", IMAGE, {"variant": "tabular"}, "takes tabular inputs, not image.*auto or dcgan"),
        ("gan", TABULAR, {"label_smoothing": 1.0}, "label_smoothing"),
    ],
)
def test_bad_hyperparameters_are_user_errors_naming_the_options(name, spec, hparams, expected):
    with pytest.raises(dlsuite.DlsuiteError, match=expected):
        build(name, spec, 2, **hparams)


def _max_change(after: list[np.ndarray], before: list[np.ndarray]) -> float:
    return max(float(np.abs(a - b).max()) for a, b in zip(after, before, strict=True))


def mirrored_versus_one_device() -> dict[str, float]:
    """In a fresh process: one SGD step of each family under MirroredStrategy (2 CPUs) and on one device.

    Returns:
        ``{"autoencoder_max_weight_diff", "autoencoder_weight_change", "gan_generator_change",
        "gan_losses_finite", "replicas"}``.
    """
    from dlsuite import distribute

    distribute.split_cpu(2)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, FEATURES)).astype("float32")
    y = np.zeros(64, "int32")

    def one_step(strategy: tf.distribute.Strategy, weights: list[np.ndarray] | None) -> keras.Model:
        with strategy.scope():
            model = build("autoencoder", InputSpec("tabular", (FEATURES,)), 1, latent_dim=3)
            if weights is not None:
                model.set_weights(weights)
            model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
        model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
        return model

    keras.utils.set_random_seed(0)
    initial = build("autoencoder", InputSpec("tabular", (FEATURES,)), 1, latent_dim=3).get_weights()
    single = one_step(tf.distribute.get_strategy(), initial).get_weights()
    distributed = one_step(mirrored, initial).get_weights()

    with mirrored.scope():
        gan = build("gan", TABULAR, num_outputs=2, hidden_units=(16,))
        gan.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = [w.copy() for w in gan.generator.get_weights()]
    history = gan.fit(x[:, :4], y, batch_size=32, epochs=2, verbose=0).history
    return {
        "replicas": mirrored.num_replicas_in_sync,
        "autoencoder_max_weight_diff": _max_change(single, distributed),
        "autoencoder_weight_change": _max_change(single, initial),
        "gan_generator_change": _max_change(gan.generator.get_weights(), before),
        "gan_losses_finite": bool(all(np.isfinite(history[k]).all() for k in ("d_loss", "g_loss", "loss"))),
    }


@pytest.mark.slow
def test_mirrored_strategy_step_equals_the_one_device_step():
    proc = subprocess.run(
        [sys.executable, __file__, "--mirrored"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    # The step moved the weights, by the same amount on two replicas as on one device:
    # each replica's loss is scaled by 1/replicas before the optimizer sums the gradients.
    assert result["autoencoder_weight_change"] > 1e-3
    assert result["autoencoder_max_weight_diff"] < 1e-5 * max(1.0, result["autoencoder_weight_change"])
    assert result["gan_losses_finite"] and result["gan_generator_change"] > 0.0


if __name__ == "__main__" and sys.argv[1:] == ["--mirrored"]:
    print(json.dumps(mirrored_versus_one_device()))
