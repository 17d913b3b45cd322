"""k-means, and the labelled seedings that give the few-label fit its first partition of the data."""

from __future__ import annotations

import numpy as np

from .config import SPREAD_NEIGHBOURS

# Rows per block when distances to many centres are needed: bounds memory at (block, M) floats.
DISTANCE_BLOCK = 4096
# Up to this many features, distances are summed feature by feature (exact, and fastest for a few);
# above it, through one matrix product.
FEATURE_LOOP_MAX_DIM = 4
# Label spreading with Zhou et al.'s (2004) alpha = 0.99, not scikit-learn's default of 0.2 (with 7 neighbours and
# 30 iterations): at 0.2 a label fades within a few hops, and five labels per class reached 0.90 of the 1/4/8
# training points of a 10-D latent (0.99: 0.99) and 0.76 of 4/7/9's (0.92; benchmarks/README.md, spreading).
SPREAD_ALPHA = 0.99
SPREAD_ITERATIONS = 100


def squared_distances(X: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances. X: (N, D); centres: (K, D). Returns (N, K)."""
    if X.shape[1] > FEATURE_LOOP_MAX_DIM:  # |x|² - 2 x·c + |c|²: one BLAS product, clipped at 0 against rounding
        out = (X ** 2).sum(axis=1)[:, None] - 2 * X @ centres.T + (centres ** 2).sum(axis=1)[None]
        return np.maximum(out, 0.0, out=out)
    # One feature at a time: numpy sums a short trailing axis (a 2-D latent) many times slower than this.
    out = np.zeros((len(X), len(centres)))
    for d in range(X.shape[1]):
        diff = X[:, d, None] - centres[None, :, d]  # (N, K)
        diff *= diff
        out += diff
    return out


def nearest_centre(X: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of each row's nearest centre: (N,). X: (N, D); centres: (K, D). Blocked, so memory stays flat."""
    nearest = np.empty(len(X), dtype=np.int64)
    for start in range(0, len(X), DISTANCE_BLOCK):
        chunk = X[start: start + DISTANCE_BLOCK]
        nearest[start: start + len(chunk)] = squared_distances(chunk, centres).argmin(axis=1)
    return nearest


def kmeans_plus_plus(X: np.ndarray, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii, 2007). X: (N, D). Returns (n_clusters, D)."""
    centres = [X[rng.integers(len(X))]]
    closest = ((X - centres[0]) ** 2).sum(axis=1)  # (N,)
    for _ in range(1, n_clusters):
        total = closest.sum()
        idx = rng.choice(len(X), p=closest / total) if total > 0 else rng.integers(len(X))
        centres.append(X[idx])
        closest = np.minimum(closest, ((X - X[idx]) ** 2).sum(axis=1))
    return np.array(centres)


def kmeans(
    X: np.ndarray,
    centres: np.ndarray,
    *,
    fixed_sums: np.ndarray | None = None,
    fixed_counts: np.ndarray | None = None,
    max_iter: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means from ``centres`` (K, D); returns centres (K, D) and labels (N,).

    ``fixed_sums`` (K, D) and ``fixed_counts`` (K,) are points pinned to each centre (labelled
    points); they count in every centre's mean but are never re-assigned. Empty clusters stay put.
    """
    n_clusters, n_features = centres.shape
    fixed_sums = np.zeros_like(centres) if fixed_sums is None else fixed_sums
    fixed_counts = np.zeros(n_clusters) if fixed_counts is None else fixed_counts
    centres = centres.copy()
    for _ in range(max_iter):
        labels = nearest_centre(X, centres)  # (N,)
        sums = fixed_sums + np.stack([np.bincount(labels, weights=X[:, d], minlength=n_clusters)
                                      for d in range(n_features)], axis=1)  # (K, D)
        counts = fixed_counts + np.bincount(labels, minlength=n_clusters)  # (K,)
        new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centres)
        if np.allclose(new, centres):
            break
        centres = new
    return centres, labels


