"""Generator and discriminator shapes, the tutorial networks, and one train_step."""

from __future__ import annotations

import numpy as np
import pytest

from dcgan.config import load
from dcgan.runtime import import_tensorflow

tf = import_tensorflow()

import keras  # noqa: E402

from dcgan.models.losses import bce_with_logits, scores_and_r1  # noqa: E402
from dcgan.models.networks import (  # noqa: E402
    FusedBatchNormalization,
    build_discriminator,
    build_generator,
    inference_generator,
)
from dcgan.training.loop import build_gan  # noqa: E402


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


@pytest.mark.parametrize(
    ("arch", "size"),
    [
        ("dcgan", (16, 32)),
        ("dcgan", (64, 128)),
        ("dcgan", (48, 64)),
        ("dcgan", (128, 64)),
        ("tutorial", (28, 56)),  # the tutorial upsamples a base of 3..7 by 4
        ("tutorial", (16, 12)),
    ],
)
def test_shapes_for_rectangles(arch, size):
    config = small(f"data.image_size=[{size[0]}, {size[1]}]", f"model.arch={arch}")
    generator, discriminator = build_generator(config), build_discriminator(config)
    images = generator(np.zeros((2, 6), np.float32))
    assert images.shape == (2, *size, 1)
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
    assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake", "d_accuracy", "r1"}
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert float(logs["r1"]) == 0.0  # R1 off
    assert 0.0 < float(logs["d_real"]) < 1.0 and 0.0 < float(logs["d_fake"]) < 1.0
    assert int(gan.step.numpy()) == 1
    assert int(gan.g_optimizer.iterations.numpy()) == int(gan.d_optimizer.iterations.numpy()) == 1
    for before, variable in zip(g_before, gan.generator.trainable_variables, strict=True):
        assert not np.array_equal(before, variable.numpy()), variable.path
    for before, variable in zip(d_before, gan.discriminator.trainable_variables, strict=True):
        assert not np.array_equal(before, variable.numpy()), variable.path


def test_fused_batch_norm_trains_exactly_like_keras_batch_norm():
    x = tf.random.normal((8, 5, 5, 6)) * 3.0 + 1.0
    fused, plain = FusedBatchNormalization(), keras.layers.BatchNormalization()
    fused.build(x.shape), plain.build(x.shape)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y_fused, y_plain = fused(x, training=True), plain(x, training=True)
        loss_fused = tf.reduce_sum(tf.square(y_fused) * tf.range(6.0))
        loss_plain = tf.reduce_sum(tf.square(y_plain) * tf.range(6.0))
    np.testing.assert_allclose(y_fused, y_plain, atol=1e-5)
    np.testing.assert_allclose(fused.moving_mean.numpy(), plain.moving_mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(
        fused.moving_variance.numpy(), plain.moving_variance.numpy(), rtol=1e-5
    )
    assert not np.allclose(fused.moving_variance.numpy(), 1.0)  # the statistics did move
    np.testing.assert_allclose(
        tape.gradient(loss_fused, x), tape.gradient(loss_plain, x), rtol=1e-4, atol=1e-4
    )
    grads = tape.gradient(loss_fused, [fused.gamma, fused.beta])
    expected = tape.gradient(loss_plain, [plain.gamma, plain.beta])
    for a, b in zip(grads, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    # Inference is Keras' own code on the same statistics.
    np.testing.assert_allclose(fused(x, training=False), plain(x, training=False), atol=1e-5)


def test_inference_generator_is_float32_keras_layers_with_the_trained_weights():
    config = small("data.image_size=16")
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        trained = build_generator(config)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert trained.get_layer("up1").compute_dtype == "bfloat16"
    copy = inference_generator(config, trained)
    assert all(layer.compute_dtype == "float32" for layer in copy.layers)
    assert not any(isinstance(layer, FusedBatchNormalization) for layer in copy.layers)
    for a, b in zip(copy.weights, trained.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    z = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    # bfloat16 keeps 8 bits of mantissa: the two agree to about 1e-2.
    np.testing.assert_allclose(copy(z), trained(z), atol=5e-2)


def test_the_step_uses_one_batch_of_latents_keyed_by_seed_and_step():
    config = small("data.image_size=16")
    first, second = build_gan(config), build_gan(config)
    a, b = first._latents(4), second._latents(4)
    np.testing.assert_array_equal(a, b)
    first.step.assign(5)
    assert not np.allclose(first._latents(4), b)
    second.step.assign(5)
    np.testing.assert_array_equal(first._latents(4), second._latents(4))


def _twins(*overrides: str):
    """A GAN without R1 and one with overrides, sharing G's and D's weights."""
    plain = build_gan(small("data.image_size=16"))
    penalised = build_gan(small("data.image_size=16", *overrides))
    penalised.generator.set_weights(plain.generator.get_weights())
    penalised.discriminator.set_weights(plain.discriminator.get_weights())
    return plain, penalised


@pytest.mark.parametrize("step, times", [(0, 4.0), (1, 0.0), (3, 0.0), (8, 4.0)])
def test_lazy_r1_pays_the_penalty_times_the_interval_on_every_interval_th_step(step, times):
    """r1_interval 4: steps 0, 4, 8 ... add 4 times the penalty, the others none, chosen in
    the compiled step from its step counter."""
    real = tf.random.stateless_uniform((4, 16, 16, 1), (3, 4), -1, 1)
    plain, lazy = _twins("train.r1_gamma=5", "train.r1_interval=4")
    _, penalty = scores_and_r1(lambda x: lazy.discriminator(x, training=True), real, gamma=5.0)
    assert float(penalty) > 0.0
    plain.step.assign(step)
    lazy.step.assign(step)
    # Compiled, as fit runs it: the step picks the branch in the graph.
    logs_plain = tf.function(plain.train_step)(real)
    logs_lazy = tf.function(lazy.train_step)(real)
    assert float(logs_lazy["d_loss"]) == pytest.approx(
        float(logs_plain["d_loss"]) + times * float(penalty), rel=1e-4
    )
    assert float(logs_lazy["r1"]) == pytest.approx(times * float(penalty), rel=1e-4)


def test_r1_is_added_to_d_s_loss_at_the_step_s_reals():
    """The same G, D and batch, with and without R1: the step's D loss differs by the
    penalty of D's gradient at those reals, and so D's update differs."""
    real = tf.random.stateless_uniform((4, 16, 16, 1), (3, 4), -1, 1)
    plain, penalised = _twins("train.r1_gamma=5")
    _, expected = scores_and_r1(
        lambda x: penalised.discriminator(x, training=True), real, gamma=5.0
    )
    assert float(expected) > 0.0
    logs_plain, logs_penalised = plain.train_step(real), penalised.train_step(real)
    assert float(logs_penalised["d_loss"]) == pytest.approx(
        float(logs_plain["d_loss"]) + float(expected), rel=1e-4
    )
    assert float(logs_penalised["r1"]) == pytest.approx(float(expected), rel=1e-4)
    d_plain = plain.discriminator.trainable_variables[0].numpy()
    assert not np.allclose(d_plain, penalised.discriminator.trainable_variables[0].numpy())
