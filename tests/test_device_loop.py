"""Issue 14: K steps per call into the training function, no host sync between intervals,
side effects on a background writer, scores on the device, one periodic base."""

from __future__ import annotations

import errno
import io
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    checkpoint_steps,
    metric_steps,
    run_dirs,
    sample_steps,
    tiny_config,
    write_config,
)

from dcgan.cli import main
from dcgan.runtime import import_tensorflow

tf = import_tensorflow()

import keras  # noqa: E402

from dcgan import imaging  # noqa: E402
from dcgan.config import Config, load  # noqa: E402
from dcgan.errors import ConfigError, OutputError  # noqa: E402
from dcgan.metrics import device_scores, scores  # noqa: E402
from dcgan.storage.checkpoints import checkpoint_values  # noqa: E402
from dcgan.training import callbacks, execution  # noqa: E402
from dcgan.training.writer import BackgroundWriter  # noqa: E402

pytestmark = pytest.mark.slow  # trains models: -m "not slow" leaves it out


def train(runner, *args: str):
    return runner.invoke(main, ["train", *[str(a) for a in args]])


def k_config(tmp_path: Path, name: str = "tiny", steps: int = 12, **train_keys) -> Path:
    """Every interval 4 (12 steps): auto picks K = 4 for this tiny model."""
    config = tiny_config(tmp_path, name=name, train={"steps": steps, **train_keys})
    config["output"].update(log_every=4, sample_every=4, checkpoint_every=4, keep_checkpoints=5)
    return write_config(tmp_path, config, f"{name}.yaml")


def logged_steps_per_call(run: Path) -> str:
    line = next(x for x in (run / "train.log").read_text().splitlines() if "steps per call" in x)
    return line.split("steps per call ")[1]


# ---- choosing K ------------------------------------------------------------------------


def test_auto_divides_every_interval_the_total_and_the_start_step():
    config = load(None, ("output.log_every=50", "output.sample_every=250", "train.steps=3000"))
    assert execution.steps_per_execution(config, 0, step_flops=1.0)[0] == 50
    assert execution.steps_per_execution(config, 1000, step_flops=1.0)[0] == 50
    assert execution.steps_per_execution(config, 1010, step_flops=1.0)[0] == 10  # gcd 10
    assert execution.steps_per_execution(config, 1237, step_flops=1.0)[0] == 1
    odd_total = load(None, ("output.log_every=50", "train.steps=3010"))
    assert execution.steps_per_execution(odd_total, 0, step_flops=1.0)[0] == 10
    no_eval = load(None, ("output.log_every=40", "output.sample_every=200", "eval.every=null"))
    assert execution.steps_per_execution(no_eval, 0, step_flops=1.0)[0] == 40


def test_auto_keeps_a_call_near_a_second_for_a_heavy_step():
    config = load(None, ("output.log_every=50", "output.sample_every=250", "train.steps=3000"))
    per_second = execution.ASSUMED_FLOPS["CPU core"] * execution._cores()
    steps, reason = execution.steps_per_execution(config, 0, step_flops=per_second / 12)
    assert steps == 10  # at most 12 steps a second: the largest divisor of 50 below
    assert "at most 12 here" in reason
    assert execution.steps_per_execution(config, 0, step_flops=per_second * 5)[0] == 1


def test_a_hand_set_k_that_does_not_divide_an_interval_is_one_line(runner, tmp_path):
    config_path = write_config(tmp_path, tiny_config(tmp_path))  # log_every 2, sample_every 3
    result = train(runner, "--config", config_path, "--set", "train.steps_per_execution=2")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1, result.output
    assert "train.steps_per_execution: 2 does not divide output.sample_every (3)" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "runs").exists()


def test_a_hand_set_k_that_does_not_divide_the_resumed_step_is_refused():
    config = load(None, ("output.log_every=50", "train.steps_per_execution=25"))
    assert execution.steps_per_execution(config, 100, 1.0) == (
        25,
        "steps per call 25 (set in the config)",
    )
    with pytest.raises(ConfigError, match="25 does not divide step 110, where this run resumes"):
        execution.steps_per_execution(config, 110, 1.0)


# ---- a K-step run ----------------------------------------------------------------------


class CallCounter(keras.callbacks.Callback):
    async_safe = True

    def __init__(self):
        super().__init__()
        self.batches: list[int] = []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(batch)


