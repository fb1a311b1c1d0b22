"""Issue 4's corpus of bad input, fed to the CLI next to a finished run that must survive.

Each case: a non-zero exit, one line that says what is wrong and where, no traceback, and
the finished run's files byte for byte as they were. Loading never runs code from a file.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import random_pixels, run_dirs, save_image, snapshot, tiny_config, write_config
from PIL import Image

from dcgan.cli import main
from dcgan.storage import checkpoints


@pytest.fixture(scope="module")
def finished(four_step_run) -> Path:
    """One finished run for the whole corpus."""
    return four_step_run


def huge_png(path: Path, width: int, height: int) -> Path:
    """A small PNG file whose header claims width x height pixels (a decompression bomb)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    path.write_bytes(bytes(data))
    return path


def truncated_jpeg(path: Path) -> Path:
    buffer = io.BytesIO()
    Image.fromarray(random_pixels((64, 64, 3))).save(buffer, format="JPEG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue()[:300])
    return path


def yaml_text(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    return ["train", "--config", str(path)]


def config_with(finished: Path, tmp_path: Path, **sections) -> list[str]:
    # Same output.dir as the finished run: a failed start must not touch its neighbour.
    config = tiny_config(finished.parent.parent, **sections)
    return ["train", "--config", str(write_config(tmp_path, config, "case.yaml"))]


def a_file(tmp_path: Path) -> Path:
    (tmp_path / "notes.txt").write_text("not a folder\n")
    return tmp_path / "notes.txt"


def train_into(tmp_path: Path, output_dir: Path) -> list[str]:
    config = tiny_config(tmp_path)
    config["output"]["dir"] = str(output_dir)
    return ["train", "--config", str(write_config(tmp_path, config, "case.yaml"))]


def folder_of(tmp_path: Path, make) -> dict:
    folder = tmp_path / "images"
    folder.mkdir()
    make(folder)
    return {"source": "folder", "path": str(folder), "channels": 3}


def copy_of(finished: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy" / finished.name
    shutil.copytree(finished, copy)
    return copy


def other_architecture(finished: Path, tmp_path: Path) -> Path:
    """A run whose checkpoint was written by a network of other widths."""
    copy = copy_of(finished, tmp_path)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["model"]["g_width"] = 16
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    return copy


def other_image_size(finished: Path, tmp_path: Path) -> Path:
    copy = copy_of(finished, tmp_path)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["data"]["image_size"] = 32
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    return copy


def truncated_checkpoint(finished: Path, tmp_path: Path) -> Path:
    copy = copy_of(finished, tmp_path)
    (data,) = (copy / "checkpoints" / "step-0000004").glob("ckpt.data-*")
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    return copy


def without_generator(run: Path) -> Path:
    """generator.keras gone: a sample has only the checkpoints to load."""
    (run / "generator.keras").unlink()
    return run


def zero_byte_index(finished: Path, tmp_path: Path) -> Path:
    copy = copy_of(finished, tmp_path)
    (copy / "checkpoints" / "step-0000004" / "ckpt.index").write_bytes(b"")
    return copy


CASES = {
    "malformed yaml": (
        lambda f, t: yaml_text(t, "train:\n  steps: [1, 2\n"),
        "bad.yaml: invalid YAML (line 3, column 1)",
    ),
    "yaml that is a list": (
        lambda f, t: yaml_text(t, "- train\n- steps\n"),
        "bad.yaml: the config must be a mapping of keys, got list",
    ),
    "misspelled key": (
        lambda f, t: yaml_text(t, "train:\n  stesp: 5\n"),
        "bad.yaml: train.stesp: unknown key (did you mean 'steps'?)",
    ),
    "misspelled section": (
        lambda f, t: yaml_text(t, "trian:\n  steps: 5\n"),
        "bad.yaml: trian: unknown key (did you mean 'train'?)",
    ),
    "wrong type": (
        lambda f, t: yaml_text(t, "train:\n  batch_size: '64'\n"),
        "bad.yaml: train.batch_size: input should be a valid integer (got '64')",
    ),
    "out of range": (
        lambda f, t: yaml_text(t, "train:\n  beta1: 1.5\n"),
        "bad.yaml: train.beta1: input should be less than 1 (got 1.5)",
    ),
    "unreachable size": (
        lambda f, t: yaml_text(t, "data:\n  image_size: 30\n"),
        "bad.yaml: data.image_size: 30 cannot be reached by doubling",
    ),
    "bad --set value": (
        lambda f, t: ["train", "--set", "train.on_nan=retry"],
        "--set train.on_nan: input should be 'stop' or 'rollback' (got 'retry')",
    ),
    "missing folder": (
        lambda f, t: config_with(f, t, data={"source": "folder", "path": str(t / "nowhere")}),
        f"data.path: '{{t}}{Path('/nowhere')}' does not exist",
    ),
    "empty folder": (
        lambda f, t: config_with(f, t, data=folder_of(t, lambda d: None)),
        "data.path {t}/images: no image files (",
    ),
    "folder of non-images": (
        lambda f, t: config_with(
            f,
            t,
            data=folder_of(
                t,
                lambda d: [
                    (d / "notes.png").write_text("not a picture"),
                    (d / "data.jpg").write_bytes(b"%PDF-1.4 a document, not a photo"),
                ],
            ),
        ),
        "data.path {t}/images: none of the 2 image files can be used (first: data.jpg: "
        "UnidentifiedImageError",
    ),
    "zero-byte and truncated images": (
        lambda f, t: config_with(
            f,
            t,
            data=folder_of(
                t, lambda d: [(d / "a.png").write_bytes(b""), truncated_jpeg(d / "b.jpg")]
            ),
        ),
        "data.path {t}/images: none of the 2 image files can be used (first: a.png: ",
    ),
    "1x1 images": (
        lambda f, t: config_with(
            f, t, data=folder_of(t, lambda d: save_image(d / "dot.png", random_pixels((1, 1, 3))))
        ),
        "(first: dot.png: too small: 1x1 would be stretched over 8x to reach data.image_size 16)",
    ),
    "decompression bomb": (
        lambda f, t: config_with(
            f, t, data=folder_of(t, lambda d: huge_png(d / "huge.png", 20_000, 20_000))
        ),
        "(first: huge.png: DecompressionBombError: Image size (400000000 pixels) exceeds limit",
    ),
    "output.dir that is a file": (
        lambda f, t: train_into(t, a_file(t)),
        "output.dir {t}/notes.txt: is a file, not a folder: name a folder for the runs",
    ),
    "output.dir under a file": (
        lambda f, t: train_into(t, a_file(t) / "runs"),
        "output.dir {t}/notes.txt/runs: a folder above it is a file: name a folder",
    ),
    "resume: other architecture": (
        lambda f, t: ["train", "--resume", str(other_architecture(f, t))],
        "cannot restore this checkpoint (different architecture or a damaged file?)",
    ),
    "resume: other image size": (
        lambda f, t: ["train", "--resume", str(other_image_size(f, t))],
        "cannot restore this checkpoint (different architecture or a damaged file?)",
    ),
    "resume: truncated checkpoint": (
        lambda f, t: ["train", "--resume", str(truncated_checkpoint(f, t))],
        "step-0000004: cannot restore this checkpoint",
    ),
    "sample: zero-byte checkpoint index": (
        lambda f, t: ["sample", "--ckpt", str(zero_byte_index(f, t) / "checkpoints/step-0000004")],
        "step-0000004: cannot restore this checkpoint",
    ),
    "sample: other architecture": (
        lambda f, t: (
            ["sample", "--ckpt", str(without_generator(other_architecture(f, t)))]
            + ["--out", str(t / "o")]
        ),
        "cannot restore this checkpoint (different architecture or a damaged file?)",
    ),
    "sample: a generator file that is not one": (
        lambda f, t: [
            "sample",
            "--ckpt",
            str(save_image(t / "photo.keras", random_pixels((4, 4, 3)), format="PNG")),
        ],
        "photo.keras: not a loadable Keras generator",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_leaves_the_finished_run_alone(finished, tmp_path, case):
    from click.testing import CliRunner

    make_args, expected = CASES[case]
    before = snapshot(finished)
    runs_before = sorted(p.name for p in finished.parent.iterdir())
    args = make_args(finished, tmp_path)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert expected.replace("{t}", str(tmp_path)) in lines[0]
    assert "Traceback" not in result.output
    assert snapshot(finished) == before
    assert sorted(p.name for p in finished.parent.iterdir()) == runs_before  # no new run
    if args[:2] == ["train", "--resume"]:
        copy = Path(args[2])
        assert not (copy / "train.lock").exists()
        assert sorted(p.name for p in (copy / "checkpoints").iterdir()) == ["step-0000004"]


def two_checkpoint_run(runner, tmp_path: Path, damage: str = "step-0000008") -> Path:
    """A finished run with checkpoints at 4 and 8 and the data file of `damage` cut in half,
    as a disk that failed under it would leave it."""
    config = tiny_config(tmp_path, train={"steps": 8})
    result = runner.invoke(main, ["train", "--config", str(write_config(tmp_path, config))])
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    for name in damage.split(","):
        (data,) = (run / "checkpoints" / name).glob("ckpt.data-*")
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    return run


def runs_notes(runner, run: Path) -> list[str]:
    """The lines `dcgan runs` prints under its table about run."""
    result = runner.invoke(main, ["runs", str(run.parent)])
    assert result.exit_code == 0, result.output
    return [line for line in result.output.splitlines() if line.startswith(f"{run.name}: ")]


def test_a_resume_passes_a_damaged_newest_checkpoint_by(runner, tmp_path):
    run = two_checkpoint_run(runner, tmp_path)
    # The listing tells the cut from the index alone, without TensorFlow.
    (data,) = (run / "checkpoints" / "step-0000004").glob("ckpt.data-*")
    whole = data.stat().st_size  # both checkpoints hold the same tensors
    assert runs_notes(runner, run) == [
        f"{run.name}: newest checkpoint step-0000008 is damaged: ckpt.data-00000-of-00001 is "
        f"cut short: {whole // 2:,} of its {whole:,} bytes; `dcgan train --resume` goes on "
        "from the one before it, and --ckpt commands pass it by"
    ]
    result = runner.invoke(main, ["train", "--resume", str(run), "--set", "train.steps=12"])
    assert result.exit_code == 0, result.output
    log = (run / "train.log").read_text()
    assert "step-0000008: cannot restore this checkpoint" in log
    assert "moved aside to step-0000008.damaged" in log
    assert "from step-0000004" in log
    # Steps 5 to 8 trained again, on to 12; the damaged folder is out of the rotation.
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step-0000008",
        "step-0000008.damaged",
        "step-0000012",
    ]
    assert runs_notes(runner, run) == [
        f"{run.name}: 1 damaged checkpoint(s) moved aside by a resume "
        "(checkpoints/step-0000008.damaged): kept for you to look at; remove them when done"
    ]


def test_every_name_a_resume_may_move_a_checkpoint_to_is_one_the_listing_finds(tmp_path):
    folder = tmp_path / "checkpoints"
    newest = checkpoints.checkpoint_dir(folder, 8)
    names = checkpoints.aside_names(newest)
    assert [p.name for p in names[:3]] == [
        "step-0000008.damaged",
        "step-0000008.damaged-2",
        "step-0000008.damaged-3",
    ]
    assert names[-1].name == "step-0000008.damaged-99" and len(set(names)) == 99
    for path in [newest, *names]:
        (path / "ckpt.index").parent.mkdir(parents=True)
        (path / "ckpt.index").write_bytes(b"")
    assert checkpoints.set_aside(folder) == sorted(names)
    assert checkpoints.list_checkpoints(folder) == [(8, newest)]  # no set-aside one resumes


def test_a_resume_with_no_checkpoint_that_restores_moves_nothing(runner, tmp_path):
    run = two_checkpoint_run(runner, tmp_path, damage="step-0000004,step-0000008")
    result = runner.invoke(main, ["train", "--resume", str(run), "--set", "train.steps=12"])
    assert result.exit_code == 2
    assert "step-0000008: cannot restore this checkpoint" in result.output  # the newest
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step-0000004",
        "step-0000008",
    ]


@pytest.mark.parametrize(
    "damage, used", [("step-0000008", "step-0000004"), ("step-0000004,step-0000008", "generator")]
)
def test_sampling_a_run_passes_damaged_checkpoints_by(runner, tmp_path, damage, used):
    run = two_checkpoint_run(runner, tmp_path, damage)
    generator_mtime = (run / "generator.keras").stat().st_mtime
    os.utime(run / "generator.keras", (generator_mtime - 3600,) * 2)  # older than both
    out = tmp_path / "out"
    told = io.StringIO()  # on the module's own logger: the CLI's "dcgan" does not propagate
    handler = logging.StreamHandler(told)
    logging.getLogger("dcgan.generation.loading").addHandler(handler)
    try:
        result = runner.invoke(main, ["sample", "--ckpt", str(run), "-n", "4", "--out", str(out)])
    finally:
        logging.getLogger("dcgan.generation.loading").removeHandler(handler)
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*.png"))) == 4
    assert f"from {run / 'checkpoints' / used if used != 'generator' else run}" in result.output
    lines = told.getvalue().splitlines()
    passed_by = [line.split(": cannot restore")[0] for line in lines[:-1]]
    damaged = [str(run / "checkpoints" / name) for name in reversed(damage.split(","))]
    assert passed_by == damaged
    assert all(line.endswith("damaged file?): Read less bytes than requested; passed by")
               for line in lines[:-1])  # fmt: skip
    assert lines[-1] == f"using {used}{'.keras' if used == 'generator' else ''} instead"


def test_mixed_modes_and_some_broken_files_still_train(runner, tmp_path):
    """Not every odd file is an error: a folder of every mode trains, and the files that
    cannot be used are skipped and counted."""
    folder = tmp_path / "mixed"
    rgb = random_pixels((20, 20, 3))
    save_image(folder / "rgb.jpg", rgb)
    save_image(folder / "gray.png", rgb[..., 0])
    save_image(folder / "rgba.png", np.dstack([rgb, rgb[..., :1]]))
    Image.fromarray(rgb).convert("P").save(folder / "palette.gif")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(folder / "deep.png")
    Image.fromarray(rgb[..., 0] > 127).save(folder / "bits.bmp")
    (folder / "empty.png").write_bytes(b"")
    truncated_jpeg(folder / "cut.jpg")
    save_image(folder / "dot.png", rgb[:1, :1])
    Image.new("RGB", (4000, 3000), (200, 30, 30)).save(folder / "large.png")  # a 12 MP photo
    data = {"source": "folder", "path": str(folder), "channels": 3}
    config_path = write_config(tmp_path, tiny_config(tmp_path, data=data, train={"steps": 2}))
    result = runner.invoke(main, ["train", "--config", str(config_path)])
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    log = (run / "train.log").read_text()
    assert "skipped 3 unreadable or too small file(s) of 11" in log
    assert "data: 8 images of 16x16x3" in log


def test_loading_never_runs_code_from_a_file(runner, tmp_path):
    marker = tmp_path / "code-ran"
    config = tmp_path / "evil.yaml"
    config.write_text(f'name: !!python/object/apply:os.system ["touch {marker}"]\n')
    result = runner.invoke(main, ["train", "--config", str(config)])
    assert result.exit_code == 2
    assert "evil.yaml: invalid YAML (line 1, column 7)" in result.output

    import keras

    marker_name = str(marker)  # a closure Keras can save: a str, not a Path
    touch = keras.layers.Lambda(lambda x: (open(marker_name, "w").close(), x)[1])
    model = keras.Sequential([keras.Input((8,)), touch])
    marker.unlink(missing_ok=True)  # calling it while building it ran the code once
    evil = tmp_path / "evil.keras"
    model.save(evil)
    result = runner.invoke(main, ["sample", "--ckpt", str(evil), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "evil.keras: not a loadable Keras generator: " in result.output
    assert "risk of arbitrary code execution and thus it is disallowed by default." in result.output
    assert not marker.exists()
