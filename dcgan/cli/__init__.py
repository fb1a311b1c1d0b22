"""The `dcgan` command, grouped by task: train (train), a run's files (runs, gif),
pictures (sample, interpolate), export (export, view), latent space (project, arithmetic) and
measurements (evaluate, nearest). Each command parses, calls one function and maps errors
to one line and an exit code. TensorFlow is imported inside command bodies, so
`dcgan --help` and config errors answer at once."""

from __future__ import annotations

import logging
import sys

import click

from dcgan import __version__
from dcgan.cli.generate import export, interpolate, sample
from dcgan.cli.latent import arithmetic, project
from dcgan.cli.measure import evaluate, nearest
from dcgan.cli.runs import gif, runs
from dcgan.cli.train import train
from dcgan.cli.view import view


def _setup_logging() -> None:
    logger = logging.getLogger("dcgan")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("dcgan: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


SECTIONS = (
    ("Train", ("train",)),
    ("Look at a run", ("runs", "gif", "evaluate", "nearest")),
    ("Generate", ("sample", "interpolate")),
    ("Latent space", ("project", "arithmetic")),
    ("Export", ("export", "view")),
)


class _Sections(click.Group):
    """`dcgan --help` with the commands grouped by task, each summary whole."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for _, names in SECTIONS for name in names]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for title, names in SECTIONS:
            rows = [(name, self.commands[name].get_short_help_str(limit=1000)) for name in names]
            with formatter.section(title):
                formatter.write_dl(rows)


@click.group(cls=_Sections, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dcgan")
def main() -> None:
    """Train Deep Convolutional GANs on your images and turn them into pictures."""
    _setup_logging()


COMMANDS = (
    train,
    sample,
    interpolate,
    project,
    arithmetic,
    gif,
    export,
    view,
    evaluate,
    nearest,
    runs,
)
for command in COMMANDS:
    main.add_command(command)
