"""Generator and discriminator shapes, the tutorial networks, and one train_step."""

from __future__ import annotations

import numpy as np
import pytest

from dcgan.config import load
from dcgan.runtime import import_tensorflow

tf = import_tensorflow()

import keras  # noqa: E402

from dcgan.gan import bce_with_logits  # noqa: E402
from dcgan.models import build_discriminator, build_generator  # noqa: E402
from dcgan.train import build_gan  # noqa: E402


def small(*overrides: str):
    return load(None, ("model.g_width=4", "model.d_width=4", "model.latent_dim=6", *overrides))


@pytest.mark.parametrize("size", [12, 28, 32, 48, 64, 96, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_for_any_reachable_size(size, channels):
    config = small(f"data.image_size={size}", f"data.channels={channels}")
    generator, discriminator = build_generator(config), build_discriminator(config)
    images = generator(np.zeros((2, 6), np.float32))
    assert images.shape == (2, size, size, channels)
    assert discriminator(images).shape == (2, 1)


def test_dcgan_64_follows_the_paper():
    config = load(None, ("data.image_size=64", "data.channels=3"))
    generator = build_generator(config)
    assert generator.get_layer("reshape").output.shape[1:] == (4, 4, 512)
    ups = [layer for layer in generator.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert [layer.filters for layer in ups] == [256, 128, 64, 3]
    assert all(layer.strides == (2, 2) for layer in ups)
    assert generator.get_layer("image").activation.__name__ == "tanh"
    discriminator = build_discriminator(config)
    convs = [layer for layer in discriminator.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [layer.filters for layer in convs] == [64, 128, 256, 512]
    norms = [
        layer.name
        for layer in discriminator.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert "down1_norm" not in norms and len(norms) == 3  # no BN on D's input layer
    assert not any(isinstance(layer, keras.layers.MaxPooling2D) for layer in discriminator.layers)
    kernel = generator.get_layer("up1").kernel.numpy()
    assert abs(kernel.std() - 0.02) < 0.002 and abs(kernel.mean()) < 0.002


def test_width_depth_dropout_and_norm_are_knobs():
    config = small(
        "data.image_size=48",
        "model.depth=3",
        "model.d_dropout=0.25",
        "model.g_norm=none",
        "model.d_norm=layer",
        "model.max_width=8",
    )
    generator, discriminator = build_generator(config), build_discriminator(config)
    assert generator.get_layer("reshape").output.shape[1:] == (6, 6, 8)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in generator.layers)
    assert sum(isinstance(layer, keras.layers.Dropout) for layer in discriminator.layers) == 3
    assert (
        sum(isinstance(layer, keras.layers.LayerNormalization) for layer in discriminator.layers)
        == 2
    )


def test_tutorial_architecture_is_the_mnist_notebook():
    config = load(None, ("model.arch=tutorial", "data.image_size=28"))
    generator, discriminator = build_generator(config), build_discriminator(config)
    assert generator.get_layer("project").units == 7 * 7 * 256
    assert not generator.get_layer("project").use_bias
    ups = [
        (layer.filters, layer.kernel_size, layer.strides)
        for layer in generator.layers
        if isinstance(layer, keras.layers.Conv2DTranspose)
    ]
    assert ups == [(128, (5, 5), (1, 1)), (64, (5, 5), (2, 2)), (1, (5, 5), (2, 2))]
    downs = [
        (layer.filters, layer.kernel_size, layer.strides)
        for layer in discriminator.layers
        if isinstance(layer, keras.layers.Conv2D)
    ]
    assert downs == [(64, (5, 5), (2, 2)), (128, (5, 5), (2, 2))]
    dropouts = [
        layer.rate for layer in discriminator.layers if isinstance(layer, keras.layers.Dropout)
    ]
    assert dropouts == [0.3, 0.3]
    assert discriminator.get_layer("logit").activation.__name__ == "linear"  # logits
    assert generator.count_params() == 2_330_944  # the notebook's summary
    assert discriminator.count_params() == 212_865


def test_bce_on_logits_is_stable_for_huge_logits():
    logits = tf.constant([[1e4], [-1e4]])
    assert np.isfinite(bce_with_logits(1.0, logits).numpy())
    assert bce_with_logits(1.0, tf.constant([[1e4]])).numpy() == pytest.approx(0.0)
    assert bce_with_logits(0.0, tf.constant([[0.0]])).numpy() == pytest.approx(np.log(2.0))


def test_one_train_step_changes_both_networks_and_reports_metrics():
    config = small("data.image_size=16")
    gan = build_gan(config)
    g_before = [v.numpy().copy() for v in gan.generator.trainable_variables]
    d_before = [v.numpy().copy() for v in gan.discriminator.trainable_variables]
    real = tf.random.uniform((4, 16, 16, 1), -1, 1)
    logs = gan.train_step(real)
    assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert 0.0 < float(logs["d_real"]) < 1.0 and 0.0 < float(logs["d_fake"]) < 1.0
    assert int(gan.step.numpy()) == 1
    assert int(gan.g_optimizer.iterations.numpy()) == int(gan.d_optimizer.iterations.numpy()) == 1
    for before, variable in zip(g_before, gan.generator.trainable_variables, strict=True):
        assert not np.array_equal(before, variable.numpy()), variable.path
    for before, variable in zip(d_before, gan.discriminator.trainable_variables, strict=True):
        assert not np.array_equal(before, variable.numpy()), variable.path
