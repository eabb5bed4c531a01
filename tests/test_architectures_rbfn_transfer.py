"""The rbfn and transfer families: k-means centers, fine-tuning that reaches the backbone, hub modules.

The hub modules are written by dlsuite itself (``dlsuite.hubmodule``) into a
temporary directory and loaded back by local handle: no network needed.
"""

from __future__ import annotations

import urllib.error

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.cluster import KMeans
from sklearn.datasets import make_circles

from dlsuite import DlsuiteError, hubmodule
from dlsuite.architectures import InputSpec, build
from dlsuite.architectures import rbfn as rbfn_module
from dlsuite.tasks import get as get_task

IMAGE_SHAPE = (8, 8, 1)


# -- rbfn -----------------------------------------------------------------------------


def _circles(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x, y = make_circles(n, noise=0.1, factor=0.5, random_state=seed)
    return x.astype("float32"), y


def _fit(model: keras.Model, x: np.ndarray, y: np.ndarray, epochs: int, lr: float = 0.05) -> keras.Model:
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=40, verbose=0)
    return model


def test_rbfn_centers_are_kmeans_centroids_of_the_training_data():
    x, y = _circles()
    model = build("rbfn", InputSpec("tabular", (2,)), 2, centers=8, trainable_centers=False, seed=3)
    assert not model.rbf.is_adapted
    # Through a tf.data pipeline of (x, y) batches, as the runner calls fit.
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(ds, epochs=1, verbose=0)
    assert model.rbf.is_adapted

    expected = KMeans(8, n_init=rbfn_module.KMEANS_RESTARTS, random_state=3).fit(x.astype("float64"))
    centers = model.rbf.centers.numpy()
    order = [int(np.argmin(np.linalg.norm(expected.cluster_centers_ - c, axis=1))) for c in centers]
    assert sorted(order) == list(range(8)), "every k-means centroid is one of the centers"
    np.testing.assert_allclose(centers, expected.cluster_centers_[order], atol=1e-5)
    # Widths come from the clusters' spread, not from the initial zeros (gamma = 1).
    assert not np.allclose(model.rbf.log_gamma.numpy(), 0.0)


@pytest.mark.slow
def test_rbfn_beats_a_linear_model_on_circles():
    x, y = _circles()
    keras.utils.set_random_seed(0)
    rbfn = _fit(build("rbfn", InputSpec("tabular", (2,)), 2, centers=12), x[:400], y[:400], epochs=10)
    linear = _fit(build("mlp", InputSpec("tabular", (2,)), 2, hidden_units=()), x[:400], y[:400], epochs=10)
    rbfn_acc = rbfn.evaluate(x[400:], y[400:], verbose=0)[1]
    linear_acc = linear.evaluate(x[400:], y[400:], verbose=0)[1]
    assert rbfn_acc >= 0.95, rbfn_acc
    assert linear_acc <= 0.75, linear_acc  # concentric circles are not linearly separable


def test_rbfn_regression_round_trips_and_keeps_its_centers(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(256, 1)).astype("float32")
    y = np.sin(2 * x[:, 0]).astype("float32")[:, None]
    model = build("rbfn", InputSpec("tabular", (1,)), 1, output_activation=None, centers=10)
    model.compile(keras.optimizers.Adam(0.05), "mse")
    history = model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.2 * history.history["loss"][0]

    path = tmp_path / "rbfn.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert reloaded.rbf.is_adapted
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    # A reloaded network keeps its (trained) centers when training resumes: no second k-means.
    centers = reloaded.rbf.centers.numpy()
    reloaded.compile(keras.optimizers.SGD(0.0), "mse")
    reloaded.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(reloaded.rbf.centers.numpy(), centers)


def test_rbfn_on_images_flattens_them():
    model = build("rbfn", InputSpec("image", IMAGE_SHAPE), 3, centers=5)
    x = np.random.default_rng(0).normal(size=(20, *IMAGE_SHAPE)).astype("float32")
    model.adapt(x)
    assert model.rbf.centers.shape == (5, int(np.prod(IMAGE_SHAPE)))
    out = model.predict(x, verbose=0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)


