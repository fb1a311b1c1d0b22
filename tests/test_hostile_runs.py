"""Issue 15's corpus for configs and run folders: hostile YAML, special files, links planted
in a run, damaged run files, and a listing or resume that must survive them.

Each case fails on the code before the issue (a hang, a traceback, a file outside the run
written, a finished run replaced). Cases that could hang run under an alarm; bombs run the
CLI in a subprocess with a memory limit.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from conftest import (
    checkpoint_steps,
    copy_run,
    run_dirs,
    save_image,
    snapshot,
    tiny_config,
    write_config,
)
from PIL import Image

from dcgan.cli import main

CLI = [sys.executable, "-c", "from dcgan.cli import main; main()"]


def cli(*args: str, timeout: float = 120, memory: int | None = None) -> subprocess.CompletedProcess:
    """The real command in its own process: a hang is a timeout, a bomb a MemoryError."""

    def limit() -> None:
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    try:
        return subprocess.run(
            [*CLI, *args],
            capture_output=True,
            text=True,
            errors="backslashreplace",
            timeout=timeout,
            preexec_fn=limit,
            env={**os.environ, "DCGAN_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"dcgan {' '.join(args)[:200]} did not finish in {timeout} s")


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def invoke(*args: str, timeout: int = 120) -> Ran:
    """The command in this process, under an alarm: a hang fails the test, not the suite.
    Cheaper than cli() by TensorFlow's import; cli() is for bombs that need a memory limit."""

    def expire(signum, frame):
        raise TimeoutError(f"did not finish in {timeout} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(timeout)
    try:
        result = CliRunner().invoke(main, list(args))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    if isinstance(result.exception, TimeoutError):
        pytest.fail(f"dcgan {' '.join(args)[:200]} {result.exception}")
    return Ran(result.exit_code, result.stdout, result.stderr)


def one_error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, output[-2000:]
    assert lines[0].startswith("Error: "), lines[0]
    assert "Traceback" not in output
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One finished four-step run, copied by each case that changes a run."""
    from click.testing import CliRunner

    root = tmp_path_factory.mktemp("finished")
    config = tiny_config(root, train={"steps": 4})
    config["output"].update(sample_every=2, checkpoint_every=2, log_every=2)
    config["eval"] = {"every": None}
    result = CliRunner().invoke(main, ["train", "--config", str(write_config(root, config))])
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(root)
    return run


# --- the config file ----------------------------------------------------------------------

BILLION_LAUGHS = "\n".join(
    ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    + ["name: *a8"]
)


def nested(depth: int) -> str:
    return "train: " + "[" * depth + "]" * depth + "\n"


CONFIG_CASES = {
    "billion laughs": (
        lambda t: BILLION_LAUGHS,
        "line 1, column 1: expands to more than 10,000 values (aliases inside aliases)",
    ),
    "an alias inside itself": (
        lambda t: "train: &t\n  diffaugment: [*t]\n",
        "an alias refers to the collection it is in",
    ),
    "nested 5,000 deep": (lambda t: nested(5000), "nested more than 32 levels deep"),
    "over a MiB": (lambda t: "# " + "x" * (2 * 2**20) + "\n", "is 2.0 MiB, over the 1.0 MiB"),
    "a 500 KB value": (lambda t: f"name: {'x' * 500_000}\n", "(500,002 characters))"),
    "a long key": (lambda t: f"{'k' * 1000}: 1\n", "(1,000 characters): unknown key"),
    "infinite learning rate": (lambda t: "train:\n  g_lr: .inf\n", "train.g_lr: input should"),
    "infinite penalty weight": (
        lambda t: "train:\n  gp_weight: .inf\n",
        "train.gp_weight: input should be a finite number",
    ),
    "image size of 3*2**30": (
        lambda t: f"data:\n  image_size: {3 * 2**30}\n",
        "data.image_size: 3221225472 is not a size from 1 to the 1024 pixels allowed",
    ),
    "latent size of 10**8": (
        lambda t: "model:\n  latent_dim: 100000000\n",
        "model.latent_dim: input should be less than or equal to 4096",
    ),
    "a million filters": (
        lambda t: "model:\n  g_width: 1000000\n",
        "model.g_width: input should be less than or equal to 4096",
    ),
    "KID on a million samples": (
        lambda t: "eval:\n  num_samples: 1000000\n",
        "eval.num_samples: input should be less than or equal to 20000",
    ),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_a_hostile_config_is_one_short_line_in_bounded_memory(tmp_path, case):
    make, expected = CONFIG_CASES[case]
    path = tmp_path / "hostile.yaml"
    path.write_text(make(tmp_path), encoding="utf-8")
    # --dry-run: a config that passes would print itself and exit 0.
    result = cli("train", "--config", str(path), "--dry-run", timeout=60, memory=1 << 30)
    assert result.returncode == 2, result.stderr[-2000:]
    line = one_error_line(result.stdout + result.stderr)
    assert expected in line
    assert len(line) < 400


def test_anchors_and_aliases_still_work(runner, tmp_path):
    path = tmp_path / "shared.yaml"
    path.write_text("train:\n  g_lr: &lr 1.0e-4\n  d_lr: *lr\n", encoding="utf-8")
    result = runner.invoke(main, ["train", "--config", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    train = yaml.safe_load(result.output)["train"]
    assert train["g_lr"] == train["d_lr"] == 1.0e-4


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.d_lr=.inf", "--set train.d_lr: input should be a finite number"),
        ("name=" + "n" * 100_000, "(100,002 characters))"),
    ],
)
def test_a_hostile_override_is_one_short_line(runner, override, expected):
    result = runner.invoke(main, ["train", "--set", override, "--dry-run"])
    assert result.exit_code == 2, result.output[:500]
    line = one_error_line(result.output)
    assert expected in line
    assert len(line) < 400


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo"])
def test_a_config_that_is_not_a_regular_file_is_refused_without_reading(tmp_path, kind):
    path = Path("/dev/zero")
    if kind == "fifo":
        path = tmp_path / "config.yaml"
        os.mkfifo(path)
    result = cli("train", "--config", str(path), timeout=30, memory=1 << 30)
    assert result.returncode == 2
    line = one_error_line(result.stdout + result.stderr)
    what = "a character device" if kind == "/dev/zero" else "a FIFO (named pipe)"
    assert f"{path}: is {what}, not a config file" in line


def test_paths_that_are_not_utf8_are_refused_by_name(runner, tmp_path):
    odd = os.fsdecode(bytes(tmp_path) + b"/runs-\xff")
    result = runner.invoke(main, ["train", "--set", f"output.dir={odd}", "--dry-run"])
    assert result.exit_code == 2
    line = one_error_line(result.output)
    assert "--set output.dir: value error, '" in line and "is not valid UTF-8: rename" in line


def test_image_files_named_in_other_encodings_are_logged_not_fatal(runner, tmp_path):
    folder = tmp_path / "images"
    for i in range(4):
        save_image(folder / f"{i}.png", np.full((16, 16, 3), 40 * i, np.uint8))
    with open(os.fsencode(folder) + b"/broken-\xff.png", "wb") as stream:
        stream.write(b"not a picture")
    data = {"source": "folder", "path": str(folder), "channels": 3}
    config = write_config(tmp_path, tiny_config(tmp_path, data=data, train={"steps": 2}))
    result = runner.invoke(main, ["train", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "Logging error" not in result.output
    (run,) = run_dirs(tmp_path)
    log = (run / "train.log").read_text(encoding="utf-8")
    assert "skipped 1 unreadable or too small file(s) of 5" in log
    assert "broken-\\udcff.png" in log or "broken-\\xff.png" in log


# --- links and special files in a run folder ----------------------------------------------


@pytest.mark.parametrize("name", ["train.lock", "train.log", "metrics.csv"])
def test_a_file_planted_as_a_link_in_a_run_is_never_written_through(finished, tmp_path, name):
    run = copy_run(finished, tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (run / name).unlink(missing_ok=True)
    (run / name).symlink_to(victim)
    result = invoke("train", "--resume", str(run), "--set", "train.steps=6")
    assert result.returncode == 2, result.stderr[-2000:]
    line = one_error_line(result.stderr)
    assert f"{run / name}: is a symbolic link; dcgan never writes through links" in line
    assert victim.read_text() == "precious\n"


def test_a_run_subfolder_planted_as_a_link_is_refused(finished, tmp_path):
    run = copy_run(finished, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(run / "samples", elsewhere)
    (run / "samples").symlink_to(elsewhere)
    before = sorted(p.name for p in elsewhere.iterdir())
    result = invoke("train", "--resume", str(run), "--set", "train.steps=6")
    assert result.returncode == 2
    assert "samples: is a symbolic link" in one_error_line(result.stderr)
    assert sorted(p.name for p in elsewhere.iterdir()) == before


@pytest.mark.parametrize("name", ["train.lock", "train.log", "fixed_noise.npy", "config.yaml"])
def test_a_fifo_in_a_run_folder_is_refused_without_blocking(finished, tmp_path, name):
    run = copy_run(finished, tmp_path)
    (run / name).unlink(missing_ok=True)
    os.mkfifo(run / name)
    result = invoke("train", "--resume", str(run), "--set", "train.steps=6", timeout=90)
    assert result.returncode == 2, result.stderr[-2000:]
    line = one_error_line(result.stderr)
    assert f"{run / name}: is a FIFO (named pipe)" in line


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs filled to the last byte (needs root to mount)."""
    mount = tmp_path / "full"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for a full disk needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)])
    if done.returncode != 0:
        pytest.skip("mount -t tmpfs failed here (no CAP_SYS_ADMIN in this container?)")
    try:
        (mount / "runs").mkdir()
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)])


