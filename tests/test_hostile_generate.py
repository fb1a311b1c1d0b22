"""Hostile input to sample, interpolate, export, evaluate and nearest: absurd numbers,
nan, files where folders go, read-only and full disks, .keras files that are bombs, pipes
or other models. Each ends in one `Error:` line naming the option or file, exit 2 for bad
input and 1 for a fault of the place, no traceback, nothing half-written, and the finished
run's files as they were; memory stays bounded whatever number is asked for."""

from __future__ import annotations

import _thread
import os
import shutil
import struct
import subprocess
import threading
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import error_line, snapshot
from PIL import Image

from dcgan import imaging
from dcgan.cli import main

MiB = 2**20


@pytest.fixture(scope="module")
def finished(four_step_run) -> Path:
    """One finished run for the whole module."""
    return four_step_run


@pytest.fixture(scope="module")
def exported(finished, tmp_path_factory) -> Path:
    """The run's generator as a lone .keras file."""
    path = tmp_path_factory.mktemp("exported") / "generator.keras"
    shutil.copyfile(finished / "generator.keras", path)
    return path


@pytest.fixture(autouse=True)
def _finished_run_untouched(finished):
    before = snapshot(finished)
    names = sorted(p.name for p in finished.iterdir())
    yield
    assert snapshot(finished) == before
    assert sorted(p.name for p in finished.iterdir()) == names