def test_side_effects_happen_at_their_steps_with_four_steps_per_call(runner, tmp_path, monkeypatch):
    from dcgan.training import loop as train_module

    counters, original = [], train_module._side_effects

    def counted(*args, **kwargs):
        counters.append(CallCounter())
        return [*original(*args, **kwargs), counters[-1]]

    monkeypatch.setattr(train_module, "_side_effects", counted)
    config_path = k_config(tmp_path)
    result = train(runner, "--config", config_path)
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    assert logged_steps_per_call(run).startswith("auto: 4 ")
    assert counters[0].batches == [3, 7, 11]  # three calls of four steps
    assert metric_steps(run) == [4, 8, 12]
    assert sample_steps(run) == [0, 4, 8, 12]
    assert checkpoint_steps(run) == [4, 8, 12]
    assert (
        checkpoint_values(run / "checkpoints" / "step-0000008")["step/.ATTRIBUTES/VARIABLE_VALUE"]
        == 8
    )


def test_a_resume_inside_a_k_step_run_matches_an_unbroken_run_bit_for_bit(runner, tmp_path):
    keys = {"deterministic": True, "steps_per_execution": 4}
    for name in ("straight", "stopped", "killed"):
        k_config(tmp_path, name, **keys)
    assert train(runner, "--config", tmp_path / "straight.yaml").exit_code == 0
    result = train(runner, "--config", tmp_path / "stopped.yaml", "--set", "train.steps=4")
    assert result.exit_code == 0, result.output
    result = train(runner, "--config", tmp_path / "killed.yaml", "--set", "train.steps=8")
    assert result.exit_code == 0, result.output
    straight, stopped, killed = run_dirs(tmp_path)
    shutil.rmtree(killed / "checkpoints" / "step-0000008")  # as if killed before it landed
    for run in (stopped, killed):
        result = train(runner, "--resume", run, "--set", "train.steps=12")
        assert result.exit_code == 0, result.output
        assert "resumed" in (run / "train.log").read_text()
    reference = checkpoint_values(straight / "checkpoints" / "step-0000012")
    for run in (stopped, killed):
        resumed = checkpoint_values(run / "checkpoints" / "step-0000012")
        assert sorted(resumed) == sorted(reference)
        differ = [name for name in reference if not np.array_equal(resumed[name], reference[name])]
        assert differ == []
        assert metric_steps(run) == [4, 8, 12]


@pytest.fixture
def nan_at_step_6(monkeypatch):
    """D's loss is NaN at the sixth step a run takes, counted in the graph: the middle of
    the call that runs steps 5..8 when K is 4."""
    from dcgan.models.losses import NonSaturating

    count = tf.Variable(0, dtype=tf.int64)
    real_d_loss = NonSaturating.d_loss

    def poisoned(self, real, fake):
        loss = real_d_loss(self, real, fake)
        sixth = tf.equal(count.assign_add(1), 6)
        return tf.where(sixth, tf.constant(float("nan"), loss.dtype), loss)

    monkeypatch.setattr(NonSaturating, "d_loss", poisoned)


def test_a_nan_in_the_middle_of_a_call_names_its_own_step(runner, tmp_path, nan_at_step_6):
    result = train(runner, "--config", k_config(tmp_path, steps=8))
    assert result.exit_code == 3, result.output
    (run,) = run_dirs(tmp_path)
    assert logged_steps_per_call(run).startswith("auto: 4 ")
    # The call ran steps 5..8; the guard in the graph kept the first bad one.
    assert "training diverged at step 6: d_loss is nan" in result.output
    assert "the last good checkpoint is step-0000004" in result.output
    assert checkpoint_steps(run) == [4] and metric_steps(run) == [4]
    assert sample_steps(run) == [0, 4]


def test_rollback_inside_a_k_step_call_goes_on_from_the_last_good_checkpoint(
    runner, tmp_path, nan_at_step_6
):
    result = train(runner, "--config", k_config(tmp_path, steps=12, on_nan="rollback"))
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    assert logged_steps_per_call(run).startswith("auto: 4 ")
    log = (run / "train.log").read_text()
    assert "training diverged at step 6: d_loss is nan; rolled back to step-0000004" in log
    assert metric_steps(run) == [4, 8, 12] and checkpoint_steps(run) == [0, 4, 8, 12]
    final = checkpoint_values(run / "checkpoints" / "step-0000012")
    assert all(np.isfinite(v).all() for v in final.values() if v.dtype.kind == "f")
    assert final["rollbacks/.ATTRIBUTES/VARIABLE_VALUE"] == 1


