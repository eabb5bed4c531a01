"""The energy-based and competitive families (rbm, dbn, som): training, detection, saving, errors.

Small synthetic clusters for the fast tests; scikit-learn's digits (bundled
with scikit-learn, no download) for the comparisons with BernoulliRBM and
for the DBN accuracy floor.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import BernoulliRBM
from sklearn.preprocessing import StandardScaler

from dlsuite import DlsuiteError
from dlsuite.architectures import InputSpec, build
from dlsuite.architectures.som import plot_u_matrix

FEATURES = 10


def _clusters(n: int, seed: int) -> np.ndarray:
    """Standardized-scale data: three tight clusters in 10-D."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(42).normal(0.0, 1.5, size=(3, FEATURES))
    return (centers[rng.integers(0, 3, n)] + rng.normal(0.0, 0.3, size=(n, FEATURES))).astype("float32")


def _outliers(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-4.0, 4.0, size=(n, FEATURES)).astype("float32")


def _auc(model: keras.Model, normal: np.ndarray, outliers: np.ndarray) -> float:
    scores = np.concatenate([model.anomaly_score(normal), model.anomaly_score(outliers)])
    labels = np.r_[np.zeros(len(normal)), np.ones(len(outliers))]
    return roc_auc_score(labels, scores)


@pytest.fixture(scope="module")
def gaussian_rbm():
    keras.utils.set_random_seed(0)
    model = build("rbm", InputSpec("tabular", (FEATURES,)), 1, hidden_units=16, visible="gaussian")
    # The runner's compile: a task loss and metrics come along and are dropped.
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse", metrics=["mae"])
    history = model.fit(_clusters(512, 1), np.zeros(512), epochs=6, batch_size=64, verbose=0)
    return model, history.history


@pytest.fixture(scope="module")
def trained_som():
    keras.utils.set_random_seed(0)
    model = build("som", InputSpec("tabular", (FEATURES,)), 1, grid_rows=4, grid_cols=5, decay_steps=40)
    model.compile(optimizer="adam", loss="mse", metrics=["mae"], jit_compile=True)
    history = model.fit(
        _clusters(512, 1), epochs=5, batch_size=64, verbose=0, validation_data=(_clusters(128, 2),)
    )
    return model, history.history


def test_rbm_free_energy_is_lower_on_training_like_data_than_on_noise(gaussian_rbm):
    model, history = gaussian_rbm
    assert history["loss"][-1] < 0.7 * history["loss"][0], history["loss"]
    assert np.mean(model.free_energy(_clusters(256, 3))) < np.mean(model.free_energy(_outliers(256, 4)))
    assert _auc(model, _clusters(256, 3), _outliers(64, 4)) > 0.9


def test_rbm_outputs_and_round_trip(gaussian_rbm, tmp_path):
    model, _ = gaussian_rbm
    x = _clusters(8, 5)
    features = np.asarray(model(x))
    assert features.shape == (8, 16) and np.all((features >= 0) & (features <= 1))
    np.testing.assert_allclose(np.asarray(model.hidden_features(x)), features)
    assert model.reconstruct(x).shape == x.shape
    score = model.anomaly_score(x)
    assert score.dtype == "float32" and score.shape == (8,)
    path = tmp_path / "rbm.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(reloaded.anomaly_score(x)), np.asarray(score), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(reloaded(x)), features, rtol=1e-6)


def test_rbm_image_input_is_flattened():
    keras.utils.set_random_seed(0)
    model = build("rbm", InputSpec("image", (4, 4, 1)), 1, hidden_units=8, visible="bernoulli", cd_steps=2)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    x = (np.random.default_rng(0).random((64, 4, 4, 1)) > 0.5).astype("float32")
    logs = model.fit(x, epochs=1, batch_size=32, verbose=0, validation_data=(x,)).history
    assert {"loss", "free_energy", "pseudo_likelihood", "val_loss", "val_pseudo_likelihood"} <= set(logs)
    assert model.reconstruct(x[:2]).shape == (2, 4, 4, 1)


@pytest.mark.slow
def test_rbm_pseudo_likelihood_on_digits_improves_and_matches_sklearn():
    x = (load_digits().data / 16.0).astype("float32")
    hidden, epochs, lr, batch = 64, 2, 0.1, 20
    keras.utils.set_random_seed(0)
    model = build("rbm", InputSpec("tabular", (64,)), 1, hidden_units=hidden, visible="bernoulli")
    model.compile(optimizer=keras.optimizers.SGD(lr))
    before = float(np.mean(model.pseudo_likelihood(x)))
    model.fit(x, epochs=epochs, batch_size=batch, verbose=0)
    ours = float(np.mean(model.pseudo_likelihood(x, seed=1)))
    reference = BernoulliRBM(
        n_components=hidden, learning_rate=lr, n_iter=epochs, batch_size=batch, random_state=0
    )
    theirs = float(np.mean(reference.fit(x).score_samples(x)))
    assert ours > before + 10.0, (before, ours)
    # Same order as scikit-learn (PCD there, CD-1 here): within 25% of its value.
    assert abs(ours - theirs) < 0.25 * abs(theirs), (ours, theirs)


