"""train.evaluation.feature_stats: FID and KID judged against closed forms and direct formulas written here.

float64 throughout; EPS is its unit roundoff. Tolerances:
- exact-moment sets (sample mean and covariance equal the targets up to rounding): the closed
  form is exact, so only rounding separates the two; the eigensolvers' backward error is
  O(d * EPS * ||S||), and we allow 1e3 * d * EPS relative to the scale of the terms.
- sampled sets: a tolerance from the estimator's standard error at that sample size (below).
"""
import math

import numpy as np
import pytest

from train.evaluation import feature_stats as fs

EPS = np.finfo(np.float64).eps


def exact_moments(rng, n, mean, cov_sqrt):
    """n samples whose sample mean is `mean` and sample covariance cov_sqrt @ cov_sqrt.T, exactly
    up to rounding (the draws are centred and whitened before being shaped)."""
    d = len(mean)
    z = rng.standard_normal((n, d))
    z -= z.mean(axis=0)
    chol = np.linalg.cholesky(np.cov(z, rowvar=False))
    z = np.linalg.solve(chol, z.T).T  # sample covariance now I
    return mean + z @ np.asarray(cov_sqrt).T


def rotation(theta):
    return np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])


# --- FID -------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, d", [(400, 16), (12, 40)])  # full rank, and rank-deficient (n < d) as in practice
def test_fid_of_a_set_against_itself_is_zero(n, d):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + 3.0
    norm = np.linalg.norm(np.cov(x, rowvar=False), 2)
    # A symmetric eigensolver returns the eigenvalues of S^(1/2) S S^(1/2) to ~ d * EPS * ||S||^2;
    # their square roots are then off by at most sqrt(d * EPS) * ||S|| (the worst case, reached by
    # the zero eigenvalues of a rank-deficient S); d of them, counted twice in FID.
    assert abs(fs.fid(x, x)) <= 2 * d * math.sqrt(d * EPS) * norm


def test_fid_matches_the_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(1)
    m1, m2 = np.array([0.0, 1.0, -2.0, 0.5]), np.array([1.0, 1.0, 0.0, -0.5])
    s1, s2 = np.array([1.0, 2.0, 0.5, 3.0]), np.array([2.0, 2.0, 1.5, 0.1])
    x = exact_moments(rng, 300, m1, np.diag(s1))
    y = exact_moments(rng, 500, m2, np.diag(s2))
    # diagonal covariances commute: Tr(S1 + S2 - 2 (S1 S2)^(1/2)) = sum (s1 - s2)^2
    closed_form = np.sum((m1 - m2) ** 2) + np.sum((s1 - s2) ** 2)
    scale = np.sum(s1 ** 2 + s2 ** 2) + np.sum((m1 - m2) ** 2)
    assert fs.fid(x, y) == pytest.approx(closed_form, abs=1e3 * 4 * EPS * scale)


def test_fid_matches_the_closed_form_for_non_commuting_covariances():
    # 2x2: (S1 S2) has non-negative eigenvalues l1, l2, and Tr (S1 S2)^(1/2) = sqrt(l1) + sqrt(l2)
    # = sqrt(Tr(S1 S2) + 2 sqrt(det S1 det S2)).
    rng = np.random.default_rng(2)
    a = np.diag([1.0, 0.25])
    b = rotation(0.7) @ np.diag([2.0, 0.5])  # S2 = b b^T, not diagonal, does not commute with S1
    s1, s2 = a @ a.T, b @ b.T
    x = exact_moments(rng, 200, np.array([0.0, 0.0]), a)
    y = exact_moments(rng, 300, np.array([0.3, -0.4]), b)
    trace_sqrt = math.sqrt(np.trace(s1 @ s2) + 2 * math.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    closed_form = 0.3 ** 2 + 0.4 ** 2 + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt
    assert np.abs(s1 @ s2 - s2 @ s1).max() > 0.1
    assert fs.fid(x, y) == pytest.approx(closed_form, abs=1e3 * 2 * EPS * (np.trace(s1) + np.trace(s2)))


def test_fid_of_sampled_gaussians_is_within_its_standard_error_of_the_closed_form():
    n = 20000
    m1, m2 = np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.5, 0.0])
    s1, s2 = np.array([1.0, 1.0, 1.0]), np.array([2.0, 1.0, 0.5])
    rng = np.random.default_rng(3)
    x = m1 + rng.standard_normal((n, 3)) * s1
    y = m2 + rng.standard_normal((n, 3)) * s2
    closed_form = np.sum((m1 - m2) ** 2) + np.sum((s1 - s2) ** 2)
    # Delta method: the mean gap's error e_i has variance (s1^2 + s2^2)/n and enters as 2 dm_i e_i;
    # a sample std has variance s^2 / (2n) and enters as 2 (s1_i - s2_i) ds_i. Second-order terms
    # (e_i^2, and the sample correlations ~ 1/sqrt(n), to which FID is even at a diagonal point)
    # add a bias below 10 d^2 max(s)^2 / n. Allow 5 standard errors plus that bias.
    var = np.sum(4 * (m1 - m2) ** 2 * (s1 ** 2 + s2 ** 2) / n + 4 * (s1 - s2) ** 2 * (s1 ** 2 + s2 ** 2) / (2 * n))
    tol = 5 * math.sqrt(var) + 10 * 3 ** 2 * max(s1.max(), s2.max()) ** 2 / n
    assert abs(fs.fid(x, y) - closed_form) <= tol
    assert tol < 0.15 * closed_form  # the check is tight enough to catch a wrong formula


