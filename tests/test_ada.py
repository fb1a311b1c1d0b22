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

    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, (4000, 8, 8, 3)), tf.float32)
    key = tf.constant([3, 4], tf.int64)
    np.testing.assert_array_equal(adaptive(images, 0.0, key).numpy(), images.numpy())
    for p in (0.3, 0.7):
        out = adaptive(images, p, key).numpy()
        untouched = np.all(out == images.numpy(), axis=(1, 2, 3)).mean()
        expected = (1 - p) ** len(ADA_PIPELINE)  # every transformation skipped
        assert untouched == pytest.approx(expected, abs=0.02), (p, untouched)
    everything = adaptive(images, 1.0, key).numpy()
    assert not np.any(np.all(everything == images.numpy(), axis=(1, 2, 3)))


def test_the_controller_moves_p_by_the_sign_of_r_t_minus_the_target():
    import tensorflow as tf

    from dcgan.training.loop import build_gan

    config = Config.model_validate(
        {"data": {"image_size": 16}, "model": {"g_width": 4, "d_width": 4, "latent_dim": 4},
         "train": {"augment": "ada", "ada_interval": 2, "ada_kimg": 0.01, "batch_size": 4}}
    )  # fmt: skip
    gan = build_gan(config)  # p moves by (images seen) / 10 at every second step

    def step(number, signs):
        gan.step.assign(number)
        gan._adapt(tf.constant(signs, tf.float32)[:, None])
        return [round(float(v), 6) for v in gan.ada_state.numpy()]

    assert step(1, [1, 1, 1, -1]) == [0.0, 2.0, 4.0]  # gathering: r_t so far 0.5
    assert step(2, [1, 1, 1, 1]) == [0.8, 0.0, 0.0]  # r_t 6/8 > 0.6: p up by 8/10
    assert step(3, [-1, -1, 1, -1]) == [0.8, -2.0, 4.0]
    assert step(4, [-1, 1, -1, -1]) == [0.0, 0.0, 0.0]  # r_t -0.5 < 0.6: down 0.8, floor 0
    assert step(6, [1] * 4) == [0.4, 0.0, 0.0]
    for n in range(8, 40, 2):
        step(n, [1] * 4)
    assert float(gan.ada_p) == 1.0  # at most 1


def test_ada_and_diffaugment_are_one_or_the_other(tmp_path):
    raw = {"train": {"augment": "ada", "diffaugment": ["color"]}}
    with pytest.raises(ConfigError, match="train.augment: 'ada' and train.diffaugment"):
        load(write_config(tmp_path, raw))


def test_a_run_logs_p_plots_it_shows_what_d_sees_and_resumes_it(tmp_path):
    # p moves at every step by 8 / 50, up while D calls more than 60% of reals real.
    config = tiny_config(
        tmp_path, train={"steps": 6, "augment": "ada", "ada_kimg": 0.05, "ada_interval": 1}
    )
    result = CliRunner().invoke(main, ["train", "--config", str(write_config(tmp_path, config))])
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    rows = read_metrics(run / "metrics.csv")
    ps = [float(row["ada_p"]) for row in rows]
    # Where p went depends on D's first steps; the controller's arithmetic is tested above.
    assert len(ps) == 3 and all(0.0 <= p <= 1.0 for p in ps)
    assert (run / "augment.png").is_file() and (run / "losses.png").is_file()
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["augment"] == "ada"
    from dcgan.storage.checkpoints import checkpoint_values, latest_checkpoint

    saved = checkpoint_values(latest_checkpoint(run / "checkpoints")[1])
    state = next(v for name, v in saved.items() if name.startswith("ada_state"))
    assert float(state[0]) == pytest.approx(ps[-1], abs=1e-6)  # p is kept for a resume
    result = CliRunner().invoke(main, ["train", "--resume", str(run), "--set", "train.steps=8"])
    assert result.exit_code == 0, result.output
    assert len(read_metrics(run / "metrics.csv")) == 4
