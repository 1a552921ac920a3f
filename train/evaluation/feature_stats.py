"""FID and KID from feature vectors (one row per image), in float64.

FID (Heusel et al. 2017): the Frechet distance between Gaussians fitted to two feature sets,
    ||m1 - m2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).
Tr((S1 S2)^(1/2)) is computed as the sum of the square roots of the eigenvalues of
S1^(1/2) S2 S1^(1/2), which is similar to S1 S2 but symmetric positive semi-definite, so a
symmetric eigensolver applies and tiny negative eigenvalues from rounding (covariances of
fewer images than feature dimensions are singular) are clipped to zero instead of turning
complex as in a general sqrtm.

KID (Binkowski et al. 2018): the unbiased estimate of the squared MMD with the polynomial
kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets drawn without replacement.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KID_DEFAULT_SUBSETS = 100
KID_DEFAULT_SUBSET_SIZE = 1000


@dataclass(frozen=True)
class GaussianFit:
    mean: np.ndarray        # (d,)
    covariance: np.ndarray  # (d, d), unbiased (n - 1)


def _as_features(features, name="features"):
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 2 or array.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D array (images, dimensions) with at least 2 rows, "
                         f"got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def fit_gaussian(features) -> GaussianFit:
    array = _as_features(features)
    return GaussianFit(array.mean(axis=0), np.cov(array, rowvar=False).reshape(array.shape[1], array.shape[1]))


def _psd_sqrt(matrix):
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def frechet_distance(fit_1: GaussianFit, fit_2: GaussianFit) -> float:
    if fit_1.mean.shape != fit_2.mean.shape:
        raise ValueError(f"feature dimensions differ: {fit_1.mean.shape[0]} vs {fit_2.mean.shape[0]}")
    sqrt_1 = _psd_sqrt(fit_1.covariance)
    product = sqrt_1 @ fit_2.covariance @ sqrt_1
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2)
    trace_sqrt_product = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    mean_gap = fit_1.mean - fit_2.mean
    return float(mean_gap @ mean_gap + np.trace(fit_1.covariance) + np.trace(fit_2.covariance)
                 - 2 * trace_sqrt_product)


def fid(features_1, features_2) -> float:
    """FID between two feature sets of shape (images, d)."""
    return frechet_distance(fit_gaussian(_as_features(features_1, "features_1")),
                            fit_gaussian(_as_features(features_2, "features_2")))


def polynomial_kernel(x, y):
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x, y) -> float:
    """Unbiased squared MMD with the polynomial kernel (the diagonals k(x_i, x_i) are left out)."""
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 samples per set, got {m} and {n}")
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


@dataclass(frozen=True)
class KID:
    mean: float
    std: float
    subsets: int
    subset_size: int


def kid(features_1, features_2, subsets: int = KID_DEFAULT_SUBSETS,
        subset_size: int = KID_DEFAULT_SUBSET_SIZE, seed: int = 0) -> KID:
    """KID: mean and standard deviation of mmd2_unbiased over `subsets` random subsets.

    subset_size is capped at the smaller set's size (with both sets that small every subset
    is the whole set and the std is 0).
    """
    x = _as_features(features_1, "features_1")
    y = _as_features(features_2, "features_2")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} vs {y.shape[1]}")
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"KID needs subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
    size = min(subset_size, len(x), len(y))
    rng = np.random.default_rng(seed)
    values = np.array([
        mmd2_unbiased(x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)])
        for _ in range(subsets)])
    return KID(float(values.mean()), float(values.std()), subsets, size)
