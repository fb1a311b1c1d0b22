"""`dcgan arithmetic`: averaged latents added and subtracted, as in the DCGAN paper."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import invoke_checked as invoke
from PIL import Image

from dcgan.errors import DcganError
from dcgan.generation.arithmetic import parse, result_latent
from dcgan.models.latents import seed_latent


def test_terms_are_averaged_and_signed():
    terms = parse("1,2 - 3 + 4,5,6", 8)
    assert [(t.sign, t.text, len(t.latents)) for t in terms] == [
        (1, "1,2", 2), (-1, "3", 1), (1, "4,5,6", 3),
    ]  # fmt: skip
    mean = lambda seeds: np.mean([seed_latent(s, 8) for s in seeds], axis=0)  # noqa: E731
    expected = mean([1, 2]) - mean([3]) + mean([4, 5, 6])
    np.testing.assert_allclose(result_latent(terms)[0], expected, rtol=1e-6, atol=1e-6)
    assert [t.sign for t in parse("- 3 + 4", 8)] == [-1, 1]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("", "term 1 is empty"),
        ("3 + x,1", "term 2 'x,1': not seeds (comma-separated whole numbers"),
        ("3-4", "term 1 '3-4': not seeds (comma-separated whole numbers such as 3,17,42) or a "
                ".npy file of latents (+ and - need a space on each side)"),
        ("3 + + 4", "term 2 '+ 4': not seeds"),
        ("3 + missing.npy", "term 2 'missing.npy':"),
        (" + ".join(["1"] * 17), "17 terms, over the 16 allowed"),
    ],
)  # fmt: skip
def test_a_malformed_expression_names_the_bad_term(expression, expected):
    with pytest.raises(DcganError) as caught:
        parse(expression, 8)
    assert expected in str(caught.value)


def test_a_minus_a_plus_c_is_c(tiny_run, tmp_path):
    result = invoke("arithmetic", "--ckpt", tiny_run, "3,4 - 3,4 + 9", "--out", tmp_path / "a")
    assert "3 terms averaged" in result.output
    result_file = tmp_path / "a" / "result.npy"
    np.testing.assert_array_equal(np.load(result_file)[0], seed_latent(9, 8))
    # The result's image is the seed's own.
    invoke("sample", "--ckpt", tiny_run, "--seed", 9, "-n", 1, "--out", tmp_path / "seed")
    invoke("sample", "--ckpt", tiny_run, "--z", result_file, "--out", tmp_path / "z")
    assert (tmp_path / "z" / "000000.png").read_bytes() == (
        tmp_path / "seed" / "000000.png"
    ).read_bytes()
    with Image.open(tmp_path / "a" / "arithmetic.png") as figure:
        width, height = figure.size
    assert width > 3 * 64 and height > 4 * 64  # three rows of terms, then the result's


def test_a_latent_file_is_an_operand(tiny_run, tmp_path):
    rows = np.stack([seed_latent(s, 8) for s in (1, 2)]).astype(np.float32)
    np.save(tmp_path / "pair.npy", rows)
    invoke("arithmetic", "--ckpt", tiny_run, f"{tmp_path / 'pair.npy'} - 1,2 + 5",
           "--out", tmp_path / "a")  # fmt: skip
    np.testing.assert_allclose(np.load(tmp_path / "a" / "result.npy")[0], seed_latent(5, 8),
                               atol=1e-6)  # fmt: skip
    result = invoke("arithmetic", "--ckpt", tiny_run, "5 - x", code=2)
    assert "Error: term 2 'x': not seeds" in result.output
    result = invoke("arithmetic", "--ckpt", tiny_run, "1 + 2", "--out", tmp_path / "a", code=2)
    assert "already exists: use --force" in result.output


def test_one_latent_per_term_keeps_the_result_in_one_row_and_every_title_whole(tiny_run, tmp_path):
    invoke("arithmetic", "--ckpt", tiny_run, "3 - 4 + 5", "--out", tmp_path / "a")
    figure = np.asarray(Image.open(tmp_path / "a" / "arithmetic.png").convert("L"))
    # 16 px images shown at 64: a table row is a title strip, a gap, 64 px and a caption
    # strip, and a gap (14 + 2 + 64 + 14 + 2 = 96). Three terms, then the result and its
    # 7 perturbations side by side in one row: 8 cells of 64 and 9 gaps of 2.
    assert figure.shape == (4 * 96, 8 * 64 + 9 * 2)
    # Each term's row is its one image (an average of one would be the same picture),
    # padded white to that width.
    assert (figure[: 3 * 96, 66 + 2 :] == 255).all()
    assert (figure[16:80, 2:66] < 255).any()


def test_a_title_longer_than_its_table_widens_it():
    from PIL import ImageDraw

    from dcgan.imaging import captioned_grid

    title = "= a title far longer than the one cell under it"
    table = captioned_grid([np.zeros((64, 64, 1), np.uint8)], [""], 1, {0: title})
    drawn = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(title)
    assert table.shape[1] == 2 + int(np.ceil(drawn)) + 2
    ink = np.flatnonzero((table[:14] < 128).any(axis=(0, 2)))  # columns the title inks
    assert ink.max() >= table.shape[1] - 12  # it reaches the widened table's right end