MIRRORED_DIVERGENCE = """
from dcgan.runtime import import_tensorflow
tf = import_tensorflow()
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from dcgan.config import load
from dcgan.training.execution import plan
from dcgan.training.loop import build_gan
config = load(None, ("model.g_width=4", "model.d_width=4", "data.image_size=16",
                     "train.strategy=mirrored", "train.precision=float32"))
execution = plan(config.train)
gan, strategy = build_gan(config, execution), execution.strategy

def step(d_loss):
    gan.step.assign_add(1)
    gan.divergence.watch(gan.step.value, d_loss, tf.constant(1.0))

run = tf.function(lambda values: strategy.run(step, args=(values,)))
for losses in ([1.0, 2.0], [1.0, float("inf")], [float("nan"), 1.0]):
    run(strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(losses[context.replica_id_in_sync_group])))
print("replicas", strategy.num_replicas_in_sync, "divergence", gan.divergence.read())
"""


def test_a_loss_that_is_bad_on_one_replica_only_is_caught_at_its_step():
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_DIVERGENCE], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "replicas 2 divergence (2, 'd_loss is inf')" in result.stdout


def test_a_writer_error_stops_training_in_one_line_and_keeps_the_checkpoint(
    runner, tmp_path, monkeypatch
):
    config_path = k_config(tmp_path, steps=12)
    real_save_png = imaging.save_png

    def disk_full_at_step_8(image, path):
        if path.name == "step-0000008.png":
            time.sleep(0.5)  # slow to fail: only the flush before step 8's checkpoint sees it
            raise OutputError(f"{path}: cannot write: {errno.errorcode[errno.ENOSPC]}")
        real_save_png(image, path)

    monkeypatch.setattr(imaging, "save_png", disk_full_at_step_8)
    result = train(runner, "--config", config_path)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert errors[0].endswith(
        "samples/step-0000008.png: cannot write: ENOSPC; step-0000004 is intact"
    )
    (run,) = run_dirs(tmp_path)
    assert checkpoint_steps(run) == [4]  # the writer is flushed before step 8's checkpoint
    assert sample_steps(run) == [0, 4]


# ---- the background writer --------------------------------------------------------------


def test_the_writer_runs_jobs_in_order_off_the_calling_thread():
    writer = BackgroundWriter(max_pending=2)
    seen = []
    for i in range(20):
        writer.submit(lambda i=i: seen.append((i, threading.current_thread().name)))
    writer.flush()
    assert [i for i, _ in seen] == list(range(20))
    assert {name for _, name in seen} == {"dcgan-writer"}
    writer.close()


def test_a_full_disk_in_the_writer_is_raised_once_on_the_caller_and_later_jobs_skipped(tmp_path):
    writer = BackgroundWriter()
    done = []

    def full_disk():
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "grid.png"))

    writer.submit(full_disk)
    with pytest.raises(OutputError, match=r"grid\.png: cannot write: No space left on device"):
        writer.flush()
    writer.submit(lambda: done.append("after"))  # reported once; writing stays stopped
    writer.close()
    assert done == []


def test_a_tensorboard_write_error_is_one_line_with_its_reason():
    writer = BackgroundWriter()

    def full_disk():
        message = "{{function_node w}} /run/logs/events; No space left on device [Op:Flush]"
        raise tf.errors.ResourceExhaustedError(None, None, message)

    writer.submit(full_disk)
    with pytest.raises(
        OutputError, match=r"^TensorBoard logs: cannot write: No space left on device$"
    ):
        writer.close()


def test_a_bug_in_a_job_keeps_its_own_exception():
    writer = BackgroundWriter()
    writer.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        writer.close()


# ---- callbacks: async-safe, one periodic base -------------------------------------------


class Recorder(keras.callbacks.Callback):
    def __init__(self, async_safe: bool):
        super().__init__()
        self.async_safe, self.seen = async_safe, []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(logs)


def test_async_safe_callbacks_get_tensors_and_only_the_others_get_numbers():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    safe, unsafe = Recorder(True), Recorder(False)
    logs = {"d_loss": tf.constant(0.5)}
    callbacks.StepCallbacks([safe], model).on_train_batch_end(0, logs)
    assert isinstance(safe.seen[0]["d_loss"], tf.Tensor)
    callbacks.StepCallbacks([safe, unsafe], model).on_train_batch_end(0, logs)
    assert isinstance(safe.seen[1]["d_loss"], tf.Tensor)
    assert unsafe.seen[0] == {"d_loss": 0.5}


def test_every_callback_of_a_run_is_async_safe(tmp_path):
    from dcgan.metrics.features import random_extractor
    from dcgan.storage.run_folder import RunDir
    from dcgan.training import loop as train_module

    config = Config(**{**tiny_config(tmp_path), "eval": {"every": 3}})
    gan = train_module.build_gan(config)
    images = np.zeros((10, 16, 16, 1), np.uint8)
    session = train_module._Session(
        config, RunDir(tmp_path / "run"), None, gan, {}, 0, np.zeros((4, 8), np.float32),
        images, random_extractor(),
    )  # fmt: skip
    side_effects = train_module._side_effects(session, 0, None, BackgroundWriter(), io.StringIO())
    assert {type(c).__name__ for c in side_effects} >= {"DivergenceGuard", "Evaluation"}
    assert all(c.async_safe for c in side_effects)
    assert callbacks.StepCallbacks(side_effects, gan).needs_numbers == []


