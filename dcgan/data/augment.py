"""Differentiable augmentation for images in [-1, 1]: DiffAugment (Zhao et al., 2020), and
the adaptive pipeline of ADA (Karras et al., 2020) that applies each transformation with a
probability p.

D sees every real and every fake image through the same random transformations, and G's
gradient passes through them, so D cannot memorise a small data set while G learns the
un-augmented distribution. The draws are stateless, keyed by a (seed, step) pair, so a
resumed run augments exactly as an unbroken one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import tensorflow as tf

POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 1 / 8  # shifts of up to an eighth of the size, as in the paper
CUTOUT_RATIO = 1 / 2  # a square of half the size


def diff_augment(images: tf.Tensor, policies: Sequence[str], key: tf.Tensor) -> tf.Tensor:
    """images (N, H, W, C) transformed by each policy in turn; key: int64 [2]."""
    for index, policy in enumerate(policies):
        policy_key = tf.random.experimental.stateless_fold_in(key, index)
        images = _TRANSFORMS[policy](images, policy_key)
    return images


def _uniform(shape, key, low=0.0, high=1.0, dtype=tf.float32):
    return tf.random.stateless_uniform(shape, key, low, high, dtype=dtype)


def _split(key, count: int):
    return [tf.random.experimental.stateless_fold_in(key, i) for i in range(count)]


def color(images: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    """Random brightness, saturation and contrast per image (DiffAugment's colour)."""
    brightness_key, saturation_key, contrast_key = _split(key, 3)
    return contrast(saturation(brightness(images, brightness_key), saturation_key), contrast_key)


def brightness(images: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    """Add one random value in [-0.5, 0.5) to every pixel of each image."""
    return images + _uniform([tf.shape(images)[0], 1, 1, 1], key, -0.5, 0.5)


def saturation(images: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    """Scale each image's colour away from its grey by a random factor in [0, 2)."""
    if images.shape[-1] == 1:  # grey images have no saturation
        return images
    mean = tf.reduce_mean(images, axis=3, keepdims=True)
    return (images - mean) * _uniform([tf.shape(images)[0], 1, 1, 1], key, 0.0, 2.0) + mean


def contrast(images: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    """Scale each image away from its mean by a random factor in [0.5, 1.5)."""
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - mean) * _uniform([tf.shape(images)[0], 1, 1, 1], key, 0.5, 1.5) + mean


def translation(images: tf.Tensor, key: tf.Tensor, reflect: bool = False) -> tf.Tensor:
    """Shift each image by up to 1/8 of its size in x and y, filling with zeros (DiffAugment)
    or with the mirror image of the edge (reflect, as ADA's geometric transformations do)."""
    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    shift_y, shift_x = int(height * TRANSLATION_RATIO + 0.5), int(width * TRANSLATION_RATIO + 0.5)
    y_key, x_key = _split(key, 2)
    dy = tf.random.stateless_uniform([batch, 1], y_key, -shift_y, shift_y + 1, dtype=tf.int32)
    dx = tf.random.stateless_uniform([batch, 1], x_key, -shift_x, shift_x + 1, dtype=tf.int32)
    if reflect:
        x = tf.gather(
            images, _reflected(tf.range(height)[None, :] - dy, height), batch_dims=1, axis=1
        )
        return tf.gather(x, _reflected(tf.range(width)[None, :] - dx, width), axis=2, batch_dims=1)
    # Rows and columns are read from a zero-padded copy: source index = target - shift.
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])
    rows = tf.clip_by_value(tf.range(height)[None, :] - dy + 1, 0, height + 1)
    cols = tf.clip_by_value(tf.range(width)[None, :] - dx + 1, 0, width + 1)
    x = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(x, cols, axis=2, batch_dims=1)


def _reflected(source: tf.Tensor, length: int) -> tf.Tensor:
    """Indices outside [0, length) mirrored at the edge (-1 -> 1, length -> length - 2);
    shifts of at most an eighth never reach past the mirror."""
    return (length - 1) - tf.abs((length - 1) - tf.abs(source))


def reflected_translation(images: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    return translation(images, key, reflect=True)


def cutout(images: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    """Zero a square of half the image size at a random place in each image."""
    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    size_y, size_x = int(height * CUTOUT_RATIO + 0.5), int(width * CUTOUT_RATIO + 0.5)
    y_key, x_key = _split(key, 2)
    top = tf.random.stateless_uniform(
        [batch, 1], y_key, 0, height + (1 - size_y % 2), dtype=tf.int32
    )
    left = tf.random.stateless_uniform(
        [batch, 1], x_key, 0, width + (1 - size_x % 2), dtype=tf.int32
    )
    # The square's centre is (top, left); it may hang over the edge, as in the paper.
    rows = tf.range(height)[None, :] - (top - size_y // 2)
    cols = tf.range(width)[None, :] - (left - size_x // 2)
    inside_rows = tf.cast((rows >= 0) & (rows < size_y), images.dtype)
    inside_cols = tf.cast((cols >= 0) & (cols < size_x), images.dtype)
    square = inside_rows[:, :, None] * inside_cols[:, None, :]
    return images * (1.0 - square)[:, :, :, None]


_TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}


def xflip(images: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    """Each image mirrored left-right with probability 1/2."""
    mirrored = _uniform([tf.shape(images)[0], 1, 1, 1], key) < 0.5
    return tf.where(mirrored, images[:, :, ::-1, :], images)


# ADA's pipeline, in its order: geometric first (an x-flip, an integer translation), then
# colour, then cutout, each drawn on its own. Each is leak-free at p < 1: a transformation
# applied to only part of the images (real and fake alike) cannot be learned by G as part of
# the data. That is why the flip, once drawn, mirrors only half the images: were every drawn
# image mirrored, at p = 0.5 D would see a left-right symmetric set whichever way round G drew.
ADA_PIPELINE = (("xflip", xflip), ("translation", reflected_translation),
                ("brightness", brightness), ("saturation", saturation),
                ("contrast", contrast), ("cutout", cutout))  # fmt: skip


def adaptive(images: tf.Tensor, p: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    """Each image through each transformation of ADA_PIPELINE with probability p, drawn
    per image and per transformation."""
    batch = tf.shape(images)[0]
    for index, (_, transform) in enumerate(ADA_PIPELINE):
        draw_key, transform_key = _split(tf.random.experimental.stateless_fold_in(key, index), 2)
        chosen = _uniform([batch, 1, 1, 1], draw_key) < tf.cast(p, tf.float32)
        images = tf.where(chosen, transform(images, transform_key), images)
    return images


@dataclass(frozen=True)
class AdaController:
    """ADA's control of p (Karras et al., 2020): every `interval` steps, p moves by
    sign(r_t - target) * (images seen) / images_to_one, where r_t is the mean sign of D's
    outputs on the real images of those steps (measured from D's decision boundary)."""

    target: float
    interval: int
    images_to_one: float

    def advance(self, state: tf.Tensor, signs: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        """state (p, sum of signs, images counted) after a step that saw signs (their sum,
        their count); p moves, and the sums start again, when step is due."""
        p, total, seen = tf.unstack(state)
        total, seen = total + signs[0], seen + signs[1]
        due = tf.equal(step % self.interval, 0)
        moved = p + tf.sign(total / seen - self.target) * seen / self.images_to_one
        p = tf.where(due, tf.clip_by_value(moved, 0.0, 1.0), p)
        return tf.stack([p, tf.where(due, 0.0, total), tf.where(due, 0.0, seen)])