def test_rbfn_bad_settings_are_clear_errors():
    with pytest.raises(DlsuiteError, match="at least as many training examples as centers"):
        build("rbfn", InputSpec("tabular", (2,)), 2, centers=50).adapt(np.zeros((10, 2), "float32"))
    with pytest.raises(DlsuiteError, match="init_samples"):
        build("rbfn", InputSpec("tabular", (2,)), 2, centers=50, init_samples=10)


def test_image_task_offers_the_new_families():
    offered = get_task("image_classification").architectures
    assert "rbfn" in offered and "transfer" in offered


# -- transfer ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def image_module(tmp_path_factory) -> str:
    """A small conv backbone with batch norm, written as a reusable SavedModel."""
    inputs = keras.Input(IMAGE_SHAPE)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    features = keras.layers.GlobalAveragePooling2D()(x)
    path = tmp_path_factory.mktemp("hub") / "image_module"
    return hubmodule.write_hub_module(keras.Model(inputs, features), path)


def _image_data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, *IMAGE_SHAPE)).astype("float32"), rng.integers(0, 3, n)


def test_written_module_is_a_reusable_saved_model(image_module):
    loaded = tf.saved_model.load(hubmodule.resolve(image_module))
    x, _ = _image_data(4)
    assert loaded(x).shape == (4, 8)
    assert loaded(x, training=True).shape == (4, 8)
    assert len(loaded.trainable_variables) == 4  # conv kernel/bias, bn gamma/beta
    assert len(loaded.variables) == 6  # + bn moving mean/variance


@pytest.mark.parametrize("fine_tune", [True, False], ids=["fine_tune", "frozen"])
def test_fine_tuning_updates_the_backbone_and_frozen_does_not(image_module, fine_tune, tmp_path):
    keras.utils.set_random_seed(0)
    model = build(
        "transfer", InputSpec("image", IMAGE_SHAPE), 3, handle=image_module, fine_tune=fine_tune, head_units=8
    )
    backbone = model.get_layer("backbone")
    assert len(backbone.trainable_weights) == (4 if fine_tune else 0)
    before = [w.numpy().copy() for w in backbone.weights]
    head_before = model.get_layer("predictions").kernel.numpy().copy()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(*_image_data(), epochs=1, batch_size=16, verbose=0)
    changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before, backbone.weights)]
    if fine_tune:
        assert all(changed), changed  # kernels by the optimizer, bn statistics by training mode
    else:
        assert not any(changed), changed
    assert not np.array_equal(model.get_layer("predictions").kernel.numpy(), head_before)
    # The module's functions compute with the weights Keras trains: a fresh load differs.
    x, _ = _image_data(8)
    expected = model.predict(x, verbose=0)
    fresh = build("transfer", InputSpec("image", IMAGE_SHAPE), 3, handle=image_module, head_units=8)
    for name in ("head_dense", "predictions"):
        fresh.get_layer(name).set_weights(model.get_layer(name).get_weights())
    same = np.allclose(fresh.predict(x, verbose=0), expected, atol=1e-6)
    assert same is not fine_tune

    # .keras round trip (default safe mode) keeps the trained backbone and head.
    model.save(tmp_path / "transfer.keras")
    reloaded = keras.saving.load_model(tmp_path / "transfer.keras")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), expected, atol=1e-6)


