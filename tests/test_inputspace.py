"""Label spreading over the images themselves (the "inputs" seeding) and the choice it can drive."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from vaegmm.candidates import choose_candidate
from vaegmm.config import GMMConfig
from vaegmm.errors import ConfigError
from vaegmm.fewlabel import FewLabelGMM
from vaegmm.inputspace import input_spreading, nearest_neighbours, principal_scores

from .test_clustering import _moons


def test_principal_scores_match_an_exact_svd_up_to_sign():
    rng = np.random.default_rng(0)
    # rank-5 data with well-separated spectrum, plus a little noise, in 40 dimensions
    A = rng.normal(size=(500, 5)) * np.array([10, 7, 5, 3, 2]) @ np.linalg.qr(rng.normal(size=(40, 5)))[0].T
    A += rng.normal(scale=0.01, size=A.shape) + 3.0
    centred = A - A.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    exact = centred @ vt[:3].T  # (500, 3)
    got = principal_scores(A, 3, random_state=0)
    assert got.shape == (500, 3)
    np.testing.assert_allclose(np.abs(got), np.abs(exact), atol=1e-3)
    np.testing.assert_array_equal(got, principal_scores(A, 3, random_state=0))  # seeded: the same twice


def test_principal_scores_keep_at_most_the_dimensions_there_are():
    A = np.random.default_rng(1).normal(size=(30, 4))
    assert principal_scores(A, 50, random_state=0).shape == (30, 4)
    assert principal_scores(A[:3], 50, random_state=0).shape == (3, 2)


def test_nearest_neighbours_match_a_kd_tree():
    P = np.random.default_rng(2).normal(size=(2500, 6))  # more rows than one block
    _, expected = cKDTree(P).query(P, k=list(range(2, 9)))
    got = nearest_neighbours(P, 7)
    assert got.shape == (2500, 7)
    assert all(set(a) == set(b) for a, b in zip(got, expected))


def test_spreading_over_the_images_follows_their_shapes_whatever_the_latent():
    rng = np.random.default_rng(3)
    X, y = _moons(rng)  # the "images": two interleaved moons, embedded in 30 pixels
    inputs = X @ rng.normal(size=(2, 30)) + rng.normal(scale=0.01, size=(len(X), 30))
    lab = np.concatenate([np.argsort(X[:600, 0])[:5], 600 + np.argsort(-X[600:, 0])[:5]])
    out = input_spreading(inputs, inputs[lab], y[lab], np.array([0, 1]), n_components=5, n_neighbors=10, random_state=0)
    assert np.mean(out == y) > 0.98


def test_an_image_no_label_reaches_takes_its_nearest_labelled_images_class():
    inputs = np.array([[0.0, 0], [0.1, 0], [9.0, 9], [9.1, 9]])
    labelled, y_lab = np.array([[0.05, 0], [0.0, -0.5]]), np.array([3, 7])
    out = input_spreading(inputs, labelled, y_lab, np.array([3, 7]), n_components=2, n_neighbors=1, random_state=0)
    assert out[2:].tolist() == [3, 3]  # the far pair is its own group; (0.05, 0) is nearer than (0, -0.5)


def _latent_and_images(rng):
    """Two long parallel classes that a latent squeezed together, labelled at opposite ends: a rule on the
    latent alone splits them left against right. The images keep the classes far apart."""
    n = 600
    y = np.repeat([0, 1], n)
    along, across = rng.normal(scale=3.0, size=2 * n), rng.normal(scale=0.15, size=2 * n)
    latent = np.stack([along, across + 0.6 * y], axis=1)  # (2n, 2)
    inputs = np.stack([along, across + 20.0 * y], axis=1) @ rng.normal(size=(2, 30))  # (2n, 30)
    lab = np.concatenate([np.argsort(along + 100 * y)[:5], np.argsort(-along + 100 * (1 - y))[:5]])
    return latent, inputs, y, lab


def test_choose_by_inputs_keeps_the_candidate_agreeing_most_with_spreading_over_the_images():
    latent, inputs, y, lab = _latent_and_images(np.random.default_rng(4))
    config = GMMConfig(components_per_class=1, seedings=("nearest", "inputs"), choose_by="inputs")
    fit = FewLabelGMM(config).fit(latent, latent[lab], y[lab], inputs=inputs, inputs_labelled=inputs[lab])
    teacher = input_spreading(inputs, inputs[lab], y[lab], np.array([0, 1]), n_components=config.input_components,
                              n_neighbors=config.n_neighbors, random_state=0)
    for candidate in fit.candidates_:
        assert candidate.input_agreement == pytest.approx(np.mean(candidate.gmm.predict(latent) == teacher))
    assert fit.chosen_ is max(fit.candidates_, key=lambda c: c.input_agreement)
    assert "input_agreement" in fit.summary()["chosen"]
    assert np.mean(fit.gmm_.predict(latent) == y) > 0.95
    latent_only = FewLabelGMM(GMMConfig(components_per_class=1, seedings=("kmeans", "nearest"))).fit(latent, latent[lab], y[lab])
    assert np.mean(latent_only.gmm_.predict(latent) == y) < 0.8


def test_choose_candidate_by_inputs_ranks_agreement_then_likelihood():
    from types import SimpleNamespace

    candidates = [SimpleNamespace(name="a", labelled_agreement=1.0, boundary_fraction=0.001, input_agreement=0.90, lower_bound=-1),
                  SimpleNamespace(name="b", labelled_agreement=0.8, boundary_fraction=0.010, input_agreement=0.95, lower_bound=-3),
                  SimpleNamespace(name="c", labelled_agreement=0.8, boundary_fraction=0.010, input_agreement=0.95, lower_bound=-2)]
    assert choose_candidate(candidates, n_labelled=10, label_slack=1, by="inputs").name == "c"
    assert choose_candidate(candidates, n_labelled=10, label_slack=1).name == "a"


def test_the_inputs_seeding_asks_for_the_images_and_checks_them():
    latent, inputs, y, lab = _latent_and_images(np.random.default_rng(5))
    fit = FewLabelGMM(GMMConfig(seedings=("nearest", "inputs")))
    with pytest.raises(ValueError, match="pass fit\\(..., inputs=, inputs_labelled=\\)"):
        fit.fit(latent, latent[lab], y[lab])
    with pytest.raises(ValueError, match="1200 rows for X and 10 for X_labelled"):
        fit.fit(latent, latent[lab], y[lab], inputs=inputs[:-1], inputs_labelled=inputs[lab])
    bad = inputs.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit.fit(latent, latent[lab], y[lab], inputs=bad, inputs_labelled=inputs[lab])
    with pytest.raises(ConfigError, match="choose_by must be one of"):
        GMMConfig(choose_by="likelihood")
    with pytest.raises(ConfigError, match="a list including 'inputs'"):
        GMMConfig(choose_by="inputs")


def test_a_fit_on_a_subset_takes_the_same_subset_of_the_images():
    latent, inputs, y, lab = _latent_and_images(np.random.default_rng(6))
    config = GMMConfig(components_per_class=1, seedings=("nearest", "inputs"), choose_by="inputs", max_fit_points=500)
    fit = FewLabelGMM(config).fit(latent, latent[lab], y[lab], inputs=inputs, inputs_labelled=inputs[lab])
    assert np.mean(fit.gmm_.predict(latent) == y) > 0.95  # mismatched rows would mix the two classes' images
