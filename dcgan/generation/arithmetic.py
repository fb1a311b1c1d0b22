"""Vector arithmetic on latents, as in the DCGAN paper (Radford et al., 2015, figure 7):
each operand is a few latents (seeds, or the rows of a .npy file) averaged into one, the
averages are added and subtracted, and the result is drawn with a few small perturbations
of it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcgan import imaging
from dcgan.errors import DcganError, printable, shorten
from dcgan.models.latents import seed_latent
from dcgan.models.loaded import LoadedGenerator
from dcgan.storage.latent_files import LatentWriter, read_latents

MAX_TERMS = 16
MAX_SEEDS_PER_TERM = 64
SHOWN_PER_TERM = 8  # images of an operand's latents shown in the figure
PERTURBATIONS = 7  # images of the result with a little noise added
PERTURBATION_SCALE = 0.25  # uniform noise in +-0.25 on each value, as the paper's figure 7


@dataclass(frozen=True)
class Term:
    sign: int  # +1 or -1
    text: str  # as written: "3,17,42" or "smiles.npy"
    latents: np.ndarray  # float32 (k, latent_dim)

    @property
    def average(self) -> np.ndarray:
        return self.latents.mean(axis=0, dtype=np.float64).astype(np.float32)


def parse(expression: str, latent_dim: int) -> list[Term]:
    """ "A - B + C" into its terms, each with its latents. The operators stand between
    spaces (a file name may hold a hyphen); a term that is neither comma-separated seeds
    nor a .npy file of latents is one line naming it."""
    text = expression.strip()
    sign = "+"
    if text[:1] in ("+", "-") and (len(text) == 1 or text[1].isspace()):
        sign, text = text[0], text[1:].strip()
    pieces = re.split(r"\s+([+-])\s+", text)
    signed = [(sign, pieces[0]), *zip(pieces[1::2], pieces[2::2], strict=True)]
    if len(signed) > MAX_TERMS:
        raise DcganError(f"the expression has {len(signed)} terms, over the {MAX_TERMS} allowed")
    return [
        Term(1 if sign == "+" else -1, body, _latents(body, number, latent_dim))
        for number, (sign, body) in enumerate(signed, start=1)
    ]


def _latents(body: str, number: int, latent_dim: int) -> np.ndarray:
    where = f"term {number} '{shorten(printable(body), 60)}'"
    if not body:
        raise DcganError(
            f'term {number} is empty: write the expression as "A - B + C", each term '
            "seeds such as 3,17,42 or a .npy file of latents"
        )
    if body.endswith(".npy") or Path(body).is_file():
        return read_latents(Path(body), latent_dim, option=where + ":")
    parts = body.split(",")
    if not all(part.strip().isdigit() for part in parts):
        spaced = " (+ and - need a space on each side)" if re.search(r"[+-]", body) else ""
        raise DcganError(
            f"{where}: not seeds (comma-separated whole numbers such as 3,17,42) or a .npy "
            f"file of latents{spaced}"
        )
    if len(parts) > MAX_SEEDS_PER_TERM:
        raise DcganError(f"{where}: {len(parts)} seeds, over the {MAX_SEEDS_PER_TERM} allowed")
    return np.stack([seed_latent(int(part), latent_dim) for part in parts])


def result_latent(terms: list[Term]) -> np.ndarray:
    """The signed sum of the terms' averages, (1, latent_dim) float32."""
    total = np.zeros(terms[0].latents.shape[1], np.float64)
    for term in terms:
        total += term.sign * term.average.astype(np.float64)
    return total.astype(np.float32)[None]


def perturbations(result: np.ndarray, seed: int) -> np.ndarray:
    """result and PERTURBATIONS latents near it."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-PERTURBATION_SCALE, PERTURBATION_SCALE, (PERTURBATIONS, result.shape[1]))
    return np.concatenate([result, result + noise.astype(np.float32)])


def write_arithmetic(
    generator: LoadedGenerator,
    terms: list[Term],
    out: Path,
    seed: int,
    class_index: int | None = None,
) -> list[Path]:
    """out/arithmetic.png (a row per operand: its images and their average, labelled; then
    the result and its perturbations) and out/result.npy."""
    from dcgan.files import writing

    def draw(latents: np.ndarray) -> np.ndarray:
        classes = None if class_index is None else np.full(len(latents), class_index)
        return generator.images(latents, classes=classes)

    most = max(len(t.latents) for t in terms)
    columns = min(SHOWN_PER_TERM, most) + 1 if most > 1 else 1  # one latent: no average
    rows = []
    for term in terms:
        if columns == 1:
            cells, captions = [draw(term.latents)[0]], [""]
        else:
            shown = list(draw(term.latents[:SHOWN_PER_TERM]))
            blank = [None] * (columns - 1 - len(shown))
            cells = [*shown, *blank, draw(term.average[None])[0]]
            captions = [""] * (columns - 1) + [f"average of {len(term.latents)}"]
        sign = "+" if term.sign > 0 else "-"
        title = f"{sign} {shorten(printable(term.text), 40)}"
        rows.append(imaging.captioned_grid(cells, captions, columns, {0: title}))
    result = result_latent(terms)
    near = list(draw(perturbations(result, seed)))  # one row, however few each term shows
    captions = ["result"] + [""] * PERTURBATIONS
    title = {0: "= the result, then small perturbations of it"}
    rows.append(imaging.captioned_grid(near, captions, len(near), title))
    figure = imaging.stacked(rows)
    paths = [out / "arithmetic.png", out / "result.npy"]
    writing.make_folder(out, "--out")
    imaging.save_png(figure, paths[0])
    saved = LatentWriter(paths[1], 1, result.shape[1])
    saved.add(result)
    saved.close()
    return paths
