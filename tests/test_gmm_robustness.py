"""Degenerate data never yields NaN or a crash; where the fit is degenerate, a warning says so."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vaegmm.errors import DegenerateFitWarning
from vaegmm.gmm import GaussianMixture

from .conftest import make_blobs


def _finite(gmm, X):
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.isfinite(getattr(gmm, attr)).all(), attr
    proba = gmm.predict_proba(X)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.isfinite(gmm.score_samples(X)).all()


def _labelled(X, y, per_class=3):
    idx = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in np.unique(y)])
    return X[idx], y[idx]


@pytest.mark.parametrize("cpc", [1, 3])
def test_duplicate_points(cpc):
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0], [0.0, 5.0]]), 200, axis=0)
    y = np.repeat([0, 1, 2], 200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateFitWarning)
        gmm = GaussianMixture(components_per_class=cpc).fit_seeded(X, *_labelled(X, y))
    _finite(gmm, X)
    assert np.all(gmm.predict(X) == y)


def test_a_component_that_loses_all_its_points_warns():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    with pytest.warns(DegenerateFitWarning, match="lost all their points"):
        gmm = GaussianMixture().fit(X, means_init=np.array([[0.0, 0.0], [1e4, 1e4]]),
                                    weights_init=np.array([0.5, 0.5]), covariances_init=np.stack([np.eye(2)] * 2))
    _finite(gmm, X)
    np.testing.assert_allclose(gmm.means_[1], [1e4, 1e4])  # kept where it was


def test_collinear_latents_warn_and_stay_finite():
    t = np.linspace(-3, 3, 600)
    X = np.stack([t, 2 * t], axis=1) * 1e4  # a line, at a scale where reg_covar cannot rescue it
    y = (t > 0).astype(int)
    with pytest.warns(DegenerateFitWarning, match="singular"):
        gmm = GaussianMixture(reg_covar=0.0).fit_seeded(X, *_labelled(X, y))
    _finite(gmm, X)
    assert np.mean(gmm.predict(X) == y) > 0.95


@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e6])
def test_scales(scale):
    rng = np.random.default_rng(1)
    X, y = make_blobs(rng, [[-4, 0], [4, 0], [0, 5]], [np.eye(2)] * 3, [300, 300, 300])
    ref = GaussianMixture().fit_seeded(X, *_labelled(X, y)).predict(X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DegenerateFitWarning)
        gmm = GaussianMixture().fit_seeded(X * scale, *_labelled(X * scale, y))
    _finite(gmm, X * scale)
    if scale >= 1:
        np.testing.assert_array_equal(gmm.predict(X * scale), ref)
    else:  # reg_covar dominates the tiny covariances: the fit says so
        assert any("reg_covar" in str(w.message) for w in caught)


def test_tiny_scale_with_a_matching_reg_covar_is_exact():
    rng = np.random.default_rng(1)
    X, y = make_blobs(rng, [[-4, 0], [4, 0], [0, 5]], [np.eye(2)] * 3, [300, 300, 300])
    ref = GaussianMixture().fit_seeded(X, *_labelled(X, y))
    tiny = GaussianMixture(reg_covar=1e-14).fit_seeded(X * 1e-4, *_labelled(X * 1e-4, y))
    np.testing.assert_array_equal(tiny.predict(X * 1e-4), ref.predict(X))


def test_float32_input_matches_float64():
    rng = np.random.default_rng(2)
    X, y = make_blobs(rng, [[-4, 0], [4, 0]], [np.eye(2)] * 2, [400, 400])
    a = GaussianMixture(components_per_class=2).fit_seeded(X.astype(np.float32), *_labelled(X.astype(np.float32), y))
    b = GaussianMixture(components_per_class=2).fit_seeded(X.astype(np.float32).astype(np.float64), *_labelled(X.astype(np.float32).astype(np.float64), y))
    np.testing.assert_array_equal(a.means_, b.means_)
    assert a.means_.dtype == np.float64


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    n=st.integers(4, 40),
    d=st.integers(1, 3),
    cpc=st.integers(1, 3),
)
def test_any_finite_data_gives_a_finite_fit(data, n, d, cpc):
    X = data.draw(arrays(np.float64, (n, d), elements=st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False)))
    y = np.array([0, 1] * (n // 2) + [0] * (n % 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateFitWarning)
        gmm = GaussianMixture(components_per_class=cpc, max_iter=50).fit_seeded(X, X[:4], y[:4])
    _finite(gmm, X)
    assert set(gmm.predict(X)) <= {0, 1}


def test_nan_input_is_refused_clearly():
    X = np.zeros((5, 2))
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        GaussianMixture().fit(X, means_init=np.zeros((1, 2)))
