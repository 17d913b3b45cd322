"""The from-scratch GMM against references: scipy densities, EM monotonicity, known parameters, sklearn."""

import pickle
import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from vaegmm.errors import DegenerateFitWarning, ModelFileError
from vaegmm.gmm import GaussianMixture, compute_precision_cholesky, e_step, estimate_log_gaussian_prob

from .conftest import COVS, MEANS, few_label


def test_log_density_matches_scipy():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3)) * 2
    means = rng.normal(size=(4, 3))
    a = rng.normal(size=(4, 3, 3))
    covs = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(3)
    ours = estimate_log_gaussian_prob(X, means, compute_precision_cholesky(covs))
    ref = np.stack([multivariate_normal(means[k], covs[k]).logpdf(X) for k in range(4)], axis=1)
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10)


def test_precision_cholesky_inverts_covariance():
    covs = COVS
    p = compute_precision_cholesky(covs)
    for k in range(len(covs)):
        np.testing.assert_allclose(p[k] @ p[k].T @ covs[k], np.eye(2), atol=1e-12)
        assert np.allclose(np.tril(p[k], -1), 0)  # upper triangular


def test_em_likelihood_never_decreases(blobs):
    X, _ = blobs
    rng = np.random.default_rng(3)
    gmm = GaussianMixture(tol=0, max_iter=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateFitWarning)  # tol=0 never "converges"
        gmm.fit(X, means_init=rng.normal(size=(3, 2)))
    history = np.array(gmm.log_likelihood_history_)
    assert len(history) == 60
    assert np.all(np.diff(history) >= -1e-10), np.diff(history).min()
    assert history[-1] > history[0] + 0.1  # EM actually moved


def test_anchored_em_likelihood_never_decreases(blobs):
    X, y = blobs
    rng = np.random.default_rng(4)
    lab = np.concatenate([rng.choice(np.flatnonzero(y == k), 3, replace=False) for k in range(3)])
    data = np.concatenate([X, X[lab]])
    component_classes = np.repeat([0, 1, 2], 2)
    allowed = np.concatenate([np.ones((len(X), 6), bool), y[lab][:, None] == component_classes[None]])
    gmm = GaussianMixture(tol=0, max_iter=40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateFitWarning)
        gmm.fit(data, means_init=rng.normal(size=(6, 2)), component_classes=component_classes, allowed=allowed)
    assert len(gmm.log_likelihood_history_) == 40
    assert np.all(np.diff(gmm.log_likelihood_history_) >= -1e-10)
    # anchored points carry no responsibility outside their class's components
    _, resp = e_step(data, gmm.weights_, gmm.means_, gmm.precisions_cholesky_, allowed)
    assert np.all(resp[len(X):][~allowed[len(X):]] == 0)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0)


def test_recovers_known_parameters(blobs):
    X, y = blobs
    lab = np.concatenate([np.flatnonzero(y == k)[:5] for k in range(3)])
    fit = few_label(X, X[lab], y[lab])
    gmm = fit.gmm_
    assert gmm.converged_
    np.testing.assert_allclose(gmm.means_, MEANS, atol=0.1)
    np.testing.assert_allclose(gmm.covariances_, COVS, atol=0.15)
    np.testing.assert_allclose(gmm.weights_, [0.5, 1 / 3, 1 / 6], atol=0.01)
    assert fit.chosen_.labelled_agreement == 1.0
    assert np.mean(gmm.predict(X) == y) > 0.99


def test_agrees_with_sklearn_given_the_same_start(blobs):
    sklearn_mixture = pytest.importorskip("sklearn.mixture")
    X, _ = blobs
    rng = np.random.default_rng(5)
    means0 = MEANS + rng.normal(scale=1.0, size=MEANS.shape)
    weights0 = np.array([0.2, 0.3, 0.5])
    covs0 = np.stack([np.eye(2) * s for s in (0.5, 1.0, 2.0)])
    ours = GaussianMixture(tol=1e-10, max_iter=500, reg_covar=1e-6).fit(
        X, means_init=means0, weights_init=weights0, covariances_init=covs0
    )
    ref = sklearn_mixture.GaussianMixture(
        3, covariance_type="full", tol=1e-10, max_iter=500, reg_covar=1e-6,
        means_init=means0, weights_init=weights0, precisions_init=np.linalg.inv(covs0),
    ).fit(X)
    np.testing.assert_allclose(ours.means_, ref.means_, atol=1e-6)
    np.testing.assert_allclose(ours.covariances_, ref.covariances_, atol=1e-6)
    np.testing.assert_allclose(ours.weights_, ref.weights_, atol=1e-7)
    np.testing.assert_allclose(ours.score_samples(X), ref.score_samples(X), atol=1e-6)
    np.testing.assert_allclose(ours.predict_component_proba(X), ref.predict_proba(X), atol=1e-6)


