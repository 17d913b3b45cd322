"""The from-scratch GMM against references: scipy densities, EM monotonicity, known parameters, sklearn."""

import pickle
import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from vaegmm.errors import DegenerateFitWarning, ModelFileError
from vaegmm.gmm import (
    GaussianMixture,
    boundary_fraction,
    choose_candidate,
    component_schedule,
    compute_precision_cholesky,
    e_step,
    estimate_log_gaussian_prob,
    neighbour_graph,
)

from .conftest import make_blobs

MEANS = np.array([[-4.0, 0.0], [3.0, 3.0], [3.0, -3.0]])
COVS = np.array([[[1.0, 0.6], [0.6, 1.0]], [[0.5, 0.0], [0.0, 2.0]], [[1.5, -0.4], [-0.4, 0.3]]])


@pytest.fixture
def blobs():
    rng = np.random.default_rng(1)
    return make_blobs(rng, MEANS, COVS, [3000, 2000, 1000])


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
    _, log_resp = e_step(data, gmm.weights_, gmm.means_, gmm.precisions_cholesky_, allowed)
    assert np.all(np.exp(log_resp[len(X):])[~allowed[len(X):]] == 0)


def _bimodal_class(rng):
    """Class 0 is two far-apart blobs (its mean lies in empty space), class 1 one blob above it."""
    centres = np.array([[-6.0, 0.0], [6.0, 0.0], [0.0, 5.0]])
    X, y = make_blobs(rng, centres, [np.eye(2) * 0.5] * 3, [1500, 1500, 1500])
    return X, np.where(y == 2, 1, 0), centres


def test_staged_fit_gives_a_bimodal_class_one_component_per_mode():
    rng = np.random.default_rng(7)
    X, y, centres = _bimodal_class(rng)
    lab = np.concatenate([rng.choice(np.flatnonzero(y == k), 4, replace=False) for k in (0, 1)])
    gmm = GaussianMixture(components_per_class=2).fit_seeded(X, X[lab], y[lab])
    assert np.mean(gmm.predict(X) == y) > 0.99
    assert gmm.labelled_agreement_ == 1.0
    class0 = gmm.means_[gmm.component_classes_ == 0]
    np.testing.assert_allclose(class0[np.argsort(class0[:, 0])], centres[:2], atol=0.15)


def test_neighbour_graph_and_boundary_fraction_match_brute_force():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 2))
    labels = (X[:, 0] + 0.3 * rng.normal(size=300) > 0).astype(int)
    neighbours = neighbour_graph(X, 5)
    dist = ((X[:, None] - X[None]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    expected = np.argsort(dist, axis=1)[:, :5]
    np.testing.assert_array_equal(np.sort(neighbours, axis=1), np.sort(expected, axis=1))
    assert boundary_fraction(labels, neighbours) == pytest.approx(np.mean(labels[expected] != labels[:, None]))
    assert boundary_fraction(np.zeros(300, int), neighbours) == 0.0


def test_border_through_the_gap_cuts_fewer_edges_than_one_through_a_cluster(blobs):
    X, y = blobs
    neighbours = neighbour_graph(X, 10)
    through_cluster = np.where(X[:, 1] > 0, 1, 0)  # splits the left blob in two
    assert boundary_fraction(y, neighbours) < boundary_fraction(through_cluster, neighbours) / 5


@pytest.mark.parametrize("schedule, k, expected", [
    ("direct", 4, [4]), ("doubling", 1, [1]), ("doubling", 4, [1, 2, 4]), ("doubling", 6, [1, 2, 4, 6]),
])
def test_component_schedule(schedule, k, expected):
    assert component_schedule(schedule, k) == expected


def test_a_single_unlabelled_point_and_one_component_per_class_fit_once_per_seeding():
    assert neighbour_graph(np.zeros((1, 2)), 10).shape == (1, 0)
    gmm = GaussianMixture(components_per_class=1).fit_seeded(np.array([[0.2, 0.1]]), np.array([[0, 0], [1, 1.0]]), np.array([0, 1]))
    assert [(c["seeding"], c["schedule"]) for c in gmm.candidates_] == [("kmeans", "direct"), ("nearest", "direct")]
    assert gmm.predict(np.array([[0.1, 0.0], [0.9, 1.0]])).tolist() == [0, 1]


def test_unknown_schedule_or_seeding_is_refused():
    with pytest.raises(ValueError, match="schedule"):
        GaussianMixture(schedules=("tripling",))
    with pytest.raises(ValueError, match="seeding"):
        GaussianMixture(seedings=())


def test_doubling_moves_a_border_that_many_components_would_keep():
    # Two unit Gaussians 3.2 apart; class 0's labels sit on its far side and class 1's near the
    # border, so the nearest-labelled partition starts with the border shifted well into class 0.
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal([-1.6, 0], 1, (2000, 2)), rng.normal([1.6, 0], 1, (2000, 2))])
    y = np.repeat([0, 1], 2000)
    X_lab, y_lab = np.array([[-4, 1.0], [-4, -1], [-3.5, 0], [0.6, 1], [0.6, -1], [1, 0]]), np.array([0, 0, 0, 1, 1, 1])
    fits = {schedule: GaussianMixture(components_per_class=4, joint_em=False, seedings=("nearest",), schedules=(schedule,))
            .fit_seeded(X, X_lab, y_lab) for schedule in ("direct", "doubling")}
    accuracy = {k: np.mean(g.predict(X) == y) for k, g in fits.items()}
    assert accuracy["direct"] < 0.85
    assert accuracy["doubling"] > 0.93  # Bayes rate here: 0.945
    assert fits["doubling"].boundary_fraction_ < fits["direct"].boundary_fraction_
    both = GaussianMixture(components_per_class=4, joint_em=False, seedings=("nearest",)).fit_seeded(X, X_lab, y_lab)
    assert both.schedule_ == "doubling"


