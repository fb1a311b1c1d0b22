"""Feature spaces that evaluation measures in: Keras' InceptionV3 pool features (the
standard for FID/KID), or a fixed random network that needs no download.

An extractor maps uint8 images (N, H, W, C) of any size and 1 or 3 channels to float32
feature rows.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcgan.data.sources import keras_cache_dir
from dcgan.errors import DcganError
from dcgan.runtime import compiled

log = logging.getLogger(__name__)

INCEPTION_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/" + INCEPTION_FILE
)
INCEPTION_SIZE = 299
RANDOM_NAME = "random-convnet-64"
RANDOM_SIZE = 64


class FeatureError(DcganError):
    pass


@dataclass
class FeatureExtractor:
    name: str  # written beside every score: numbers from different spaces do not compare
    dim: int
    # One batch of uint8 images -> float32 rows; the shipped spaces take numpy arrays or
    # tensors and return tensors, which stay on the device.
    embed: Callable

    def features(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        rows = [
            np.asarray(self.embed(images[i : i + batch_size]), np.float32)
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(rows) if rows else np.zeros((0, self.dim), np.float32)

    def device_features(self, images, batch_size: int = 256):
        """features() for a tensor of images, left on the device as one float32 tensor."""
        import tensorflow as tf

        count = int(images.shape[0])
        return tf.concat(
            [self.embed(images[i : i + batch_size]) for i in range(0, count, batch_size)], 0
        )


def inception_weights_path() -> Path:
    """Where Keras keeps InceptionV3's weights once downloaded."""
    return keras_cache_dir().parent / "models" / INCEPTION_FILE


def find_inception_weights(weights_file: Path | None, download: bool = True) -> Path | None:
    """The weights file to use: the one given, else Keras' cache, else (download=True and
    DCGAN_OFFLINE unset) a fresh download into that cache; None when there is none."""
    if weights_file is not None:
        if not weights_file.is_file():
            raise FeatureError(f"--inception-weights {weights_file}: no such file")
        return weights_file
    cached = inception_weights_path()
    if cached.is_file():
        return cached
    if not download or os.environ.get("DCGAN_OFFLINE"):
        return None
    import keras

    try:
        return Path(keras.utils.get_file(INCEPTION_FILE, INCEPTION_URL, cache_subdir="models"))
    except Exception as exc:  # any network failure reads the same to the user
        log.warning("could not download the InceptionV3 weights: %s", type(exc).__name__)
        return None


def missing_weights_message() -> str:
    return (
        f"no InceptionV3 weights: download {INCEPTION_URL} and put it at "
        f"{inception_weights_path()} (or pass --inception-weights FILE), or use "
        f"--features random (a fixed random network: scores that do not compare with "
        f"published ones)"
    )


def inception_extractor(weights_file: Path) -> FeatureExtractor:
    """InceptionV3's 2048 average-pool features, on images resized to 299x299 bilinearly
    and scaled to [-1, 1] as Keras' inception preprocessing does; grey images are
    repeated to three channels."""
    import keras

    previous = keras.mixed_precision.global_policy()  # a bfloat16 run must not round it
    keras.mixed_precision.set_global_policy("float32")
    try:
        model = keras.applications.InceptionV3(
            include_top=False,
            weights=None,
            pooling="avg",
            input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3),
        )
    finally:
        keras.mixed_precision.set_global_policy(previous)
    try:
        model.load_weights(str(weights_file))
    except Exception as exc:  # a truncated or foreign file fails in many ways
        raise FeatureError(
            f"{weights_file}: not InceptionV3 no-top weights ({type(exc).__name__}); "
            + missing_weights_message()
        ) from None

    @compiled
    def embed(images):
        return model(_prepared(images, INCEPTION_SIZE), training=False)

    return FeatureExtractor("inception_v3_pool", 2048, embed)


def random_extractor(seed: int = 0) -> FeatureExtractor:
    """A fixed, randomly initialised convolutional network on 64x64 inputs: four stride-2
    3x3 convolutions (64..512 filters, He-normal weights from numpy's generator with `seed`,
    so the same on every machine) with LeakyReLU, then global average and max pooling:
    1024 features. Random features keep much of the image statistics that FID/KID rely on,
    but the scores only compare with other scores in this same space."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    kernels, channels = [], 3
    for width in (64, 128, 256, 512):
        std = np.sqrt(2.0 / (9 * channels))
        kernels.append(tf.constant(rng.normal(0.0, std, (3, 3, channels, width)), tf.float32))
        channels = width

    @compiled
    def embed(images):
        x = _prepared(images, RANDOM_SIZE)
        for kernel in kernels:
            x = tf.nn.leaky_relu(tf.nn.conv2d(x, kernel, 2, "SAME"), 0.2)
        return tf.concat([tf.reduce_mean(x, [1, 2]), tf.reduce_max(x, [1, 2])], axis=1)

    return FeatureExtractor(RANDOM_NAME, 1024, embed)


def _prepared(images, size: int):
    import tensorflow as tf

    x = tf.cast(images, tf.float32) / 127.5 - 1.0
    if x.shape[-1] == 1:
        x = tf.repeat(x, 3, axis=-1)
    return tf.image.resize(x, (size, size), method="bilinear")


def make_extractor(
    kind: str, weights_file: Path | None = None, download: bool = True
) -> FeatureExtractor:
    """kind 'inception' (an error when no weights can be had), 'random', or 'auto':
    Inception when weights are at hand, the random network otherwise (logged)."""
    if kind == "random":
        return random_extractor()
    found = find_inception_weights(weights_file, download=download and kind == "inception")
    if found is not None:
        return inception_extractor(found)
    if kind == "inception":
        raise FeatureError(missing_weights_message())
    log.info("no InceptionV3 weights at %s: measuring in %s", inception_weights_path(), RANDOM_NAME)
    return random_extractor()
