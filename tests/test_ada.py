"""train.augment: ada (Karras et al., 2020): the pipeline at probability p, the r_t
controller, and what a run writes about it."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from conftest import run_dirs, tiny_config, write_config

from dcgan.cli import main
from dcgan.config import Config, load
from dcgan.errors import ConfigError
from dcgan.storage.metrics_file import read_metrics


def test_each_transformation_happens_with_probability_p():
    import tensorflow as tf

    from dcgan.data.augment import ADA_PIPELINE, adaptive

    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, (4000, 16, 16, 3)), tf.float32)
    key = tf.constant([3, 4], tf.int64)
    np.testing.assert_array_equal(adaptive(images, 0.0, key).numpy(), images.numpy())
    assert [name for name, _ in ADA_PIPELINE] == [
        "xflip", "translation", "brightness", "saturation", "contrast", "cutout"
    ]  # fmt: skip
    for p in (0.3, 0.7):
        out = adaptive(images, p, key).numpy()
        untouched = np.all(out == images.numpy(), axis=(1, 2, 3)).mean()
        # Drawn with probability p, the flip mirrors half the images and the translation
        # moves all but the 1 in 25 shifted by (0, 0) (up to 2 pixels each way at 16 px);
        # the four others always change an image of random pixels.
        expected = (1 - p / 2) * (1 - p * 24 / 25) * (1 - p) ** 4
        assert untouched == pytest.approx(expected, abs=0.02), (p, untouched)
    everything = adaptive(images, 1.0, key).numpy()
    assert not np.any(np.all(everything == images.numpy(), axis=(1, 2, 3)))


def test_at_p_one_half_the_images_are_mirrored_so_d_still_sees_which_way_round():
    import tensorflow as tf

    from dcgan.data.augment import xflip

    images = np.random.default_rng(1).uniform(-1, 1, (4000, 4, 4, 1)).astype(np.float32)
    out = xflip(tf.constant(images), tf.constant([5, 6], tf.int64)).numpy()
    mirrored = np.all(out == images[:, :, ::-1], axis=(1, 2, 3))
    kept = np.all(out == images, axis=(1, 2, 3))
    assert np.all(mirrored | kept)
    # Through adaptive at probability p, an image is mirrored with probability p / 2, and
    # the data's left-right asymmetry reaches D scaled by 1 - p: never cancelled below 1.
    assert mirrored.mean() == pytest.approx(0.5, abs=0.03)


def test_ada_translation_fills_with_the_mirror_of_the_edge():
    import tensorflow as tf

    from dcgan.data.augment import reflected_translation

    row = np.arange(16, dtype=np.float32)
    images = np.broadcast_to(row[None, None, :, None], (256, 16, 16, 1)).copy()
    out = reflected_translation(tf.constant(images), tf.constant([7, 8], tf.int64)).numpy()
    shifts = out[:, 0, 8, 0] - 8  # column 8 reads column 8 - dx
    assert set(shifts.astype(int)) == {-2, -1, 0, 1, 2}  # up to 16 / 8 each way
    for image, shift in zip(out[..., 0], shifts.astype(int), strict=True):
        source = np.arange(16) + shift
        source = np.where(source < 0, -source, source)
        source = np.where(source > 15, 30 - source, source)  # 16 -> 14, 17 -> 13
        np.testing.assert_array_equal(image[0], source)  # no zeros: the edge mirrored


def test_the_controller_moves_p_by_the_sign_of_r_t_minus_the_target():
    import tensorflow as tf

    from dcgan.training.loop import build_gan

    config = Config.model_validate(
        {"data": {"image_size": 16}, "model": {"g_width": 4, "d_width": 4, "latent_dim": 4},
         "train": {"augment": "ada", "ada_interval": 2, "ada_kimg": 0.01, "batch_size": 4}}
    )  # fmt: skip
    gan = build_gan(config)  # p moves by (images seen) / 10 at every second step

    def step(number, *outputs):
        gan.step.assign(number)
        gan._adapt([tf.constant(out, tf.float32)[:, None] for out in outputs])
        return [round(float(v), 6) for v in gan.ada_state.numpy()]

    assert step(1, [1, 1, 1, -1]) == [0.0, 2.0, 4.0]  # gathering: r_t so far 0.5
    assert step(2, [1, 1, 1, 1]) == [0.8, 0.0, 0.0]  # r_t 6/8 > 0.6: p up by 8/10
    assert step(3, [-1, -1, 1, -1]) == [0.8, -2.0, 4.0]
    assert step(4, [-1, 1, -1, -1]) == [0.0, 0.0, 0.0]  # r_t -0.5 < 0.6: down 0.8, floor 0
    assert step(6, [1] * 4) == [0.4, 0.0, 0.0]
    # With train.d_steps 2, the reals of both D updates count: 8 images, p up 0.8.
    assert step(8, [1] * 4, [3, 2, 1, -1]) == [1.0, 0.0, 0.0]
    assert float(gan.ada_p) == 1.0  # at most 1


def test_r_t_counts_reals_from_the_loss_s_decision_boundary():
    import tensorflow as tf

    from dcgan.training.loop import build_gan

    config = Config.model_validate(
        {"data": {"image_size": 16}, "model": {"g_width": 4, "d_width": 4, "latent_dim": 4},
         "train": {"augment": "ada", "ada_interval": 4, "loss": "lsgan"}}
    )  # fmt: skip
    gan = build_gan(config)
    gan.step.assign(1)
    # LSGAN's D calls 1 real and 0 fake: 0.7 and 0.9 read real, 0.2 and 0.4 fake.
    gan._adapt([tf.constant([[0.7], [0.9], [0.2], [0.4]], tf.float32)])
    assert [float(v) for v in gan.ada_state.numpy()] == [0.0, 0.0, 4.0]


def test_ada_needs_a_loss_with_a_decision_boundary(tmp_path):
    raw = {"model": {"d_norm": "layer"}, "train": {"augment": "ada", "loss": "wgan-gp"}}
    with pytest.raises(ConfigError, match="train.loss 'wgan-gp' has none: use train.diffaugment"):
        load(write_config(tmp_path, raw))


def test_ada_and_diffaugment_are_one_or_the_other(tmp_path):
    raw = {"train": {"augment": "ada", "diffaugment": ["color"]}}
    with pytest.raises(ConfigError, match="train.augment: 'ada' and train.diffaugment"):
        load(write_config(tmp_path, raw))


def train_with_ada(tmp_path, **train):
    """The run of a tiny config trained with ADA and `train` on top."""
    config = tiny_config(tmp_path, train={"augment": "ada", **train})
    result = CliRunner().invoke(main, ["train", "--config", str(write_config(tmp_path, config))])
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    return run


def saved_ada_state(run):
    """(step, ADA's state: p, sum of signs, images counted) of the run's last checkpoint."""
    from dcgan.storage.checkpoints import checkpoint_values, latest_checkpoint

    step, path = latest_checkpoint(run / "checkpoints")
    state = next(v for name, v in checkpoint_values(path).items() if name.startswith("ada_state"))
    return step, state


def test_a_run_logs_p_plots_it_shows_what_d_sees_and_resumes_it(tmp_path):
    # p moves at every step by 8 / 50, up while D calls more than 60% of reals real.
    run = train_with_ada(tmp_path, steps=6, ada_kimg=0.05, ada_interval=1)
    rows = read_metrics(run / "metrics.csv")
    ps = [float(row["ada_p"]) for row in rows]
    # Where p went depends on D's first steps; the controller's arithmetic is tested above.
    assert len(ps) == 3 and all(0.0 <= p <= 1.0 for p in ps)
    assert (run / "augment.png").is_file() and (run / "losses.png").is_file()
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["augment"] == "ada"
    _, state = saved_ada_state(run)
    assert float(state[0]) == pytest.approx(ps[-1], abs=1e-6)  # p is kept for a resume
    at_step_6 = (run / "augment.png").read_bytes()
    result = CliRunner().invoke(main, ["train", "--resume", str(run), "--set", "train.steps=8"])
    assert result.exit_code == 0, result.output
    assert len(read_metrics(run / "metrics.csv")) == 4
    # Step 8 is no multiple of sample_every (3): the run's end still shows what D saw last.
    assert (run / "augment.png").read_bytes() != at_step_6


def test_with_several_d_updates_a_step_counts_the_reals_of_every_one(tmp_path):
    # p moves at step 3; step 4 then gathers the signs of both D updates' 8 reals.
    run = train_with_ada(tmp_path, steps=4, ada_interval=3, d_steps=2)
    step, state = saved_ada_state(run)
    assert step == 4 and float(state[2]) == 16.0
    assert abs(float(state[1])) <= 16.0 and float(state[1]) % 2 == 0  # a sum of 16 signs
