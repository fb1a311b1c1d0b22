"""Commands on a run's files: `dcgan runs` lists runs, `dcgan gif` animates the grids."""

from __future__ import annotations

from pathlib import Path

import click

from dcgan.cli.common import (
    force_option,
    fps_option,
    input_errors,
    shown,
)
from dcgan.errors import DcganError, printable
from dcgan.files import writing


@click.command(short_help="Animate a run's sample grids in step order, also while it trains.")
@click.argument("run_dir", type=click.Path(path_type=Path))
@fps_option
@click.option(
    "--every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Use every K-th sample grid (the last one always).",
)
@click.option(
    "--out", type=click.Path(path_type=Path), help="GIF file. Default: <run>/progress.gif."
)
@force_option
def gif(run_dir: Path, fps: float, every: int, out: Path | None, force: bool) -> None:
    """Make a GIF of a run's sample grids in step order, each frame labelled with its step,
    also while the run trains. Without --out it replaces the run's own progress.gif, which
    training writes too.

    \b
    Example:
      dcgan gif runs/00000-digits --every 2 --out progress-fast.gif
    """
    from dcgan import imaging
    from dcgan.storage import run_folder

    with input_errors():
        run = run_folder.open_run_dir(run_dir)
        grids = run.sample_grids()
        if not grids:
            raise DcganError(f"{run_dir}: no sample grids yet (samples/step-*.png)")
        chosen = grids[::every]
        if chosen[-1] != grids[-1]:
            chosen.append(grids[-1])
        if out is None:  # the run's own GIF, which training rewrites anyway
            run_folder.refuse_links(run, ("progress.gif",))
            out = run.progress_gif
        else:
            writing.refuse_existing([out], force)
        made = imaging.write_progress_gif(chosen, out, fps=fps)
        if not made.frames:
            raise DcganError(f"{run_dir}: no readable sample grid (first: {made.skipped[0]})")
    if made.thinned_from:
        click.echo(
            f"used {made.frames} of {made.thinned_from} grids, evenly spaced: a GIF holds at "
            f"most {imaging.MAX_GIF_FRAMES} frames (--every picks them yourself)",
            err=True,
        )
    for reason in made.skipped[:3]:
        click.echo(f"left out samples/{reason}", err=True)
    if len(made.skipped) > 3:
        click.echo(f"left out {len(made.skipped) - 3} more file(s) of samples/", err=True)
    click.echo(f"wrote {shown(out)}: {made.frames} frames, steps {made.steps[0]}..{made.steps[-1]}")


@click.command(short_help="List the runs in a folder: data, size, progress, losses, state.")
@click.argument("folder", type=click.Path(path_type=Path), default="runs")
def runs(folder: Path) -> None:
    """List the runs under an output folder: data, size, progress, last losses, the last
    sample grid and the state (finished, stopped, running, or broken with the reason).

    \b
    Example:
      dcgan runs runs/
    """
    from dcgan.storage import listing

    with input_errors():
        summaries = listing.list_runs(folder)
    if not summaries:
        click.echo(f"no runs in {folder}")
        return
    header = ("run", "data", "size", "classes", "step", "d_loss", "g_loss", "last sample", "state")
    rows = [header]
    for s in summaries:
        total = f"/{s.total_steps}" if s.total_steps is not None else ""
        rows.append(
            (
                printable(s.name),
                s.source,
                s.size,
                s.classes,
                f"{s.step}{total}",
                f"{s.d_loss:.3f}" if s.d_loss is not None else "-",
                f"{s.g_loss:.3f}" if s.g_loss is not None else "-",
                s.last_sample,
                s.state,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    for s in summaries:
        if s.problem:
            click.echo(f"{printable(s.name)}: broken: {printable(s.problem)}")
        for note in s.notes:
            click.echo(f"{printable(s.name)}: {printable(note)}")
