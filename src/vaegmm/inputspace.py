"""Label spreading over the images themselves: the "inputs" seeding of the few-label fit.

A 2-D latent squeezes classes that share strokes (4, 7 and 9) together, so its own neighbour graph
carries labels across their borders. The images' neighbour graph does not: spread over it, five labels
per class reach 0.90-0.94 of the training images of the hard MNIST triples (benchmarks/README.md). The
few-label fit starts candidates from that partition and, with ``choose_by="inputs"``, keeps the candidate
that agrees with it most; the GMM in the latent stays the classifier.

With ``GMMConfig.companion_latent_dim`` the rows are a companion VAE's latent means instead of the images
(:func:`vaegmm.pipeline.companion_trainer`): a 10-D latent keeps those classes apart better still.

Neighbours are found among the images' leading principal components (a randomized SVD, Halko et al.
2011), which keeps the search a second or two for 20,000 images of any size and drops pixel noise.
"""

from __future__ import annotations

import numpy as np

from .clustering import nearest_labelled, spread_over_graph

# Halko, Martinsson & Tropp (2011), "Finding structure with randomness", section 1.5: ten extra
# directions and a few power iterations give the leading components to well within their gaps.
SVD_OVERSAMPLES = 10
SVD_POWER_ITERATIONS = 4
# Rows whose distances to every point are held at once: bounds memory at (block, N) float32.
NEIGHBOUR_BLOCK = 1024


def principal_scores(inputs: np.ndarray, n_components: int, *, random_state: int) -> np.ndarray:
    """The rows of inputs (N, P), centred, projected on their leading ``n_components`` principal axes
    (at most min(P, N - 1)): (N, k) float32. Seeded, so the same inputs give the same scores."""
    A = np.asarray(inputs, dtype=np.float32)
    A = A - A.mean(axis=0)  # (N, P)
    k = max(1, min(n_components, A.shape[1], len(A) - 1))
    rng = np.random.default_rng(random_state)
    sketch = A @ rng.standard_normal((A.shape[1], min(k + SVD_OVERSAMPLES, A.shape[1])), dtype=np.float32)  # (N, l)
    for _ in range(SVD_POWER_ITERATIONS):  # re-orthonormalised each time, or the small directions round away
        sketch = A @ (A.T @ np.linalg.qr(sketch)[0])
    basis = np.linalg.qr(sketch)[0]  # (N, l)
    _, _, axes = np.linalg.svd(basis.T @ A, full_matrices=False)  # (l, P): rows are the principal axes
    return A @ axes[:k].T  # (N, k)


def nearest_neighbours(points: np.ndarray, n_neighbors: int) -> np.ndarray:
    """Indices of each row's ``n_neighbors`` nearest other rows of points (N, D), by brute force in
    blocks (a k-d tree is slower than one matrix product beyond a few dimensions): (N, k), unordered."""
    import torch

    points_t = torch.as_tensor(np.asarray(points, dtype=np.float32))  # (N, D)
    k = min(n_neighbors, len(points_t) - 1)
    norms = (points_t * points_t).sum(dim=1)  # (N,)
    parts = []
    for start in range(0, len(points_t), NEIGHBOUR_BLOCK):
        block = points_t[start: start + NEIGHBOUR_BLOCK]  # (B, D)
        # The full |p|² - 2 p·q + |q|², not the cheaper |q|² - 2 p·q that ranks alike: float32 rounds the two
        # differently at near-ties, and the published figures were measured with this one.
        d = norms[start: start + len(block), None] - 2 * block @ points_t.T + norms[None]  # (B, N)
        d[torch.arange(len(block)), start + torch.arange(len(block))] = float("inf")  # a point is not its own neighbour
        parts.append(d.topk(k, dim=1, largest=False, sorted=False).indices)  # (B, k)
    return torch.cat(parts).numpy().astype(np.int64)


def input_spreading(inputs: np.ndarray, inputs_labelled: np.ndarray, y_labelled: np.ndarray, classes: np.ndarray, *,
                    n_components: int, n_neighbors: int, random_state: int) -> np.ndarray:
    """Label spreading over the kNN graph of the images' principal components.

    inputs (N, P) and inputs_labelled (M, P): flattened images; y_labelled (M,). Returns the class of
    each row of inputs (N,); a row no labelled image reaches takes the class of its nearest labelled image.
    """
    scores = principal_scores(np.concatenate([inputs, inputs_labelled]), n_components, random_state=random_state)
    out, unreached = spread_over_graph(nearest_neighbours(scores, n_neighbors), y_labelled, classes)
    if unreached.any():
        out[unreached] = nearest_labelled(scores[: len(inputs)][unreached], scores[len(inputs):], y_labelled, classes)
    return out
