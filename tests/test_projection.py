"""`dcgan project`: the latent of a picture, found by optimisation, and what it writes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import invoke_checked as invoke
from conftest import pixels, run_dirs, save_image, tiny_config, write_config
from PIL import Image

PSNR_BOUND = 25.0  # dB, for an image the generator itself made


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny digits run trained long enough that different latents draw different
    pictures (at its first steps every latent gives nearly the same grey)."""
    root = tmp_path_factory.mktemp("projection")
    config = tiny_config(
        root,
        train={"steps": 400, "batch_size": 32},
        model={"latent_dim": 8, "g_width": 16, "d_width": 16},
    )
    config["data"]["max_images"] = None
    config["output"].update(checkpoint_every=400, sample_every=400, log_every=100)
    invoke("train", "--config", write_config(root, config))
    (run,) = run_dirs(root)
    return run


def test_projecting_a_generated_image_recovers_it_and_a_latent_that_draws_it(trained, tmp_path):
    from dcgan.generation.projection import psnr

    invoke("sample", "--ckpt", trained, "--seed", 5, "-n", 1, "--out", tmp_path / "made")
    target = tmp_path / "made" / "000000.png"
    result = invoke("project", "--ckpt", trained, target, "--out", tmp_path / "p",
                    "--features", "random", "--iterations", 200)  # fmt: skip
    folder = tmp_path / "p" / "000000"
    found = float(result.output.split("PSNR ")[1].split(" dB")[0])
    assert found > PSNR_BOUND, result.output
    assert psnr(pixels(folder / "projected.png"), pixels(target)) == pytest.approx(found, abs=0.01)
    # A random latent is far from it: the optimisation did the work.
    invoke("sample", "--ckpt", trained, "--seed", 6, "-n", 1, "--out", tmp_path / "other")
    assert psnr(pixels(tmp_path / "other" / "000000.png"), pixels(target)) < found - 5
    z = np.load(folder / "z.npy")
    assert z.shape == (1, 8) and z.dtype == np.float32
    # `sample --z` gives the projected image back, byte for byte.
    invoke("sample", "--ckpt", trained, "--z", folder / "z.npy", "--out", tmp_path / "again")
    again = (tmp_path / "again" / "000000.png").read_bytes()
    assert again == (folder / "projected.png").read_bytes()
    assert "sample --ckpt" in result.output and f"--z {folder / 'z.npy'}" in result.output
    compare = pixels(folder / "compare.png")
    assert compare.shape[1] > 1.5 * compare.shape[0]  # the target beside the result
    with Image.open(folder / "progress.gif") as gif:
        assert gif.n_frames >= 20


def test_a_picture_is_prepared_as_training_images_are(trained, tmp_path):
    # A large colour photo for a 16x16 gray run: converted, cropped and shrunk first.
    rng = np.random.default_rng(0)
    save_image(tmp_path / "photo.jpg", rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))
    invoke("project", "--ckpt", trained, tmp_path / "photo.jpg", "--out", tmp_path / "p",
           "--features", "random", "--iterations", 5, "--starts", 2)  # fmt: skip
    assert pixels(tmp_path / "p" / "photo" / "projected.png").shape == (16, 16)


def test_bad_pictures_and_existing_results_are_one_line(trained, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    result = invoke("project", "--ckpt", trained, tmp_path / "broken.png", code=2)
    assert f"Error: {tmp_path / 'broken.png'}: cannot be used: " in result.output
    save_image(tmp_path / "a.png", np.zeros((16, 16), np.uint8))
    args = ["project", "--ckpt", trained, tmp_path / "a.png", "--out", tmp_path / "p",
            "--features", "random", "--iterations", 2, "--starts", 1]  # fmt: skip
    invoke(*args)
    result = invoke(*args, code=2)
    assert "already exists: use --force" in result.output
    invoke(*args, "--force")
    result = invoke("project", "--ckpt", trained, tmp_path / "a.png", "--class", "3", code=2)
    assert "is not a conditional generator" in result.output
    invoke("export", "--ckpt", trained, "--out", tmp_path / "g.keras")
    result = invoke("project", "--ckpt", tmp_path / "g.keras", tmp_path / "a.png", code=2)
    assert "this needs a run directory" in result.output


def test_two_pictures_with_one_name_get_folders_of_their_own(trained, tmp_path):
    for folder in ("x", "y"):
        save_image(tmp_path / folder / "same.png", np.zeros((16, 16), np.uint8))
    pictures = [tmp_path / "x" / "same.png", tmp_path / "y" / "same.png"]
    invoke("project", "--ckpt", trained, *pictures, "--out", tmp_path / "p",
           "--features", "random", "--iterations", 2, "--starts", 1)  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["same", "same-2"]
