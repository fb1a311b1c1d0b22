"""End to end through the CLI: train a few steps, resume, open every file the run holds."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from conftest import (
    checkpoint_steps,
    metric_steps,
    run_dirs,
    sample_steps,
    tiny_config,
    write_config,
)
from PIL import Image

from dcgan.cli import main

pytestmark = pytest.mark.slow  # trains models: -m "not slow" leaves it out


def test_train_resume_and_every_artifact(runner, tmp_path):
    config_path = write_config(tmp_path, tiny_config(tmp_path))
    result = runner.invoke(main, ["train", "--config", str(config_path)])
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    assert run.name == "00000-tiny"
    assert "finished at step 6/6" in result.output

    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["steps"] == 6 and saved["data"]["image_size"] == 16
    noise = np.load(run / "fixed_noise.npy")
    assert noise.shape == (4, 8) and noise.dtype == np.float32
    assert sample_steps(run) == [0, 3, 6]
    with Image.open(run / "samples" / "step-0000006.png") as grid:
        assert grid.mode == "L" and grid.size == (2 + 2 * 18, 2 + 2 * 18)  # 2x2 tiles of 16
    assert metric_steps(run) == [2, 4, 6]
    with open(run / "metrics.csv", newline="") as stream:
        row = next(csv.DictReader(stream))
    assert all(np.isfinite(float(row[k])) for k in ("d_loss", "g_loss", "d_real", "d_fake"))
    with Image.open(run / "losses.png") as plot:
        assert plot.format == "PNG" and plot.size[0] > 300
    with Image.open(run / "progress.gif") as gif:
        assert gif.n_frames == 3
    assert checkpoint_steps(run) == [4, 6]
    assert list((run / "logs").glob("events.out.tfevents.*"))
    train_log = (run / "train.log").read_text()
    assert "data: 64 images of 16x16x1 from digits" in train_log
    assert "training tiny: steps 0 -> 6" in train_log

    import keras

    generator = keras.models.load_model(run / "generator.keras")
    assert generator(noise).shape == (4, 16, 16, 1)

    # Resume a finished run further: the step, samples, metrics and checkpoints continue.
    result = runner.invoke(main, ["train", "--resume", str(run), "--set", "train.steps=10"])
    assert result.exit_code == 0, result.output
    assert "finished at step 10/10 (4 steps" in result.output
    assert run_dirs(tmp_path) == [run]
    assert sample_steps(run) == [0, 3, 6, 9, 10]
    assert metric_steps(run) == [2, 4, 6, 8, 10]
    assert checkpoint_steps(run) == [8, 10]  # keep_checkpoints: 2
    np.testing.assert_array_equal(np.load(run / "fixed_noise.npy"), noise)
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["steps"] == 10
    with Image.open(run / "progress.gif") as gif:
        assert gif.n_frames == 5

    from dcgan.storage.checkpoints import checkpoint_values, latest_checkpoint

    step, path = latest_checkpoint(run / "checkpoints")
    values = checkpoint_values(path)
    assert values["step/.ATTRIBUTES/VARIABLE_VALUE"] == 10
    assert values["g_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"] == 10
    assert values["d_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"] == 10


def test_resume_restores_the_exact_weights(runner, tmp_path):
    config_path = write_config(tmp_path, tiny_config(tmp_path))
    assert runner.invoke(main, ["train", "--config", str(config_path)]).exit_code == 0
    (run,) = run_dirs(tmp_path)

    import keras

    from dcgan.config import load
    from dcgan.models.adversarial import checkpoint_objects
    from dcgan.storage.checkpoints import latest_checkpoint, restore_checkpoint
    from dcgan.training.loop import build_gan

    gan = build_gan(load(run / "config.yaml"))
    restore_checkpoint(checkpoint_objects(gan), latest_checkpoint(run / "checkpoints")[1])
    final = keras.models.load_model(run / "generator.keras")
    for restored, saved in zip(gan.generator.weights, final.weights, strict=True):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy())
    assert int(gan.step.numpy()) == 6


def test_a_second_training_gets_a_new_run_directory(runner, tmp_path):
    config_path = write_config(tmp_path, tiny_config(tmp_path, train={"steps": 2}))
    for _ in range(2):
        assert runner.invoke(main, ["train", "--config", str(config_path)]).exit_code == 0
    assert [p.name for p in run_dirs(tmp_path)] == ["00000-tiny", "00001-tiny"]


def test_dry_run_prints_resolved_config_and_trains_nothing(runner, tmp_path):
    config_path = write_config(tmp_path, tiny_config(tmp_path))
    result = runner.invoke(
        main, ["train", "--config", str(config_path), "--set", "train.steps=123", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.output)
    assert printed["train"]["steps"] == 123
    assert printed["model"]["init_std"] == 0.02
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--set", "train.batch_size=0"], "--set train.batch_size: input should be greater than 0"),
        (["--set", "data.image_sise=3"], "did you mean 'image_size'"),
        (["--resume", "{tmp}/nowhere"], "nowhere: no such run directory"),
        (["--resume", "{tmp}"], "not a run directory (no config.yaml)"),
        (["--config", "{tmp}/missing.yaml"], "missing.yaml: config file not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(runner, tmp_path, args, expected):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = runner.invoke(main, ["train", *args])
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_resume_refuses_architecture_changes_and_leaves_run_untouched(runner, tmp_path):
    config_path = write_config(tmp_path, tiny_config(tmp_path, train={"steps": 2}))
    assert runner.invoke(main, ["train", "--config", str(config_path)]).exit_code == 0
    (run,) = run_dirs(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    result = runner.invoke(main, ["train", "--resume", str(run), "--set", "model.g_width=16"])
    assert result.exit_code == 2
    assert "--set model.g_width: cannot be changed when resuming a run" in result.output
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before


def test_config_and_resume_exclude_each_other(runner, tmp_path):
    result = runner.invoke(main, ["train", "--config", "a.yaml", "--resume", str(tmp_path)])
    assert result.exit_code == 2
    assert "--config and --resume exclude each other" in result.output


def test_ctrl_c_stops_with_a_checkpoint_and_resume_continues(tmp_path):
    config = tiny_config(tmp_path, train={"steps": 100_000})
    config["output"].update(sample_every=50_000, checkpoint_every=50_000, log_every=1)
    config_path = write_config(tmp_path, config)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "dcgan", "train", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    metrics = tmp_path / "runs" / "00000-tiny" / "metrics.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) > 3:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert "interrupted at step" in output
    assert re.search(r"continue with: \S*dcgan train --resume ", output), output
    assert "Traceback" not in output
    run = tmp_path / "runs" / "00000-tiny"
    (stopped_at,) = checkpoint_steps(run)
    assert stopped_at >= 3
    assert sample_steps(run) == [0, stopped_at]
    assert not (run / "generator.keras").exists()

    from click.testing import CliRunner

    result = CliRunner().invoke(
        main, ["train", "--resume", str(run), "--set", f"train.steps={stopped_at + 2}"]
    )
    assert result.exit_code == 0, result.output
    assert f"finished at step {stopped_at + 2}/{stopped_at + 2} (2 steps" in result.output
    assert metric_steps(run) == list(range(1, stopped_at + 3))


def test_folder_of_rgb_images_trains_and_bad_folder_leaves_no_run(runner, tmp_path):
    from conftest import random_pixels, save_image

    images = tmp_path / "photos"
    for i in range(6):
        save_image(images / f"{i}.jpg", random_pixels((20, 24, 3), seed=i))
    data = {"source": "folder", "path": str(images), "image_size": 12, "channels": 3}
    config_path = write_config(tmp_path, tiny_config(tmp_path, data=data, train={"steps": 2}))
    result = runner.invoke(main, ["train", "--config", str(config_path)])
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    with Image.open(run / "samples" / "step-0000002.png") as grid:
        assert grid.mode == "RGB" and grid.size == (2 + 2 * 14, 2 + 2 * 14)

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no pictures here")
    data["path"] = str(empty)
    config_path = write_config(tmp_path, tiny_config(tmp_path, data=data), "empty.yaml")
    result = runner.invoke(main, ["train", "--config", str(config_path)])
    assert result.exit_code == 2
    assert f"data.path {empty}: no image files" in result.output
    assert run_dirs(tmp_path) == [run]  # the failed run left no folder behind
