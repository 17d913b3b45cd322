"""Degenerate data never yields NaN or a crash; where the fit is degenerate, a warning says so."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vaegmm.errors import DegenerateFitWarning
from vaegmm.gmm import GaussianMixture

from .conftest import few_label, make_blobs


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
        gmm = few_label(X, *_labelled(X, y), components_per_class=cpc).gmm_
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
    # Two segments of one line, at a scale where reg_covar cannot rescue it. The gap makes the border well posed:
    # on an unbroken line of even density every border cuts one neighbour edge, and which one the fit keeps
    # moved with the CPU's rounding (0.815 on one machine, above 0.95 on another).
    t = np.linspace(-3, 3, 600)
    t = t[np.abs(t) > 0.5]
    X = np.stack([t, 2 * t], axis=1) * 1e4
    y = (t > 0).astype(int)
    with pytest.warns(DegenerateFitWarning, match="singular"):
        gmm = few_label(X, *_labelled(X, y), reg_covar=0.0).gmm_
    _finite(gmm, X)
    assert np.mean(gmm.predict(X) == y) > 0.95


@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e6])
def test_scales(scale):
    rng = np.random.default_rng(1)
    X, y = make_blobs(rng, [[-4, 0], [4, 0], [0, 5]], [np.eye(2)] * 3, [300, 300, 300])
    ref = few_label(X, *_labelled(X, y)).gmm_.predict(X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DegenerateFitWarning)
        gmm = few_label(X * scale, *_labelled(X * scale, y)).gmm_
    _finite(gmm, X * scale)
    if scale >= 1:
        np.testing.assert_array_equal(gmm.predict(X * scale), ref)
    else:  # reg_covar dominates the tiny covariances: the fit says so
        assert any("reg_covar" in str(w.message) for w in caught)


def test_tiny_scale_with_a_matching_reg_covar_is_exact():
    rng = np.random.default_rng(1)
    X, y = make_blobs(rng, [[-4, 0], [4, 0], [0, 5]], [np.eye(2)] * 3, [300, 300, 300])
    ref = few_label(X, *_labelled(X, y)).gmm_
    tiny = few_label(X * 1e-4, *_labelled(X * 1e-4, y), reg_covar=1e-14).gmm_
    np.testing.assert_array_equal(tiny.predict(X * 1e-4), ref.predict(X))


def test_float32_input_gives_the_fit_of_its_float64_values():
    # float32 latents are fitted in float64: the same partition and nearly the same parameters as the
    # unrounded data, and exactly those of the float32 values widened by hand.
    rng = np.random.default_rng(2)
    X, y = make_blobs(rng, [[-4, 0], [4, 0]], [np.eye(2)] * 2, [400, 400])
    X32 = (X * 1e3).astype(np.float32) / np.float32(1e3)  # rounding that moves every point
    assert not np.array_equal(X32.astype(np.float64), X)
    a = few_label(X32, *_labelled(X32, y), components_per_class=2).gmm_
    b = few_label(X, *_labelled(X, y), components_per_class=2).gmm_
    c = few_label(X32.astype(np.float64), *_labelled(X32.astype(np.float64), y), components_per_class=2).gmm_
    assert a.means_.dtype == np.float64
    np.testing.assert_array_equal(a.means_, c.means_)
    np.testing.assert_allclose(a.means_, b.means_, atol=1e-4)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


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
        gmm = few_label(X, X[:4], y[:4], components_per_class=cpc, max_iter=50).gmm_
    _finite(gmm, X)
    assert set(gmm.predict(X)) <= {0, 1}


def test_nan_input_is_refused_clearly():
    X = np.zeros((5, 2))
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        GaussianMixture().fit(X, means_init=np.zeros((1, 2)))
