"""Kill `dcgan train` with SIGKILL at random moments, resume it each time, check the run.

    .venv/bin/python scripts/kill_harness.py --kills 30

A small digits run writes a sample grid, a metrics row and the loss plot every step and a
checkpoint every other step. Kills land during start-up, at random moments of training, and
aimed: as soon as a checkpoint's or a sample grid's temporary appears, mid-write. After
every kill the harness opens every file of the run: config.yaml, fixed_noise.npy,
metrics.csv (one complete row per step, in order), each PNG, each complete checkpoint
(every tensor read). Then it resumes, and checks that the resume
started from the newest complete checkpoint. At the end the run is trained to its last step
without a kill and compared, bit for bit, with a run that was never killed (both use
train.deterministic). TensorBoard event files and train.log are append-only logs that their
readers read up to the last whole record, so they are not checked for a clean end.

Exit status 0 when every kill was survived.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

os.environ.setdefault("DCGAN_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dcgan.config import load as load_config  # noqa: E402
from dcgan.files.writing import TEMPORARY_PATTERN  # noqa: E402
from dcgan.runtime import import_tensorflow  # noqa: E402
from dcgan.storage.checkpoints import latest_checkpoint, list_checkpoints  # noqa: E402
from dcgan.storage.metrics_file import read_metrics  # noqa: E402
from dcgan.storage.run_folder import RunDir  # noqa: E402

RESUMED = re.compile(r"resumed .* from (step-\d+)")
# When each kill lands, and how often: aimed kills wait for that write's temporary to appear.
MOMENTS = {
    "during start-up": 2,
    "at a random moment of training": 4,
    "aimed at a checkpoint write": 2,
    "aimed at a sample grid write": 2,
}


def run_folder(folder: Path, name: str) -> Path:
    found = list((folder / "runs").glob(f"*-killed/{name}"))
    return found[0] if found else folder


def make_config(folder: Path, steps: int, name: str) -> Path:
    config = {
        "name": name,
        "seed": 7,
        "data": {"source": "digits", "image_size": 16, "channels": 1, "max_images": 200},
        "model": {"latent_dim": 16, "g_width": 8, "d_width": 8},
        "train": {"batch_size": 16, "steps": steps, "deterministic": True},
        "output": {
            "dir": str(folder / "runs"),
            "sample_every": 1,
            "num_samples": 16,
            "checkpoint_every": 2,
            "keep_checkpoints": 2,
            "log_every": 1,
        },
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def train_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dcgan", "train", *args]


def interrupted_writes(run: RunDir) -> list[str]:
    """What the killed process was writing: the kinds of its leftover temporaries."""
    kinds = []
    for folder, kind in ((run.checkpoints, "a checkpoint"), (run.samples, "a sample grid")):
        if folder.is_dir():
            kinds += [kind for p in folder.iterdir() if TEMPORARY_PATTERN.match(p.name)]
    if run.root.is_dir():
        for path in run.root.iterdir():
            if TEMPORARY_PATTERN.match(path.name):
                stem, suffix = path.name.split(".")[1], path.suffix  # .metrics.x.tmp.csv
                kinds.append(stem + suffix)
    return kinds


def check_run(run: RunDir) -> list[str]:
    """Every problem found in the run's files; an empty list for a sound run."""
    from PIL import Image

    from dcgan.storage.checkpoints import checkpoint_values  # after import_tensorflow()

    problems = []
    if not run.root.is_dir():
        return []  # killed before the run directory existed
    try:
        if run.config.exists():
            load_config(run.config, check_data=False)
        if run.fixed_noise.exists():
            noise = np.load(run.fixed_noise)
            assert noise.shape == (16, 16) and np.isfinite(noise).all(), noise.shape
    except Exception as exc:  # any failure to read is what this harness looks for
        problems.append(f"config/noise: {exc}")
    if run.metrics.exists():
        text = run.metrics.read_text(encoding="utf-8")
        rows = read_metrics(run.metrics)
        lines = text.splitlines()
        if len(lines) != len(rows) + 1:
            problems.append(f"metrics.csv: {len(lines) - 1} lines but {len(rows)} whole rows")
        steps = [int(row["step"]) for row in rows]
        if steps != list(range(1, len(steps) + 1)):
            problems.append(f"metrics.csv: steps are not 1..n once each: {steps[:5]}...")
    pngs = [path for _, path in run.sample_grids()]
    pngs += [run.losses_plot] if run.losses_plot.exists() else []
    for png in pngs:
        try:
            with Image.open(png) as image:
                image.load()
        except Exception as exc:
            problems.append(f"{png.name}: {exc}")
    for step, folder in list_checkpoints(run.checkpoints):
        try:
            tensors = checkpoint_values(folder)
            assert int(tensors["step/.ATTRIBUTES/VARIABLE_VALUE"]) == step
        except Exception as exc:
            problems.append(f"checkpoint {folder.name}: {exc}")
    return problems


def last_logged_step(folder: Path) -> int:
    """The newest step in the killed run's metrics.csv (rewritten whole, so always sound)."""
    found = list((folder / "runs").glob("*-killed/metrics.csv"))
    rows = read_metrics(found[0]) if found else []
    return int(rows[-1]["step"]) if rows else 0


