"""Optimizer and learning-rate schedule from train.*, and length-bucketed batches of token ids."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from dlsuite import DlsuiteError
from dlsuite.data.pipeline import batched
from dlsuite.optimization import WarmupLinearDecay, learning_rate, make_optimizer

TRAIN = {"optimizer": "adamw", "learning_rate": 1e-3, "lr_schedule": "warmup_linear", "warmup_fraction": 0.1,
         "weight_decay": 0.1, "epochs": 2}


def test_warmup_then_linear_decay_to_zero_and_config_round_trip():
    schedule = learning_rate(TRAIN, steps_per_epoch=50)  # 100 steps, 10 of warm-up
    assert isinstance(schedule, WarmupLinearDecay) and (schedule.total_steps, schedule.warmup_steps) == (100, 10)
    rates = [float(schedule(step)) for step in (0, 4, 9, 10, 55, 100, 120)]
    np.testing.assert_allclose(rates, [1e-4, 5e-4, 1e-3, 1e-3, 5e-4, 0.0, 0.0], atol=1e-9)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert again.get_config() == schedule.get_config()
    assert learning_rate({**TRAIN, "lr_schedule": "constant"}, None) == 1e-3


def test_schedule_needs_the_size_and_a_sane_warmup():
    with pytest.raises(DlsuiteError, match="needs the number of training batches"):
        learning_rate(TRAIN, None)
    with pytest.raises(DlsuiteError, match="warmup_fraction"):
        learning_rate({**TRAIN, "warmup_fraction": 1.5}, 10)


def test_adamw_decays_kernels_but_not_biases_or_normalization():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.LayerNormalization()])
    optimizer = make_optimizer({**TRAIN, "lr_schedule": "constant"}, None)
    before = {w.path: w.numpy().copy() for w in model.trainable_weights}
    optimizer.apply([tf.zeros_like(w) for w in model.trainable_weights], model.trainable_weights)
    moved = {w.path for w in model.trainable_weights if not np.array_equal(before[w.path], w.numpy())}
    assert moved == {w.path for w in model.trainable_weights if w.name == "kernel"}


def token_rows(lengths: list[int], width: int = 64) -> tf.data.Dataset:
    ids = np.zeros((len(lengths), width), np.int32)
    for i, n in enumerate(lengths):
        ids[i, :n] = np.arange(1, n + 1)
    return tf.data.Dataset.from_tensor_slices((ids, np.arange(len(lengths))))


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_length_buckets_cut_batches_to_their_bound_and_state_the_count(drop_remainder):
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 65, size=300).tolist()
    ds = batched(token_rows(lengths), 32, training=True, seed=0, length_buckets=[16, 32],
                 drop_remainder=drop_remainder)
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == int(ds.cardinality())
    seen = []
    def bucket(n: int) -> int:
        return min(b for b in (16, 32, 64) if b >= n)

    for x, y in batches:
        assert {bucket(lengths[i]) for i in y} == {x.shape[1]}  # one bucket per batch, cut to its bound
        assert all(x[row, :lengths[i]].tolist() == list(range(1, lengths[i] + 1)) for row, i in enumerate(y))
        seen.extend(y.tolist())
    if drop_remainder:
        assert all(len(y) == 32 for _, y in batches) and len(set(seen)) == len(seen)
    else:
        assert sorted(seen) == list(range(300))
