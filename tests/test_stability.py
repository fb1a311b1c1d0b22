"""The stability knobs, DiffAugment and the generator's moving average."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import tiny_config, write_config

from dcgan.config import load
from dcgan.errors import ConfigError
from dcgan.runtime import import_tensorflow

tf = import_tensorflow()

import keras  # noqa: E402

from dcgan.cli import main  # noqa: E402
from dcgan.data import augment  # noqa: E402
from dcgan.generation.loading import load_generator  # noqa: E402
from dcgan.models.networks import (  # noqa: E402
    STANDING_LATENTS,
    STANDING_SEED,
    SpectralNormalization,
    build_discriminator,
    inference_generator,
    standing_statistics,
)
from dcgan.storage import checkpoints  # noqa: E402
from dcgan.training.loop import build_gan, sampling_generator  # noqa: E402


def small(*overrides: str):
    return load(
        None,
        (
            "model.g_width=4",
            "model.d_width=4",
            "model.latent_dim=6",
            "data.image_size=16",
            "train.precision=float32",
            *overrides,
        ),
    )


def trained_weights(config, steps: int = 3):
    keras.utils.set_random_seed(0)
    gan = build_gan(config)
    before = [v.numpy().copy() for v in gan.generator.weights + gan.discriminator.weights]
    real = tf.random.stateless_uniform((8 * config.train.d_steps, 16, 16, 1), (1, 2), -1, 1)
    logs = {}
    for _ in range(steps):
        logs = gan.train_step(real)
    after = [v.numpy() for v in gan.generator.weights + gan.discriminator.weights]
    return gan, before, after, {k: float(v) for k, v in logs.items()}


@pytest.fixture(scope="module")
def baseline():
    return trained_weights(small())[2]


KNOBS = {
    "hinge loss": ("train.loss=hinge",),
    "least-squares loss": ("train.loss=lsgan",),
    "wgan-gp loss": ("train.loss=wgan-gp", "model.d_norm=layer"),
    "label smoothing": ("train.label_smoothing=0.2",),
    "two D steps": ("train.d_steps=2",),
    "spectral norm": ("model.d_spectral_norm=true",),
    "diffaugment": ("train.diffaugment=[color,translation,cutout]",),
    "separate rates": ("train.d_lr=1e-5", "train.g_lr=1e-3"),
}


@pytest.mark.parametrize("knob", KNOBS)
def test_each_knob_trains_changes_the_weights_and_changes_the_result(knob, baseline):
    gan, before, after, logs = trained_weights(small(*KNOBS[knob]))
    assert all(np.isfinite(v) for v in logs.values()), logs
    changed = [not np.array_equal(b, a) for b, a in zip(before, after, strict=True)]
    assert sum(changed) >= len(changed) // 2, knob
    if len(after) == len(baseline):
        assert any(not np.allclose(a, b) for a, b in zip(after, baseline, strict=True)), (
            f"{knob} trained exactly like the default"
        )
    assert 0.0 <= logs["d_accuracy"] <= 1.0


def test_d_steps_makes_that_many_d_updates_per_g_update():
    gan, *_ = trained_weights(small("train.d_steps=3"), steps=2)
    assert int(gan.d_optimizer.iterations.numpy()) == 6
    assert int(gan.g_optimizer.iterations.numpy()) == 2


def test_the_knobs_that_do_not_fit_together_are_config_errors():
    with pytest.raises(ConfigError, match="model.d_norm: 'batch' does not go with .*wgan-gp"):
        small("train.loss=wgan-gp")
    with pytest.raises(ConfigError, match="train.label_smoothing: applies to the bce and lsgan"):
        small("train.loss=hinge", "train.label_smoothing=0.1")
    with pytest.raises(ConfigError, match="train.diffaugment"):
        small("train.diffaugment=[zoom]")


def test_spectral_norm_divides_each_kernel_by_its_largest_singular_value():
    discriminator = build_discriminator(small("model.d_spectral_norm=true"))
    wrapped = [layer for layer in discriminator.layers if isinstance(layer, SpectralNormalization)]
    assert [w.layer.name for w in wrapped] == ["down1", "down2", "logit"]
    for layer in wrapped:
        for _ in range(30):  # power iterations converge on the top singular vector
            kernel = layer.normalised_kernel(training=True)
        matrix = kernel.numpy().reshape(-1, kernel.shape[-1])
        assert np.linalg.svd(matrix, compute_uv=False)[0] == pytest.approx(1.0, abs=5e-3)
    # The kernel variable itself is left to the optimizer.
    raw = wrapped[0].layer.kernel.numpy().reshape(-1, wrapped[0].layer.kernel.shape[-1])
    assert np.linalg.svd(raw, compute_uv=False)[0] != pytest.approx(1.0, abs=1e-2)


def test_the_gradient_flows_through_the_spectral_division():
    layer = SpectralNormalization(keras.layers.Dense(3))
    x = tf.random.stateless_normal((4, 5), (0, 1))
    layer(x)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(layer(x, training=True) ** 2)
    grad = tape.gradient(y, layer.layer.kernel.value)
    assert grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0


# --- DiffAugment ------------------------------------------------------------------------


def key(a: int) -> tf.Tensor:
    return tf.constant([a, 7], tf.int64)


def test_translation_moves_content_by_at_most_an_eighth_and_fills_with_zeros():
    images = np.zeros((64, 16, 16, 1), np.float32)
    images[:, 8, 8, 0] = 1.0
    moved = augment.translation(tf.constant(images), key(1)).numpy()
    rows, cols = np.nonzero(moved[..., 0].sum(0))
    positions = [np.argwhere(m[..., 0] == 1.0)[0] for m in moved]
    shifts = np.array(positions) - 8
    assert np.abs(shifts).max() == 2  # 16 / 8
    assert len({tuple(s) for s in shifts}) > 5  # each image its own shift
    assert moved.sum() == pytest.approx(64.0)  # one bright pixel each, the rest zeros


def test_cutout_zeroes_a_square_of_half_the_size_at_most():
    ones = tf.ones((32, 16, 16, 3))
    cut = augment.cutout(ones, key(2)).numpy()
    zeroed = (cut[..., 0] == 0).sum(axis=(1, 2))
    assert zeroed.max() == 64 and zeroed.min() > 0  # an 8x8 square, clipped at edges
    assert ((cut == 0) | (cut == 1)).all()


def test_color_changes_brightness_contrast_and_saturation_per_image():
    images = tf.random.stateless_uniform((16, 8, 8, 3), (3, 4), -1, 1)
    coloured = augment.color(images, key(3)).numpy()
    assert coloured.shape == images.shape
    means = coloured.mean(axis=(1, 2, 3)) - images.numpy().mean(axis=(1, 2, 3))
    assert np.std(means) > 0.05


def test_diff_augment_is_differentiable_deterministic_per_key_and_varies_across_keys():
    images = tf.Variable(tf.random.stateless_uniform((4, 16, 16, 3), (5, 6), -1, 1))
    policies = ("color", "translation", "cutout")
    with tf.GradientTape() as tape:
        out = augment.diff_augment(images, policies, key(4))
        total = tf.reduce_sum(out**2)
    grad = tape.gradient(total, images)
    assert grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0
    again = augment.diff_augment(images, policies, key(4))
    np.testing.assert_array_equal(out.numpy(), again.numpy())
    other = augment.diff_augment(images, policies, key(5))
    assert not np.allclose(out.numpy(), other.numpy())


# --- the generator's moving average ---------------------------------------------------


def test_ema_averages_trainable_weights_and_copies_batch_norm_statistics():
    gan = build_gan(small("model.ema=0.9"))
    gan.step.assign(500)  # past the warm-up, where min(0.9, 501 / 510) is the decay
    start = [w.numpy().copy() for w in gan.generator.weights]
    gan.train_step(tf.random.stateless_uniform((8, 16, 16, 1), (1, 2), -1, 1))
    for first, weight, average in zip(start, gan.generator.weights, gan.ema_weights, strict=True):
        expected = 0.9 * first + 0.1 * weight.numpy() if weight.trainable else weight
        np.testing.assert_allclose(average.numpy(), expected, rtol=1e-5, atol=1e-7)
    assert any(
        not np.allclose(a.numpy(), w.numpy())
        for a, w in zip(gan.ema_weights, gan.generator.weights, strict=True)
    )


def test_ema_warms_up_so_early_averages_forget_the_initial_weights():
    gan = build_gan(small("model.ema=0.999"))
    start = gan.generator.weights[0].numpy().copy()
    gan.train_step(tf.random.stateless_uniform((8, 16, 16, 1), (1, 2), -1, 1))
    # Step 0's decay is min(0.999, 1 / 10): the average moves nine tenths of the way.
    expected = 0.1 * start + 0.9 * gan.generator.weights[0].numpy()
    np.testing.assert_allclose(gan.ema_weights[0].numpy(), expected, rtol=1e-5, atol=1e-7)


def test_a_run_with_ema_samples_checkpoints_and_exports_the_average(tmp_path):
    config = tiny_config(tmp_path, model={"latent_dim": 8, "g_width": 8, "d_width": 8, "ema": 0.5})
    result = CliRunner().invoke(main, ["train", "--config", str(write_config(tmp_path, config))])
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "00000-tiny"
    stored = checkpoints.checkpoint_values(run / "checkpoints" / "step-0000006")
    ema = [v for k, v in sorted(stored.items()) if k.startswith("ema_weights/")]
    assert ema, "the checkpoint holds the moving average"
    for loaded in (load_generator(run), load_generator(run / "generator.keras")):
        kernel = loaded.model.get_weights()[0]  # the projection of z
        assert any(np.array_equal(kernel, e) for e in ema)
        trained = [v for k, v in stored.items() if k.startswith("generator/")]
        assert not any(np.array_equal(kernel, t) for t in trained)
    # The checkpoint and the export sample alike: both measured the average's BatchNorm
    # statistics on the same fixed latents.
    latents = np.random.default_rng(1).standard_normal((16, 8)).astype(np.float32)
    from_checkpoint = load_generator(run).images(latents)
    np.testing.assert_array_equal(
        from_checkpoint, load_generator(run / "generator.keras").images(latents)
    )


def test_standing_statistics_are_the_mean_batch_moments_of_the_weights_held():
    generator = inference_generator(small())
    keras.utils.set_random_seed(3)
    generator.set_weights([w + np.random.normal(0, 0.1, w.shape) for w in generator.get_weights()])
    norms = [
        layer for layer in generator.layers if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(norms) >= 2
    latents = np.random.default_rng(STANDING_SEED).standard_normal((STANDING_LATENTS, 6))
    batches = np.split(latents.astype(np.float32), STANDING_LATENTS // 128)
    expected = []
    for layer in norms:  # each layer's input as training mode computes it, batch by batch
        inputs = keras.Model(generator.input, layer.input)
        moments = [tf.nn.moments(inputs(b, training=True), axes=[0, 1, 2]) for b in batches]
        expected.append([np.mean([m[i].numpy() for m in moments], axis=0) for i in (0, 1)])

    standing_statistics(generator, batch_size=128)

    for layer, (mean, variance) in zip(norms, expected, strict=True):
        np.testing.assert_allclose(layer.moving_mean.numpy(), mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(layer.moving_variance.numpy(), variance, rtol=1e-4, atol=1e-5)
        assert layer.momentum == 0.99  # Keras' default again: training-time behaviour unchanged


def test_the_sampling_generator_measures_statistics_once_per_set_of_weights(monkeypatch):
    config = small("model.ema=0.9")
    gan = build_gan(config)
    measured = []
    monkeypatch.setattr(
        "dcgan.training.loop.standing_statistics", lambda model: measured.append(model)
    )
    current = sampling_generator(gan, config)
    first = current().get_weights()
    current()  # a grid and an evaluation at the same step
    assert len(measured) == 1
    gan.train_step(tf.random.stateless_uniform((8, 16, 16, 1), (1, 2), -1, 1))
    after = current().get_weights()
    assert len(measured) == 2
    assert not all(np.array_equal(a, b) for a, b in zip(first, after, strict=True))