def resumed_from(run: RunDir, previous_log: str) -> str | None:
    new = run.log.read_text(encoding="utf-8")[len(previous_log) :] if run.log.exists() else ""
    match = RESUMED.search(new)
    return match.group(1) if match else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--steps", type=int, default=200, help="steps of the harness run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument(
        "--max-delay", type=float, default=0.5, help="longest wait after the target step (s)"
    )
    parser.add_argument("--workdir", type=Path, help="keep the runs here (default: a temp dir)")
    args = parser.parse_args()
    import_tensorflow()
    rng = random.Random(args.seed)
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="dcgan-kill-"))
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    began = time.perf_counter()
    reference_config = make_config(folder, args.steps, "unbroken")
    subprocess.run(
        train_command("--config", str(reference_config)),
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    reference_run = RunDir(next((folder / "runs").glob("*-unbroken")))
    print(f"unbroken reference run: {time.perf_counter() - began:.1f} s")

    config = make_config(folder, args.steps, "killed")
    run: RunDir | None = None
    survived, failures, moments, writes = 0, [], Counter(), Counter()
    kills = 0
    while kills < args.kills:
        command = (
            train_command("--config", str(config))
            if run is None
            else train_command("--resume", str(run.root))
        )
        expected = latest_checkpoint(run.checkpoints) if run else None
        log_before = run.log.read_text(encoding="utf-8") if run and run.log.exists() else ""
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        moment = rng.choices(list(MOMENTS), weights=list(MOMENTS.values()))[0]
        if moment == "during start-up":  # imports, restore, data loading
            time.sleep(rng.uniform(0.0, 6.0))
        else:
            # Let it train 1..6 steps past the newest metrics row, then kill it at a random
            # moment of the next step, or as soon as the aimed-at write has begun.
            target = last_logged_step(folder) + rng.randint(1, 6)
            while process.poll() is None and last_logged_step(folder) < target:
                time.sleep(0.02)
            if moment == "at a random moment of training":
                time.sleep(rng.uniform(0.0, args.max_delay))
            else:
                aimed = run_folder(folder, "checkpoints" if "checkpoint" in moment else "samples")
                deadline = time.monotonic() + 20
                while process.poll() is None and time.monotonic() < deadline:
                    if any(TEMPORARY_PATTERN.match(e.name) for e in os.scandir(aimed)):
                        break
                    time.sleep(0.0005)
        if process.poll() is not None:
            _, err = process.communicate()
            failures.append(
                f"process ended before its kill (exit {process.returncode}): {err.strip()[-300:]}"
            )
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        if run is None:
            found = list((folder / "runs").glob("*-killed"))
            run = RunDir(found[0]) if found else None
        if run is None:
            moments["before the run directory existed"] += 1
            survived += 1
            continue
        moments[moment] += 1
        writes.update(interrupted_writes(run))
        problems = check_run(run)
        # The resume must start from the newest complete checkpoint that existed then.
        came_from = resumed_from(run, log_before)
        if expected is not None and came_from not in (None, expected[1].name):
            problems.append(f"resumed from {came_from}, expected {expected[1].name}")
        if problems:
            failures.append(f"kill {kills}: " + "; ".join(problems))
        else:
            survived += 1

    # The last resume runs to the end; its result must equal the unbroken run's.
    final_ok = False
    if run is not None:
        finish = subprocess.run(
            train_command("--resume", str(run.root)), env=env, capture_output=True, text=True
        )
        problems = check_run(run)
        last = latest_checkpoint(run.checkpoints)
        steps = [int(row["step"]) for row in read_metrics(run.metrics)]
        if finish.returncode != 0:
            problems.append(f"final resume exit {finish.returncode}: {finish.stderr[-300:]}")
        elif last is None or last[0] != args.steps or steps[-1:] != [args.steps]:
            problems.append(f"final step {last[0] if last else None}, expected {args.steps}")
        else:
            from dcgan.storage.checkpoints import checkpoint_values

            mine = checkpoint_values(last[1])
            reference = checkpoint_values(latest_checkpoint(reference_run.checkpoints)[1])
            differ = [n for n in reference if not np.array_equal(mine.get(n), reference[n])]
            if differ:
                problems.append(f"final weights differ from the unbroken run: {differ[:3]}")
        leftovers = [p.name for p in run.root.rglob("*") if TEMPORARY_PATTERN.match(p.name)]
        if leftovers:
            problems.append(f"temporaries left after the final run: {leftovers[:3]}")
        final_ok = not problems
        failures += [f"final: {p}" for p in problems]

    print(f"\nkill harness: {folder}")
    print(f"{'kills':<44}{kills:>6}")
    for moment, count in sorted(moments.items()):
        print(f"  {moment:<42}{count:>6}")
    for kind, count in sorted(writes.items()):
        print(f"  {'while writing ' + kind:<42}{count:>6}")
    print(f"{'survived (every file sound, right resume)':<44}{survived:>6}")
    print(f"{'final step and weights equal to unbroken run':<44}{'yes' if final_ok else 'NO':>6}")
    print(f"{'seconds':<44}{time.perf_counter() - began:>6.0f}")
    print(f"\nsurvived {survived} of {kills} kills")
    for failure in failures:
        print(f"FAILED {failure}")
    if not args.workdir and not failures:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if survived == kills == args.kills and final_ok else 1


if __name__ == "__main__":
    sys.exit(main())