def test_fid_agrees_with_torch_fidelity_on_correlated_features():
    import torch
    from torch_fidelity import metric_fid
    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, 10)) @ rng.standard_normal((10, 10))
    y = rng.standard_normal((250, 10)) @ rng.standard_normal((10, 10)) + 0.5
    theirs = metric_fid.fid_statistics_to_metric(metric_fid.fid_features_to_statistics(torch.from_numpy(x)),
                                                 metric_fid.fid_features_to_statistics(torch.from_numpy(y)),
                                                 verbose=False)[metric_fid.KEY_METRIC_FID]
    scale = np.trace(np.cov(x, rowvar=False)) + np.trace(np.cov(y, rowvar=False))
    assert fs.fid(x, y) == pytest.approx(theirs, abs=1e3 * 10 * EPS * scale)


def test_fid_rejects_bad_features():
    with pytest.raises(ValueError, match="2-D"):
        fs.fid(np.zeros(5), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="NaN"):
        fs.fid(np.full((3, 2), np.nan), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="dimensions differ"):
        fs.fid(np.random.rand(4, 2), np.random.rand(4, 3))


# --- KID -------------------------------------------------------------------------------------

def direct_unbiased_mmd2(x, y):
    """Sum over pairs written out: k(a, b) = (a.b / d + 1)^3, i != j within a set."""
    d = x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_of_one_full_subset_is_the_unbiased_mmd2():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((7, 5)), rng.standard_normal((7, 5)) + 0.3
    expected = direct_unbiased_mmd2(x, y)
    # whole sets are drawn, in another order, so the sums only differ by rounding (~ m n EPS * k)
    result = fs.kid(x, y, subsets=3, subset_size=100)  # capped at the set size
    assert result.subset_size == 7
    assert result.mean == pytest.approx(expected, abs=1e3 * EPS * 10)
    assert result.std <= 1e3 * EPS * 10


def test_kid_is_unbiased_for_same_distribution_draws():
    rng = np.random.default_rng(6)
    draws, m, d = 400, 30, 8
    unbiased, biased = [], []
    for _ in range(draws):
        x, y = rng.standard_normal((m, d)), rng.standard_normal((m, d))
        unbiased.append(fs.kid(x, y, subsets=1, subset_size=m).mean)
        k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731 - the V-statistic keeps the diagonals
        biased.append(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())
    unbiased, biased = np.array(unbiased), np.array(biased)
    standard_error = unbiased.std(ddof=1) / math.sqrt(draws)
    # an unbiased estimator's mean is within 4 standard errors of 0 (two-sided p ~ 6e-5)
    assert abs(unbiased.mean()) <= 4 * standard_error
    # and the test can fail: the biased estimator is far outside that band
    assert biased.mean() > 10 * standard_error


def test_kid_sees_a_shift_and_reports_spread_over_subsets():
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((200, 8)), rng.standard_normal((200, 8)) + 1.0
    result = fs.kid(x, y, subsets=20, subset_size=50, seed=1)
    # each subset's estimate sits several of its own spreads above zero (a one-sigma mean shift
    # in 8 dimensions), and proper subsets do differ
    assert result.mean > 4 * result.std > 0
    assert fs.kid(x, y, subsets=20, subset_size=50, seed=1) == result  # seeded


def test_kid_rejects_bad_arguments():
    x = np.zeros((4, 3))
    with pytest.raises(ValueError, match="subsets"):
        fs.kid(x, x, subsets=0)
    with pytest.raises(ValueError, match="dimensions differ"):
        fs.kid(x, np.zeros((4, 2)))