def test_predict_proba_sums_components_of_a_class(blobs):
    X, y = blobs
    lab = np.concatenate([np.flatnonzero(y == k)[:5] for k in range(3)])
    gmm = few_label(X, X[lab], y[lab] + 10, components_per_class=2).gmm_
    proba = gmm.predict_proba(X[:100])
    assert proba.shape == (100, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(np.unique(gmm.predict(X))) <= {10, 11, 12}
    assert list(gmm.component_classes_) == [10, 10, 11, 11, 12, 12]


def test_sample_follows_the_mixture(blobs):
    X, y = blobs
    lab = np.concatenate([np.flatnonzero(y == k)[:5] for k in range(3)])
    gmm = few_label(X, X[lab], y[lab]).gmm_
    S, comp = gmm.sample(20000, random_state=0)
    assert S.shape == (20000, 2)
    np.testing.assert_allclose(np.bincount(comp, minlength=3) / 20000, gmm.weights_, atol=0.015)
    np.testing.assert_allclose(S[comp == 1].mean(0), gmm.means_[1], atol=0.05)
    S2, _ = gmm.sample(10, random_state=0)
    np.testing.assert_array_equal(S2, gmm.sample(10, random_state=0)[0])


def test_dict_round_trip_through_plain_pickle(blobs, tmp_path):
    from vaegmm.storage import load_plain_pickle, save_plain_pickle

    X, y = blobs
    lab = np.concatenate([np.flatnonzero(y == k)[:5] for k in range(3)])
    gmm = few_label(X, X[lab], y[lab]).gmm_
    save_plain_pickle(gmm.to_dict(), tmp_path / "g.pkl")
    back = GaussianMixture.from_dict(load_plain_pickle(tmp_path / "g.pkl"))
    np.testing.assert_array_equal(back.means_, gmm.means_)
    np.testing.assert_array_equal(back.score_samples(X), gmm.score_samples(X))
    np.testing.assert_array_equal(back.predict(X), gmm.predict(X))
    np.testing.assert_array_equal(back.component_classes_, gmm.component_classes_)
    assert back.log_likelihood_history_ == gmm.log_likelihood_history_


def test_malicious_pickle_is_refused_without_running_it(tmp_path):
    from vaegmm.storage import load_plain_pickle

    marker = tmp_path / "pwned"
    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))  # would create the marker file if ever called

    path = tmp_path / "gmm_params.pkl"
    path.write_bytes(pickle.dumps({"format": "vaegmm.gmm", "means": Evil()}))
    with pytest.raises(ModelFileError, match=r"gmm_params\.pkl.*'[\w.]*open'.*never runs code"):
        load_plain_pickle(path)
    assert not marker.exists()


def test_foreign_plain_dict_is_refused():
    with pytest.raises(ModelFileError, match="format 'vaegmm.gmm'"):
        GaussianMixture.from_dict({"means": [[0, 0]]}, source="x.pkl")


def _state(blobs):
    X, y = blobs
    lab = np.concatenate([np.flatnonzero(y == k)[:5] for k in range(3)])
    return few_label(X, X[lab], y[lab]).gmm_.to_dict()


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(format_version=99), "format version 99 is not the supported 1"),
    (lambda s: s["means"][0].__setitem__(0, float("nan")), "NaN or infinite"),
    (lambda s: s["covariances"].__setitem__(1, [[1.0, 2.0], [2.0, 1.0]]), "not positive definite"),
    (lambda s: s["covariances"][1].__setitem__(0, [1.0, 0.5]), "not symmetric"),
    (lambda s: s.update(weights=s["weights"][:2]), "inconsistent shapes"),
    (lambda s: s["weights"].__setitem__(0, -0.1), "weight is not positive"),
    (lambda s: s.pop("means"), "missing or malformed"),
])
def test_from_dict_refuses_a_damaged_state(blobs, change, message):
    state = _state(blobs)
    change(state)
    with pytest.raises(ModelFileError, match=message):
        GaussianMixture.from_dict(state, source="g.pkl")


def test_sample_from_one_component(blobs):
    X, y = blobs
    lab = np.concatenate([np.flatnonzero(y == k)[:5] for k in range(3)])
    gmm = few_label(X, X[lab], y[lab]).gmm_
    S, comp = gmm.sample(5000, random_state=1, component=2)
    assert (comp == 2).all()
    np.testing.assert_allclose(S.mean(0), gmm.means_[2], atol=0.05)
    np.testing.assert_allclose(np.cov(S.T), gmm.covariances_[2], atol=0.05)