def test_rbm_bad_settings_are_clear_errors():
    spec = InputSpec("tabular", (FEATURES,))
    with pytest.raises(DlsuiteError, match="visible='binary'.*'bernoulli'.*'gaussian'"):
        build("rbm", spec, 1, visible="binary")
    with pytest.raises(DlsuiteError, match="cd_steps must be a positive integer"):
        build("rbm", spec, 1, cd_steps=0)
    with pytest.raises(DlsuiteError, match="visible='bernoulli' only"):
        build("rbm", spec, 1, visible="gaussian").pseudo_likelihood(_clusters(4, 0))


def test_som_quantization_error_falls_and_beats_random_prototypes(trained_som):
    model, history = trained_som
    assert model.jit_compile is True  # trained under XLA, as on a TPU
    assert history["loss"][-1] < history["loss"][0]
    assert history["val_loss"][-1] < history["val_loss"][0]
    assert history["sigma"][-1] < history["sigma"][0]
    x = _clusters(256, 3)
    qe = float(model.quantization_error(x))
    random_prototypes = _clusters(20, 9) + np.random.default_rng(0).normal(0, 1.0, size=(20, FEATURES))
    random_qe = np.mean(np.min(np.linalg.norm(x[:, None] - random_prototypes[None], axis=-1), axis=1))
    assert qe < 0.7 * random_qe, (qe, random_qe)


def test_som_maps_and_detects(trained_som, tmp_path):
    model, _ = trained_som
    x = _clusters(64, 3)
    bmu = np.asarray(model.best_matching_units(x))
    assert bmu.shape == (64, 2)
    assert np.all((bmu[:, 0] >= 0) & (bmu[:, 0] < 4) & (bmu[:, 1] >= 0) & (bmu[:, 1] < 5))
    distances = np.asarray(model(x))
    assert distances.shape == (64, 20)
    np.testing.assert_allclose(np.asarray(model.anomaly_score(x)), distances.min(axis=1), rtol=1e-5)
    assert 0.0 <= float(model.topographic_error(x)) <= 1.0
    assert _auc(model, _clusters(256, 3), _outliers(64, 4)) > 0.9
    u = model.u_matrix()
    assert u.shape == (4, 5) and np.all(u >= 0)
    png = tmp_path / "u_matrix.png"
    plot_u_matrix(model, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    path = tmp_path / "som.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(reloaded(x)), distances, rtol=1e-6)


def test_som_bad_settings_are_clear_errors():
    spec = InputSpec("tabular", (FEATURES,))
    with pytest.raises(DlsuiteError, match="at least 2 units"):
        build("som", spec, 1, grid_rows=1, grid_cols=1)
    with pytest.raises(DlsuiteError, match="learning_rate must be in"):
        build("som", spec, 1, learning_rate=2.0)


def test_dbn_random_init_builds_the_same_network(tmp_path):
    spec = InputSpec("image", (8, 8, 1))
    pretrained = build("dbn", spec, 10, hidden_units=(32, 16))
    random = build("dbn", spec, 10, hidden_units=(32, 16), pretrain=False)
    shapes = lambda m: [tuple(v.shape) for v in m.trainable_variables]  # noqa: E731
    assert shapes(pretrained) == shapes(random)
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 1)).astype("float32")
    out = np.asarray(random(x))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    random.save(tmp_path / "dbn.keras")
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(tmp_path / "dbn.keras")(x)), out, rtol=1e-6)
    with pytest.raises(DlsuiteError, match="hidden_units needs at least one"):
        build("dbn", spec, 10, hidden_units=())


@pytest.mark.slow
def test_dbn_pretrains_then_fine_tunes_to_accuracy_on_digits():
    x, y = load_digits(return_X_y=True)
    x = StandardScaler().fit_transform(x).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    keras.utils.set_random_seed(0)
    model = build("dbn", InputSpec("tabular", (64,)), 10, hidden_units=(32,), pretrain_epochs=1)
    model.compile(
        optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    first = np.asarray(model.rbms[0].kernel).copy()
    history = model.fit(
        x_train, y_train, epochs=3, batch_size=64, verbose=0, validation_data=(x_test, y_test)
    )
    assert int(model.epoch.numpy()) == 2
    # Every epoch lowers val_loss, pretraining included: EarlyStopping never stops it early.
    assert np.all(np.diff(history.history["val_loss"]) < 0), history.history["val_loss"]
    assert not np.allclose(np.asarray(model.rbms[0].kernel), first)
    assert history.history["val_accuracy"][-1] > 0.9, history.history["val_accuracy"]