def invoke(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def whole_pngs(folder: Path) -> list[str]:
    """The names in folder, each checked to be a complete PNG (no temporaries left)."""
    names = sorted(os.listdir(folder))
    for name in names:
        assert not name.startswith("."), f"a temporary was left: {name}"
        with Image.open(folder / name) as image:
            image.load()
    return names


# --- guards that make the old behaviour fail fast instead of running for minutes ----------


@pytest.fixture
def nothing_loads(monkeypatch):
    """An option out of bounds is refused before any generator is loaded."""
    from dcgan.generation import loading

    def refuse(path):
        raise AssertionError("the command ran with an option out of bounds")

    monkeypatch.setattr(loading, "load_generator", refuse)


@pytest.fixture
def no_images(monkeypatch):
    """A walk too long is refused before any image is made."""
    from dcgan.models.loaded import LoadedGenerator

    def refuse(self, latents, batch_size=64):
        raise AssertionError("images were made for a walk out of bounds")

    monkeypatch.setattr(LoadedGenerator, "images", refuse)


class MemoryGuard:
    """Python's memory traced from the moment the generator is loaded; past LIMIT the
    command is interrupted (the old code built every file name first: 1.5 GB for 10M)."""

    LIMIT = 64 * MiB

    def __init__(self) -> None:
        self.tripped = False
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        tracemalloc.start()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            current, self.peak = tracemalloc.get_traced_memory()
            if current > self.LIMIT:
                self.tripped = True
                _thread.interrupt_main()
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if tracemalloc.is_tracing():
            self.peak = max(self.peak, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()


@pytest.fixture
def memory_guard(monkeypatch):
    from dcgan.generation import loading

    guard = MemoryGuard()
    load = loading.load_generator

    def load_then_trace(path):
        generator = load(path)
        guard.start()
        return generator

    monkeypatch.setattr(loading, "load_generator", load_then_trace)
    yield guard
    guard.stop()


# --- places to write that refuse -------------------------------------------------------


def _mount_tmpfs(folder: Path, options: str) -> None:
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        folder.rmdir()
        reason = f"cannot mount a tmpfs ({options}): {done.stderr.strip() or done.returncode}"
        print(reason)
        pytest.skip(reason)


def _unmount(folder: Path) -> None:
    if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def read_only(tmp_path) -> Path:
    """A folder nobody may write in: as root (whom chmod does not stop) a read-only tmpfs."""
    folder = tmp_path / "read-only"
    if os.geteuid() == 0:
        _mount_tmpfs(folder, "ro,size=1m")
        yield folder
        _unmount(folder)
    else:
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


@pytest.fixture
def full_disk(tmp_path) -> Path:
    """A 64 KiB tmpfs: a few PNGs fill it."""
    if os.geteuid() != 0:
        pytest.skip("a full disk needs root to mount a tiny tmpfs")
    folder = tmp_path / "full"
    _mount_tmpfs(folder, "size=64k")
    yield folder
    _unmount(folder)


# --- 1. absurd numbers -------------------------------------------------------------------


def test_ten_million_samples_stream_in_small_memory(finished, tmp_path, memory_guard, monkeypatch):
    """No list of ten million names: interrupted after 5 images, the 5 are whole and
    Python's memory stayed small all along."""
    save = imaging.save_png
    saved = []

    def save_five(image, path):
        if len(saved) == 5:
            raise KeyboardInterrupt
        save(image, path)
        saved.append(path)

    monkeypatch.setattr(imaging, "save_png", save_five)
    out = tmp_path / "many"
    result = invoke("sample", "--ckpt", finished, "-n", 10_000_000, "--out", out)
    memory_guard.stop()
    assert not memory_guard.tripped, f"{memory_guard.peak / MiB:.0f} MiB traced"
    assert memory_guard.peak < 32 * MiB, f"{memory_guard.peak / MiB:.0f} MiB traced"
    assert result.exit_code == 130, result.output
    assert result.output.strip() == "interrupted: files written so far are complete"
    assert whole_pngs(out) == [f"{i:07d}.png" for i in range(5)]


def test_ten_million_samples_on_a_full_disk(finished, full_disk, memory_guard):
    out = full_disk / "samples"
    result = invoke("sample", "--ckpt", finished, "-n", 10_000_000, "--out", out)
    memory_guard.stop()
    assert not memory_guard.tripped, f"{memory_guard.peak / MiB:.0f} MiB traced"
    line = error_line(result, exit_code=1)
    assert f"Error: {out}/" in line
    assert line.endswith(".png: cannot write: No space left on device")
    assert len(whole_pngs(out)) >= 1  # every file written is whole, no temporary is left


def test_existing_files_are_found_from_the_folder_not_from_every_name(
    finished, tmp_path, memory_guard
):
    out = tmp_path / "taken"
    out.mkdir()
    for name in ("0000003.png", "grid.png", "notes.txt", "03.png", "9999999.png.bak"):
        (out / name).write_bytes(b"mine")
    result = invoke("sample", "--ckpt", finished, "-n", 10_000_000, "--grid", "--out", out)
    memory_guard.stop()
    assert not memory_guard.tripped, f"{memory_guard.peak / MiB:.0f} MiB traced"
    line = error_line(result)
    assert f"{out / '0000003.png'} (and 1 more) already exists: use --force" in line
    assert all((out / name).read_bytes() == b"mine" for name in os.listdir(out))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["sample", "--batch-size", "100000"], "'--batch-size': 100000 is not in the range"),
        (["interpolate", "--steps", "1000000"], "'--steps': 1000000 is not in the range 2<=x<=256"),
        (["interpolate", "--batch-size", "100000"], "x<=1024"),
        (["evaluate", "-n", "1000000000"], "'-n': 1000000000 is not in the range 10<=x<=50000"),
        (["evaluate", "--max-real", "1000000000"], "'--max-real': 1000000000 is not in the"),
        (["nearest", "--rate-samples", "1000000000"], "'--rate-samples': 1000000000 is not"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_numbers_that_would_fill_memory_are_bounded(finished, nothing_loads, args, expected):
    line = error_line(invoke(args[0], "--ckpt", finished, *args[1:]))
    assert "Invalid value for" in line and expected in line


def test_too_many_seeds_for_a_walk(finished, nothing_loads):
    seeds = ",".join(map(str, range(65)))
    line = error_line(invoke("interpolate", "--ckpt", finished, "--seeds", seeds))
    assert "Invalid value for '--seeds'" in line
    assert "65 seeds, over the 64 a walk may have" in line


def test_a_walk_of_too_many_frames(finished, tmp_path, no_images):
    seeds = ",".join(map(str, range(64)))
    out = tmp_path / "walk"
    result = invoke(
        "interpolate", "--ckpt", finished, "--seeds", seeds, "--steps", 100, "--out", out
    )
    assert error_line(result) == (
        "Error: --steps 100 through 64 seeds makes 6,238 frames, over the 2048 a walk may "
        "have: lower --steps or give fewer --seeds"
    )
    assert not out.exists()


def test_a_walk_enlarged_past_the_memory_bound(finished, tmp_path, no_images, monkeypatch):
    from dcgan.generation import sampling

    # 2 seeds at 100 steps: 100 frames of 16x16x1, enlarged 16 times: 100 * 256 * 256 bytes.
    monkeypatch.setattr(sampling, "MAX_WALK_BYTES", 6 * 1024 * 1024)
    out = tmp_path / "walk"
    args = ("interpolate", "--ckpt", finished, "--seeds", "1,2", "--steps", 100, "--out", out)
    assert error_line(invoke(*args, "--scale", 16)) == (
        "Error: --steps 100 through 2 seeds makes 100 frames of 256x256x1 (enlarged 16 "
        "times): 6.2 MiB, over the 6.0 MiB a walk may hold: lower --steps or --scale or "
        "give fewer --seeds"
    )
    assert not out.exists()


# --- 2. nan and inf ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        ("sample", "--truncation", "nan"),
        ("sample", "--truncation", "inf"),
        ("interpolate", "--fps", "nan"),
        ("gif", "--fps", "nan"),
    ],
)
def test_nan_and_inf_are_not_numbers(finished, tmp_path, command, option, value):
    where = [finished] if command == "gif" else ["--ckpt", finished]
    out = tmp_path / ("out.gif" if command == "gif" else "out")
    line = error_line(invoke(command, *where, option, value, "--out", out))
    assert f"Invalid value for '{option}': {value} is not a finite number." in line
    assert not out.exists()