def test_m_step_matches_weighted_moments_and_keeps_an_emptied_component():
    from vaegmm.gmm import m_step

    rng = np.random.default_rng(6)
    X = rng.normal(size=(400, 3))
    resp = rng.random((400, 2))
    resp /= resp.sum(axis=1, keepdims=True)
    weights, means, covs = m_step(X, resp, 0.0, previous_means=np.zeros((2, 3)), previous_covariances=np.stack([np.eye(3)] * 2))
    np.testing.assert_allclose(weights, resp.sum(0) / 400)
    np.testing.assert_allclose(means[0], np.average(X, axis=0, weights=resp[:, 0]))
    np.testing.assert_allclose(covs[1], np.cov(X.T, aweights=resp[:, 1], bias=True), atol=1e-12)
    resp[:, 1], resp[:, 0] = 0.0, 1.0
    with pytest.warns(DegenerateFitWarning, match="lost all their points"):
        _, means, covs = m_step(X, resp, 0.0, previous_means=np.full((2, 3), 7.0), previous_covariances=np.stack([np.eye(3)] * 2))
    np.testing.assert_array_equal(means[1], [7.0, 7.0, 7.0])
    np.testing.assert_array_equal(covs[1], np.eye(3))


@pytest.mark.parametrize("from_features", [True, False], ids=["from features", "direct"])
@pytest.mark.parametrize("distance", [3.0, 1e4], ids=["near", "tight and far off"])
def test_m_step_covariances_match_centred_moments(monkeypatch, from_features, distance):
    """With more components than dimensions the M-step takes second moments about the data's mean from
    each point's outer product (Moments.features), else centres on each component's mean: both must give
    the centred weighted covariance, and so must a tight cluster far from the data's mean, where the
    first would cancel every digit (it is centred anew)."""
    import vaegmm.gmm as gmm_module

    if not from_features:
        monkeypatch.setattr(gmm_module, "_PRODUCT_FLOATS", 0)
    rng = np.random.default_rng(7)
    scale = 1e-3 if distance > 100 else 0.5
    X = np.concatenate([distance + scale * rng.normal(size=(150, 2)), -distance + scale * rng.normal(size=(150, 2)),
                        rng.normal(size=(100, 2))])
    resp = rng.random((400, 3)) * (1e-3 if distance < 100 else 0.0)  # far off: each cluster its own component alone
    resp[:150, 0] = resp[150:300, 1] = resp[300:, 2] = 1.0
    resp /= resp.sum(axis=1, keepdims=True)
    moments = gmm_module.Moments(X)
    assert moments.use_features(3) == from_features
    nk, means, covs = gmm_module._gaussian_parameters_kn(moments, np.ascontiguousarray(resp.T), 0.0)
    for k in range(3):
        np.testing.assert_allclose(means[k], np.average(X, axis=0, weights=resp[:, k]), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(covs[k], np.cov(X.T, aweights=resp[:, k], bias=True), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("distance", [3.0, 1e4], ids=["near", "tight and far off"])
def test_em_log_density_from_moments_matches_the_direct_one(distance):
    """Inside a fit the E-step reads each point's moments about the data's mean (x̃ᵀΛx̃ - 2μ̃ᵀΛx̃ + μ̃ᵀΛμ̃):
    it must give the direct log-density, and so must a tight component far off, where those terms would
    swamp it (it is computed the direct way)."""
    import vaegmm.gmm as gmm_module

    rng = np.random.default_rng(9)
    X = np.concatenate([rng.normal(size=(200, 2)), distance + 1e-3 * rng.normal(size=(20, 2))])
    means = np.array([[0.1, -0.1], [1.0, 0.5], [distance] * 2])
    precisions_chol = compute_precision_cholesky(np.stack([np.eye(2), np.diag([0.5, 2.0]), 1e-6 * np.eye(2)]))
    moments = gmm_module.Moments(X)
    assert moments.use_features(len(means))
    got = gmm_module._log_gaussian_prob_kn(moments.XT, means, precisions_chol, moments)  # (K, N)
    expected = np.stack([multivariate_normal(m, np.linalg.inv(p @ p.T)).logpdf(X) for m, p in zip(means, precisions_chol)])
    near = expected > -1e3  # the densities EM weighs; far below, only their order matters
    np.testing.assert_allclose(got[near], expected[near], rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_keep_going_stops_em_and_keeps_the_parameters_it_judged(blobs):
    X, _ = blobs
    seen = []

    def keep_going(resp):
        seen.append(resp.shape)
        return len(seen) < 3

    gmm = GaussianMixture(tol=1e-12).fit(X, means_init=MEANS + 1.0, keep_going=keep_going)
    assert gmm.stopped_ and not gmm.converged_ and seen == [(3, len(X))] * 3
    # Two M-steps ran; the kept parameters are those the third E-step scored.
    assert gmm.n_iter_ == 3 and len(gmm.log_likelihood_history_) == 3
    assert gmm.lower_bound_ == pytest.approx(gmm.score(X))
