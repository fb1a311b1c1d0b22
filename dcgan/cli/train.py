"""`dcgan train`: a new run from a config, or a resumed one."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dcgan import config as config_module
from dcgan.cli.common import (
    EXIT_INTERRUPTED,
    InputError,
    command_name,
    interrupt,
    shown,
)
from dcgan.errors import DcganError, TrainingDiverged
from dcgan.runtime import import_tensorflow

if TYPE_CHECKING:
    from dcgan.data.preset import Preset


@click.command(short_help="Train a DCGAN from a YAML config, or resume a run.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Experiment YAML file (configs/*.yaml). Without it every key takes its default: "
    "the digits data and the DCGAN paper's settings.",
)
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path),
    help="A folder of images to train on, with no YAML: the settings are picked from its "
    "images (size, aspect, gray or colour, small-data tools) and written to the run's "
    "config.yaml, to edit and train again with --config.",
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(path_type=Path),
    help="Continue this run directory from its latest checkpoint.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one config value, e.g. --set train.steps=200 (repeatable).",
)
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
def train(
    config_path: Path | None,
    data_path: Path | None,
    resume_dir: Path | None,
    overrides: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Train a DCGAN from a YAML config or a folder of images, or resume a run.

    \b
    Examples:
      dcgan train --config configs/digits.yaml
      dcgan train --data ~/pictures/bikes
      dcgan train --config configs/biked.yaml --set train.steps=20000
      dcgan train --resume runs/00003-biked --set train.steps=40000
    """
    from dcgan.data.classes import with_classes
    from dcgan.storage import run_folder

    given = [name for name, value in (("--config", config_path), ("--data", data_path),
             ("--resume", resume_dir)) if value is not None]  # fmt: skip
    if len(given) > 1:
        raise InputError(
            f"{' and '.join(given)} exclude each other: give one (a run keeps its own "
            "config; --data picks a config for a folder)"
        )
    try:
        if resume_dir is not None:
            run = run_folder.open_run_dir(resume_dir)
            config = config_module.load(
                run.config, overrides, frozen_keys=config_module.FROZEN_ON_RESUME
            )
        else:
            run = None
            preset = _folder_preset(data_path) if data_path is not None else None
            config = config_module.load(
                config_path,
                overrides,
                preset=(f"--data {data_path}", preset.raw) if preset is not None else None,
            )
            if preset is not None:  # told once the --set overrides have been checked too
                _tell_preset(data_path, preset, config)
            if config.train.init_from is not None:  # before TensorFlow starts
                run_folder.check_start_from(config.train.init_from)
        # A conditional run's classes, before TensorFlow starts: a folder that cannot give
        # them is one line, and --dry-run shows them.
        config = with_classes(config)
    except DcganError as exc:
        raise InputError.of(exc) from None
    for line in config_module.inert_settings(config):
        click.echo(f"dcgan: note: {line}", err=True)
    if dry_run:
        click.echo(config.to_yaml(), nl=False)
        return

    import_tensorflow()
    from dcgan.training.execution import writes_the_run
    from dcgan.training.loop import train as train_run

    if not writes_the_run(config.train):
        # Another worker of a cluster: trains in step with the chief, keeps nothing.
        with run_folder.worker_scratch(run) as scratch:
            try:
                result = train_run(config, scratch)
            except DcganError as exc:
                raise InputError.of(exc) from None
        click.echo(f"worker finished at step {result.step}; the chief wrote the run")
        return

    new_run = run is None
    signal.signal(signal.SIGTERM, interrupt)  # a scheduler's stop is handled like Ctrl-C
    try:
        if run is None:
            run = run_folder.create_run_dir(config.output.dir, config.name)
        result = train_run(config, run)
    except DcganError as exc:
        # A run that diverged keeps its log and grids, to see what went wrong.
        if new_run and run is not None and not isinstance(exc, TrainingDiverged):
            run_folder.discard_unstarted_run(run)
        raise InputError.of(exc) from None
    except KeyboardInterrupt:  # before training began: nothing to save
        if new_run and run is not None:
            run_folder.discard_unstarted_run(run)
        click.echo("interrupted before training started", err=True)
        sys.exit(EXIT_INTERRUPTED)
    _summarise(result)
    if result.interrupted:
        sys.exit(EXIT_INTERRUPTED)


def _folder_preset(folder: Path) -> Preset:
    """The settings `--data` picks for folder, with the reason for each."""
    from dcgan.data.preset import folder_preset, survey_folder

    return folder_preset(survey_folder(folder))


def _tell_preset(folder: Path, preset: Preset, config: config_module.Config) -> None:
    """The preset's reasons, what the --sets changed of it, what the folder's size means
    for the run as configured and the preset's tips, on stderr (a --dry-run's YAML stays
    clean)."""
    from dcgan.data.preset import few_images_caution

    click.echo(f"dcgan: settings for {shown(folder)}:", err=True)
    for reason in preset.reasons:
        click.echo(f"  {reason}", err=True)
    notes = config_module.preset_changes(config, preset.raw)
    train = config.train
    caution = few_images_caution(preset.count, train.steps, train.batch_size, train.init_from)
    for line in [*notes, *([caution] if caution else [])]:
        click.echo(f"dcgan: note: {line}", err=True)
    if not config.model.conditional:
        for line in preset.tips:
            click.echo(f"dcgan: tip: {line}", err=True)


def _summarise(result) -> None:
    run = result.run
    root = shown(run.root)
    grids = run.sample_grids()
    state = "interrupted" if result.interrupted else "finished" if result.finished else "stopped"
    lines = [
        f"{state} at step {result.step}/{result.total_steps} "
        f"({result.step - result.start_step} steps in {result.seconds:.0f} s): {root}"
    ]
    if grids:
        lines.append(
            f"  samples/         {len(grids)} grids of the fixed noise, "
            f"latest {shown(grids[-1][1])}"
        )
    # An interrupted run's generator.keras and progress.gif are from an earlier finish.
    for path, what, current in (
        (run.progress_gif, "training progress as a GIF", result.finished),
        (run.losses_plot, "loss curves", True),
        (run.metrics, "losses and D outputs per step", True),
        (run.generator, "the trained generator", result.finished),
    ):
        if current and path.exists():
            lines.append(f"  {path.name:<16} {what}")
    from dcgan.storage.checkpoints import latest_checkpoint

    latest = latest_checkpoint(run.checkpoints)
    if latest is not None:
        lines.append(f"  checkpoints/     latest {latest[1].name}")
    lines.append(f"  logs/            tensorboard --logdir {shown(run.tensorboard)}")
    if result.finished:
        lines.append(
            f"open {shown(run.progress_gif)} to watch it learn; "
            f"train further with: {command_name()} train --resume {root} --set train.steps=N"
        )
        lines.append(
            f"its settings are in {shown(run.config)}: copy and edit it, then "
            f"{command_name()} train --config <your copy>"
        )
    else:
        lines.append(f"continue with: {command_name()} train --resume {root}")
    click.echo("\n".join(lines))