# --- 3. where the output goes ------------------------------------------------------------


@pytest.mark.parametrize("command", ["sample", "interpolate"])
def test_out_that_is_a_file(finished, tmp_path, command):
    out = tmp_path / "a-file"
    out.write_text("keep me")
    line = error_line(invoke(command, "--ckpt", finished, "--out", out))
    assert line == f"Error: --out {out}: is a file, not a folder"
    assert out.read_text() == "keep me"


def test_export_out_below_a_file(finished, tmp_path):
    parent = tmp_path / "a-file"
    parent.write_text("keep me")
    line = error_line(invoke("export", "--ckpt", finished, "--out", parent / "g.keras"))
    assert line == f"Error: {parent}: is a file, not a folder"
    assert parent.read_text() == "keep me"


def test_export_with_a_wrong_suffix_makes_no_folder(finished, tmp_path):
    out = tmp_path / "new" / "generator.h5"
    line = error_line(invoke("export", "--ckpt", finished, "--out", out))
    assert line == f"Error: --out {out}: a Keras export must end in .keras"
    assert not out.parent.exists()


def test_export_over_an_existing_file_needs_force(finished, tmp_path):
    out = tmp_path / "taken.keras"
    out.write_text("keep me")
    line = error_line(invoke("export", "--ckpt", finished, "--out", out))
    assert f"{out} already exists: use --force" in line
    assert out.read_text() == "keep me"


@pytest.mark.parametrize(
    ("command", "out"),
    [
        ("sample", "new"),
        ("interpolate", "new"),
        ("export", "new/generator.keras"),
        ("export --format savedmodel", "new/saved"),
    ],
)
def test_read_only_folder_is_one_line_and_exit_1(finished, read_only, command, out):
    target = read_only / out
    folder = read_only / "new"
    line = error_line(invoke(*command.split(), "--ckpt", finished, "--out", target), 1)
    assert line.startswith(f"Error: {'--out ' if target == folder else ''}{folder}: ")
    assert line.endswith(": cannot create the folder: Read-only file system") or line.endswith(
        ": cannot create the folder: Permission denied"
    )