class Ticks(callbacks.Periodic):
    def __init__(self, every):
        super().__init__(every, start_step=10)
        self.steps = []

    def at_step(self, step):
        self.steps.append(step)


@pytest.mark.parametrize(
    ("every", "expected"), [(None, []), (0, []), (5, [15, 20]), (4, [12, 16, 20])]
)
def test_the_periodic_base_owns_the_interval_and_off(every, expected):
    ticks = Ticks(every)
    for batch in range(10):  # steps 11..20 of a run resumed at 10
        ticks.on_train_batch_end(batch)
    assert ticks.steps == expected


def test_a_negative_interval_is_refused():
    with pytest.raises(ValueError, match="Ticks: every must be positive, got -1"):
        Ticks(-1)


def test_the_best_checkpoint_fails_in_one_line_like_the_periodic_ones(tmp_path):
    from dcgan.storage.run_folder import RunDir

    run = RunDir(tmp_path)
    run.checkpoints.write_text("not a folder")
    variable = tf.Variable(1.0)
    with pytest.raises(OutputError, match=r"checkpoints/best: cannot write: File exists$"):
        callbacks.save_best({"v": variable}, run, 3, 0.5, "random")


def test_a_warning_starts_on_its_own_line_below_the_progress_bar(caplog):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("dcgan")
    logger.addHandler(handler)
    try:
        progress = callbacks.Progress(10, 4, 5, 0, stream=stream, interactive=True)
        progress.on_train_begin()
        progress.on_train_batch_end(0, {"d_loss": 1.0})
        logging.getLogger("dcgan.callbacks").warning("D has won")
        progress.on_train_batch_end(9, {"d_loss": 1.0})
        progress.on_train_end()
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().split("\n")
    assert lines[0].startswith("\r[") and lines[1] == "D has won"
    assert lines[2].startswith("\r[") and "step 10/10" in lines[2]
    assert handler.filters == []  # the bar lets go of the handler at the end


# ---- scores on the device equal their numpy twins ------------------------------------------


def test_device_kid_averages_the_same_subsets_as_numpy():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(60, 16)).astype(np.float32)
    fake = (rng.normal(size=(50, 16)) + 0.3).astype(np.float32)
    expected = scores.kid(real, fake, subsets=7, subset_size=20)
    kid = device_scores.DeviceKid(real, 50, subsets=7, subset_size=20)(tf.constant(fake))
    assert (kid.subsets, kid.subset_size) == (7, 20)
    assert kid.mean == pytest.approx(expected.mean, rel=1e-9, abs=1e-12)
    assert kid.std == pytest.approx(expected.std, rel=1e-9, abs=1e-12)


def test_device_copy_rate_diversity_and_bytes_equal_numpy():
    rng = np.random.default_rng(1)
    training = rng.uniform(-1, 1, (40, 6, 6, 1)).astype(np.float32)
    samples = np.concatenate([training[:10] + 0.001, rng.uniform(-1, 1, (30, 6, 6, 1))])
    samples = samples.astype(np.float32)
    expected = scores.copy_rate(samples, training)
    rate = device_scores.copy_rate(tf.constant(samples), tf.constant(training), expected.threshold)
    assert float(rate) == expected.rate >= 10 / 40  # the ten near-copies at least
    assert float(device_scores.mean_pairwise_distance(tf.constant(samples))) == pytest.approx(
        scores.mean_pairwise_distance(samples), rel=1e-9
    )
    ties = np.array([-1.0, -1.1, 1.2, -1 + 0.5 / 127.5, -1 + 1.5 / 127.5, 0.0, 0.3], np.float32)
    np.testing.assert_array_equal(
        device_scores.to_uint8(tf.constant(ties)).numpy(), imaging.to_uint8(ties)
    )


def test_a_default_run_prints_only_its_own_lines(tmp_path):
    config = tiny_config(tmp_path, train={"steps": 8})
    config["output"].update(log_every=4, sample_every=4, checkpoint_every=4)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-m", "dcgan", "train", "--config", str(write_config(tmp_path, config))],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    foreign = [line for line in result.stderr.splitlines() if not line.startswith("dcgan: ")]
    assert foreign == []  # no TensorFlow C++ log lines, no Python warnings