@pytest.mark.parametrize("slack", [0, 1, 15])
def test_fit_seeded_keeps_the_fewest_cut_edges_among_candidates_agreeing_with_the_labels(blobs, slack):
    X, y = blobs
    rng = np.random.default_rng(4)
    lab = np.concatenate([rng.choice(np.flatnonzero(y == k), 5, replace=False) for k in range(3)])
    gmm = GaussianMixture(components_per_class=2, joint_em=False, label_slack=slack).fit_seeded(X, X[lab], y[lab])
    assert len(gmm.candidates_) == 4  # 2 seedings x 2 schedules
    agreeing = [c for c in gmm.candidates_
                if round(c["labelled_agreement"] * 15) >= max(round(d["labelled_agreement"] * 15) for d in gmm.candidates_) - slack]
    best = min(agreeing, key=lambda c: (c["boundary_fraction"], -c["lower_bound"]))
    assert (gmm.seeding_, gmm.schedule_) == (best["seeding"], best["schedule"])
    assert gmm.boundary_fraction_ == boundary_fraction(gmm.predict(X), neighbour_graph(X, gmm.n_neighbors))


@pytest.mark.parametrize("slack, expected", [(0, "a"), (1, "b"), (2, "b"), (4, "c")])
def test_choose_candidate_trades_labelled_points_for_cleaner_borders_only_within_the_slack(slack, expected):
    # As on a real draw: "a" keeps 14 of 15 labelled points, "b" 13 with a much cleaner border.
    candidates = [
        {"name": "a", "labelled_agreement": 14 / 15, "boundary_fraction": 0.0068, "lower_bound": -3.0},
        {"name": "b", "labelled_agreement": 13 / 15, "boundary_fraction": 0.0042, "lower_bound": -3.1},
        {"name": "c", "labelled_agreement": 10 / 15, "boundary_fraction": 0.0010, "lower_bound": -3.2},
        {"name": "d", "labelled_agreement": 13 / 15, "boundary_fraction": 0.0042, "lower_bound": -3.3},
    ]
    assert choose_candidate(candidates, n_labelled=15, label_slack=slack)["name"] == expected


def test_joint_em_is_rejected_by_the_drift_guard():
    rng = np.random.default_rng(8)
    X, y, _ = _bimodal_class(rng)
    lab = np.concatenate([rng.choice(np.flatnonzero(y == k), 4, replace=False) for k in (0, 1)])
    kept = GaussianMixture(components_per_class=2, joint_em=True).fit_seeded(X, X[lab], y[lab])
    assert kept.joint_em_accepted_ and kept.n_iter_ >= 1
    refused = GaussianMixture(components_per_class=2, joint_em=True, max_class_shift=-1).fit_seeded(X, X[lab], y[lab])
    assert not refused.joint_em_accepted_
    staged = GaussianMixture(components_per_class=2, joint_em=False).fit_seeded(X, X[lab], y[lab])
    np.testing.assert_array_equal(refused.means_, staged.means_)


def test_recovers_known_parameters(blobs):
    X, y = blobs
    lab = np.concatenate([np.flatnonzero(y == k)[:5] for k in range(3)])
    gmm = GaussianMixture().fit_seeded(X, X[lab], y[lab])
    assert gmm.converged_
    np.testing.assert_allclose(gmm.means_, MEANS, atol=0.1)
    np.testing.assert_allclose(gmm.covariances_, COVS, atol=0.15)
    np.testing.assert_allclose(gmm.weights_, [0.5, 1 / 3, 1 / 6], atol=0.01)
    assert gmm.labelled_agreement_ == 1.0
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
    gmm = GaussianMixture(components_per_class=2).fit_seeded(X, X[lab], y[lab] + 10)
    proba = gmm.predict_proba(X[:100])
    assert proba.shape == (100, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(np.unique(gmm.predict(X))) <= {10, 11, 12}
    assert list(gmm.component_classes_) == [10, 10, 11, 11, 12, 12]


def test_sample_follows_the_mixture(blobs):
    X, y = blobs
    lab = np.concatenate([np.flatnonzero(y == k)[:5] for k in range(3)])
    gmm = GaussianMixture().fit_seeded(X, X[lab], y[lab])
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
    gmm = GaussianMixture().fit_seeded(X, X[lab], y[lab])
    save_plain_pickle(gmm.to_dict(), tmp_path / "g.pkl")
    back = GaussianMixture.from_dict(load_plain_pickle(tmp_path / "g.pkl"))
    np.testing.assert_array_equal(back.means_, gmm.means_)
    np.testing.assert_array_equal(back.score_samples(X), gmm.score_samples(X))
    np.testing.assert_array_equal(back.predict(X), gmm.predict(X))
    assert (back.seeding_, back.schedule_, back.boundary_fraction_) == (gmm.seeding_, gmm.schedule_, gmm.boundary_fraction_)



def test_malicious_pickle_is_refused_without_running_it(tmp_path):
    from vaegmm.storage import load_plain_pickle

    marker = tmp_path / "pwned"
    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))  # would create the marker file if ever called

    path = tmp_path / "gmm_params.pkl"
    path.write_bytes(pickle.dumps({"format": "vaegmm.gmm", "means": Evil()}))
    with pytest.raises(ModelFileError, match=r"gmm_params\.pkl.*'io\.open'.*never runs code"):
        load_plain_pickle(path)
    assert not marker.exists()


def test_foreign_plain_dict_is_refused():
    with pytest.raises(ModelFileError, match="format 'vaegmm.gmm'"):
        GaussianMixture.from_dict({"means": [[0, 0]]}, source="x.pkl")
