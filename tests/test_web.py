"""`export --format web` and `dcgan view`: the page opened in headless Chromium draws the
images of `dcgan sample --seed`, its latents are numpy's, and the server and the runtime
archive refuse what they should."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from browser import CHROMIUM, Browser
from click.testing import CliRunner
from conftest import WEB_RUNTIME, error_line, run_dirs, save_image, tiny_config, write_config
from PIL import Image

from dcgan.cli import main
from dcgan.web import runtime as web_runtime

NODE = shutil.which("node")
ASSETS = Path(web_runtime.__file__).parent / "assets"
# The page's bytes against `dcgan sample`'s PNGs: onnxruntime-web computes in float32 as
# TensorFlow does, in another order, so a pixel may round to the next grey level.
PIXEL_TOLERANCE = 1

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed here (apt-get install chromium; .ci/run installs it)",
)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def runtime_archive() -> Path:
    if not WEB_RUNTIME.is_file():
        pytest.fail(f"{WEB_RUNTIME} is missing: scripts/test.sh fetches it (dcgan.web.runtime)")
    return WEB_RUNTIME


@pytest.fixture(scope="module")
def page(tiny_run, runtime_archive) -> Path:
    result = invoke("export", "--ckpt", tiny_run, "--format", "web", "--runtime", runtime_archive)
    assert result.exit_code == 0, result.output
    assert "onnxruntime gives the generator's images within" in result.output
    return tiny_run / "export" / "web"


@pytest.fixture(scope="module")
def conditional_page(tmp_path_factory, runtime_archive) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("web-conditional")
    for name, colour in {
        "red": (230, 20, 20),
        "green": (20, 200, 40),
        "blue": (20, 30, 220),
    }.items():
        for i in range(6):
            save_image(
                root / "pictures" / name / f"{i}.png", np.full((12, 12, 3), colour, np.uint8)
            )
    data = {"source": "folder", "path": str(root / "pictures"), "channels": 3, "max_images": None}
    config = tiny_config(root, data=data, model={"conditional": True})
    assert invoke("train", "--config", write_config(root, config)).exit_code == 0
    (run,) = run_dirs(root)
    out = root / "page"
    result = invoke("export", "--ckpt", run, "--format", "web", "--runtime", runtime_archive,
                    "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    return run, out


def drawn_by(page: Path, query: str, tmp_path: Path, screenshot: Path | None = None) -> dict:
    """What the page drew for ?query (window.dcganReady), with its status line."""
    with Browser(tmp_path / "chromium-profile") as browser:
        browser.open(f"{(page / 'index.html').as_uri()}?{query}")
        drawn = browser.wait_for("window.dcganReady")
        assert "error" not in drawn, drawn
        drawn["status"] = browser.text("status")
        drawn["command"] = browser.text("command")
        drawn["classes"] = browser.wait_for(
            "Array.from(document.querySelectorAll('#class option'), o => o.textContent)"
        )
        if screenshot is not None:
            browser.screenshot(screenshot)
    return drawn


def shown_pixels(encoded: str, shape: tuple[int, int, int]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(encoded), np.uint8).reshape(shape)


def png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        pixels = np.asarray(image)
    return pixels if pixels.ndim == 3 else pixels[..., None]


def sample_pngs(run: Path, out: Path, *args) -> list[np.ndarray]:
    result = invoke("sample", "--ckpt", run, "--out", out, *args)
    assert result.exit_code == 0, result.output
    return [png(path) for path in sorted(out.glob("0*.png"))]


@needs_chromium
def test_the_page_draws_the_images_of_dcgan_sample_for_the_seed(page, tiny_run, tmp_path):
    drawn = drawn_by(page, "seed=7&n=5&walk=1,5&t=0.5", tmp_path)
    assert drawn["samples"]["seed"] == 7 and drawn["samples"]["count"] == 5
    expected = sample_pngs(tiny_run, tmp_path / "s", "--seed", 7, "-n", 5)
    assert len(expected) == 5
    for encoded, image in zip(drawn["samples"]["pixels"], expected, strict=True):
        got = shown_pixels(encoded, image.shape)
        difference = np.abs(got.astype(int) - image.astype(int))
        assert difference.max() <= PIXEL_TOLERANCE
        assert (difference == 0).mean() > 0.99
    assert re.fullmatch(
        r"5 images of 16x16 in \d+\.\d ms \(onnxruntime-web 1\.30\.0, WebAssembly, 1 thread\)",
        drawn["status"],
    ), drawn["status"]
    assert drawn["command"] == "dcgan sample --seed 7 -n 5"

    # The walk halfway between seeds 1 and 5: interpolate's slerp of the two seeds' latents.
    from dcgan.generation.loading import load_generator
    from dcgan.models.latents import seed_latent, slerp

    generator = load_generator(tiny_run)
    latent = slerp(seed_latent(1, 8), seed_latent(5, 8), 0.5)
    expected_walk = generator.images(latent[None], 1)[0]
    got = shown_pixels(drawn["walk"]["pixels"], expected_walk.shape)
    assert np.abs(got.astype(int) - expected_walk.astype(int)).max() <= PIXEL_TOLERANCE


@needs_chromium
def test_a_conditional_page_draws_the_class_picked(conditional_page, tmp_path):
    run, page = conditional_page
    drawn = drawn_by(page, "seed=3&n=4&class=2", tmp_path)
    assert drawn["samples"]["class"] == 2
    assert drawn["classes"] == ["0: blue", "1: green", "2: red"]
    assert drawn["command"] == "dcgan sample --seed 3 -n 4 --class 2"
    expected = sample_pngs(run, tmp_path / "s", "--seed", 3, "-n", 4, "--class", "red")
    for encoded, image in zip(drawn["samples"]["pixels"], expected, strict=True):
        got = shown_pixels(encoded, image.shape)
        assert np.abs(got.astype(int) - image.astype(int)).max() <= PIXEL_TOLERANCE
    other = drawn_by(page, "seed=3&n=4&class=0", tmp_path)
    assert other["samples"]["pixels"] != drawn["samples"]["pixels"]


@needs_chromium
def test_the_screenshot_shows_a_grid_of_samples(page, tmp_path):
    shot = tmp_path / "page.png"
    drawn_by(page, "seed=7&n=16", tmp_path, screenshot=shot)
    pixels = png(shot)[..., :3].astype(float)
    assert pixels.shape[:2] == (900, 1000)
    # The grid: 16 tiles of 96 px under the controls, drawn from the samples, not blank.
    grid = pixels[230:420, 20:980]
    assert grid.std() > 20, "the sample grid area is flat: nothing was drawn"
    assert (np.abs(np.diff(grid, axis=1)) > 10).mean() > 0.01


def test_the_folder_holds_the_page_the_model_and_the_runtime(page):
    """The files the page needs are all there, with the generator's description."""
    names = {p.relative_to(page).as_posix() for p in page.rglob("*") if p.is_file()}
    assert names == {
        "index.html", "app.js", "numpy-random.js", "generator.onnx", "generator.onnx.js",
        "onnxruntime-web/ort.wasm.min.js", "onnxruntime-web/ort-wasm-loader.js",
        "onnxruntime-web/ort-wasm-binary.js", "onnxruntime-web/LICENSE.txt",
    }  # fmt: skip
    text = (page / "generator.onnx.js").read_text()
    described = json.loads(text.removeprefix("window.DCGAN_GENERATOR = ").removesuffix(";\n"))
    assert described["latentDim"] == 8 and described["classes"] is None
    assert (described["height"], described["width"], described["channels"]) == (16, 16, 1)
    assert base64.b64decode(described["onnxBase64"]) == (page / "generator.onnx").read_bytes()
    licence = (page / "onnxruntime-web" / "LICENSE.txt").read_text()
    assert "onnxruntime-web 1.30.0, MIT licence" in licence and web_runtime.INTEGRITY in licence


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_the_page_draws_numpys_latents_bit_for_bit(tmp_path):
    seeds = [0, 1, 7, 42, 2**31 - 1, 2**40 + 3, 10**20]
    script = (
        f"const R = require({json.dumps(str(ASSETS / 'numpy-random.js'))});"
        "const out = {}; for (const s of JSON.parse(process.argv[1])) "
        "out[s] = Array.from(R.latents(BigInt(s), 64, 100)); console.log(JSON.stringify(out));"
    )
    done = subprocess.run([NODE, "-e", script, json.dumps([str(s) for s in seeds])],
                          capture_output=True, text=True, check=True)  # fmt: skip
    drawn = json.loads(done.stdout)
    for seed in seeds:
        expected = np.random.default_rng(seed).standard_normal((64, 100)).astype(np.float32)
        got = np.asarray(drawn[str(seed)], np.float32).reshape(64, 100)
        np.testing.assert_array_equal(got, expected)


