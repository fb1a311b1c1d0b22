"""train.init_from (start from another run's G and D) and train.freeze_d (Freeze-D)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import error_line, run_dirs, tiny_config, write_config

from dcgan.cli import main
from dcgan.config import load
from dcgan.errors import ConfigError
from dcgan.storage.checkpoints import checkpoint_values, latest_checkpoint


def train(tmp_path, name: str, code: int = 0, **train_keys):
    root = tmp_path / name
    root.mkdir()
    config = tiny_config(root, name=name, train={"steps": 4, **train_keys})
    result = CliRunner().invoke(main, ["train", "--config", str(write_config(root, config))])
    assert result.exit_code == code, result.output
    return result, (run_dirs(root)[0] if code == 0 else None)


def weights(run, network: str) -> dict[str, np.ndarray]:
    """The run's latest G or D weights, by layer and weight name."""
    from dcgan.generation.loading import run_config
    from dcgan.models.networks import build_discriminator, build_generator
    from dcgan.storage.checkpoints import restore_checkpoint
    from dcgan.storage.run_folder import RunDir

    config = run_config(RunDir(run))
    model = (build_generator if network == "generator" else build_discriminator)(config)
    restore_checkpoint({network: model}, latest_checkpoint(run / "checkpoints")[1], partial=True)
    return {f"{w.path}": w.numpy() for w in model.weights}


def test_a_new_run_starts_from_another_run_s_weights(tiny_run, tmp_path):
    _, run = train(tmp_path, "tuned", init_from=str(tiny_run), g_lr=1e-30, d_lr=1e-30)
    assert "started from the weights of" in (run / "train.log").read_text()
    for network in ("generator", "discriminator"):
        source, tuned = weights(tiny_run, network), weights(run, network)
        assert source.keys() == tuned.keys() and source
        # At a learning rate of 1e-30 the weights stay those started from; BatchNorm's
        # moving statistics follow the batches whatever the rate.
        learned = [name for name in source if "moving_" not in name]
        assert len(learned) > 4
        for name in learned:
            np.testing.assert_allclose(tuned[name], source[name], atol=1e-6, err_msg=name)
    fresh, _ = train(tmp_path, "fresh", g_lr=1e-30, d_lr=1e-30)  # the same without init_from
    fresh_g, source_g = (
        weights(run_dirs(tmp_path / "fresh")[0], "generator"),
        weights(tiny_run, "generator"),
    )
    assert any(not np.allclose(fresh_g[name], source_g[name]) for name in source_g)
    # The step and the optimizers start afresh.
    values = checkpoint_values(latest_checkpoint(run / "checkpoints")[1])
    assert int(values["step/.ATTRIBUTES/VARIABLE_VALUE"]) == 4


def test_freeze_d_keeps_the_first_blocks_of_d(tiny_run, tmp_path):
    _, run = train(tmp_path, "frozen", init_from=str(tiny_run), freeze_d=1)
    source, tuned = weights(tiny_run, "discriminator"), weights(run, "discriminator")
    first = [name for name in source if "down1" in name]
    later = [name for name in source if "down2" in name and "kernel" in name]
    assert first and later
    for name in first:
        np.testing.assert_array_equal(tuned[name], source[name], err_msg=name)
    assert any(not np.array_equal(tuned[name], source[name]) for name in later)


def test_freeze_d_freezes_convolutions_and_batchnorm_still_normalises_by_the_batch():
    from dcgan.config import Config
    from dcgan.models.networks import build_discriminator, freeze_blocks

    config = Config.model_validate({"data": {"image_size": 32}, "model": {"d_width": 4}})
    discriminator = build_discriminator(config)
    freeze_blocks(discriminator, 2)
    assert {layer.name for layer in discriminator.layers if not layer.trainable} == {
        "down1",
        "down2",
    }
    # A batch of mean 5 and spread 2 comes out of the frozen block's BatchNorm at mean 0
    # and spread 1 (its scale 1 and offset 0): the batch's moments, not the moving ones.
    norm = discriminator.get_layer("down2_norm")
    batch = np.random.default_rng(0).normal(5.0, 2.0, (64, 8, 8, 8)).astype("float32")
    out = np.asarray(norm(batch, training=True))
    assert abs(out.mean()) < 0.01 and out.std() == pytest.approx(1.0, abs=0.01)


def test_a_run_that_does_not_fit_is_one_line(tiny_run, tmp_path):
    root = tmp_path / "wide"
    root.mkdir()
    config = tiny_config(root, model={"g_width": 16}, train={"init_from": str(tiny_run)})
    result = CliRunner().invoke(main, ["train", "--config", str(write_config(root, config))])
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith(f"Error: train.init_from {tiny_run}: its G and D do not fit")
    assert "Traceback" not in result.output
    assert not (root / "runs").exists() or not list((root / "runs").iterdir())
    result, _ = train(tmp_path, "nowhere", code=2, init_from=str(tmp_path))
    assert "not a run with a checkpoint, nor a checkpoint folder" in result.output


def test_freeze_d_cannot_freeze_all_of_d_nor_go_without_a_start(tmp_path):
    raw = {"data": {"image_size": 16}, "train": {"freeze_d": 2, "init_from": "r"}}  # 2 blocks
    with pytest.raises(ConfigError, match="freeze every one of D's 2 blocks: at most 1"):
        load(write_config(tmp_path, raw))
    raw["train"] = {"freeze_d": 1}
    with pytest.raises(ConfigError, match="train.freeze_d: applies with train.init_from"):
        load(write_config(tmp_path, raw))


def test_a_start_that_is_not_there_is_told_before_training_starts(tmp_path):
    config = write_config(tmp_path, tiny_config(tmp_path))
    for source, why in (
        (tmp_path / "gone", "no such folder"),
        (tmp_path, "not a run with a checkpoint, nor a checkpoint folder"),
    ):
        result = CliRunner().invoke(
            main,
            ["train", "--config", str(config), "--dry-run", "--set", f"train.init_from={source}"],
        )
        assert result.exit_code == 2, result.output
        assert error_line(result) == f"Error: train.init_from {source}: {why}"
