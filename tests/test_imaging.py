"""Grids, atomic PNG and GIF writing, loss plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dcgan import imaging
from dcgan.files import writing


def test_to_uint8_maps_tanh_range_to_bytes():
    values = np.array([-1.5, -1.0, 0.0, 1.0, 2.0], np.float32)
    np.testing.assert_array_equal(imaging.to_uint8(values), [0, 0, 128, 255, 255])


def test_from_uint8_is_the_inverse_on_bytes():
    every_byte = np.arange(256, dtype=np.uint8)
    back = imaging.from_uint8(every_byte)
    assert back.dtype == np.float32 and back[0] == -1.0 and back[-1] == 1.0
    np.testing.assert_array_equal(imaging.to_uint8(back), every_byte)


def test_grid_places_tiles_row_by_row_with_padding():
    tiles = np.stack([np.full((3, 3, 1), i * 40, np.uint8) for i in range(1, 6)])
    grid = imaging.make_grid(tiles, padding=1)
    assert grid.shape == (1 + 2 * 4, 1 + 3 * 4, 1)  # 5 tiles -> 3 columns, 2 rows
    assert grid[1, 1, 0] == 40 and grid[1, 5, 0] == 80 and grid[5, 1, 0] == 160
    assert grid[0, 0, 0] == 0 and grid[5, 9, 0] == 0  # padding and the empty sixth cell


def test_png_is_written_atomically_and_leaves_no_temporary(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = tmp_path / "sub" / "x.png"
    imaging.save_png(image, path)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), image)
    assert [p.name for p in path.parent.iterdir()] == ["x.png"]


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "x.png"
    imaging.save_png(np.zeros((2, 2, 1), np.uint8), path)
    with pytest.raises(ValueError), writing.atomic_path(path) as tmp:
        Path(tmp).write_bytes(b"half")
        raise ValueError("crash while writing")
    assert np.asarray(Image.open(path)).shape == (2, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_progress_gif_labels_frames_and_holds_the_last(tmp_path):
    grids = []
    for step in (0, 100, 200):
        path = tmp_path / f"step-{step:07d}.png"
        imaging.save_png(np.full((10, 12, 1), step // 2, np.uint8), path)
        grids.append((step, path))
    out = tmp_path / "progress.gif"
    assert imaging.write_progress_gif(grids, out, fps=4).steps == [0, 100, 200]
    with Image.open(out) as gif:
        assert gif.n_frames == 3
        assert gif.size == (12, 10 + 14)  # a strip for the step label
        durations = []
        for frame in range(gif.n_frames):
            gif.seek(frame)
            durations.append(gif.info["duration"])
            labelled = np.asarray(gif.convert("L"))[10:]
            assert labelled.max() > 0  # text drawn in the strip
    assert durations[0] == 250 and durations[-1] >= 2000


def test_loss_plot_is_a_png(tmp_path):
    path = tmp_path / "losses.png"
    steps = [10, 20, 30]
    series = {
        "d_loss": (steps, [1.4, 1.2, 1.0]),
        "g_loss": (steps, [0.7, 0.9, 1.1]),
        "d_real": (steps, [0.5, 0.6, 0.7]),
        "d_fake": (steps, [0.5, 0.4, 0.3]),
        "kid": ([], []),
    }
    imaging.plot_losses(series, path, "run")
    with Image.open(path) as plot:
        assert plot.format == "PNG" and plot.size == (800, 450)
    # Once an evaluation series has points, a third panel shows it.
    series["kid"] = ([20], [0.12])
    imaging.plot_losses(series, path, "run")
    with Image.open(path) as plot:
        assert plot.size == (1200, 450)


def test_kid_has_a_scale_of_its_own_beside_diversity_and_the_copy_rate():
    """KID a few thousandths apart next to diversity near 1 would be a flat line at 0."""
    steps = [100, 200, 300]
    series = {
        "d_loss": (steps, [1.4, 1.2, 1.0]),
        "g_loss": (steps, [0.7, 0.9, 1.1]),
        "kid": (steps, [0.012, 0.009, 0.007]),
        "diversity": (steps, [0.95, 0.97, 0.96]),
        "copy_rate": (steps, [0.0, 0.01, 0.02]),
    }
    axes = {axis.get_title(): axis for axis in imaging.loss_figure(series).axes}
    kid = axes["KID (lower is better)"]
    assert [line.get_label() for line in kid.lines] == ["kid"]
    low, high = kid.get_ylim()
    assert low > 0.005 and high < 0.014  # the axis spans KID's own range
    others = axes["diversity and copy rate"]
    assert [line.get_label() for line in others.lines] == ["diversity", "copy_rate"]


def test_atomic_dir_replaces_whole_and_keeps_the_old_folder_on_failure(tmp_path):
    target = tmp_path / "model"
    with writing.atomic_dir(target) as staging:
        (staging / "a.txt").write_text("first")
    with writing.atomic_dir(target) as staging:
        (staging / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    with pytest.raises(ValueError), writing.atomic_dir(target) as staging:
        (staging / "c.txt").write_text("half")
        raise ValueError("crash while writing")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_atomic_writes_get_the_modes_of_ordinary_files(tmp_path):
    import os

    umask = os.umask(0)
    os.umask(umask)
    writing.atomic_write_text(tmp_path / "config.yaml", "a: 1\n")
    with writing.atomic_dir(tmp_path / "step") as staging:
        (staging / "x").write_text("x")
    # Not mkstemp's 0600 and mkdtemp's 0700, under which nobody else could read the run:
    # what open() and mkdir() would have made.
    assert (tmp_path / "config.yaml").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "step").stat().st_mode & 0o777 == 0o777 & ~umask


def test_failed_write_keeps_the_old_file_and_names_the_path(tmp_path, monkeypatch):
    import errno
    import os

    from dcgan.errors import OutputError

    target = tmp_path / "metrics.csv"
    writing.atomic_write_text(target, "old\n")

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writing.os, "replace", full_disk)
    with pytest.raises(OutputError, match=f"{target}: cannot write: No space left on device"):
        writing.atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_a_progress_gif_of_more_grids_than_it_holds_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(imaging, "MAX_GIF_FRAMES", 3)
    grids = []
    for step in range(0, 70, 10):
        path = tmp_path / f"step-{step:07d}.png"
        imaging.save_png(np.full((4, 4, 1), step, np.uint8), path)
        grids.append((step, path))
    made = imaging.write_progress_gif(grids, tmp_path / "progress.gif")
    assert made.steps == [0, 30, 60] and made.thinned_from == 7
    with Image.open(tmp_path / "progress.gif") as gif:
        assert gif.n_frames == 3
