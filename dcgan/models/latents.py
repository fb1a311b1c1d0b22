"""The generator's input: latents drawn from numpy's seeded generator, so a seed gives the
same latents on any machine and in any batch size, and walks between them. Seed s's first
latent is the latent `interpolate` uses for s: a walk's end points are exactly
`sample --seed s -n 1`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import pairwise

import numpy as np


def latent_stream(
    seed: int, count: int, dim: int, chunk: int, truncation: float = 1.0
) -> Iterator[np.ndarray]:
    """count latents from N(0, 1) scaled by truncation, chunk at a time; numpy draws them in
    sequence, so the values do not depend on the chunk size."""
    rng = np.random.default_rng(seed)
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        yield (rng.standard_normal((size, dim)) * truncation).astype(np.float32)


def balanced_classes(count: int, num_classes: int) -> np.ndarray:
    """Class indices 0, 1, ..., n-1, 0, 1, ...: every class equally often, for the fixed
    latents of evaluation and of BatchNorm's standing statistics."""
    return (np.arange(count) % num_classes).astype(np.int32)


def class_rows(latents: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A grid's inputs with one row per class and the same latent down each column: the
    first ceil(len(latents) / num_classes) latents, repeated for every class."""
    columns = max(1, -(-len(latents) // num_classes))
    grid_latents = np.tile(latents[:columns], (num_classes, 1))
    return grid_latents, np.repeat(np.arange(num_classes, dtype=np.int32), columns)


def seed_latent(seed: int, dim: int) -> np.ndarray:
    return next(latent_stream(seed, 1, dim, 1))[0]


def walk(latents: Sequence[np.ndarray], steps: int, method: str) -> list[np.ndarray]:
    """One row of `steps` latents per segment, each row from one seed to the next,
    both ends included."""
    blend = slerp if method == "slerp" else lerp
    ts = np.linspace(0.0, 1.0, steps)
    return [np.stack([blend(a, b, float(t)) for t in ts]) for a, b in pairwise(latents)]


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation: the path a Gaussian latent's norm would take."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = np.dot(a64, b64) / max(np.linalg.norm(a64) * np.linalg.norm(b64), 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:  # (anti)parallel: the sphere gives no direction, the line does
        return ((1 - t) * a64 + t * b64).astype(np.float32)
    out = (np.sin((1 - t) * omega) * a64 + np.sin(t * omega) * b64) / np.sin(omega)
    return out.astype(np.float32)


def lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return ((1 - t) * a + t * b).astype(np.float32)