def seeded_kmeans(X: np.ndarray, X_labelled: np.ndarray, y_labelled: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """k-means with one centroid per class, started at the labelled class means, labelled points
    fixed in their class. X: (N, D). Returns the class of each row of X: (N,)."""
    fixed_sums = np.stack([X_labelled[y_labelled == c].sum(axis=0) for c in classes])  # (C, D)
    fixed_counts = np.array([np.sum(y_labelled == c) for c in classes])  # (C,)
    _, labels = kmeans(X, fixed_sums / fixed_counts[:, None], fixed_sums=fixed_sums, fixed_counts=fixed_counts)
    return classes[labels]


def nearest_labelled(X: np.ndarray, X_labelled: np.ndarray, y_labelled: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The class of each row of X's nearest labelled point: (N,). ``classes`` is unused (same signature as
    :func:`seeded_kmeans`)."""
    return y_labelled[nearest_centre(X, X_labelled)]


def neighbour_graph(X: np.ndarray, n_neighbors: int) -> np.ndarray:
    """Indices of each row's ``n_neighbors`` nearest other rows of X (N, D): (N, n_neighbors)."""
    from scipy.spatial import cKDTree

    n_neighbors = min(n_neighbors, len(X) - 1)
    if n_neighbors < 1:
        return np.empty((len(X), 0), dtype=np.int64)
    # k as a list keeps the result 2-D; the 1st nearest is the point itself
    _, idx = cKDTree(X).query(X, k=list(range(2, n_neighbors + 2)))  # (N, n_neighbors)
    return idx


def spread_labels(X: np.ndarray, X_labelled: np.ndarray, y_labelled: np.ndarray, classes: np.ndarray, *,
                  n_neighbors: int = SPREAD_NEIGHBOURS, alpha: float = SPREAD_ALPHA, n_iter: int = SPREAD_ITERATIONS) -> np.ndarray:
    """Label spreading over the k-nearest-neighbour graph of all points (Zhou et al. 2004, "Learning with
    local and global consistency"): F <- alpha S F + (1 - alpha) Y with S = D^-1/2 W D^-1/2, W the
    symmetrised kNN graph. Labels flow along dense regions and stop at sparse borders, so a class shaped
    like a curve or made of several blobs is followed where nearest-mean rules cut across it.
    X (N, D). Returns the class of each row of X: (N,).
    """
    neighbours = neighbour_graph(np.concatenate([X, X_labelled]), n_neighbors)  # (N + M, k)
    if neighbours.shape[1] == 0:  # a single point: no graph to spread over
        return nearest_labelled(X, X_labelled, y_labelled, classes)
    out, unreached = spread_over_graph(neighbours, y_labelled, classes, alpha=alpha, n_iter=n_iter)
    if unreached.any():
        out[unreached] = nearest_labelled(X[unreached], X_labelled, y_labelled, classes)
    return out


def spread_over_graph(neighbours: np.ndarray, y_labelled: np.ndarray, classes: np.ndarray, *,
                      alpha: float = SPREAD_ALPHA, n_iter: int = SPREAD_ITERATIONS) -> tuple[np.ndarray, np.ndarray]:
    """Label spreading over a kNN graph whose last M rows are the labelled points.

    neighbours (N + M, k): each point's nearest other points; y_labelled (M,). Returns the class of each of
    the first N points (N,), and where no labelled point reaches them (N,) bool (their class is then arbitrary).
    """
    from scipy import sparse

    n, k = neighbours.shape
    n_unlabelled = n - len(y_labelled)
    rows = np.repeat(np.arange(n), k)
    W = sparse.csr_matrix((np.ones(n * k), (rows, neighbours.ravel())), shape=(n, n))
    W = W.maximum(W.T)  # symmetric: an edge if either end counts the other among its neighbours
    inv_sqrt_degree = 1.0 / np.sqrt(np.asarray(W.sum(axis=1)).ravel())  # (n,)
    S = sparse.diags(inv_sqrt_degree) @ W @ sparse.diags(inv_sqrt_degree)
    Y = np.zeros((n, len(classes)))
    Y[n_unlabelled + np.arange(len(y_labelled)), np.searchsorted(classes, y_labelled)] = 1.0
    F = Y.copy()
    for _ in range(n_iter):
        F = alpha * (S @ F) + (1 - alpha) * Y
    F = F[:n_unlabelled]
    return classes[F.argmax(axis=1)], F.max(axis=1) <= 0


SEEDINGS = {"kmeans": seeded_kmeans, "nearest": nearest_labelled, "spreading": spread_labels}