@pytest.mark.slow
def test_text_transfer_learns_from_raw_strings(tmp_path):
    positive = ["a great film", "wonderful acting and a great story", "loved it", "fun and wonderful"]
    negative = ["an awful film", "boring and bad", "hated it", "terrible story and bad acting"]
    texts, labels = positive * 8 + negative * 8, np.array([1] * 32 + [0] * 32)
    embedding = hubmodule.text_embedding_backbone(texts, max_tokens=64, output_dim=8)
    handle = hubmodule.write_hub_module(embedding, tmp_path / "text_module")

    keras.utils.set_random_seed(0)
    model = build("transfer", InputSpec("text", (), dtype="string"), 2, handle=handle, fine_tune=True, dropout=0.0)
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy", metrics=["accuracy"])
    ds = tf.data.Dataset.from_tensor_slices((texts, labels)).shuffle(64, seed=0).batch(16)
    history = model.fit(ds, epochs=8, verbose=0)
    assert history.history["accuracy"][-1] == 1.0
    probs = model(tf.constant(["a wonderful story", "bad and boring"])).numpy()
    assert probs[0, 1] > 0.5 > probs[1, 1]

    model.save(tmp_path / "text.keras")
    reloaded = keras.saving.load_model(tmp_path / "text.keras")
    np.testing.assert_allclose(reloaded(tf.constant(texts)).numpy(), model(tf.constant(texts)).numpy(), atol=1e-6)


def test_keras_backbone_file_is_frozen_by_default(tmp_path):
    inputs = keras.Input(IMAGE_SHAPE)
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu")(inputs))
    keras.Model(inputs, features, name="my_backbone").save(tmp_path / "backbone.keras")
    model = build("transfer", InputSpec("image", IMAGE_SHAPE), 3, application=None, weights=str(tmp_path / "backbone.keras"))
    assert [w.path for w in model.trainable_weights] == ["predictions/kernel", "predictions/bias"]


def test_fine_tuned_keras_backbone_keeps_batch_norm_in_inference_mode(tmp_path):
    inputs = keras.Input(IMAGE_SHAPE)
    x = keras.layers.BatchNormalization(name="bn")(keras.layers.Conv2D(4, 3, name="conv")(inputs))
    keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="bn_backbone").save(tmp_path / "backbone.keras")
    model = build("transfer", InputSpec("image", IMAGE_SHAPE), 3, application=None,
                  weights=str(tmp_path / "backbone.keras"), fine_tune=True)
    backbone = model.get_layer("bn_backbone")
    stats = [w.numpy().copy() for w in backbone.get_layer("bn").non_trainable_weights]
    kernel = backbone.get_layer("conv").kernel.numpy().copy()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(np.random.default_rng(0).normal(3.0, 2.0, (32, *IMAGE_SHAPE)), np.arange(32) % 3, epochs=1, verbose=0)
    assert not np.array_equal(kernel, backbone.get_layer("conv").kernel.numpy())  # fine-tuned
    for before, after in zip(stats, backbone.get_layer("bn").non_trainable_weights):
        np.testing.assert_array_equal(before, after.numpy())  # moving statistics untouched


def test_url_that_cannot_be_downloaded_says_to_pass_a_local_path(monkeypatch):
    import tensorflow_hub as hub

    def offline(handle):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(hub, "resolve", offline)
    with pytest.raises(DlsuiteError, match="cannot download the hub module.*local SavedModel directory"):
        build("transfer", InputSpec("image", IMAGE_SHAPE), 3, handle="https://tfhub.dev/google/some/module/1")


def test_transfer_bad_settings_are_clear_errors(image_module, tmp_path):
    spec = InputSpec("image", IMAGE_SHAPE)
    with pytest.raises(DlsuiteError, match="needs a backbone"):
        build("transfer", spec, 3, handle=None, application=None)
    with pytest.raises(DlsuiteError, match="does not exist"):
        build("transfer", spec, 3, handle=str(tmp_path / "missing"))
    with pytest.raises(DlsuiteError, match=r"takes inputs of shape \(8, 8, 1\), got \(8, 8, 3\)"):
        build("transfer", InputSpec("image", (8, 8, 3)), 3, handle=image_module)
    with pytest.raises(DlsuiteError, match="has no 'NoSuchNet'"):
        build("transfer", spec, 3, application="NoSuchNet", fine_tune=True)
    with pytest.raises(DlsuiteError, match="not a file"):
        build("transfer", spec, 3, weights="imagenet")
    with pytest.raises(DlsuiteError, match="take images, not text"):
        build("transfer", InputSpec("text", (), dtype="string"), 2)