@pytest.mark.parametrize("command", ["sample", "interpolate", "export"])
def test_out_whose_name_is_not_utf8(finished, tmp_path, command):
    out = tmp_path / os.fsdecode(b"out-\xff")
    target = out / "g.keras" if command == "export" else out
    result = invoke(command, "--ckpt", finished, "--out", target)
    assert result.exit_code == 0, result.output
    assert "out-\\xff" in result.output
    assert os.listdir(out)


# --- 4. .keras files that are not what they claim ----------------------------------------


def _members(keras_file: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(keras_file) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.fixture(scope="module")
def config_bomb(exported, tmp_path_factory) -> Path:
    """A working generator whose config.json inflates to 1.5 GB: spaces, then its JSON
    (valid: JSON allows leading whitespace). 7 MB on disk."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.keras"
    members = _members(exported)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("config.json", "w", force_zip64=True) as stream:
            chunk = b" " * (64 * MiB)
            for _ in range(1_500_000_000 // len(chunk)):
                stream.write(chunk)
            stream.write(members.pop("config.json"))
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_keras_file_whose_config_inflates_to_1_5_gb(config_bomb, tmp_path):
    out = tmp_path / "o"
    line = error_line(invoke("sample", "--ckpt", config_bomb, "-n", 1, "--out", out))
    assert line == (
        f"Error: --ckpt {config_bomb}: its config.json inflates to 1.4 GiB, over the 4.0 MiB "
        "allowed"
    )
    assert not out.exists()


def test_keras_file_whose_directory_claims_4_gb(exported, tmp_path):
    """A member whose directory entry claims 4 GB; keras would never look at it."""
    path = tmp_path / "claims.keras"
    shutil.copyfile(exported, path)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_STORED) as archive:
        archive.writestr("padding.bin", b"x" * 16)
    data = bytearray(path.read_bytes())
    entry = data.rindex(b"PK\x01\x02")  # the last member's central directory entry
    data[entry + 24 : entry + 28] = struct.pack("<I", 4_000_000_000)
    path.write_bytes(bytes(data))
    line = error_line(invoke("sample", "--ckpt", path, "-n", 1, "--out", tmp_path / "o"))
    assert line == f"Error: --ckpt {path}: inflates to 3.7 GiB, over the 2.0 GiB allowed"


def _save_model(path: Path, build) -> Path:
    import keras

    inputs, outputs = build(keras)
    keras.Model(inputs, outputs).save(path)
    return path


def _dense_to(keras, shape, latent=None):
    latent = latent if latent is not None else keras.Input((8,))
    size = 1
    for d in shape:
        size *= d
    return latent, keras.layers.Reshape(shape)(keras.layers.Dense(size)(latent))


def _image_to_image(keras):
    image = keras.Input((16, 16, 1))
    return image, keras.layers.Conv2D(1, 3, padding="same")(image)


def _two_inputs(keras):
    a, b = keras.Input((8,)), keras.Input((8,))
    _, out = _dense_to(keras, (4, 4, 1), keras.layers.Concatenate()([a, b]))
    return [a, b], out


def _latents_and_unnamed_classes(keras):
    latent, label = keras.Input((8,)), keras.Input((), dtype="int32")
    one_hot = keras.layers.CategoryEncoding(3, output_mode="one_hot")(label)
    _, out = _dense_to(keras, (4, 4, 1), keras.layers.Concatenate()([latent, one_hot]))
    return [latent, label], out


def _three_inputs(keras):
    inputs = [keras.Input((8,)) for _ in range(3)]
    _, out = _dense_to(keras, (4, 4, 1), keras.layers.Concatenate()(inputs))
    return inputs, out


def _two_outputs(keras):
    latent, first = _dense_to(keras, (4, 4, 1))
    _, second = _dense_to(keras, (4, 4, 1), latent)
    return latent, [first, second]


NOT_GENERATORS = {
    "image to image": (_image_to_image, "its input is (None, 16, 16, 1), not latents"),
    "five channels": (
        lambda keras: _dense_to(keras, (4, 4, 5)),
        "its images have 5 channels, not 1 or 3",
    ),
    "two inputs": (_two_inputs, "its second input is (None, 8), not class indices"),
    "classes without their layer": (
        _latents_and_unnamed_classes,
        "it has two inputs but no class_one_hot layer",
    ),
    "three inputs": (_three_inputs, "it has 3 inputs"),
    "two outputs": (_two_outputs, "it has 2 outputs"),
    "too wide": (
        lambda keras: _dense_to(keras, (4, 2048, 1)),
        "its images are 4x2048, over the 1024 allowed",
    ),
}


@pytest.mark.parametrize("case", list(NOT_GENERATORS))
def test_keras_file_that_is_not_a_generator(tmp_path, case):
    build, reason = NOT_GENERATORS[case]
    path = _save_model(tmp_path / "model.keras", build)
    out = tmp_path / "o"
    line = error_line(invoke("sample", "--ckpt", path, "-n", 2, "--out", out))
    assert line == (
        f"Error: --ckpt {path}: not a generator: {reason} (a generator maps latents "
        "(None, latent_dim), and for a conditional one class indices (None,), to images "
        "(None, H, W, C) with C 1 or 3)"
    )
    assert not out.exists()


def test_keras_file_that_is_a_fifo(tmp_path):
    path = tmp_path / "pipe.keras"
    os.mkfifo(path)
    line = error_line(invoke("sample", "--ckpt", path, "--out", tmp_path / "o"))
    assert line == f"Error: --ckpt {path}: is a FIFO (named pipe), not a Keras file"


def test_keras_file_that_is_a_device(tmp_path):
    path = tmp_path / "zero.keras"
    path.symlink_to("/dev/zero")
    line = error_line(invoke("export", "--ckpt", path, "--out", tmp_path / "g.keras"))
    assert line == f"Error: --ckpt {path}: is a character device, not a Keras file"


def test_run_whose_generator_keras_is_a_fifo(finished, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(finished, run)
    shutil.rmtree(run / "checkpoints")
    (run / "generator.keras").unlink()
    os.mkfifo(run / "generator.keras")
    line = error_line(invoke("sample", "--ckpt", run, "--out", tmp_path / "o"))
    fifo = run / "generator.keras"
    assert line == f"Error: --ckpt {fifo}: is a FIFO (named pipe), not a Keras file"


def test_keras_path_that_is_a_folder(tmp_path):
    path = tmp_path / "folder.keras"
    path.mkdir()
    line = error_line(invoke("interpolate", "--ckpt", path, "--out", tmp_path / "o"))
    assert line == f"Error: --ckpt {path}: is a folder, not a Keras file"


def test_keras_file_without_read_permission(exported, tmp_path, monkeypatch):
    path = tmp_path / "secret.keras"
    shutil.copyfile(exported, path)
    if os.geteuid() == 0:  # root reads whatever the mode: the refusal is simulated
        real_open = os.open

        def no_permission(file, flags, *args, **kwargs):
            if os.fspath(file) == str(path):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(file, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", no_permission)
    else:
        path.chmod(0)
    line = error_line(invoke("sample", "--ckpt", path, "--out", tmp_path / "o"))
    if os.geteuid() == 0:
        assert line == f"Error: --ckpt {path}: cannot read: Permission denied"
    else:  # click's own check of --ckpt answers first
        assert line == f"Error: Invalid value for '--ckpt': Path '{path}' is not readable."


# --- 5. values echoed into messages ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("x" * 100_000, "expected comma-separated integers"),
        ("1," * 50_000, "50,000 seeds, over the 64 a walk may have"),
    ],
    ids=["100 KB of letters", "50,000 seeds"],
)
def test_a_huge_seeds_value_is_cut_short(finished, nothing_loads, value, expected):
    line = error_line(invoke("interpolate", "--ckpt", finished, "--seeds", value))
    assert expected in line
    assert f"({len(value):,} characters)" in line
    assert len(line) < 300
