"""Sizes of every export format and the browser's time per batch, for README's "Using the
generator elsewhere". Exports each run to a temporary folder, opens the web page in
headless Chromium (tests/browser.py) and times batches of 1, 16 and 64 images there.

    .venv/bin/python scripts/bench_export.py runs/00000-digits runs/00001-emoji
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import CHROMIUM, Browser  # noqa: E402

from dcgan.cli import main  # noqa: E402
from dcgan.generation.export import FILE_NAMES, written_size  # noqa: E402

FORMATS = ("keras", "savedmodel", "onnx", "tflite", "web")
BATCHES = (1, 16, 64)
REPEATS = 5


def export_all(run: Path, folder: Path) -> dict[str, Path]:
    written = {}
    for fmt in FORMATS:
        out = folder / FILE_NAMES[fmt]
        result = CliRunner().invoke(
            main, ["export", "--ckpt", str(run), "--format", fmt, "--out", str(out)]
        )
        if result.exit_code != 0:
            raise SystemExit(f"export --format {fmt} of {run} failed: {result.output}")
        written[fmt] = out
    return written


def browser_times(page: Path, profile: Path) -> dict[int, float]:
    """Median milliseconds per batch over REPEATS seeds, after one batch to warm up."""
    times = {}
    with Browser(profile) as browser:
        browser.open((page / "index.html").as_uri())
        browser.wait_for("window.dcganReady")
        for count in BATCHES:
            runs = []
            for seed in range(REPEATS + 1):
                runs.append(browser.wait_for(
                    f"document.getElementById('count').value = {count};"
                    f"document.getElementById('seed').value = {seed};"
                    "showSamples().then(drawn => drawn.milliseconds)"
                ))  # fmt: skip
            times[count] = statistics.median(runs[1:])
    return times


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    if CHROMIUM is None:
        raise SystemExit("needs Chromium (apt-get install chromium)")
    header = ["run", *FORMATS, *(f"browser ms / {n}" for n in BATCHES)]
    rows = []
    for run in args.runs:
        with tempfile.TemporaryDirectory() as folder:
            written = export_all(run, Path(folder))
            sizes = [f"{written_size(written[fmt]) / 2**20:.1f} MiB" for fmt in FORMATS]
            times = browser_times(written["web"], Path(folder) / "profile")
        rows.append([run.name, *sizes, *(f"{times[n]:.0f}" for n in BATCHES)])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main_()
