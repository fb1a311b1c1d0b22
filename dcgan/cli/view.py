"""`dcgan view`: serve an exported web page on this computer."""

from __future__ import annotations

from pathlib import Path

import click

from dcgan.cli.common import input_errors


@click.command(short_help="Serve an exported web page to this computer only.")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="The port on 127.0.0.1; 0 picks a free one.",
)
def view(folder: Path, port: int) -> None:
    """Serve FOLDER (written by `dcgan export --format web`) at http://127.0.0.1:PORT/
    until Ctrl-C. Only this computer can open it. The page also works opened from disk;
    this is for a browser that will not run WebAssembly from a file.

    \b
    Example:
      dcgan export --ckpt runs/00000-digits --format web
      dcgan view runs/00000-digits/export/web
    """
    from dcgan.web.server import serve

    def ready(url: str) -> None:
        click.echo(f"serving {folder} at {url} (this computer only); Ctrl-C stops", err=True)

    with input_errors():
        serve(folder, port, ready)
