"""k-means and the labelled seedings against references and on shapes they are meant for."""

import numpy as np
import pytest

from vaegmm.clustering import kmeans, nearest_labelled, seeded_kmeans, spread_labels, squared_distances


@pytest.mark.parametrize("dim", [2, 8])  # the feature loop and the matrix-product form
def test_squared_distances_match_a_direct_computation(dim):
    rng = np.random.default_rng(0)
    X, C = rng.normal(size=(50, dim)) * 10, rng.normal(size=(7, dim))
    expected = np.array([[np.sum((x - c) ** 2) for c in C] for x in X])
    np.testing.assert_allclose(squared_distances(X, C), expected, rtol=1e-10, atol=1e-9)


def test_kmeans_matches_scikit_learn_from_the_same_start():
    cluster = pytest.importorskip("sklearn.cluster")
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(c, 0.7, (200, 2)) for c in ([0, 0], [4, 0], [0, 4])])
    start = X[[0, 250, 450]]
    centres, labels = kmeans(X, start)
    ref = cluster.KMeans(3, init=start, n_init=1, tol=0, algorithm="lloyd").fit(X)
    np.testing.assert_allclose(centres, ref.cluster_centers_, atol=1e-8)
    np.testing.assert_array_equal(labels, ref.labels_)


def _moons(rng, n=600):
    t = rng.uniform(0, np.pi, n)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    X = np.concatenate([upper, lower]) + rng.normal(scale=0.05, size=(2 * n, 2))
    return X, np.repeat([0, 1], n)


def test_spreading_follows_curved_classes_that_nearest_mean_rules_cut_across():
    rng = np.random.default_rng(2)
    X, y = _moons(rng)
    # labels at one tip of each moon, far from most of their class
    lab = np.concatenate([np.argsort(X[:600, 0])[:5], 600 + np.argsort(-X[600:, 0])[:5]])
    classes = np.array([0, 1])
    assert np.mean(nearest_labelled(X, X[lab], y[lab], classes) == y) < 0.85
    assert np.mean(seeded_kmeans(X, X[lab], y[lab], classes) == y) < 0.9
    assert np.mean(spread_labels(X, X[lab], y[lab], classes) == y) > 0.98


def test_spreading_keeps_each_connected_group_with_the_label_inside_it():
    X = np.array([[0.0, 0], [0.1, 0], [0.2, 0], [10, 10], [10.1, 10]])
    X_lab, y_lab = np.array([[0.05, 0], [10.05, 10]]), np.array([3, 7])
    assert spread_labels(X, X_lab, y_lab, np.array([3, 7]), n_neighbors=1).tolist() == [3, 3, 3, 7, 7]
