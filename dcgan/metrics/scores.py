"""Sample-quality statistics on feature vectors: FID, KID, precision/recall, copy rate.

numpy and scipy only, in float64: what the features come from is features.py's business.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import linalg


def frechet_distance(
    mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray
) -> float:
    """The Frechet distance between two Gaussians (Heusel et al., 2017):
    |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))."""
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # handled just below
        root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    if not np.isfinite(root).all():
        # A singular product (fewer samples than dimensions): nudge both diagonals, as the
        # reference implementation does.
        offset = np.eye(len(cov_a)) * 1e-6
        root = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    root = root.real  # rounding leaves tiny imaginary parts
    diff = mean_a - mean_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(root))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two sets of feature vectors (rows)."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def mmd2_unbiased(a: np.ndarray, b: np.ndarray) -> float:
    """The unbiased squared MMD with KID's kernel k(x, y) = (x.y / d + 1)^3
    (Binkowski et al., 2018): the diagonal terms k(x, x) are left out of both within-set
    means, so its expectation is 0 when a and b come from the same distribution."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    m, n, dim = len(a), len(b), a.shape[1]
    k_aa = (a @ a.T / dim + 1.0) ** 3
    k_bb = (b @ b.T / dim + 1.0) ** 3
    k_ab = (a @ b.T / dim + 1.0) ** 3
    within_a = (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
    within_b = (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
    return float(within_a + within_b - 2.0 * k_ab.mean())


@dataclass(frozen=True)
class Kid:
    mean: float
    std: float
    subsets: int
    subset_size: int


def kid(
    features_a: np.ndarray,
    features_b: np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> Kid:
    """KID: the unbiased MMD^2 averaged over random subsets of both sets, with the spread
    across subsets. subset_size is capped at half the smaller set, so that the subsets
    differ and the spread says something."""
    size = min(subset_size, min(len(features_a), len(features_b)) // 2)
    if size < 2:
        raise ValueError("KID needs at least 4 feature vectors per set")
    rng = np.random.default_rng(seed)
    values = [
        mmd2_unbiased(
            features_a[rng.choice(len(features_a), size, replace=False)],
            features_b[rng.choice(len(features_b), size, replace=False)],
        )
        for _ in range(subsets)
    ]
    return Kid(float(np.mean(values)), float(np.std(values)), subsets, size)


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of a and the rows of b, in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def nearest(
    queries: np.ndarray, references: np.ndarray, k: int = 1, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and distances of each query's k nearest references, closest first, computed
    chunk queries at a time so memory stays at chunk x len(references)."""
    indices, distances = [], []
    for start in range(0, len(queries), chunk):
        block = pairwise_distances(queries[start : start + chunk], references)
        order = np.argsort(block, axis=1)[:, :k]
        indices.append(order)
        distances.append(np.take_along_axis(block, order, axis=1))
    return np.concatenate(indices), np.concatenate(distances)


def kth_neighbour_radii(points: np.ndarray, k: int) -> np.ndarray:
    """Each point's distance to its k-th nearest other point (itself left out)."""
    _, distances = nearest(points, points, k=k + 1)
    return distances[:, k]


@dataclass(frozen=True)
class PrecisionRecall:
    precision: float
    recall: float
    k: int


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> PrecisionRecall:
    """Improved precision and recall (Kynkaanniemi et al., 2019): a set's manifold is the
    union of balls around its points reaching each point's k-th nearest neighbour.
    Precision: the share of fakes inside the real manifold (are samples realistic?);
    recall: the share of reals inside the fake manifold (is the data covered?)."""
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} vectors per set")
    return PrecisionRecall(
        _share_inside(fake, real, kth_neighbour_radii(real, k)),
        _share_inside(real, fake, kth_neighbour_radii(fake, k)),
        k,
    )


def _share_inside(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> float:
    inside = [
        (pairwise_distances(points[start : start + 1024], centres) <= radii[None, :]).any(1)
        for start in range(0, len(points), 1024)
    ]
    return float(np.concatenate(inside).mean())


@dataclass(frozen=True)
class CopyRate:
    rate: float  # share of samples closer to a training image than the threshold
    threshold: float  # the training set's own nearest-neighbour distance at `quantile`
    quantile: float
    sample_distances: np.ndarray  # each sample's distance to its nearest training image


def copy_threshold(training: np.ndarray, quantile: float = 0.1) -> float:
    """The `quantile` of the training images' distances to their own nearest neighbour."""
    if len(training) < 2:
        raise ValueError("the copy rate needs at least 2 training images")
    radii = kth_neighbour_radii(training.reshape(len(training), -1), 1)
    return float(np.quantile(radii, quantile))


def copy_rate(
    samples: np.ndarray,
    training: np.ndarray,
    quantile: float = 0.1,
    threshold: float | None = None,
) -> CopyRate:
    """The share of samples that sit closer to some training image than training images
    sit to each other: a sample counts as a copy when its nearest training image is nearer
    than the `quantile` of the training images' distances to their own nearest neighbour.
    A healthy generator scores near `quantile` or below; one that memorises approaches 1.
    threshold: copy_threshold(training, quantile), when already known."""
    if threshold is None:
        threshold = copy_threshold(training, quantile)
    flat_training = training.reshape(len(training), -1)
    _, distances = nearest(samples.reshape(len(samples), -1), flat_training)
    distances = distances[:, 0]
    return CopyRate(float((distances < threshold).mean()), threshold, quantile, distances)


def mean_pairwise_distance(images: np.ndarray) -> float:
    """The mean Euclidean distance between all pairs of distinct images (flattened): how
    varied a set is. A collapsed generator gives nearly the same image for every latent."""
    flat = np.asarray(images, np.float64).reshape(len(images), -1)
    if len(flat) < 2:
        raise ValueError("diversity needs at least 2 images")
    distances = pairwise_distances(flat, flat)
    return float(distances.sum() / (len(flat) * (len(flat) - 1)))