def test_view_serves_the_page_and_nothing_else(page, tmp_path):
    from dcgan.web.server import open_server

    outside = tmp_path / "secret.txt"
    outside.write_text("not for the page")
    link = page / "link.txt"
    link.symlink_to(outside)
    server = open_server(page, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with urllib.request.urlopen(base) as response:
            assert b'<script src="app.js">' in response.read()
        with urllib.request.urlopen(base + "onnxruntime-web/LICENSE.txt") as response:
            assert b"MIT" in response.read()
        for path in ["link.txt", "../secret.txt", "%2e%2e/secret.txt", "onnxruntime-web/"]:
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(base + path)
            assert refused.value.code == 404, path
    finally:
        server.shutdown()
        server.server_close()
        link.unlink()
    assert server.server_address[0] == "127.0.0.1"


def test_view_of_a_folder_that_is_not_a_page_is_one_line(tmp_path):
    assert "missing: no such folder" in error_line(invoke("view", tmp_path / "missing"))
    (tmp_path / "file").write_text("x")
    assert "file: not a folder" in error_line(invoke("view", tmp_path / "file"))
    (tmp_path / "empty").mkdir()
    line = error_line(invoke("view", tmp_path / "empty"))
    assert "empty: no index.html, so not a page of `dcgan export --format web`" in line


def test_view_on_a_port_in_use_is_one_line(page):
    from dcgan.web.server import open_server

    with open_server(page, 0) as busy:
        line = error_line(invoke("view", page, "--port", busy.server_address[1]))
    assert "in use by another program; give another" in line


def test_a_runtime_archive_that_is_not_the_release_is_refused(tiny_run, tmp_path):
    fake = tmp_path / "onnxruntime-web-1.30.0.tgz"
    fake.write_bytes(b"\x1f\x8b" + bytes(100))
    out = tmp_path / "web"
    line = error_line(invoke("export", "--ckpt", tiny_run, "--format", "web", "--runtime", fake,
                             "--out", out))  # fmt: skip
    assert "not onnxruntime-web 1.30.0 as published on npm (its sha512 differs)" in line
    assert not out.exists()
    fifo = tmp_path / "fifo.tgz"
    os.mkfifo(fifo)
    line = error_line(invoke("export", "--ckpt", tiny_run, "--format", "web", "--runtime", fifo,
                             "--out", out))  # fmt: skip
    assert "is a FIFO" in line or "not a onnxruntime-web archive" in line
    assert not out.exists()


def test_without_the_runtime_and_offline_the_export_says_how_to_get_it(tiny_run, tmp_path):
    out = tmp_path / "web"
    line = error_line(invoke("export", "--ckpt", tiny_run, "--format", "web", "--out", out))
    assert "--format web needs onnxruntime-web 1.30.0, which is not at" in line
    assert "python -m dcgan.web.runtime" in line and not out.exists()


class _Response:
    def __init__(self, data: bytes):
        self.data = data

    def read(self, limit: int) -> bytes:
        return self.data[:limit]

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def test_the_download_is_kept_only_when_it_is_the_published_release(
    runtime_archive, tmp_path, monkeypatch
):
    target = tmp_path / "cache" / "onnxruntime-web-1.30.0.tgz"
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: _Response(b"tampered"))
    with pytest.raises(web_runtime.DcganError, match="sha512 differs"):
        web_runtime.fetch(target)
    assert not target.exists()
    release = runtime_archive.read_bytes()
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: _Response(release))
    assert web_runtime.fetch(target) == target and target.read_bytes() == release
    assert len(web_runtime.load_runtime(target).binary) > 1_000_000
