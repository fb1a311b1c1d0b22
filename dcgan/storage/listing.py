"""`dcgan runs`: one line per run, read without TensorFlow; a run that cannot be read is
shown as broken, with the reason, and the listing goes on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from dcgan.config import MAX_CONFIG_BYTES, parse_yaml
from dcgan.errors import DcganError, RunDirError, printable, shorten
from dcgan.files.reading import read_text
from dcgan.storage.checkpoints import checkpoint_damage, latest_checkpoint, set_aside
from dcgan.storage.lock import training_pid
from dcgan.storage.metrics_file import read_metrics
from dcgan.storage.run_folder import RUN_PATTERN, RunDir


@dataclass(frozen=True)
class RunSummary:
    name: str
    source: str
    size: str
    step: int
    total_steps: int | None
    d_loss: float | None
    g_loss: float | None
    last_sample: str
    state: str  # finished | stopped | running | broken
    problem: str | None = None  # why a broken run could not be read
    classes: str = "-"  # a conditional run's: "3: blue, green, red"
    notes: tuple[str, ...] = ()  # damaged checkpoints: the newest, those moved aside


def summarize(run: RunDir) -> RunSummary:
    """What `dcgan runs` shows for one run; a run it cannot read is shown as broken, with
    the reason, rather than stopping the listing."""
    try:
        return _summarize(run)
    except (DcganError, OSError, ValueError, yaml.YAMLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return RunSummary(
            name=run.root.name,
            source="?",
            size="?",
            step=0,
            total_steps=None,
            d_loss=None,
            g_loss=None,
            last_sample="-",
            state="broken",
            problem=shorten(reason.replace(str(run.root) + "/", ""), 120),
        )


def _summarize(run: RunDir) -> RunSummary:
    raw = parse_yaml(read_text(run.config, MAX_CONFIG_BYTES, "config file")) or {}
    if not isinstance(raw, dict):
        raise RunDirError(f"config.yaml is a {type(raw).__name__}, not a mapping of keys")
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    train = raw.get("train") if isinstance(raw.get("train"), dict) else {}
    rows = read_metrics(run.metrics)
    latest = latest_checkpoint(run.checkpoints)
    step = max(int(rows[-1]["step"]) if rows else 0, latest[0] if latest else 0)
    total = train.get("steps") if isinstance(train.get("steps"), int) else None
    grids = run.sample_grids()
    if training_pid(run) is not None:
        state = "running"
    elif run.generator.is_file() and total is not None and step >= total:
        state = "finished"
    else:
        state = "stopped"
    size, channels = data.get("image_size", "?"), data.get("channels", "?")
    model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    names = data.get("classes")
    classes = "-"
    if model.get("conditional") is True and isinstance(names, list):
        classes = shorten(f"{len(names)}: " + ", ".join(printable(str(n)) for n in names), 40)
    return RunSummary(
        notes=_checkpoint_notes(run, latest),
        classes=classes,
        name=run.root.name,
        source=shorten(str(data.get("source", "?")), 20),
        size=shorten(f"{_sides(size)}x{channels}", 20),
        step=step,
        total_steps=total,
        d_loss=float(rows[-1]["d_loss"]) if rows else None,
        g_loss=float(rows[-1]["g_loss"]) if rows else None,
        last_sample=grids[-1][1].name if grids else "-",
        state=state,
    )


def _checkpoint_notes(run: RunDir, latest: tuple[int, Path] | None) -> tuple[str, ...]:
    """What the checkpoints' files show without TensorFlow: a newest one cut short (a copy
    that stopped part-way), and the damaged ones a resume moved aside, still kept."""
    notes = []
    damage = checkpoint_damage(latest[1]) if latest else None
    if damage:
        notes.append(
            f"newest checkpoint {latest[1].name} is damaged: {damage}; `dcgan train "
            "--resume` goes on from the one before it, and --ckpt commands pass it by"
        )
    aside = set_aside(run.checkpoints)
    if aside:
        notes.append(
            f"{len(aside)} damaged checkpoint(s) moved aside by a resume "
            f"(checkpoints/{aside[0].name}{' ...' if len(aside) > 1 else ''}): kept for you "
            "to look at; remove them when done"
        )
    return tuple(notes)


def _sides(size: object) -> str:
    """32 -> 32x32; [64, 128] -> 64x128 (height x width), as config.yaml holds them."""
    if isinstance(size, list):
        return "x".join(map(str, size))
    return f"{size}x{size}"


def list_runs(folder: Path) -> list[RunSummary]:
    if not folder.is_dir():
        raise RunDirError(f"{folder}: no such folder of runs")
    runs = [RunDir(p) for p in sorted(folder.iterdir()) if RUN_PATTERN.match(p.name)]
    return [summarize(run) for run in runs if run.root.is_dir() and run.config.exists()]
