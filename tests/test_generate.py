"""sample, interpolate, gif, export and runs on a tiny trained run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import pixels
from PIL import Image

from dcgan import imaging
from dcgan.cli import main
from dcgan.models import latents


@pytest.fixture(scope="module")
def trained_run(tiny_run) -> Path:
    return tiny_run


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_sample_writes_n_pngs_and_a_grid(trained_run, tmp_path):
    out = tmp_path / "s"
    result = invoke("sample", "--ckpt", trained_run, "-n", 5, "--grid", "--out", out)
    assert result.exit_code == 0, result.output
    assert "wrote 5 images of 16x16x1" in result.output
    files = sorted(out.glob("0*.png"))
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(5)]
    with Image.open(files[0]) as image:
        assert image.mode == "L" and image.size == (16, 16)
    with Image.open(out / "grid.png") as grid:
        assert grid.size == (2 + 3 * 18, 2 + 2 * 18)  # 5 tiles: 3 columns, 2 rows


def test_same_seed_gives_byte_identical_files_in_any_batch_size(trained_run, tmp_path):
    for name, batch in (("a", 64), ("b", 2)):
        args = ("sample", "--ckpt", trained_run, "-n", 5, "--seed", 7, "--batch-size", batch)
        assert invoke(*args, "--out", tmp_path / name).exit_code == 0
    for i in range(5):
        a, b = (tmp_path / d / f"{i:06d}.png" for d in "ab")
        assert a.read_bytes() == b.read_bytes()
    assert (
        invoke(
            "sample", "--ckpt", trained_run, "-n", 5, "--seed", 8, "--out", tmp_path / "c"
        ).exit_code
        == 0
    )
    assert (tmp_path / "c" / "000000.png").read_bytes() != (
        tmp_path / "a" / "000000.png"
    ).read_bytes()


def test_truncation_scales_the_latent(trained_run, tmp_path):
    from dcgan.models.latents import latent_stream

    (plain,) = latent_stream(3, 4, 8, 64)
    (half,) = latent_stream(3, 4, 8, 64, truncation=0.5)
    np.testing.assert_allclose(half, plain * 0.5, rtol=1e-6)
    chunks = list(latent_stream(3, 4, 8, 3))
    np.testing.assert_array_equal(np.concatenate(chunks), plain)
    assert [len(c) for c in chunks] == [3, 1]


def test_truncation_reaches_the_images_in_its_own_folder(trained_run):
    # The README's two lines, one after the other, with no --force.
    assert invoke("sample", "--ckpt", trained_run, "-n", 16, "--seed", 4).exit_code == 0
    result = invoke("sample", "--ckpt", trained_run, "-n", 16, "--seed", 4, "--truncation", 0.3)
    assert result.exit_code == 0, result.output
    plain = np.stack([pixels(p) for p in sorted((trained_run / "generated/seed-4").glob("0*"))])
    folder = trained_run / "generated/seed-4-truncation-0.3"
    truncated = np.stack([pixels(p) for p in sorted(folder.glob("0*"))])
    assert plain.shape == truncated.shape == (16, 16, 16)

    def spread(images):  # mean distance of each image from their average
        flat = images.reshape(len(images), -1).astype(np.float64)
        return np.linalg.norm(flat - flat.mean(0), axis=1).mean()

    assert not np.array_equal(plain, truncated)
    assert spread(truncated) < spread(plain)  # nearer the average latent: less varied


def test_large_n_streams_one_batch_at_a_time(trained_run, tmp_path, monkeypatch):
    from dcgan.generation.loading import load_generator
    from dcgan.generation.sampling import SampleRequest, write_samples
    from dcgan.models.loaded import LoadedGenerator

    seen = []
    original = LoadedGenerator.images

    def counting(self, latents, batch_size=64, classes=None):
        seen.append(len(latents))
        return original(self, latents, batch_size, classes)

    monkeypatch.setattr(LoadedGenerator, "images", counting)
    written = write_samples(
        load_generator(trained_run),
        SampleRequest(50),
        tmp_path / "many",
        grid=False,
        batch_size=8,
        force=False,
    )
    assert len(written) == 50 and all(p.is_file() for p in written)
    assert max(seen) == 8 and sum(seen) == 50


def test_refuses_to_overwrite_without_force(trained_run, tmp_path):
    out = tmp_path / "o"
    assert invoke("sample", "--ckpt", trained_run, "-n", 2, "--out", out).exit_code == 0
    before = (out / "000000.png").stat().st_mtime_ns
    result = invoke("sample", "--ckpt", trained_run, "-n", 2, "--out", out)
    assert result.exit_code == 2
    assert "000000.png (and 1 more) already exists: use --force" in result.output
    assert (out / "000000.png").stat().st_mtime_ns == before
    assert invoke("sample", "--ckpt", trained_run, "-n", 2, "--out", out, "--force").exit_code == 0


def test_every_kind_of_ckpt_gives_the_same_images(trained_run, tmp_path):
    exported = tmp_path / "g.keras"
    assert invoke("export", "--ckpt", trained_run, "--out", exported).exit_code == 0
    sources = {
        "run": trained_run,
        "checkpoint": trained_run / "checkpoints" / "step-0000006",
        "final": trained_run / "generator.keras",
        "export": exported,
    }
    for name, ckpt in sources.items():
        result = invoke("sample", "--ckpt", ckpt, "-n", 3, "--out", tmp_path / name)
        assert result.exit_code == 0, result.output
    for name in sources:
        for i in range(3):
            np.testing.assert_array_equal(
                pixels(tmp_path / name / f"{i:06d}.png"), pixels(tmp_path / "run" / f"{i:06d}.png")
            )


def test_an_older_checkpoint_gives_other_images(trained_run, tmp_path):
    older = trained_run / "checkpoints" / "step-0000004"
    assert invoke("sample", "--ckpt", older, "-n", 1, "--out", tmp_path / "old").exit_code == 0
    assert (
        invoke("sample", "--ckpt", trained_run, "-n", 1, "--out", tmp_path / "new").exit_code == 0
    )
    assert not np.array_equal(
        pixels(tmp_path / "old" / "000000.png"), pixels(tmp_path / "new" / "000000.png")
    )


def make_bad_ckpts(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.keras").write_bytes(b"PK\x03\x04 not a zip")
    return {
        "missing": (tmp_path / "nope", "no such file or directory"),
        "folder": (tmp_path / "empty", "not a run directory, a checkpoint folder or a .keras"),
        "text": (tmp_path / "notes.txt", "not a run directory, a checkpoint folder or a .keras"),
        "fake": (tmp_path / "fake.keras", "not a loadable Keras generator"),
    }


@pytest.mark.parametrize("command", ["sample", "interpolate", "export"])
def test_bad_ckpt_is_one_line_and_exit_2(tmp_path, command):
    for path, expected in make_bad_ckpts(tmp_path).values():
        result = invoke(command, "--ckpt", path)
        assert result.exit_code == 2, result.output
        assert expected in result.output
        assert len(result.output.strip().splitlines()) == 1
        assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["sample", "-n", "0"], "Invalid value for '-n'"),
        (["sample", "--truncation", "0"], "Invalid value for '--truncation'"),
        (["interpolate", "--seeds", "3"], "give two or more seeds"),
        (["interpolate", "--seeds", "a,b"], "expected comma-separated integers"),
        (["interpolate", "--method", "cubic"], "Invalid value for '--method'"),
        (["interpolate", "--steps", "1"], "Invalid value for '--steps'"),
        (["export", "--format", "pt"], "Invalid value for '--format'"),
        (["export", "--runtime", "x.tgz"], "Invalid value for --runtime: goes with --format web"),
    ],
)
def test_bad_options_exit_2(trained_run, args, expected):
    result = invoke(*args[:1], "--ckpt", trained_run, *args[1:])
    assert result.exit_code == 2
    assert expected in result.output


def test_slerp_keeps_the_norm_and_its_end_points():
    a, b = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    np.testing.assert_array_equal(latents.slerp(a, b, 0.0), a)
    np.testing.assert_allclose(latents.slerp(a, b, 1.0), b, atol=1e-7)
    assert np.linalg.norm(latents.slerp(a, b, 0.5)) == pytest.approx(1.0)
    assert np.linalg.norm(latents.lerp(a, b, 0.5)) == pytest.approx(np.sqrt(0.5))
    np.testing.assert_allclose(latents.slerp(a, a, 0.3), a)  # parallel: no division by zero


def test_interpolate_grid_gif_and_end_points_equal_the_seeds_images(trained_run, tmp_path):
    out = tmp_path / "walk"
    result = invoke(
        "interpolate", "--ckpt", trained_run, "--seeds", "3,17,42", "--steps", 5, "--out", out
    )
    assert result.exit_code == 0, result.output
    grid = pixels(out / "seeds-3-17-42-slerp.png")
    assert grid.shape == (2 + 2 * 18, 2 + 5 * 18)  # one row per segment, 5 images each
    with Image.open(out / "seeds-3-17-42-slerp.gif") as gif:
        assert gif.n_frames == 2 * 4 + 1
        assert gif.info["loop"] == 0
    for seed, (row, column) in ((3, (0, 0)), (17, (0, 4)), (42, (1, 4))):
        sample_dir = tmp_path / f"seed{seed}"
        assert (
            invoke(
                "sample", "--ckpt", trained_run, "-n", 1, "--seed", seed, "--out", sample_dir
            ).exit_code
            == 0
        )
        top, left = 2 + row * 18, 2 + column * 18
        np.testing.assert_array_equal(
            grid[top : top + 16, left : left + 16], pixels(sample_dir / "000000.png")
        )


def test_interpolate_gif_frames_are_the_grid_s_images_enlarged(trained_run, tmp_path):
    from dcgan.imaging import enlarge

    def gif_frames(path):
        with Image.open(path) as gif:
            frames = []
            for index in range(gif.n_frames):
                gif.seek(index)
                frames.append(np.asarray(gif.convert("L")))
            return frames

    for extra, scale in (((), 8), (("--scale", 3), 3), (("--scale", 1), 1)):
        out = tmp_path / f"walk-{scale}"
        invoke("interpolate", "--ckpt", trained_run, "--seeds", "3,17", "--steps", 3,
               "--out", out, *extra)  # fmt: skip
        grid = pixels(out / "seeds-3-17-slerp.png")
        frames = gif_frames(out / "seeds-3-17-slerp.gif")
        # By default the 16 px images are enlarged 8 times (a short side of 128); every
        # pixel a block, so the frames are the grid's tiles, only bigger.
        assert [f.shape for f in frames] == [(16 * scale, 16 * scale)] * 3
        for column, frame in enumerate(frames):
            tile = grid[2 : 2 + 16, 2 + column * 18 : 2 + column * 18 + 16]
            np.testing.assert_array_equal(frame, enlarge(tile, scale))
    result = invoke("interpolate", "--ckpt", trained_run, "--scale", 17)
    assert result.exit_code == 2 and "'--scale': 17 is not in the range 1<=x<=16" in result.output


def test_interpolate_loop_and_lerp(trained_run, tmp_path):
    result = invoke(
        "interpolate",
        "--ckpt",
        trained_run,
        "--seeds",
        "1,2",
        "--steps",
        4,
        "--loop",
        "--method",
        "lerp",
        "--out",
        tmp_path,
    )
    assert result.exit_code == 0, result.output
    assert pixels(tmp_path / "seeds-1-2-lerp-loop.png").shape[0] == 2 + 2 * 18
    with Image.open(tmp_path / "seeds-1-2-lerp-loop.gif") as gif:
        assert gif.n_frames == 2 * 3  # a closed loop repeats no frame


def test_gif_labels_frames_in_step_order_and_holds_the_last(trained_run, tmp_path):
    out = tmp_path / "p.gif"
    result = invoke("gif", trained_run, "--out", out, "--fps", 4)
    assert result.exit_code == 0, result.output
    assert "3 frames, steps 0..6" in result.output
    with Image.open(out) as gif:
        assert gif.n_frames == 3
        durations = []
        for frame in range(gif.n_frames):
            gif.seek(frame)
            durations.append(gif.info["duration"])
        assert gif.size == (38, 38 + 14)  # the grid and a label strip
    assert durations[:-1] == [250, 250] and durations[-1] >= 2000
    every = tmp_path / "every.gif"
    assert invoke("gif", trained_run, "--out", every, "--every", 2).exit_code == 0
    with Image.open(every) as gif:
        assert gif.n_frames == 2  # steps 0 and 6: the last grid is always kept
    result = invoke("gif", trained_run, "--out", out)
    assert result.exit_code == 2 and "already exists: use --force" in result.output


def test_gif_of_a_run_still_training_with_one_grid(tmp_path):
    run = tmp_path / "00000-live"
    (run / "samples").mkdir(parents=True)
    (run / "config.yaml").write_text("name: live\n")
    imaging.save_png(np.zeros((4, 4, 1), np.uint8), run / "samples" / "step-0000000.png")
    (run / "samples" / ".step-0000100.tmp.png").write_bytes(b"half written")
    result = invoke("gif", run)
    assert result.exit_code == 0, result.output
    with Image.open(run / "progress.gif") as gif:
        assert gif.n_frames == 1
    empty = tmp_path / "00001-empty"
    empty.mkdir()
    (empty / "config.yaml").write_text("name: empty\n")
    result = invoke("gif", empty)
    assert result.exit_code == 2 and "no sample grids yet" in result.output


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fmt", "name", "body"),
    [
        ("keras", "g.keras",
         "import keras; m = keras.models.load_model(p); y = m(z, training=False)"),
        ("savedmodel", "g_savedmodel",
         "import tensorflow as tf; m = tf.saved_model.load(p); y = m.serve(z)"),
        # The way README's "Using the generator elsewhere" loads them: no TensorFlow.
        ("onnx", "g.onnx",
         "import onnxruntime as ort; s = ort.InferenceSession(p); "
         "y = s.run(None, {s.get_inputs()[0].name: z})[0]"),
        ("tflite", "g.tflite",
         "from ai_edge_litert.interpreter import Interpreter; "
         "r = Interpreter(model_path=p).get_signature_runner(); y = list(r(z=z).values())[0]"),
    ],
)  # fmt: skip
def test_export_loads_in_a_fresh_process_and_matches(trained_run, tmp_path, fmt, name, body):
    out = tmp_path / name
    result = invoke("export", "--ckpt", trained_run, "--format", fmt, "--out", out)
    assert result.exit_code == 0, result.output
    if fmt in ("onnx", "tflite"):
        assert "gives the generator's images within" in result.output
    latents = np.random.default_rng(5).standard_normal((3, 8)).astype(np.float32)
    np.save(tmp_path / "z.npy", latents)
    code = (
        "import sys, numpy as np; p, zp, yp = sys.argv[1:]; z = np.load(zp); "
        f"{body}; np.save(yp, np.asarray(y))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(out), str(tmp_path / "z.npy"), str(tmp_path / "y.npy")],
        check=True,
        capture_output=True,
    )
    from dcgan.generation.loading import load_generator

    expected = load_generator(trained_run).model(latents, training=False)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), np.asarray(expected), atol=1e-5)
    again = invoke("export", "--ckpt", trained_run, "--format", fmt, "--out", out)
    assert again.exit_code == 2 and "already exists" in again.output


@pytest.mark.parametrize(
    ("fmt", "module", "package"),
    [("onnx", "onnxruntime", "onnxruntime"), ("onnx", "tf2onnx", "tf2onnx"),
     ("tflite", "ai_edge_litert.interpreter", "ai-edge-litert")],
)  # fmt: skip
def test_a_format_without_its_extra_says_which_to_install(
    trained_run, tmp_path, monkeypatch, fmt, module, package
):
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    out = tmp_path / "g.out"
    result = invoke("export", "--ckpt", trained_run, "--format", fmt, "--out", out)
    assert result.exit_code == 2
    root = Path(__file__).resolve().parents[1]
    install = f"{sys.executable} -m pip install -e '{root}[export]'"  # this checkout, this Python
    assert f"--format {fmt} needs {package}, which is not installed: {install}" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_an_export_that_draws_other_images_is_not_written(trained_run, tmp_path, fmt):
    from dcgan.generation import portable

    out = tmp_path / f"g.{fmt}"
    runner = {"onnx": "_run_onnx", "tflite": "_run_tflite"}[fmt]
    real_run = getattr(portable, runner)

    def off_by_a_grey_level(*args):
        return real_run(*args) + 2 / 255  # one grey level: over the 1e-4 tolerance

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(portable, runner, off_by_a_grey_level)
        result = invoke("export", "--ckpt", trained_run, "--format", fmt, "--out", out)
    assert result.exit_code == 1, result.output
    assert f"--format {fmt}: " in result.output and "away from the Keras generator's" in (
        result.output
    )
    assert "tolerance 0.0001); nothing was written" in result.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_runs_lists_state_step_and_losses(trained_run, tmp_path):
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(trained_run, runs / "00000-tiny")
    stopped = runs / "00001-tiny"
    shutil.copytree(trained_run, stopped)
    (stopped / "generator.keras").unlink()
    running = runs / "00002-tiny"
    shutil.copytree(trained_run, running)
    killed = runs / "00003-tiny"  # a lock file that no process holds any more
    shutil.copytree(trained_run, killed)
    (killed / "train.lock").write_text("999999999 on host since then\n")

    from dcgan.storage.lock import training_lock
    from dcgan.storage.run_folder import RunDir

    with training_lock(RunDir(running)):
        result = invoke("runs", runs)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split() == [
        "run",
        "data",
        "size",
        "classes",
        "step",
        "d_loss",
        "g_loss",
        "last",
        "sample",
        "state",
    ]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["00000-tiny"][1:5] == ["digits", "16x16x1", "-", "6/6"]
    assert rows["00000-tiny"][-2:] == ["step-0000006.png", "finished"]
    assert rows["00001-tiny"][-1] == "stopped"
    assert rows["00002-tiny"][-1] == "running"
    assert rows["00003-tiny"][-1] == "finished"
    float(rows["00000-tiny"][5]), float(rows["00000-tiny"][6])
    assert invoke("runs", tmp_path / "none").exit_code == 2
    json.dumps(rows)  # plain strings, printable anywhere


def test_interpolate_writes_mp4_only_with_the_ffmpeg_plugin(trained_run, tmp_path, monkeypatch):
    import imageio.v2 as imageio

    walk = ("interpolate", "--ckpt", trained_run, "--seeds", "1,2", "--steps", 3, "--out")
    result = invoke(*walk, tmp_path / "video")
    assert result.exit_code == 0, result.output
    with imageio.get_reader(tmp_path / "video" / "seeds-1-2-slerp.mp4", format="FFMPEG") as video:
        frames = [frame for frame in video]
    assert len(frames) == 3 and frames[0].shape == (128, 128, 3)  # as the GIF's: enlarged

    monkeypatch.setattr(imaging, "can_write_mp4", lambda: False)
    result = invoke(*walk, tmp_path / "plain")
    assert result.exit_code == 0, result.output
    assert sorted(p.suffix for p in (tmp_path / "plain").iterdir()) == [".gif", ".png"]
