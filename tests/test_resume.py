"""Issue 4: a stopped run resumes as if never stopped, one writer per run, divergence."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import checkpoint_steps, metric_steps, run_dirs, snapshot, tiny_config, write_config

from dcgan.cli import main
from dcgan.runtime import import_tensorflow
from dcgan.storage.metrics_file import read_metrics

tf = import_tensorflow()

from dcgan.storage.checkpoints import checkpoint_values  # noqa: E402

pytestmark = pytest.mark.slow  # trains models: -m "not slow" leaves it out


def train(runner, *args: str):
    return runner.invoke(main, ["train", *args])


def exact_config(tmp_path: Path, name: str) -> Path:
    """20 images in batches of 8: epochs end inside batches. Dropout: layer random states."""
    config = tiny_config(
        tmp_path,
        name=name,
        data={"max_images": 20},
        model={"d_dropout": 0.3},
        train={"steps": 7, "deterministic": True},
    )
    config["output"].update(checkpoint_every=3, keep_checkpoints=5, sample_every=100)
    return write_config(tmp_path, config, f"{name}.yaml")


def test_resumed_runs_match_an_unbroken_run_bit_for_bit(runner, tmp_path):
    for name in ("straight", "stopped", "killed"):
        exact_config(tmp_path, name)
    assert train(runner, "--config", str(tmp_path / "straight.yaml")).exit_code == 0
    # Stopped cleanly at step 3, then resumed.
    result = train(runner, "--config", str(tmp_path / "stopped.yaml"), "--set", "train.steps=3")
    assert result.exit_code == 0, result.output
    # Killed after step 5 with its last checkpoint at 3: step 4 and 5 are trained again.
    result = train(runner, "--config", str(tmp_path / "killed.yaml"), "--set", "train.steps=5")
    assert result.exit_code == 0, result.output
    straight, stopped, killed = run_dirs(tmp_path)
    shutil.rmtree(killed / "checkpoints" / "step-0000005")
    (killed / "generator.keras").unlink()
    assert metric_steps(killed) == [2, 4, 5]
    for run in (stopped, killed):
        result = train(runner, "--resume", str(run), "--set", "train.steps=7")
        assert result.exit_code == 0, result.output

    reference = checkpoint_values(straight / "checkpoints" / "step-0000007")
    assert any("dropout" in name or "random_states" in name for name in reference)
    for run in (stopped, killed):
        resumed = checkpoint_values(run / "checkpoints" / "step-0000007")
        assert resumed.keys() == reference.keys()
        for name, value in reference.items():
            np.testing.assert_array_equal(resumed[name], value, err_msg=f"{run.name}: {name}")
    # The killed run's replayed rows replace the ones it wrote after its checkpoint, and
    # its running averages resumed from the checkpoint: the curve is the unbroken one.
    assert metric_steps(killed) == metric_steps(straight) == [2, 4, 6, 7]
    columns = ("d_loss", "g_loss", "d_real", "d_fake")
    assert [[row[c] for c in columns] for row in read_metrics(killed / "metrics.csv")] == [
        [row[c] for c in columns] for row in read_metrics(straight / "metrics.csv")
    ]


def test_a_checkpoint_one_step_earlier_differs(runner, tmp_path):
    """The bit-for-bit test above compares something that changes from step to step."""
    exact_config(tmp_path, "straight")
    assert train(runner, "--config", str(tmp_path / "straight.yaml")).exit_code == 0
    (run,) = run_dirs(tmp_path)
    six = checkpoint_values(run / "checkpoints" / "step-0000006")
    seven = checkpoint_values(run / "checkpoints" / "step-0000007")
    changed = [name for name in six if not np.array_equal(six[name], seven[name])]
    assert any("generator" in name for name in changed)
    assert any(name.startswith("step/") for name in changed)


def test_a_side_effect_out_of_memory_keeps_its_steps_and_resumes_bit_for_bit(
    runner, tmp_path, monkeypatch
):
    """A side effect that fails between two calls (here the health check at step 4, one
    step past the checkpoint at 3) leaves the models at a whole step: it is checkpointed,
    and the resume trains on as if never stopped."""
    from dcgan.training import callbacks

    for name in ("straight", "crashed"):
        exact_config(tmp_path, name)
    assert train(runner, "--config", str(tmp_path / "straight.yaml")).exit_code == 0
    check = callbacks.HealthWatch.check

    def out_of_memory_at_step_4(self, step):
        if step == 4:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        check(self, step)

    monkeypatch.setattr(callbacks.HealthWatch, "check", out_of_memory_at_step_4)
    result = train(runner, "--config", str(tmp_path / "crashed.yaml"))
    assert result.exit_code == 1, result.output
    assert "out of memory" in result.output
    _, crashed = run_dirs(tmp_path)
    assert (
        f"saved a checkpoint of step 4 before stopping: dcgan train --resume {crashed}"
        in (crashed / "train.log").read_text()
    )
    assert checkpoint_steps(crashed) == [3, 4]

    monkeypatch.undo()
    result = train(runner, "--resume", str(crashed))
    assert result.exit_code == 0, result.output
    assert "resumed" in (crashed / "train.log").read_text()
    reference = checkpoint_values(run_dirs(tmp_path)[0] / "checkpoints" / "step-0000007")
    resumed = checkpoint_values(crashed / "checkpoints" / "step-0000007")
    assert resumed.keys() == reference.keys()
    for name, value in reference.items():
        np.testing.assert_array_equal(resumed[name], value, err_msg=name)
    # The row of the failed step was never written; the next one averages from row 2 on.
    assert metric_steps(crashed) == [2, 6, 7]


def test_a_side_effect_that_could_not_write_a_file_is_not_checkpointed(
    runner, tmp_path, monkeypatch
):
    """A file that could not be written (checkpoints/best, say): the disk is the news, and
    a checkpoint written now would likely fail as well."""
    from dcgan.errors import OutputError
    from dcgan.training import callbacks

    exact_config(tmp_path, "crashed")
    check = callbacks.HealthWatch.check

    def disk_full_at_step_4(self, step):
        if step == 4:
            raise OutputError("checkpoints/best: cannot write: No space left on device")
        check(self, step)

    monkeypatch.setattr(callbacks.HealthWatch, "check", disk_full_at_step_4)
    result = train(runner, "--config", str(tmp_path / "crashed.yaml"))
    assert result.exit_code == 1, result.output
    assert "No space left on device; step-0000003 is intact" in result.output
    (run,) = run_dirs(tmp_path)
    assert checkpoint_steps(run) == [3]


def test_a_side_effect_failing_at_the_end_keeps_the_finished_run(runner, tmp_path, monkeypatch):
    from dcgan.training import callbacks

    config_path = write_config(tmp_path, tiny_config(tmp_path, train={"steps": 6}))

    def broken(self, logs=None):
        raise RuntimeError("a bug in the last sample grid")

    monkeypatch.setattr(callbacks.SampleGrids, "on_train_end", broken)
    result = train(runner, "--config", str(config_path))
    assert isinstance(result.exception, RuntimeError)
    (run,) = run_dirs(tmp_path)
    assert checkpoint_steps(run) == [4, 6]  # every_step 4, and the 6 trained steps
    assert not (run / "generator.keras").exists()

    monkeypatch.undo()
    result = train(runner, "--resume", str(run))
    assert result.exit_code == 0, result.output
    assert "run is already at step 6 of 6: nothing to train" in (run / "train.log").read_text()
    assert (run / "generator.keras").is_file()


def test_a_failing_training_step_is_not_checkpointed(runner, tmp_path, monkeypatch):
    """An error out of the compiled step may leave the models half-way through a call:
    only the checkpoints written before it stay."""
    from dcgan.models.adversarial import DCGAN

    config_path = write_config(tmp_path, tiny_config(tmp_path, train={"steps": 6}))
    train_step = DCGAN.train_step

    def failing(self, data):
        tf.debugging.assert_less(self.step, tf.constant(5, self.step.dtype), "step 6 fails")
        return train_step(self, data)

    monkeypatch.setattr(DCGAN, "train_step", failing)
    result = train(runner, "--config", str(config_path))
    assert result.exit_code != 0
    (run,) = run_dirs(tmp_path)
    assert checkpoint_steps(run) == [4]
    assert "before stopping" not in (run / "train.log").read_text()


def test_second_writer_is_refused_naming_the_process(runner, tmp_path):
    config_path = write_config(tmp_path, tiny_config(tmp_path, train={"steps": 2}))
    assert train(runner, "--config", str(config_path)).exit_code == 0
    (run,) = run_dirs(tmp_path)
    before = snapshot(run)

    from dcgan.storage.lock import training_lock
    from dcgan.storage.run_folder import RunDir

    with training_lock(RunDir(run)):
        result = train(runner, "--resume", str(run), "--set", "train.steps=4")
    assert result.exit_code == 2
    assert f"is being trained by process {os.getpid()}" in result.output
    assert "Traceback" not in result.output
    lock_file = run / "train.lock"
    assert not lock_file.exists()  # released and removed on exit
    assert snapshot(run) == before


def test_a_lock_left_by_a_killed_process_is_taken_over(runner, tmp_path):
    config_path = write_config(tmp_path, tiny_config(tmp_path, train={"steps": 2}))
    assert train(runner, "--config", str(config_path)).exit_code == 0
    (run,) = run_dirs(tmp_path)
    hold_and_die = (
        "import os, sys\n"
        "from dcgan.storage.lock import training_lock\n"
        "from dcgan.storage.run_folder import RunDir\n"
        "with training_lock(RunDir(__import__('pathlib').Path(sys.argv[1]))):\n"
        "    print(os.getpid(), flush=True)\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", hold_and_die, str(run)], capture_output=True, text=True
    )
    assert killed.returncode == -9
    dead_pid = int(killed.stdout)
    assert (run / "train.lock").read_text().startswith(f"{dead_pid} on ")

    result = train(runner, "--resume", str(run), "--set", "train.steps=4")
    assert result.exit_code == 0, result.output
    assert f"took over the lock of process {dead_pid}" in (run / "train.log").read_text()
    assert checkpoint_steps(run)[-1] == 4


def diverging(tmp_path: Path, **train_keys) -> Path:
    """Adam moves each weight by about the learning rate: 1e28 overflows in a step."""
    config = tiny_config(tmp_path, train={"steps": 8, "g_lr": 1e28, "d_lr": 1e28, **train_keys})
    return write_config(tmp_path, config)


def test_nan_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(runner, tmp_path):
    config_path = write_config(tmp_path, tiny_config(tmp_path, train={"steps": 4}))
    assert train(runner, "--config", str(config_path)).exit_code == 0
    (run,) = run_dirs(tmp_path)
    good = checkpoint_values(run / "checkpoints" / "step-0000004")

    result = train(
        runner,
        "--resume",
        str(run),
        "--set",
        "train.steps=12",
        "--set",
        "train.g_lr=1e28",
        "--set",
        "train.d_lr=1e28",
    )
    assert result.exit_code == 3, result.output
    assert "training diverged at step 5: " in result.output
    assert "the last good checkpoint is step-0000004" in result.output
    assert "Traceback" not in result.output
    assert checkpoint_steps(run) == [4]
    after = checkpoint_values(run / "checkpoints" / "step-0000004")
    assert all(np.array_equal(after[name], good[name]) for name in good)
    assert "training diverged at step 5" in (run / "train.log").read_text()
    assert max(metric_steps(run)) == 4  # no row from a diverged step


def test_nan_in_a_new_run_keeps_the_run_to_inspect(runner, tmp_path):
    result = train(runner, "--config", str(diverging(tmp_path)))
    assert result.exit_code == 3
    assert "training diverged at step 1: " in result.output
    assert "a resume starts again from step 0" in result.output
    (run,) = run_dirs(tmp_path)
    assert (run / "train.log").is_file() and not (run / "checkpoints").exists()


def test_rollback_reloads_the_last_good_checkpoint_with_lower_rates(runner, tmp_path):
    config_path = diverging(tmp_path, on_nan="rollback", rollback_lr_factor=1e-30)
    result = train(runner, "--config", str(config_path))
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    log = (run / "train.log").read_text()
    assert "rolled back to step-0000000 with the learning rates times 1e-30" in log
    assert "rollback 1 of 3" in log
    final = checkpoint_values(run / "checkpoints" / "step-0000008")
    assert all(np.isfinite(v).all() for v in final.values() if v.dtype.kind == "f")
    lr = [v for name, v in final.items() if "g_optimizer/_learning_rate" in name]
    np.testing.assert_allclose(lr, [1e-2], rtol=1e-6)
    assert final["rollbacks/.ATTRIBUTES/VARIABLE_VALUE"] == 1

    # The lowered rates survive a resume; the configured ones stay in config.yaml.
    result = train(runner, "--resume", str(run), "--set", "train.steps=10")
    assert result.exit_code == 0, result.output
    resumed = checkpoint_values(run / "checkpoints" / "step-0000010")
    lr = [v for name, v in resumed.items() if "d_optimizer/_learning_rate" in name]
    np.testing.assert_allclose(lr, [1e-2], rtol=1e-6)
    assert metric_steps(run) == [2, 4, 6, 8, 10]


def test_rollbacks_are_bounded(runner, tmp_path):
    config_path = diverging(tmp_path, on_nan="rollback", max_rollbacks=2)
    result = train(runner, "--config", str(config_path))
    assert result.exit_code == 3
    assert "after 2 rollback(s) (train.max_rollbacks is 2)" in result.output
    (run,) = run_dirs(tmp_path)
    assert (run / "train.log").read_text().count("rolled back to step-0000000") == 2


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_a_non_finite_weight_is_never_checkpointed(tmp_path, bad):
    from dcgan.config import Config
    from dcgan.models.adversarial import checkpoint_objects
    from dcgan.training import callbacks
    from dcgan.training.loop import build_gan

    gan = build_gan(Config(**tiny_config(tmp_path)))
    saver = callbacks.Checkpoints(checkpoint_objects(gan), tmp_path / "ckpts", 1, 3, 0)
    saver.set_model(gan)
    saver.save(1)
    kernel = gan.discriminator.trainable_variables[0]
    kernel.assign(np.full(kernel.shape, float(bad), np.float32))
    with pytest.raises(callbacks.Diverged, match=f"{kernel.path} is not finite"):
        saver.save(2)
    assert [p.name for p in (tmp_path / "ckpts").iterdir()] == ["step-0000001"]


def test_a_checkpoint_from_before_d_accuracy_still_resumes(tmp_path):
    from dcgan.config import load
    from dcgan.errors import RunDirError
    from dcgan.models.adversarial import OPTIONAL_STATES, checkpoint_objects
    from dcgan.storage import checkpoints
    from dcgan.training.loop import build_gan

    config = load(None, ("model.g_width=4", "model.d_width=4", "data.image_size=16"))
    objects = checkpoint_objects(build_gan(config))
    older = {key: value for key, value in objects.items() if key not in OPTIONAL_STATES}
    saved = checkpoints.save_checkpoint(older, tmp_path, 5, keep=1)
    with pytest.raises(RunDirError, match="cannot restore this checkpoint"):
        checkpoints.restore_checkpoint(checkpoint_objects(build_gan(config)), saved)
    restored = checkpoint_objects(build_gan(config))
    checkpoints.restore_checkpoint(restored, saved, optional=OPTIONAL_STATES)
    pairs = zip(objects["generator"].weights, restored["generator"].weights, strict=True)
    for before, after in pairs:  # built apart, so equal only through the checkpoint
        np.testing.assert_array_equal(before.numpy(), after.numpy())


def test_an_inception_evaluation_without_weights_stops_before_training(runner, tmp_path):
    config = tiny_config(tmp_path)
    config["eval"] = {"every": 3, "features": "inception"}
    result = runner.invoke(main, ["train", "--config", str(write_config(tmp_path, config))])
    assert result.exit_code == 2
    assert "no InceptionV3 weights: download" in result.output
    assert "Traceback" not in result.output
    assert run_dirs(tmp_path) == []  # nothing was trained, so no run is left behind
