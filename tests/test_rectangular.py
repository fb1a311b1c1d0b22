"""Pictures that are not square: data.image_size [height, width] through every command."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from conftest import run_dirs, save_image, tiny_config, write_config
from PIL import Image

from dcgan.cli import main

HEIGHT, WIDTH = 16, 32


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def _side_view(seed: int) -> np.ndarray:
    """A 40x120 picture on a plain ground with an object reaching both ends."""
    rng = np.random.default_rng(seed)
    image = np.full((40, 120, 3), rng.integers(60, 200, 3), np.uint8)
    image[14:26, 2:-2] = rng.integers(0, 256, 3)
    return image


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("wide")
    for i in range(12):
        save_image(root / "pictures" / f"side{i}.png", _side_view(i))
    data = {
        "source": "folder",
        "path": str(root / "pictures"),
        "image_size": [HEIGHT, WIDTH],
        "channels": 3,
        "resize": "pad",
        "max_images": None,
    }
    config = tiny_config(root, data=data)
    config["eval"] = {"every": 6, "num_samples": 10}
    invoke("train", "--config", write_config(root, config))
    (run,) = run_dirs(root)
    return run


def _size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def test_training_writes_rectangular_grids_and_keeps_the_size(wide_run):
    saved = yaml.safe_load((wide_run / "config.yaml").read_text())
    assert saved["data"]["image_size"] == [HEIGHT, WIDTH] and saved["data"]["resize"] == "pad"
    grids = sorted((wide_run / "samples").glob("step-*.png"))
    width, height = _size(grids[-1])
    # tiny_config's 4 samples in a 2x2 grid with 2 pixels between cells: wider than tall.
    assert (width, height) == (2 * WIDTH + 3 * 2, 2 * HEIGHT + 3 * 2)
    with Image.open(wide_run / "progress.gif") as gif:
        assert gif.size[0] > gif.size[1] and gif.n_frames == len(grids)


def test_sample_interpolate_and_gif_keep_height_and_width(wide_run):
    out = wide_run.parent / "samples-out"
    invoke("sample", "--ckpt", wide_run, "-n", 3, "--grid", "--out", out)
    assert {_size(p) for p in out.glob("0*.png")} == {(WIDTH, HEIGHT)}
    invoke("interpolate", "--ckpt", wide_run, "--seeds", "1,2", "--steps", 3)
    (walk,) = (wide_run / "interpolations").glob("*.gif")
    with Image.open(walk) as gif:  # enlarged 8 times: the short side 16 reaches 128
        assert gif.size == (8 * WIDTH, 8 * HEIGHT)
    result = invoke("gif", wide_run, "--out", wide_run.parent / "again.gif")
    assert "3 frames" in result.output


def test_export_and_reload_give_the_same_rectangles(wide_run, tmp_path):
    exported = tmp_path / "g.keras"
    invoke("export", "--ckpt", wide_run, "--out", exported)
    out = tmp_path / "from-export"
    invoke("sample", "--ckpt", exported, "-n", 2, "--out", out, "--seed", 5)
    invoke("sample", "--ckpt", wide_run, "-n", 2, "--out", tmp_path / "from-run", "--seed", 5)
    for name in ("000000.png", "000001.png"):
        from_export = np.asarray(Image.open(out / name))
        assert from_export.shape == (HEIGHT, WIDTH, 3)
        assert np.array_equal(from_export, np.asarray(Image.open(tmp_path / "from-run" / name)))


def test_measuring_and_listing_a_rectangular_run(wide_run):
    result = invoke("evaluate", "--ckpt", wide_run, "-n", 10, "--features", "random")
    assert "KID" in result.output
    invoke("nearest", "--ckpt", wide_run, "-n", 2, "-k", 2)
    (grid,) = (wide_run / "nearest").glob("*.png")
    assert _size(grid)[0] > _size(grid)[1]
    listing = invoke("runs", wide_run.parent)
    assert f"{HEIGHT}x{WIDTH}x3" in listing.output


def test_resume_keeps_the_rectangle(wide_run):
    invoke("train", "--resume", wide_run, "--set", "train.steps=8")
    with Image.open(sorted((wide_run / "samples").glob("step-*.png"))[-1]) as grid:
        assert grid.size == (2 * WIDTH + 6, 2 * HEIGHT + 6)
