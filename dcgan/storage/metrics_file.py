"""metrics.csv: its columns, and its rows read back whatever a crash or an edit left."""

from __future__ import annotations

from pathlib import Path

from dcgan.files.reading import MiB, read_text_lenient

# What the adversarial model measures every step (its trackers are made from these names).
# r1: the R1 penalty inside d_loss, per step (lazy R1's steps averaged in); empty when off.
METRIC_NAMES = ("d_loss", "g_loss", "d_real", "d_fake", "d_accuracy", "r1")

# Measured now and then (sample grids, evaluations): empty in the other rows.
MONITOR_NAMES = ("diversity", "kid", "copy_rate", "ada_p")  # ada_p: ADA's probability

METRICS_COLUMNS = ("step", *METRIC_NAMES, "images_per_sec", *MONITOR_NAMES)

# Every row has these, also in runs written before d_accuracy and the monitors existed.
REQUIRED_COLUMNS = ("step", "d_loss", "g_loss", "d_real", "d_fake", "images_per_sec")

MAX_METRICS_BYTES = 256 * MiB  # a million rows at log_every 1 is about 100 MB


def read_metrics(path: Path) -> list[dict[str, str]]:
    """Complete rows of metrics.csv in step order, the last one written for a step winning:
    Ctrl-C in the middle of a write can leave a step twice or a row cut short. A row whose
    step or required values are not numbers is left out (the file may have been edited);
    so is any other value that is not one."""
    if not path.is_file():
        return []
    text = read_text_lenient(path, MAX_METRICS_BYTES, "metrics file")
    lines = text.splitlines()
    if not lines:
        return []
    header = lines[0].split(",")
    rows = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        step = row.get("step") or ""
        if not step.isdigit() or not all(_is_number(row.get(c)) for c in REQUIRED_COLUMNS):
            continue
        for name in METRICS_COLUMNS:
            if name in row and name not in REQUIRED_COLUMNS and not _is_number(row[name]):
                row[name] = ""
        rows[int(step)] = row
    return [rows[step] for step in sorted(rows)]


def _is_number(text: str | None) -> bool:
    # Our own rows hold only "%.6g" and "%.1f" numbers: no quotes, no commas in a field.
    if not text or len(text) > 32:
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True
