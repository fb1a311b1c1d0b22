"""The `dcgan` command. Each command parses, loads the config, calls one function and maps
errors to one line and exit code 2. TensorFlow is imported inside command bodies, so
`dcgan --help` and config errors answer at once."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import click

from dcgan import __version__
from dcgan import config as config_module
from dcgan.errors import DcganError
from dcgan.runtime import import_tensorflow

EXIT_INTERRUPTED = 130


class InputError(click.ClickException):
    """Bad user input: printed as one line, exit code 2."""

    exit_code = 2


def _setup_logging() -> None:
    logger = logging.getLogger("dcgan")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("dcgan: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dcgan")
def main() -> None:
    """Train Deep Convolutional GANs on your images and turn them into pictures."""
    _setup_logging()


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Experiment YAML file (configs/*.yaml). Default: the built-in digits setup.",
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
    config_path: Path | None, resume_dir: Path | None, overrides: tuple[str, ...], dry_run: bool
) -> None:
    """Train a DCGAN from a YAML config, or resume a run.

    \b
    Examples:
      dcgan train --config configs/digits.yaml
      dcgan train --config configs/biked.yaml --set train.steps=20000
      dcgan train --resume runs/00003-biked --set train.steps=40000
    """
    from dcgan import rundir

    if config_path is not None and resume_dir is not None:
        raise InputError("--config and --resume exclude each other: a run keeps its own config")
    try:
        if resume_dir is not None:
            run = rundir.open_run_dir(resume_dir)
            config = config_module.load(
                run.config, overrides, frozen_keys=config_module.FROZEN_ON_RESUME
            )
        else:
            run = None
            config = config_module.load(config_path, overrides)
    except DcganError as exc:
        raise InputError(str(exc)) from None
    if dry_run:
        click.echo(config.to_yaml(), nl=False)
        return

    import_tensorflow()
    from dcgan.train import train as train_run

    new_run = run is None
    signal.signal(signal.SIGTERM, _interrupt)  # a scheduler's stop is handled like Ctrl-C
    try:
        if run is None:
            run = rundir.create_run_dir(config.output.dir, config.name)
        click.echo(f"run directory: {_shown(run.root)}", err=True)
        result = train_run(config, run)
    except DcganError as exc:
        if new_run and run is not None:
            rundir.discard_unstarted_run(run)
        raise InputError(str(exc)) from None
    except KeyboardInterrupt:  # before training began: nothing to save
        if new_run and run is not None:
            rundir.discard_unstarted_run(run)
        click.echo("interrupted before training started", err=True)
        sys.exit(EXIT_INTERRUPTED)
    _summarise(result)
    if result.interrupted:
        sys.exit(EXIT_INTERRUPTED)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _summarise(result) -> None:
    run = result.run
    root = _shown(run.root)
    grids = run.sample_grids()
    state = "interrupted" if result.interrupted else "finished" if result.finished else "stopped"
    lines = [
        f"{state} at step {result.step}/{result.total_steps} "
        f"({result.step - result.start_step} steps in {result.seconds:.0f} s): {root}"
    ]
    if grids:
        lines.append(
            f"  samples/         {len(grids)} grids of the fixed noise, "
            f"latest {_shown(grids[-1][1])}"
        )
    for path, what in (
        (run.progress_gif, "training progress as a GIF"),
        (run.losses_plot, "loss curves"),
        (run.metrics, "losses and D outputs per step"),
        (run.generator, "the trained generator"),
    ):
        if path.exists():
            lines.append(f"  {path.name:<16} {what}")
    from dcgan.checkpoints import latest_checkpoint

    latest = latest_checkpoint(run.checkpoints)
    if latest is not None:
        lines.append(f"  checkpoints/     latest {latest[1].name}")
    lines.append(f"  logs/            tensorboard --logdir {_shown(run.tensorboard)}")
    if result.finished:
        lines.append(
            f"open {_shown(run.progress_gif)} to watch it learn; "
            f"train further with: dcgan train --resume {root} --set train.steps=N"
        )
    else:
        lines.append(f"continue with: dcgan train --resume {root}")
    click.echo("\n".join(lines))


def _shown(path: Path) -> str:
    """Paths relative to the working directory when below it: shorter to read and copy."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
