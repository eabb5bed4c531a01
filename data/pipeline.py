"""Turn an unbatched split into the batched, cached, prefetched dataset fit consumes."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

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
    length_buckets: Sequence[int] = (),
    repeat: bool = False,
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
        length_buckets: for features that are token ids padded with 0 at the end:
            upper bounds of length buckets. Each batch then holds examples of one
            bucket, cut to its bound (the longest bucket keeps the full length), so
            compute follows the real tokens rather than the padding. A handful of
            static shapes, so XLA and TPUs compile each once.
        repeat: yield epoch after epoch without end (each reshuffled, each with its own
            last partial batch unless ``drop_remainder``) for a caller that passes
            ``steps_per_epoch`` to ``fit``. One iterator then serves the whole fit:
            Keras otherwise starts a new one every epoch, and each start refills the
            shuffle buffer and instantiates the map functions while the model waits.
            A cached training split no larger than ``shuffle_buffer`` is then held as
            one tensor per feature and permuted whole each epoch (one gather, then
            batches sliced off it), instead of example by example; for an epoch the
            permuted copy doubles the memory the cached split takes.

    Returns:
        A batched ``tf.data.Dataset``.
    """
    if repeat and training and cache and not length_buckets:
        size = num_examples if num_examples is not None else int(ds.cardinality())
        epochs = _permuted_epochs(
            ds, preprocess, size, shuffle_buffer, global_batch_size, seed, drop_remainder
        )
        if epochs is not None:
            return _finished(epochs, augment)
    if preprocess is not None:
        ds = ds.batch(PREPROCESS_BATCH).map(preprocess, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    if num_examples is not None and ds.cardinality() < 0:
        ds = ds.apply(tf.data.experimental.assert_cardinality(num_examples))
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if length_buckets:
        ds = _length_bucketed(ds, global_batch_size, length_buckets, drop_remainder)
    else:
        ds = ds.batch(global_batch_size, drop_remainder=drop_remainder)
    if repeat:
        ds = ds.repeat()  # before the augmentation, so that its map function is instantiated once
    return _finished(ds, augment if training else None)


def epoch_steps(num_examples: int | None, global_batch_size: int, drop_remainder: bool) -> int | None:
    """Batches in one epoch of ``num_examples`` (``None`` when unknown or none)."""
    if num_examples is None:
        return None
    full, rest = divmod(int(num_examples), global_batch_size)
    steps = full + (1 if rest and not drop_remainder else 0)
    return steps or None


def _finished(ds: tf.data.Dataset, augment: Map | None) -> tf.data.Dataset:
    """Augment (when given), set the sharding policy, prefetch."""
    if augment is not None:
        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    # In-memory and generated sources have no files to shard by; multi-worker shards by data.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _fixed_shapes(spec: object) -> bool:
    """Whether every component of a batched element spec is dense, of one shape but for the batch."""
    return all(
        isinstance(s, tf.TensorSpec) and s.shape.rank is not None and s.shape[1:].is_fully_defined()
        for s in tf.nest.flatten(spec)
    )


def _permuted_epochs(
    ds: tf.data.Dataset,
    preprocess: Map | None,
    size: int,
    shuffle_buffer: int,
    batch_size: int,
    seed: int,
    drop_remainder: bool,
) -> tf.data.Dataset | None:
    """Endless epochs of a split of ``size`` examples, each a new permutation of it, cut into batches.

    The preprocessed split is cached as one element; per epoch a map draws a permutation
    from a key of ``Dataset.random`` (seeded, so runs repeat) and gathers the examples in
    that order; ``rebatch`` slices the batches off without per-example work. A uniform
    permutation is what a shuffle buffer of at least ``size`` gives too.

    Returns:
        The dataset, or ``None`` when the split is not one of at most ``shuffle_buffer``
        examples of fixed shapes (then it is shuffled example by example).
    """
    if not 0 < size <= shuffle_buffer:
        return None
    if ds.cardinality() < 0:
        ds = ds.apply(tf.data.experimental.assert_cardinality(size))
    chunks = ds.batch(PREPROCESS_BATCH)
    if preprocess is not None:
        chunks = chunks.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
    if not _fixed_shapes(chunks.element_spec):
        return None
    whole = chunks.rebatch(size).cache()
    full, rest = divmod(size, batch_size)
    kept = full * batch_size if drop_remainder else size
    salt = tf.constant(seed, tf.int64)

    def permuted(key: tf.Tensor, examples: object) -> object:
        noise = tf.random.stateless_uniform(
            [size], seed=tf.stack([key, salt]), minval=None, maxval=None, dtype=tf.int64
        )
        order = tf.argsort(noise)[:kept]
        return tf.nest.map_structure(lambda t: tf.gather(t, order), examples)

    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    epochs = tf.data.Dataset.zip(keys, whole.repeat()).map(permuted)
    if drop_remainder or rest == 0:
        return epochs.rebatch(batch_size, drop_remainder=drop_remainder)
    # One batch-size vector per epoch, cycled: every epoch ends on its own partial batch.
    return epochs.rebatch(tf.constant([batch_size] * full + [rest], tf.int64))


def _token_count(features: tf.Tensor, label: tf.Tensor | None = None) -> tf.Tensor:
    return tf.reduce_sum(tf.cast(tf.not_equal(features, 0), tf.int32), axis=-1)


def _length_bucketed(
    ds: tf.data.Dataset, batch_size: int, buckets: Sequence[int], drop_remainder: bool
) -> tf.data.Dataset:
    """Batches of examples of one length bucket, cut to the bucket's bound; the cardinality is stated."""
    full = ds.element_spec[0].shape[-1]
    if full is None or ds.element_spec[0].shape.rank != 1:
        raise ValueError(f"length buckets need token-id features of a fixed length, got {ds.element_spec[0]}")
    bounds = sorted({int(b) for b in buckets if 0 < int(b) < full}) + [full]
    # Every epoch yields the same number of batches: per bucket, its examples over the batch size.
    lengths = np.concatenate([batch for batch in ds.map(_token_count).batch(4096).as_numpy_iterator()] or [[]])
    sizes = np.bincount(np.searchsorted(bounds, lengths), minlength=len(bounds))
    rounding = np.floor if drop_remainder else np.ceil
    steps = int(rounding(sizes / batch_size).sum())
    bound_table = tf.constant(bounds, dtype=tf.int32)

    def cut(features: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        longest = tf.reduce_max(_token_count(features))
        bound = tf.gather(bound_table, tf.searchsorted(bound_table, longest[None])[0])
        return features[:, :bound], label

    ds = ds.bucket_by_sequence_length(
        _token_count,
        bucket_boundaries=[b + 1 for b in bounds[:-1]],
        bucket_batch_sizes=[batch_size] * len(bounds),
        drop_remainder=drop_remainder,
        no_padding=True,
    )
    return ds.map(cut, num_parallel_calls=tf.data.AUTOTUNE).apply(tf.data.experimental.assert_cardinality(steps))
