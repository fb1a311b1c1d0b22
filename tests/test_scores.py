"""The evaluation statistics against closed forms and float64 references."""

from __future__ import annotations

import numpy as np
import pytest

from dcgan.metrics import scores


def rotation(dim: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return q


def test_frechet_distance_of_commuting_gaussians_has_its_closed_form():
    # Same eigenvectors: the trace term is sum (sqrt(a) - sqrt(b))^2 exactly.
    dim = 6
    q = rotation(dim, 0)
    eig_a = np.array([0.5, 1.0, 2.0, 3.0, 4.0, 9.0])
    eig_b = np.array([1.0, 1.0, 0.5, 3.0, 1.0, 4.0])
    mean_a, mean_b = np.arange(dim, dtype=float), np.zeros(dim)
    cov_a, cov_b = q @ np.diag(eig_a) @ q.T, q @ np.diag(eig_b) @ q.T
    expected = mean_a @ mean_a + ((np.sqrt(eig_a) - np.sqrt(eig_b)) ** 2).sum()
    assert scores.frechet_distance(mean_a, cov_a, mean_b, cov_b) == pytest.approx(expected, 1e-9)


def test_frechet_distance_matches_a_float64_reference_for_general_covariances():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((5, 5)), rng.standard_normal((5, 5))
    cov_a, cov_b = a @ a.T + np.eye(5), b @ b.T + np.eye(5)
    # Reference: Tr((S_a S_b)^1/2) = Tr((S_a^1/2 S_b S_a^1/2)^1/2), from eigendecompositions.
    w, v = np.linalg.eigh(cov_a)
    root_a = v @ np.diag(np.sqrt(w)) @ v.T
    inner = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    expected = np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(inner).sum() + 4.0
    mean_b = np.array([2.0, 0, 0, 0, 0])
    assert scores.frechet_distance(np.zeros(5), cov_a, mean_b, cov_b) == pytest.approx(expected)


def test_fid_of_samples_approaches_the_gaussians_distance():
    rng = np.random.default_rng(2)
    a = rng.normal(0.0, 1.0, (40000, 4))
    b = rng.normal(1.0, 2.0, (40000, 4))
    # Four dimensions, each |1 - 0|^2 + (2 - 1)^2.
    assert scores.fid(a, b) == pytest.approx(8.0, abs=0.1)
    assert scores.fid(a, a) == pytest.approx(0.0, abs=1e-6)


def test_unbiased_mmd_matches_the_double_sum_definition():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((7, 3)), rng.standard_normal((5, 3)) + 0.5

    def k(x, y):
        return (x @ y / 3 + 1) ** 3

    within_a = sum(k(a[i], a[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    within_b = sum(k(b[i], b[j]) for i in range(5) for j in range(5) if i != j) / (5 * 4)
    across = sum(k(x, y) for x in a for y in b) / (7 * 5)
    assert scores.mmd2_unbiased(a, b) == pytest.approx(within_a + within_b - 2 * across, 1e-12)


def test_kid_is_unbiased_where_the_plain_estimate_is_not():
    rng = np.random.default_rng(4)
    unbiased, biased = [], []
    for _ in range(400):
        a, b = rng.standard_normal((10, 4)), rng.standard_normal((10, 4))
        unbiased.append(scores.mmd2_unbiased(a, b))
        k = lambda x, y: (x @ y.T / 4 + 1) ** 3  # noqa: E731
        biased.append(k(a, a).mean() + k(b, b).mean() - 2 * k(a, b).mean())
    standard_error = np.std(unbiased) / np.sqrt(len(unbiased))
    assert abs(np.mean(unbiased)) < 3 * standard_error
    assert np.mean(biased) > 10 * standard_error


def test_kid_reports_its_spread_over_subsets_and_grows_with_the_gap():
    rng = np.random.default_rng(5)
    real = rng.standard_normal((300, 8))
    same = scores.kid(real, rng.standard_normal((300, 8)), subsets=20, subset_size=100)
    shifted = scores.kid(real, rng.standard_normal((300, 8)) + 1.0, subsets=20, subset_size=100)
    assert same.subsets == 20 and same.subset_size == 100
    assert same.std > 0
    assert abs(same.mean) < 3 * same.std
    assert shifted.mean > same.mean + 5 * shifted.std
    assert scores.kid(real[:50], real, subset_size=1000).subset_size == 25


def test_precision_and_recall_of_identical_disjoint_and_collapsed_sets():
    rng = np.random.default_rng(6)
    real = rng.standard_normal((200, 3))
    same = scores.precision_recall(real, real.copy(), k=3)
    assert (same.precision, same.recall) == (1.0, 1.0)
    far = scores.precision_recall(real, real + 100.0, k=3)
    assert (far.precision, far.recall) == (0.0, 0.0)
    # A collapsed generator: every sample near one real point. Realistic, not covering.
    collapsed = real[0] + 1e-3 * rng.standard_normal((200, 3))
    result = scores.precision_recall(real, collapsed, k=3)
    assert result.precision == 1.0
    assert result.recall < 0.05


def test_copy_rate_is_one_for_copies_and_low_for_new_draws():
    rng = np.random.default_rng(7)
    training = rng.standard_normal((300, 4, 4, 1))
    copies = scores.copy_rate(training[:50] + 1e-4, training)
    assert copies.rate == 1.0
    assert copies.threshold > 0
    fresh = scores.copy_rate(rng.standard_normal((300, 4, 4, 1)), training, quantile=0.1)
    assert fresh.rate < 0.25
    assert fresh.sample_distances.shape == (300,)
    # A threshold computed once (as training does) gives the same result.
    known = scores.copy_threshold(training, quantile=0.1)
    assert known == fresh.threshold
    again = scores.copy_rate(rng.standard_normal((300, 4, 4, 1)), training, threshold=known)
    assert again.threshold == known and 0.0 <= again.rate < 0.25


def test_nearest_returns_sorted_neighbours_in_any_chunk_size():
    rng = np.random.default_rng(8)
    queries, references = rng.standard_normal((9, 5)), rng.standard_normal((20, 5))
    brute = np.linalg.norm(queries[:, None] - references[None], axis=-1)
    index, distance = scores.nearest(queries, references, k=3, chunk=4)
    np.testing.assert_array_equal(index, np.argsort(brute, axis=1)[:, :3])
    np.testing.assert_allclose(distance, np.sort(brute, axis=1)[:, :3], atol=1e-9)
