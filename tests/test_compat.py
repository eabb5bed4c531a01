"""Workarounds in dlsuite.compat that are not exercised elsewhere: building a model before fit."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from dlsuite import compat


def _model_and_data(seed: int = 0) -> tuple[keras.Model, np.ndarray, np.ndarray]:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(8, activation="relu")(inputs)))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(seed)
    return model, rng.normal(size=(64, 4)).astype("float32"), rng.integers(0, 3, size=64)


def _fit_counting_traces(model: keras.Model, x: np.ndarray, y: np.ndarray) -> int:
    traces = []
    step = model.train_step

    def counted(data):
        traces.append(1)  # Python runs only while tf.function traces
        return step(data)

    model.train_step = counted
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    return len(traces)


def test_built_before_fit_the_step_is_traced_once_and_trains_the_same():
    plain, x, y = _model_and_data()
    plain_traces = _fit_counting_traces(plain, x, y)
    built, _, _ = _model_and_data()
    assert compat.build_before_fit(built, tf.data.Dataset.from_tensor_slices((x, y)).batch(16))
    assert built.optimizer.built
    assert _fit_counting_traces(built, x, y) == 1 < plain_traces
    for a, b in zip(built.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # Already built (or under a strategy, where Keras builds it): nothing to do.
    assert not compat.build_before_fit(built, (x, y))
