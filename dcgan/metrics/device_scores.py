"""The scores training measures while it trains, as TensorFlow ops on the device that
trains: KID from kernel matrices, the copy rate and the diversity of a batch. Each equals
its numpy twin in scores.py (float64, the same subsets), so the numbers of a run and of
`dcgan evaluate` compare; only the place they are computed differs.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from dcgan.metrics.scores import Kid
from dcgan.runtime import compiled


def to_uint8(images: tf.Tensor) -> tf.Tensor:
    """imaging.to_uint8 on the device: [-1, 1] -> uint8 with the same rounding (half to even)."""
    scaled = tf.round((tf.cast(images, tf.float32) + 1.0) * 127.5)
    return tf.cast(tf.clip_by_value(scaled, 0.0, 255.0), tf.uint8)


def from_uint8(images: tf.Tensor) -> tf.Tensor:
    """imaging.from_uint8 on the device: uint8 -> float32 in [-1, 1]."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def kid_kernel(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """KID's polynomial kernel (a.b / d + 1)^3 between every row of a and of b, in float64."""
    a, b = tf.cast(a, tf.float64), tf.cast(b, tf.float64)
    dim = tf.cast(tf.shape(a)[1], tf.float64)
    return (tf.matmul(a, b, transpose_b=True) / dim + 1.0) ** 3


def kid_subsets(
    real_count: int, fake_count: int, subsets: int, subset_size: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, int]:
    """The rows scores.kid draws for each subset: (real indices, fake indices, size), each
    index array (subsets, size). Drawn in the same order from the same generator, so the
    device KID averages exactly the subsets the numpy one does."""
    size = min(subset_size, min(real_count, fake_count) // 2)
    if size < 2:
        raise ValueError("KID needs at least 4 feature vectors per set")
    rng = np.random.default_rng(seed)
    real, fake = [], []
    for _ in range(subsets):
        real.append(rng.choice(real_count, size, replace=False))
        fake.append(rng.choice(fake_count, size, replace=False))
    return np.stack(real), np.stack(fake), size


class DeviceKid:
    """KID against fixed real features, with the real-real kernel computed once: each
    evaluation then costs two kernel matrices and a gather, for every subset at once
    (no Python loop over subsets)."""

    def __init__(self, real_features, fake_count: int, subsets: int, subset_size: int = 1000):
        self.real = tf.constant(real_features, tf.float32)
        self.real_kernel = kid_kernel(self.real, self.real)
        real_rows, fake_rows, self.size = kid_subsets(
            len(real_features), fake_count, subsets, subset_size
        )
        self.real_rows = tf.constant(real_rows)
        self.fake_rows = tf.constant(fake_rows)
        self.subsets = subsets

    def __call__(self, fake_features: tf.Tensor) -> Kid:
        mean, std = _kid(self.real_kernel, self.real, fake_features, self.real_rows, self.fake_rows)
        return Kid(float(mean), float(std), self.subsets, self.size)


@compiled
def _kid(real_kernel, real, fake, real_rows, fake_rows):
    fake_kernel = kid_kernel(fake, fake)
    cross_kernel = kid_kernel(real, fake)
    size = tf.cast(tf.shape(real_rows)[1], tf.float64)

    def within(kernel, rows):
        block = tf.gather(tf.gather(kernel, rows), rows, axis=2, batch_dims=1)
        return (tf.reduce_sum(block, [1, 2]) - tf.linalg.trace(block)) / (size * (size - 1))

    cross = tf.gather(tf.gather(cross_kernel, real_rows), fake_rows, axis=2, batch_dims=1)
    values = (
        within(real_kernel, real_rows)
        + within(fake_kernel, fake_rows)
        - 2.0 * tf.reduce_mean(cross, [1, 2])
    )
    return tf.reduce_mean(values), tf.math.reduce_std(values)


@compiled
def nearest_distances(samples: tf.Tensor, references: tf.Tensor) -> tf.Tensor:
    """Each sample's Euclidean distance to its nearest reference (rows flattened), float64,
    computed as scores.pairwise_distances does."""
    a = tf.reshape(tf.cast(samples, tf.float64), [tf.shape(samples)[0], -1])
    b = tf.reshape(tf.cast(references, tf.float64), [tf.shape(references)[0], -1])
    squared = (
        tf.reduce_sum(a * a, 1)[:, None]
        + tf.reduce_sum(b * b, 1)[None, :]
        - 2.0 * tf.matmul(a, b, transpose_b=True)
    )
    return tf.sqrt(tf.maximum(tf.reduce_min(squared, axis=1), 0.0))


def copy_rate(samples: tf.Tensor, references: tf.Tensor, threshold: float) -> tf.Tensor:
    """scores.copy_rate's rate for a known threshold: the share of samples nearer to some
    reference than threshold. Samples and references in [-1, 1]."""
    distances = tf.concat(
        [
            nearest_distances(samples[start : start + 1024], references)
            for start in range(0, int(samples.shape[0]), 1024)
        ],
        axis=0,
    )  # 1,024 samples at a time: memory stays at 1,024 x len(references)
    return tf.reduce_mean(tf.cast(distances < threshold, tf.float64))


@compiled
def mean_pairwise_distance(images: tf.Tensor) -> tf.Tensor:
    """scores.mean_pairwise_distance on the device: how varied a batch of images is."""
    flat = tf.reshape(tf.cast(images, tf.float64), [tf.shape(images)[0], -1])
    squared = tf.reduce_sum(flat * flat, 1)
    distances = tf.sqrt(
        tf.maximum(
            squared[:, None] + squared[None, :] - 2.0 * tf.matmul(flat, flat, transpose_b=True),
            0.0,
        )
    )
    count = tf.cast(tf.shape(flat)[0], tf.float64)
    return tf.reduce_sum(distances) / (count * (count - 1.0))
