"""Callbacks that need no model: the progress display and the metrics reader."""

from __future__ import annotations

import io

from dcgan.runtime import import_tensorflow

import_tensorflow()

from dcgan.storage.metrics_file import read_metrics  # noqa: E402
from dcgan.training.callbacks import Progress  # noqa: E402

LOGS = {"d_loss": 1.25, "g_loss": 0.75, "d_real": 0.6, "d_fake": 0.4}


def test_terminal_progress_redraws_one_line():
    stream = io.StringIO()
    progress = Progress(
        total_steps=10, batch_size=4, every=5, start_step=0, stream=stream, interactive=True
    )
    progress.on_train_begin()
    for batch in range(10):
        progress.on_train_batch_end(batch, LOGS)
    progress.on_train_end()
    text = stream.getvalue()
    assert text.startswith("\r[")
    assert "step 10/10" in text and "[########################]" in text
    assert "d_loss 1.250  g_loss 0.750  D(x) 0.600  D(G(z)) 0.400" in text
    assert "img/s" in text and "eta 0:00" in text
    assert text.endswith("\n") and text.count("\n") == 1


def test_plain_progress_prints_a_line_every_n_steps_from_the_resumed_step():
    stream = io.StringIO()
    progress = Progress(
        total_steps=20, batch_size=4, every=5, start_step=10, stream=stream, interactive=False
    )
    progress.on_train_begin()
    for batch in range(10):
        progress.on_train_batch_end(batch, LOGS)
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["15/20", "20/20"]
    assert "\r" not in stream.getvalue()


def test_metrics_reader_keeps_the_last_row_per_step_and_drops_cut_rows(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(
        "step,d_loss,g_loss,d_real,d_fake,images_per_sec\n"
        "2,1,1,0.5,0.5,10\n"
        "4,1,1,0.5,0.5,10\n"
        "4,2,2,0.5,0.5,10\n"
        "6,1,1,0.5\n"
    )
    rows = read_metrics(path)
    assert [(row["step"], row["d_loss"]) for row in rows] == [("2", "1"), ("4", "2")]
    assert read_metrics(tmp_path / "missing.csv") == []
