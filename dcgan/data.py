"""Training images -> an endless tf.data pipeline of float batches in [-1, 1]."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

SHUFFLE_BUFFER_LIMIT = 60_000


def make_dataset(images: np.ndarray, batch_size: int, seed: int) -> tf.data.Dataset:
    """Shuffle, repeat, batch, scale, prefetch.

    images are the decoded uint8 array from sources.load_images: decoding happened once and
    that array is the in-memory cache, a quarter of the size a float32 cache would be. The
    scaling to [-1, 1] runs on whole batches, so it costs one op per step, not per image.
    """
    dataset = tf.data.Dataset.from_tensor_slices(images)
    dataset = dataset.shuffle(
        min(len(images), SHUFFLE_BUFFER_LIMIT), seed=seed, reshuffle_each_iteration=True
    )
    dataset = dataset.repeat().batch(batch_size, drop_remainder=True)
    dataset = dataset.map(
        lambda batch: tf.cast(batch, tf.float32) / 127.5 - 1.0,
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