def test_a_full_disk_when_the_lock_is_written_is_one_line_and_leaves_no_run(
    runner, tmp_path, full_disk
):
    config = write_config(tmp_path, tiny_config(full_disk))
    result = runner.invoke(main, ["train", "--config", str(config)])
    assert result.exit_code == 1, result.output
    line = one_error_line(result.output)
    assert "train.lock: cannot write the run's lock: No space left on device" in line
    assert list((full_disk / "runs").iterdir()) == []


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("empty", "fixed_noise.npy: not a saved latent batch (No data left in file); delete it"),
        ("pickle", "fixed_noise.npy: not a saved latent batch (Object arrays cannot be loaded"),
        ("latent size", "expected finite floats of shape (n, 8), got float32 (4, 3)"),
        ("nan", "expected finite floats of shape (n, 8), got float32 (4, 8)"),
    ],
)
def test_damaged_fixed_latents_are_one_line_naming_the_file(finished, tmp_path, damage, expected):
    run = copy_run(finished, tmp_path)
    path = run / "fixed_noise.npy"
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "pickle":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif damage == "latent size":
        np.save(path, np.zeros((4, 3), np.float32))
    else:
        np.save(path, np.full((4, 8), np.nan, np.float32))
    before = snapshot(run)
    result = invoke("train", "--resume", str(run), "--set", "train.steps=6")
    assert result.returncode == 2, result.stderr[-2000:]
    assert expected in one_error_line(result.stderr)
    after = snapshot(run)
    after.pop("train.log", None), before.pop("train.log", None)
    assert after == before


