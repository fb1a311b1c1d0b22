"""Bring your own latents: `--z FILE` on sample and interpolate, `sample --save-z`, and the
checks on a latent file (float32 (N, latent_dim), finite, never a pickle, bounded)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import invoke_checked as invoke
from conftest import pixels

from dcgan.errors import DcganError
from dcgan.storage.latent_files import LatentWriter, read_latents

LATENT_DIM = 8  # tiny_config's


def test_a_latent_file_is_read_only_as_finite_float32_rows(tmp_path):
    good = np.random.default_rng(0).standard_normal((3, LATENT_DIM)).astype(np.float32)
    np.save(tmp_path / "good.npy", good)
    np.testing.assert_array_equal(read_latents(tmp_path / "good.npy", LATENT_DIM), good)
    nan = good.copy()
    nan[2, 5] = np.inf
    cases = {
        "f64.npy": (good.astype(np.float64), "holds float64 values; latents are float32"),
        "shape.npy": (good[:, :5], "has shape (3, 5); this generator takes latents of shape"),
        "flat.npy": (good[0], "has shape (8,)"),
        "empty.npy": (good[:0], "has shape (0, 8)"),
        "nan.npy": (nan, "row 2 holds inf: latents must be finite"),
        "fortran.npy": (np.asfortranarray(good), "a Fortran-ordered array"),
    }  # fmt: skip
    for name, (array, expected) in cases.items():
        np.save(tmp_path / name, array)
        with pytest.raises(DcganError) as caught:
            read_latents(tmp_path / name, LATENT_DIM)
        assert f"--z {tmp_path / name}: {expected}" in str(caught.value), name


def test_hostile_latent_files_are_refused_unread(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"run": "code"}], dtype=object), allow_pickle=True)
    with pytest.raises(DcganError, match="holds Python objects.*never loads a pickle"):
        read_latents(tmp_path / "objects.npy", LATENT_DIM)
    (tmp_path / "text.npy").write_text("not numpy")
    with pytest.raises(DcganError, match="not a .npy file of latents"):
        read_latents(tmp_path / "text.npy", LATENT_DIM)
    whole = tmp_path / "whole.npy"
    np.save(whole, np.zeros((4, LATENT_DIM), np.float32))
    (tmp_path / "cut.npy").write_bytes(whole.read_bytes()[:-10])
    with pytest.raises(DcganError, match="truncated: its header declares"):
        read_latents(tmp_path / "cut.npy", LATENT_DIM)
    os.mkfifo(tmp_path / "pipe.npy")
    with pytest.raises(DcganError, match="is a FIFO"):
        read_latents(tmp_path / "pipe.npy", LATENT_DIM)
    with pytest.raises(DcganError, match="is a character device"):
        read_latents("/dev/zero", LATENT_DIM)
    huge = tmp_path / "huge.npy"
    with open(huge, "wb") as stream:
        stream.truncate(2 * 1024**3)  # sparse: 2 GiB on paper
    with pytest.raises(DcganError, match="is 2.0 GiB, over the 1.0 GiB a latent file may have"):
        read_latents(huge, LATENT_DIM)


def test_the_writer_lands_whole_or_not_at_all(tmp_path):
    rows = np.arange(6 * LATENT_DIM, dtype=np.float32).reshape(6, LATENT_DIM)
    writer = LatentWriter(tmp_path / "z.npy", 6, LATENT_DIM)
    writer.add(rows[:4])
    assert not (tmp_path / "z.npy").exists()  # nothing under the name until it is whole
    writer.add(rows[4:])
    writer.close()
    np.testing.assert_array_equal(np.load(tmp_path / "z.npy"), rows)
    short = LatentWriter(tmp_path / "short.npy", 6, LATENT_DIM)
    short.add(rows[:2])
    with pytest.raises(DcganError, match="2 of 6 rows written"):
        short.close()
    assert not (tmp_path / "short.npy").exists() and not list(tmp_path.glob(".short*"))


def test_save_z_then_z_gives_the_same_files_byte_for_byte(tiny_run, tmp_path):
    first, again = tmp_path / "first", tmp_path / "again"
    invoke("sample", "--ckpt", tiny_run, "-n", 5, "--seed", 7, "--truncation", 0.8,
           "--save-z", "--out", first)  # fmt: skip
    saved = np.load(first / "latents.npy")
    assert saved.shape == (5, LATENT_DIM) and saved.dtype == np.float32
    # The latents saved are the ones used: the seed's, truncated.
    expected = np.random.default_rng(7).standard_normal((5, LATENT_DIM)) * 0.8
    np.testing.assert_allclose(saved, expected, rtol=1e-6)
    result = invoke("sample", "--ckpt", tiny_run, "--z", first / "latents.npy", "--batch-size",
                    2, "--out", again)  # fmt: skip
    assert "5 images of 16x16x1" in result.output and "(latents from" in result.output
    for i in range(5):
        name = f"{i:06d}.png"
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    # One row alone (-n 1) makes the first image again.
    one = tmp_path / "one"
    invoke("sample", "--ckpt", tiny_run, "--z", first / "latents.npy", "-n", 1, "--out", one)
    assert (one / "000000.png").read_bytes() == (first / "000000.png").read_bytes()
    result = invoke("sample", "--ckpt", tiny_run, "--z", first / "latents.npy", "-n", 6, code=2)
    assert "-n 6: --z" in result.output and "holds 5 latents" in result.output


def test_save_z_refuses_to_replace_a_latent_file_without_force(tiny_run, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "latents.npy").write_bytes(b"mine")
    result = invoke("sample", "--ckpt", tiny_run, "-n", 2, "--save-z", "--out", out, code=2)
    assert "latents.npy already exists" in result.output
    assert (out / "latents.npy").read_bytes() == b"mine"


def test_sample_z_writes_to_a_folder_named_after_the_file(tiny_run, tmp_path):
    picked = tmp_path / "picked.npy"
    np.save(picked, np.ones((2, LATENT_DIM), np.float32))
    invoke("sample", "--ckpt", tiny_run, "--z", picked)
    assert (tiny_run / "generated" / "z-picked" / "000001.png").is_file()


def test_interpolate_walks_through_the_rows_of_a_latent_file(tiny_run, tmp_path):
    rows = np.random.default_rng(3).standard_normal((3, LATENT_DIM)).astype(np.float32)
    np.save(tmp_path / "walk.npy", rows)
    invoke("sample", "--ckpt", tiny_run, "--z", tmp_path / "walk.npy", "--out", tmp_path / "s")
    invoke("interpolate", "--ckpt", tiny_run, "--z", tmp_path / "walk.npy", "--steps", 4,
           "--out", tmp_path / "w")  # fmt: skip
    grid = pixels(tmp_path / "w" / "z-walk-slerp.png")
    assert grid.shape == (2 + 2 * 18, 2 + 4 * 18)  # a row per segment, 4 images each
    for index, (row, column) in enumerate(((0, 0), (0, 3), (1, 3))):  # the rows, in order
        top, left = 2 + row * 18, 2 + column * 18
        np.testing.assert_array_equal(
            grid[top : top + 16, left : left + 16], pixels(tmp_path / "s" / f"{index:06d}.png")
        )
    result = invoke("interpolate", "--ckpt", tiny_run, "--z", tmp_path / "walk.npy",
                    "--seeds", "1,2", code=2)  # fmt: skip
    assert "--seeds and --z exclude each other" in result.output
    np.save(tmp_path / "single.npy", rows[:1])
    result = invoke("interpolate", "--ckpt", tiny_run, "--z", tmp_path / "single.npy", code=2)
    assert "holds 1 latent; a walk needs 2 or more" in result.output
