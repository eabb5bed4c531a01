"""Turn an unbatched split into the batched, cached, prefetched dataset fit consumes."""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

PREPROCESS_BATCH = 256

Map = Callable[..., tuple[tf.Tensor, tf.Tensor]]


def batched(
    ds: tf.data.Dataset,
    global_batch_size: int,
    *,
    training: bool,
    seed: int,
    preprocess: Map | None = None,
    augment: Map | None = None,
    cache: bool = True,
    shuffle_buffer: int = 10_000,
    drop_remainder: bool = False,
    num_examples: int | None = None,
) -> tf.data.Dataset:
    """Preprocess, cache, shuffle (training only), batch, augment (training only), prefetch.

    Args:
        ds: unbatched ``(features, label)`` dataset.
        global_batch_size: per-replica batch times replicas in sync.
        training: shuffle and augment when true.
        seed: shuffle seed (reshuffled each epoch from it).
        preprocess: deterministic map over ``(features, label)`` batches (Keras
            preprocessing layers expect a batch dimension), run before the cache.
        augment: random per-batch map, run after batching and never cached.
        cache: cache preprocessed examples in memory.
        shuffle_buffer: examples in the shuffle buffer.
        drop_remainder: drop the last partial batch (TPUs need static shapes).
        num_examples: size of ``ds`` when known, so Keras knows the steps per epoch.

    Returns:
        A batched ``tf.data.Dataset``.
    """
    if preprocess is not None:
        ds = ds.batch(PREPROCESS_BATCH).map(preprocess, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    if num_examples is not None and ds.cardinality() < 0:
        ds = ds.apply(tf.data.experimental.assert_cardinality(num_examples))
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(global_batch_size, drop_remainder=drop_remainder)
    if training and augment is not None:
        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    # In-memory and generated sources have no files to shard by; multi-worker shards by data.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)