# --- damaged files among a run's own ------------------------------------------------------


def foreign_files(samples: Path) -> None:
    """What a user might drop into samples/: a photo of another size and mode, a text file
    with a grid's name, and a FIFO with one."""
    save_image(samples / "step-0000001.png", np.zeros((50, 70, 3), np.uint8))
    (samples / "step-0000003.png").write_text("not a picture")
    os.mkfifo(samples / "step-0000005.png")


def test_gif_leaves_out_foreign_files_in_samples(finished, tmp_path):
    run = copy_run(finished, tmp_path)
    foreign_files(run / "samples")
    result = invoke("gif", str(run), "--force", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "progress.gif: 3 frames, steps 0..4" in result.stdout
    assert "left out samples/step-0000001.png: 70x50 RGB, not 38x38 L" in result.stderr
    assert "left out samples/step-0000003.png: not an image file" in result.stderr
    assert "step-0000005.png: is a FIFO (named pipe), not a sample grid" in result.stderr
    with Image.open(run / "progress.gif") as gif:
        assert gif.n_frames == 3  # steps 0, 2 and 4


def test_a_resumed_run_finishes_with_foreign_files_in_samples(finished, tmp_path):
    run = copy_run(finished, tmp_path)
    foreign_files(run / "samples")
    result = invoke("train", "--resume", str(run), "--set", "train.steps=6", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "progress.gif: left out 3 file(s) of samples/" in (run / "train.log").read_text()
    with Image.open(run / "progress.gif") as gif:
        assert gif.n_frames == 4  # steps 0, 2, 4, 6
    assert (run / "checkpoints" / "step-0000006").is_dir()


def test_metrics_rows_that_are_not_numbers_do_not_stop_a_resumed_run(finished, tmp_path):
    run = copy_run(finished, tmp_path)
    with open(run / "metrics.csv", "a") as stream:
        stream.write("3,oops,1,1,1,1\n")
        stream.write("4," + "9" * 200_000 + ",1,1,1,1\n")
        stream.write("x,1,1,1,1,1\n")
    plot = (run / "losses.png").stat().st_mtime_ns
    result = invoke("train", "--resume", str(run), "--set", "train.steps=6", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run / "losses.png").stat().st_mtime_ns != plot
    steps = [line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == ["2", "4", "6"]


# --- a listing that survives one bad run -----------------------------------------------------


def break_config_list(run: Path) -> str:
    (run / "config.yaml").write_text("- a list\n- of things\n")
    return "config.yaml is a list, not a mapping of keys"


def break_config_encoding(run: Path) -> str:
    (run / "config.yaml").write_bytes(b"name: caf\xe9\n")
    return "config.yaml: is not UTF-8 text (byte 0xe9 at offset 9)"


def break_metrics_values(run: Path) -> str:
    (run / "metrics.csv").write_text(
        "step,d_loss,g_loss,d_real,d_fake,images_per_sec\n2,0.5,nope,1,1,1\n"
    )
    return ""


def break_metrics_huge_field(run: Path) -> str:
    with open(run / "metrics.csv", "a") as stream:
        stream.write("6," + "1" * 300_000 + ",1,1,1,1\n")
    return ""


def break_lock_fifo(run: Path) -> str:
    os.mkfifo(run / "train.lock")
    return "train.lock: is a FIFO (named pipe); remove it"


def break_config_bomb(run: Path) -> str:
    (run / "config.yaml").write_text(BILLION_LAUGHS)
    return "expands to more than 10,000 values (aliases inside aliases)"


@pytest.mark.parametrize(
    "damage",
    [
        break_config_list,
        break_config_encoding,
        break_metrics_values,
        break_metrics_huge_field,
        break_lock_fifo,
        break_config_bomb,
    ],
)
def test_runs_lists_every_run_and_shows_a_broken_one_as_broken(finished, tmp_path, damage):
    healthy = copy_run(finished, tmp_path)
    bad = tmp_path / "runs" / "00007-damaged"
    shutil.copytree(finished, bad)
    reason = damage(bad)
    result = cli("runs", str(tmp_path / "runs"), timeout=60, memory=1 << 30)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line.strip()}
    assert "4/4" in rows[healthy.name] and rows[healthy.name].rstrip().endswith("finished")
    if reason:
        assert rows["00007-damaged"].rstrip().endswith("broken")
        assert f"00007-damaged: broken: {reason}" in result.stdout
    else:  # a bad row is left out; the run itself is readable
        assert "4/4" in rows["00007-damaged"]


# --- a resume that does not silently start over -------------------------------------------


def test_a_finished_run_without_checkpoints_is_not_trained_again_from_zero(finished, tmp_path):
    run = copy_run(finished, tmp_path)
    shutil.rmtree(run / "checkpoints")
    before = snapshot(run)
    result = invoke("train", "--resume", str(run), "--set", "train.steps=6")
    assert result.returncode == 2, result.stderr[-2000:]
    line = one_error_line(result.stderr)
    assert f"{run}: trained to step 4 but has no checkpoint left in checkpoints/" in line
    assert f"dcgan train --config {run / 'config.yaml'}" in line
    after = snapshot(run)
    after.pop("train.log", None), before.pop("train.log", None)
    assert after == before


def test_a_run_stopped_before_its_first_checkpoint_still_starts_over(runner, tmp_path):
    """The refusal above is not a refusal of every run without checkpoints."""
    config = tiny_config(tmp_path, train={"steps": 4})
    config["output"].update(checkpoint_every=4, log_every=2, sample_every=2)
    path = write_config(tmp_path, config)
    assert runner.invoke(main, ["train", "--config", str(path)]).exit_code == 0
    (run,) = run_dirs(tmp_path)
    shutil.rmtree(run / "checkpoints")
    (run / "generator.keras").unlink()
    config_text = yaml.safe_load((run / "config.yaml").read_text())
    assert config_text["output"]["checkpoint_every"] == 4
    result = runner.invoke(main, ["train", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "checkpoints" / "step-0000004").is_dir()


@pytest.mark.parametrize("command", ["train", "sample"])
@pytest.mark.parametrize("others", ["kept", "removed"])
def test_a_fifo_among_checkpoint_files_is_refused_without_blocking(
    finished, tmp_path, caplog, command, others
):
    """Refused, never read: passed by for the older checkpoint (or generator.keras) where
    there is one, the one error line where there is none."""
    run = copy_run(finished, tmp_path)
    (data,) = (run / "checkpoints" / "step-0000004").glob("ckpt.data-*")
    data.unlink()
    os.mkfifo(data)
    if others == "removed":
        shutil.rmtree(run / "checkpoints" / "step-0000002")
        (run / "generator.keras").unlink()
    args = (
        ["train", "--resume", str(run), "--set", "train.steps=6"]
        if command == "train"
        else ["sample", "--ckpt", str(run), "-n", "2", "--out", str(tmp_path / "out")]
    )
    result = invoke(*args, timeout=90)
    refused = f"{data}: is a FIFO (named pipe), not a checkpoint file"
    if others == "removed":
        assert result.returncode == 2, result.stderr[-2000:]
        assert refused in one_error_line(result.stderr)
        return
    assert result.returncode == 0, result.stderr[-2000:]
    assert refused in caplog.text and "Traceback" not in result.stderr  # a warning
    if command == "train":
        assert (run / "checkpoints" / "step-0000004.damaged").is_dir()
        assert checkpoint_steps(run) == [4, 6]  # 3 and 4 trained again from step 2
    else:
        assert len(list((tmp_path / "out").glob("*.png"))) == 2


def test_models_that_do_not_fit_in_memory_are_one_line_and_leave_no_run(
    runner, tmp_path, monkeypatch
):
    import dcgan.training.loop

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(dcgan.training.loop, "build_gan", out_of_memory)
    config = write_config(tmp_path, tiny_config(tmp_path))
    result = runner.invoke(main, ["train", "--config", str(config)])
    assert result.exit_code == 1, result.output
    line = one_error_line(result.output)
    assert "out of memory: the data set, the models or a batch do not fit; lower" in line
    assert run_dirs(tmp_path) == []


def test_sample_does_not_write_through_a_folder_planted_as_a_link_in_its_run(
    runner, finished, tmp_path
):
    run = copy_run(finished, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / "generated").symlink_to(elsewhere)
    result = runner.invoke(main, ["sample", "--ckpt", str(run), "-n", "2"])
    assert result.exit_code == 2, result.output
    assert f"{run / 'generated'}: is a symbolic link" in one_error_line(result.output)
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("command", ["evaluate", "nearest"])
def test_measurements_do_not_write_through_a_folder_planted_as_a_link(
    runner, finished, tmp_path, command
):
    run = copy_run(finished, tmp_path)
    folder = "eval" if command == "evaluate" else "nearest"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / folder).symlink_to(elsewhere)
    args = [command, "--ckpt", str(run), "--features", "random", "-n", "10"]
    if command == "nearest":
        args = [command, "--ckpt", str(run), "--features", "random", "-n", "2"]
        args += ["--rate-samples", "10"]
    result = runner.invoke(main, args)
    assert result.exit_code == 2, result.output
    assert f"{run / folder}: is a symbolic link" in one_error_line(result.output)
    assert list(elsewhere.iterdir()) == []


def test_a_checkpoints_folder_linked_to_another_disk_is_read(runner, finished, tmp_path):
    """Only what a command writes must not be a link: checkpoints/ may live elsewhere."""
    run = copy_run(finished, tmp_path)
    shutil.move(run / "checkpoints", tmp_path / "big-disk")
    (run / "checkpoints").symlink_to(tmp_path / "big-disk")
    result = runner.invoke(main, ["sample", "--ckpt", str(run), "-n", "2"])
    assert result.exit_code == 0, result.output
    assert len(list((run / "generated" / "seed-0").glob("*.png"))) == 2


@pytest.mark.parametrize("command", ["train", "sample"])
def test_a_run_folder_whose_name_is_not_utf8_is_named_and_refused(finished, tmp_path, command):
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/runs/00009-caf\xe9"))
    shutil.copytree(finished, odd)
    args = ["train", "--resume", str(odd)] if command == "train" else ["sample", "--ckpt", str(odd)]
    result = invoke(*args, timeout=90)
    assert result.returncode == 2, result.stderr[-2000:]
    line = one_error_line(result.stderr)
    assert "00009-caf\\xe9: is not valid UTF-8; rename it" in line


def test_a_run_without_checkpoints_that_trained_past_its_first_is_not_started_over(
    finished, tmp_path
):
    """No generator.keras (it never finished), but its metrics go past the first
    checkpoint's step, so a checkpoint existed and was deleted."""
    run = copy_run(finished, tmp_path)
    shutil.rmtree(run / "checkpoints")
    (run / "generator.keras").unlink()
    before = snapshot(run)
    result = invoke("train", "--resume", str(run), "--set", "train.steps=6")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "trained to step 4 but has no checkpoint left" in one_error_line(result.stderr)
    after = snapshot(run)
    after.pop("train.log", None), before.pop("train.log", None)
    assert after == before
