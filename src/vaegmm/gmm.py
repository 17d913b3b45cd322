"""A Gaussian mixture with full covariances, fitted by EM, written from scratch in numpy.

The numerics follow scikit-learn's ``sklearn.mixture``: responsibilities are computed in log
space (log-sum-exp), covariances are regularised by ``reg_covar`` on the diagonal, and each
component keeps the Cholesky factor of its precision matrix so that log-densities never
invert a covariance. Components carry the class (digit) they stand for; labelled points may
be *anchored*, i.e. their responsibilities are restricted to the components of their class,
which turns EM into semi-supervised EM on the joint likelihood of unlabelled and labelled data.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import logsumexp

from .errors import DegenerateFitWarning, ModelFileError

LOG_2PI = float(np.log(2.0 * np.pi))
# A component whose summed responsibility falls below this is treated as empty.
_EMPTY_COMPONENT = 10 * np.finfo(np.float64).eps
# How many times a non-positive-definite covariance may be re-regularised (x10 each time).
_MAX_REG_RETRIES = 12
FORMAT = "vaegmm.gmm"
FORMAT_VERSION = 1


# --- pure numerical helpers -------------------------------------------------------------

def compute_precision_cholesky(covariances: np.ndarray) -> np.ndarray:
    """Cholesky factors of the precision matrices.

    covariances: (K, D, D) symmetric positive definite.
    Returns (K, D, D) upper-triangular ``P_k`` with ``P_k @ P_k.T == inv(covariances[k])``.
    Raises ``np.linalg.LinAlgError`` if a covariance is not positive definite.
    """
    n_components, n_features, _ = covariances.shape
    identity = np.eye(n_features)
    precisions_chol = np.empty_like(covariances)
    for k, covariance in enumerate(covariances):
        cov_chol = np.linalg.cholesky(covariance)  # (D, D) lower, Σ = L Lᵀ
        precisions_chol[k] = solve_triangular(cov_chol, identity, lower=True).T  # L⁻ᵀ
    return precisions_chol


def estimate_log_gaussian_prob(X: np.ndarray, means: np.ndarray, precisions_chol: np.ndarray) -> np.ndarray:
    """log N(x_n | μ_k, Σ_k) for every point and component.

    X: (N, D); means: (K, D); precisions_chol: (K, D, D). Returns (N, K).
    """
    n_features = X.shape[1]
    log_det = np.log(np.diagonal(precisions_chol, axis1=1, axis2=2)).sum(axis=1)  # (K,) = -½ log|Σ_k|
    y = np.einsum("nd,kde->nke", X, precisions_chol) - np.einsum("kd,kde->ke", means, precisions_chol)[None]  # (N, K, D)
    mahalanobis = np.einsum("nke,nke->nk", y, y)  # (N, K)
    return -0.5 * (n_features * LOG_2PI + mahalanobis) + log_det


def estimate_gaussian_parameters(X: np.ndarray, resp: np.ndarray, reg_covar: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The M-step for full covariances.

    X: (N, D); resp: (N, K) responsibilities. Returns nk (K,), means (K, D), covariances (K, D, D).
    """
    nk = resp.sum(axis=0) + _EMPTY_COMPONENT  # (K,)
    means = resp.T @ X / nk[:, None]  # (K, D)
    n_components, n_features = means.shape
    covariances = np.empty((n_components, n_features, n_features))
    for k in range(n_components):
        diff = X - means[k]  # (N, D)
        covariances[k] = (resp[:, k] * diff.T) @ diff / nk[k]
        covariances[k].flat[:: n_features + 1] += reg_covar
    return nk, means, covariances


def _weighted_log_prob(X, weights, means, precisions_chol, allowed):
    log_prob = estimate_log_gaussian_prob(X, means, precisions_chol) + np.log(weights)  # (N, K)
    if allowed is not None:
        log_prob = np.where(allowed, log_prob, -np.inf)
    return log_prob


def e_step(X, weights, means, precisions_chol, allowed=None) -> tuple[float, np.ndarray]:
    """Mean log-likelihood per point and log responsibilities (N, K).

    ``allowed`` (N, K) bool, optional: components each point may belong to (labelled points).
    """
    log_prob = _weighted_log_prob(X, weights, means, precisions_chol, allowed)
    log_norm = logsumexp(log_prob, axis=1)  # (N,)
    return float(log_norm.mean()), log_prob - log_norm[:, None]


def _safe_precision_cholesky(covariances: np.ndarray, reg_covar: float) -> tuple[np.ndarray, np.ndarray]:
    """Cholesky precisions, adding diagonal regularisation (with a warning) when a covariance is singular."""
    extra = max(reg_covar, np.finfo(np.float64).eps)
    covariances = covariances.copy()
    for _ in range(_MAX_REG_RETRIES):
        try:
            return covariances, compute_precision_cholesky(covariances)
        except np.linalg.LinAlgError:
            scale = max(1.0, float(np.abs(np.diagonal(covariances, axis1=1, axis2=2)).max()))
            bump = extra * scale
            warnings.warn(
                f"a component covariance is singular (collinear or duplicate points); adding {bump:.3g} "
                "to its diagonal. Increase reg_covar to silence this.",
                DegenerateFitWarning,
                stacklevel=3,
            )
            for cov in covariances:
                cov.flat[:: cov.shape[0] + 1] += bump
            extra *= 10
    raise np.linalg.LinAlgError(
        "covariances stay singular after regularisation; the data may contain NaN/inf or be degenerate. "
        "Check the input or increase reg_covar."
    )


def _check_X(X: Any, name: str = "X") -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n_samples, n_features); got shape {X.shape}.")
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinite values; remove or fix them before fitting.")
    return X


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


def squared_distances(X: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances. X: (N, D); centres: (K, D). Returns (N, K)."""
    return ((X[:, None, :] - centres[None]) ** 2).sum(axis=-1)


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
    n_clusters = len(centres)
    fixed_sums = np.zeros_like(centres) if fixed_sums is None else fixed_sums
    fixed_counts = np.zeros(n_clusters) if fixed_counts is None else fixed_counts
    centres = centres.copy()
    for _ in range(max_iter):
        labels = squared_distances(X, centres).argmin(axis=1)  # (N,)
        sums = fixed_sums + np.stack([X[labels == k].sum(axis=0) for k in range(n_clusters)])  # (K, D)
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
    """The class of each row of X's nearest labelled point: (N,)."""
    nearest = np.empty(len(X), dtype=np.int64)
    for start in range(0, len(X), 4096):  # bounded memory: (chunk, M) distances at a time
        chunk = X[start: start + 4096]
        nearest[start: start + len(chunk)] = squared_distances(chunk, X_labelled).argmin(axis=1)
    return y_labelled[nearest]


SEEDINGS = {"kmeans": seeded_kmeans, "nearest": nearest_labelled}
SCHEDULES = ("direct", "doubling")


def neighbour_graph(X: np.ndarray, n_neighbors: int) -> np.ndarray:
    """Indices of each row's ``n_neighbors`` nearest other rows of X (N, D): (N, n_neighbors)."""
    from scipy.spatial import cKDTree

    n_neighbors = min(n_neighbors, len(X) - 1)
    if n_neighbors < 1:
        return np.empty((len(X), 0), dtype=np.int64)
    # k as a list keeps the result 2-D; the 1st nearest is the point itself
    _, idx = cKDTree(X).query(X, k=list(range(2, n_neighbors + 2)))  # (N, n_neighbors)
    return idx


def boundary_fraction(labels: np.ndarray, neighbours: np.ndarray) -> float:
    """Share of nearest-neighbour edges whose two ends carry different labels.

    labels (N,); neighbours (N, k) from :func:`neighbour_graph`. A partition whose class borders run
    through sparse regions cuts few edges (the cluster assumption of semi-supervised learning).
    """
    if neighbours.size == 0:
        return 0.0
    return float(np.mean(labels[neighbours] != labels[:, None]))


def choose_candidate(candidates: list[dict], *, n_labelled: int, label_slack: int) -> dict:
    """The candidate fit whose borders cut the fewest neighbour edges ("boundary_fraction"), among those
    misplacing at most ``label_slack`` more of the ``n_labelled`` labelled points than the best one
    ("labelled_agreement" is the share they keep); ties go to the higher "lower_bound"."""
    kept = {id(c): round(c["labelled_agreement"] * n_labelled) for c in candidates}
    eligible = [c for c in candidates if kept[id(c)] >= max(kept.values()) - label_slack]
    return min(eligible, key=lambda c: (c["boundary_fraction"], -c["lower_bound"]))


def component_schedule(schedule: str, components_per_class: int) -> list[int]:
    """Components per class at each stage: "direct" fits the final number at once; "doubling" grows
    1, 2, 4, ... up to it, each stage started from the previous stage's partition."""
    if schedule == "direct":
        return [components_per_class]
    if schedule == "doubling":
        sizes = [1]
        while sizes[-1] * 2 < components_per_class:
            sizes.append(sizes[-1] * 2)
        return sizes + [components_per_class] if sizes[-1] != components_per_class else sizes
    raise ValueError(f"unknown schedule {schedule!r}; choose from {list(SCHEDULES)}.")


class GaussianMixture:
    """Full-covariance Gaussian mixture whose components stand for classes.

    Parameters
    ----------
    components_per_class : int
        Components given to each class when seeded from labelled points.
    reg_covar : float
        Added to every covariance diagonal; keeps them positive definite.
    tol : float
        EM stops when the mean log-likelihood per point improves by less than this.
    max_iter : int
        Most EM iterations.
    anchor_labels : bool
        In :meth:`fit_seeded`'s joint EM, restrict labelled points' responsibilities to their
        class's components (semi-supervised EM).
    joint_em : bool
        In :meth:`fit_seeded`, finish with EM on all points jointly (guarded against drift).
    max_class_shift : float
        The largest share of points the joint EM may move across classes before it is rejected.
    max_partition_rounds : int
        Most rounds of per-class fitting and re-assignment in :meth:`fit_seeded`.
    partition_tol : float
        The rounds stop once at most this share of points changes class.
    seedings : tuple of str
        Initial partitions tried by :meth:`fit_seeded` ("kmeans", "nearest"); the best fit is kept.
    schedules : tuple of str
        How :meth:`fit_seeded` reaches ``components_per_class``: "direct", or "doubling" (1, 2, 4, ...
        components per class, each stage started from the last one's partition). Every seeding is
        tried with every schedule.
    n_neighbors : int
        Neighbours per point in the graph whose cut edges rank :meth:`fit_seeded`'s candidate fits.
    label_slack : int
        In :meth:`fit_seeded`, a candidate may leave this many more labelled points outside their
        class than the best candidate and still compete on cut edges (labelled images can be atypical).
    random_state : int
        Seed for tie-breaking initialisation and :meth:`sample`.

    Fitted attributes
    -----------------
    classes_ (C,), component_classes_ (K,), weights_ (K,), means_ (K, D), covariances_ (K, D, D),
    precisions_cholesky_ (K, D, D), converged_, n_iter_, lower_bound_ (final mean log-likelihood),
    log_likelihood_history_ (one entry per iteration); after :meth:`fit_seeded` also
    labelled_agreement_ (share of labelled points the fit classifies as their own class),
    boundary_fraction_ (share of neighbour edges its partition cuts), seeding_ and schedule_ (which
    candidate won) and candidates_ (one summary dict per candidate fit).
    """

    def __init__(
        self,
        *,
        components_per_class: int = 1,
        reg_covar: float = 1e-6,
        tol: float = 1e-4,
        max_iter: int = 300,
        anchor_labels: bool = True,
        joint_em: bool = True,
        max_class_shift: float = 0.05,
        max_partition_rounds: int = 50,
        partition_tol: float = 1e-3,
        seedings: tuple[str, ...] = ("kmeans", "nearest"),
        schedules: tuple[str, ...] = SCHEDULES,
        n_neighbors: int = 10,
        label_slack: int = 1,
        random_state: int = 0,
    ) -> None:
        if components_per_class < 1:
            raise ValueError(f"components_per_class must be >= 1; got {components_per_class}.")
        if reg_covar < 0:
            raise ValueError(f"reg_covar must be >= 0; got {reg_covar}.")
        if max_iter < 1:
            raise ValueError(f"max_iter must be >= 1; got {max_iter}.")
        self.components_per_class = components_per_class
        self.reg_covar = reg_covar
        self.tol = tol
        self.max_iter = max_iter
        self.anchor_labels = anchor_labels
        self.joint_em = joint_em
        self.max_class_shift = max_class_shift
        self.max_partition_rounds = max_partition_rounds
        self.partition_tol = partition_tol
        self.seedings = tuple(seedings)
        self.schedules = tuple(schedules)
        self.n_neighbors = n_neighbors
        self.label_slack = label_slack
        self.random_state = random_state
        for name, given, known in (("seeding", self.seedings, SEEDINGS), ("schedule", self.schedules, SCHEDULES)):
            unknown = [g for g in given if g not in known]
            if unknown or not given:
                raise ValueError(f"unknown or no {name}s {unknown or list(given)}; choose from {sorted(known)}.")
        if n_neighbors < 1:
            raise ValueError(f"n_neighbors must be >= 1; got {n_neighbors}.")
        if label_slack < 0:
            raise ValueError(f"label_slack must be >= 0; got {label_slack}.")

    # --- fitting ---------------------------------------------------------------------

    def fit(
        self,
        X: np.ndarray,
        *,
        means_init: np.ndarray,
        weights_init: np.ndarray | None = None,
        covariances_init: np.ndarray | None = None,
        component_classes: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
    ) -> "GaussianMixture":
        """Plain EM on X (N, D) from the given start.

        means_init (K, D); weights_init (K,) defaults to uniform; covariances_init (K, D, D)
        defaults to the covariances of a hard nearest-mean assignment. ``allowed`` (N, K)
        restricts which components each point may belong to (labelled points).
        """
        X = _check_X(X)
        spread = float(np.var(X, axis=0).mean())
        if len(X) > 1 and 0 < spread < 100 * self.reg_covar:
            warnings.warn(
                f"reg_covar={self.reg_covar:g} is large against the data's variance {spread:.3g}: the covariances "
                "will mostly be regularisation. Rescale the data or lower reg_covar.",
                DegenerateFitWarning,
                stacklevel=2,
            )
        means = np.array(means_init, dtype=np.float64)
        if means.ndim != 2 or means.shape[1] != X.shape[1]:
            raise ValueError(f"means_init must have shape (K, {X.shape[1]}); got {means.shape}.")
        n_components = len(means)
        if allowed is not None and allowed.shape != (len(X), n_components):
            raise ValueError(f"allowed must have shape {(len(X), n_components)}; got {allowed.shape}.")
        if covariances_init is None or weights_init is None:
            dist = squared_distances(X, means)  # (N, K)
            if allowed is not None:
                dist = np.where(allowed, dist, np.inf)
            hard = np.zeros_like(dist)
            hard[np.arange(len(X)), dist.argmin(axis=1)] = 1.0
            nk, _, covariances = estimate_gaussian_parameters(X, hard, self.reg_covar)
            weights = nk / nk.sum()
        if weights_init is not None:
            weights = np.array(weights_init, dtype=np.float64)
        if covariances_init is not None:
            covariances = np.array(covariances_init, dtype=np.float64)
        covariances, precisions_chol = _safe_precision_cholesky(covariances, self.reg_covar)

        history: list[float] = []
        self.converged_ = False
        for n_iter in range(1, self.max_iter + 1):
            log_prob = _weighted_log_prob(X, weights, means, precisions_chol, allowed)
            log_norm = logsumexp(log_prob, axis=1)  # (N,)
            lower_bound = float(log_norm.mean())
            resp = np.exp(log_prob - log_norm[:, None])  # (N, K)
            nk, new_means, new_covariances = estimate_gaussian_parameters(X, resp, self.reg_covar)
            empty = nk <= 2 * _EMPTY_COMPONENT
            if empty.any():
                warnings.warn(
                    f"EM: component(s) {np.flatnonzero(empty).tolist()} lost all their points; keeping their "
                    "previous mean and covariance. Fewer components may fit this data better.",
                    DegenerateFitWarning,
                    stacklevel=2,
                )
                new_means[empty] = means[empty]
                new_covariances[empty] = covariances[empty]
            weights = nk / nk.sum()
            means = new_means
            covariances, precisions_chol = _safe_precision_cholesky(new_covariances, self.reg_covar)
            change = lower_bound - history[-1] if history else np.inf
            history.append(lower_bound)
            if abs(change) < self.tol:
                self.converged_ = True
                break
        if not self.converged_:
            warnings.warn(
                f"EM did not converge in {self.max_iter} iterations (last change {change:.3g} > tol "
                f"{self.tol:g}). Increase max_iter or tol.",
                DegenerateFitWarning,
                stacklevel=2,
            )
        self.weights_ = weights
        self.means_ = means
        self.covariances_ = covariances
        self.precisions_cholesky_ = precisions_chol
        self.n_iter_ = n_iter
        self.log_likelihood_history_ = history
        self.lower_bound_ = history[-1]
        self.component_classes_ = (
            np.arange(n_components) if component_classes is None else np.asarray(component_classes)
        )
        self.classes_ = np.unique(self.component_classes_)
        return self

    def fit_seeded(self, X: np.ndarray, X_labelled: np.ndarray, y_labelled: np.ndarray) -> "GaussianMixture":
        """Fit on unlabelled X (N, D) seeded by labelled points X_labelled (M, D), y_labelled (M,).

        Plain EM seeded with the class means drifts when a digit's cluster is not one Gaussian: a
        component balloons over the centre, or two digits share one. So the fit runs in stages:

        1. *Seeded partition*, once per entry of ``seedings``: "kmeans" runs k-means whose
           centroids start at the labelled class means, labelled points fixed in their class;
           "nearest" gives each point the class of its nearest labelled point.
        2. *Per-class mixtures*: each class's components are fitted by EM on that class's points only
           (they cannot wander to another digit), the points are re-assigned to the class of highest
           posterior, and this repeats until the partition is stable. With the "doubling" schedule this
           runs with 1, 2, 4, ... components per class up to ``components_per_class``, each stage from
           the last one's partition: a single Gaussian per class moves a wrong border, where several
           components per class would bend around it and keep it.
        3. *Joint EM* (if ``joint_em``) on all points from that start, labelled points anchored to their
           class's components. It is kept only if it does not lower the share of labelled points
           classified as their own class and moves at most ``max_class_shift`` of the points across
           classes; otherwise stage 2's mixture is kept (``joint_em_accepted_`` says which).

        Each (seeding, schedule) pair gives a candidate. The unlabelled likelihood cannot choose among
        them: a digit's sparse tail is often likelier under a broad neighbouring digit. So the candidate
        holding most labelled points in their own class wins, then the one whose class borders cut
        the fewest edges of the data's nearest-neighbour graph (borders through sparse regions), then
        the likelier one; a candidate that misplaces at most ``label_slack`` more labelled points than
        the best one still competes, since a labelled image can sit in another digit's region.
        ``candidates_`` summarises them all.
        """
        X = _check_X(X)
        X_labelled = _check_X(X_labelled, "X_labelled")
        y_labelled = np.asarray(y_labelled)
        if X_labelled.shape[1] != X.shape[1]:
            raise ValueError(f"X_labelled has {X_labelled.shape[1]} features but X has {X.shape[1]}.")
        if len(y_labelled) != len(X_labelled):
            raise ValueError(f"y_labelled has {len(y_labelled)} labels for {len(X_labelled)} labelled points.")
        classes = np.unique(y_labelled)
        if len(classes) < 2:
            raise ValueError(f"need labelled points of at least 2 classes to seed the mixture; got {classes.tolist()}.")
        neighbours = neighbour_graph(X, self.n_neighbors)  # (N, n_neighbors)
        # Schedules with the same stages (both are [1] with one component per class) fit the same thing.
        stages: dict[tuple[int, ...], str] = {}
        for schedule in self.schedules:
            stages.setdefault(tuple(component_schedule(schedule, self.components_per_class)), schedule)
        candidates = []
        for seeding in self.seedings:
            first_partition = SEEDINGS[seeding](X, X_labelled, y_labelled, classes)  # (N,) class of each point
            for sizes, schedule in stages.items():
                partition = first_partition
                for n_components in sizes:
                    candidate = self._fit_from_partition(X, X_labelled, y_labelled, classes, partition, n_components)
                    partition = self.predict(X)  # (N,)
                candidate.update(seeding=seeding, schedule=schedule,
                                 boundary_fraction=boundary_fraction(partition, neighbours))
                candidates.append(candidate)
        chosen = choose_candidate(candidates, n_labelled=len(X_labelled), label_slack=self.label_slack)
        self._set_params(*chosen["params"])
        for name in ("converged", "n_iter", "log_likelihood_history", "lower_bound", "partition_rounds",
                     "joint_em_accepted", "class_shift", "labelled_agreement", "seeding", "schedule",
                     "boundary_fraction"):
            setattr(self, name + "_", chosen[name])
        self.candidates_ = [
            {k: c[k] for k in ("seeding", "schedule", "labelled_agreement", "boundary_fraction", "lower_bound")}
            for c in candidates
        ]
        return self

    def _fit_from_partition(self, X, X_labelled, y_labelled, classes, partition, n_components) -> dict:
        """Stages 2 and 3 of :meth:`fit_seeded` from one initial partition, ``n_components`` per class;
        returns the fit as a dict and leaves it as the fitted parameters."""
        rng = np.random.default_rng(self.random_state)
        previous = None
        for rounds in range(1, self.max_partition_rounds + 1):
            weights, means, covariances, component_classes = previous = self._per_class_mixtures(
                X, X_labelled, y_labelled, classes, partition, rng, n_components, previous
            )
            self._set_params(weights, means, covariances, component_classes)
            new_partition = self.predict(X)
            moved = np.mean(new_partition != partition)
            partition = new_partition
            if moved <= self.partition_tol:
                break
        staged = (weights, means, covariances, component_classes)
        staged_agreement = float(np.mean(self.predict(X_labelled) == y_labelled))
        staged_partition = self.predict(X)
        data = np.concatenate([X, X_labelled])
        result = {"partition_rounds": rounds, "joint_em_accepted": False, "class_shift": 0.0}
        if self.joint_em:
            allowed = None
            if self.anchor_labels:
                allowed = np.concatenate(
                    [np.ones((len(X), len(component_classes)), bool), y_labelled[:, None] == component_classes[None]]
                )
            self.fit(data, means_init=means, weights_init=weights, covariances_init=covariances,
                     component_classes=component_classes, allowed=allowed)
            agreement = float(np.mean(self.predict(X_labelled) == y_labelled))
            result["class_shift"] = float(np.mean(self.predict(X) != staged_partition))
            if agreement >= staged_agreement and result["class_shift"] <= self.max_class_shift:
                result.update(joint_em_accepted=True, converged=self.converged_, n_iter=self.n_iter_,
                              log_likelihood_history=self.log_likelihood_history_)
            else:
                self._set_params(*staged)
        if not result["joint_em_accepted"]:
            result.update(converged=True, n_iter=0, log_likelihood_history=[self.score(data)])
        result["lower_bound"] = result["log_likelihood_history"][-1]
        result["labelled_agreement"] = float(np.mean(self.predict(X_labelled) == y_labelled))
        result["params"] = (self.weights_, self.means_, self.covariances_, self.component_classes_)
        return result

    def _per_class_mixtures(self, X, X_labelled, y_labelled, classes, partition, rng, n_components, previous=None):
        """EM within each class's points, warm-started from ``previous`` when given.

        Returns weights (K,), means (K, D), covariances (K, D, D), component classes (K,).
        """
        weights, means, covariances, component_classes = [], [], [], []
        for c in classes:
            pts = np.concatenate([X[partition == c], X_labelled[y_labelled == c]])  # (n_c, D)
            inner = GaussianMixture(reg_covar=self.reg_covar, tol=self.tol, max_iter=self.max_iter, random_state=self.random_state)
            if previous is not None:
                own = previous[3] == c
                inner.fit(pts, means_init=previous[1][own], weights_init=previous[0][own] / previous[0][own].sum(),
                          covariances_init=previous[2][own])
            else:
                n_comp = min(n_components, len(pts))
                inner.fit(pts, means_init=kmeans(pts, kmeans_plus_plus(pts, n_comp, rng))[0])
            n_comp = len(inner.weights_)
            weights.append(inner.weights_ * len(pts))
            means.append(inner.means_)
            covariances.append(inner.covariances_)
            component_classes += [c] * n_comp
        weights = np.concatenate(weights)
        return weights / weights.sum(), np.concatenate(means), np.concatenate(covariances), np.array(component_classes)

    def _set_params(self, weights, means, covariances, component_classes) -> None:
        covariances, precisions_chol = _safe_precision_cholesky(covariances, self.reg_covar)
        self.weights_, self.means_, self.covariances_ = weights, means, covariances
        self.precisions_cholesky_ = precisions_chol
        self.component_classes_ = np.asarray(component_classes)
        self.classes_ = np.unique(self.component_classes_)

    # --- inference -------------------------------------------------------------------

    def _check_fitted_X(self, X) -> np.ndarray:
        if not hasattr(self, "means_"):
            raise RuntimeError("this GaussianMixture is not fitted yet; call fit or fit_seeded first.")
        X = _check_X(X)
        if X.shape[1] != self.means_.shape[1]:
            raise ValueError(f"X has {X.shape[1]} features but the mixture was fitted on {self.means_.shape[1]}.")
        return X

    def component_log_prob(self, X: np.ndarray) -> np.ndarray:
        """log π_k N(x | μ_k, Σ_k): (N, K)."""
        X = self._check_fitted_X(X)
        return _weighted_log_prob(X, self.weights_, self.means_, self.precisions_cholesky_, None)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """log p(x) under the mixture: (N,)."""
        return logsumexp(self.component_log_prob(X), axis=1)

    def score(self, X: np.ndarray) -> float:
        return float(self.score_samples(X).mean())

    def predict_component_proba(self, X: np.ndarray) -> np.ndarray:
        """Posterior over components: (N, K)."""
        log_prob = self.component_log_prob(X)
        return np.exp(log_prob - logsumexp(log_prob, axis=1, keepdims=True))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Posterior over classes (N, C), columns in the order of ``classes_``."""
        comp = self.predict_component_proba(X)  # (N, K)
        onehot = (self.component_classes_[:, None] == self.classes_[None]).astype(np.float64)  # (K, C)
        return comp @ onehot

    def predict_component(self, X: np.ndarray) -> np.ndarray:
        return self.component_log_prob(X).argmax(axis=1)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The class of highest posterior (summed over its components): (N,)."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def sample(self, n_samples: int, *, random_state: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Draw n_samples points; returns X (n, D) and each point's component index (n,)."""
        if not hasattr(self, "means_"):
            raise RuntimeError("this GaussianMixture is not fitted yet; call fit or fit_seeded first.")
        rng = np.random.default_rng(self.random_state if random_state is None else random_state)
        components = rng.choice(len(self.weights_), size=n_samples, p=self.weights_ / self.weights_.sum())
        X = np.empty((n_samples, self.means_.shape[1]))
        for k in range(len(self.weights_)):
            idx = components == k
            X[idx] = rng.multivariate_normal(self.means_[k], self.covariances_[k], size=int(idx.sum()))
        return X, components

    # --- persistence as plain data ---------------------------------------------------

    def to_dict(self) -> dict:
        """Plain data only (nested lists, numbers, strings): safe to pickle and to load."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "params": {
                "components_per_class": self.components_per_class, "reg_covar": self.reg_covar,
                "tol": self.tol, "max_iter": self.max_iter, "anchor_labels": self.anchor_labels,
                "joint_em": self.joint_em, "max_class_shift": self.max_class_shift,
                "max_partition_rounds": self.max_partition_rounds, "partition_tol": self.partition_tol,
                "seedings": list(self.seedings), "schedules": list(self.schedules), "n_neighbors": self.n_neighbors,
                "label_slack": self.label_slack,
                "random_state": self.random_state,
            },
            "component_classes": self.component_classes_.tolist(),
            "weights": self.weights_.tolist(),
            "means": self.means_.tolist(),
            "covariances": self.covariances_.tolist(),
            "converged": bool(self.converged_),
            "n_iter": int(self.n_iter_),
            "log_likelihood_history": [float(v) for v in self.log_likelihood_history_],
            "labelled_agreement": float(getattr(self, "labelled_agreement_", float("nan"))),
            "boundary_fraction": float(getattr(self, "boundary_fraction_", float("nan"))),
            "chosen": [str(getattr(self, "seeding_", "")), str(getattr(self, "schedule_", ""))],
        }

    @classmethod
    def from_dict(cls, state: Any, *, source: str = "GMM parameters") -> "GaussianMixture":
        """Rebuild from :meth:`to_dict`'s output, checking every field."""
        def bad(what: str) -> ModelFileError:
            return ModelFileError(f"{source}: {what}. This is not a vaegmm GMM file; re-create it with the 'train' command.")

        if not isinstance(state, dict) or state.get("format") != FORMAT:
            found = type(state).__name__ if not isinstance(state, dict) else f"format {state.get('format')!r}"
            raise bad(f"expected a dict with format {FORMAT!r}, found {found}")
        if state.get("format_version") != FORMAT_VERSION:
            raise bad(f"format version {state.get('format_version')!r} is not the supported {FORMAT_VERSION}")
        try:
            gmm = cls(**state["params"])
            weights = np.asarray(state["weights"], dtype=np.float64)
            means = np.asarray(state["means"], dtype=np.float64)
            covariances = np.asarray(state["covariances"], dtype=np.float64)
            component_classes = np.asarray(state["component_classes"], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"a field is missing or malformed ({type(exc).__name__}: {exc})") from exc
        k = len(weights)
        if means.ndim != 2 or means.shape[0] != k or covariances.shape != (k, means.shape[1], means.shape[1]) or component_classes.shape != (k,):
            raise bad(
                f"inconsistent shapes: weights {weights.shape}, means {means.shape}, covariances "
                f"{covariances.shape}, component_classes {component_classes.shape}"
            )
        if not (np.isfinite(weights).all() and np.isfinite(means).all() and np.isfinite(covariances).all()):
            raise bad("it contains NaN or infinite parameters")
        try:
            precisions_chol = compute_precision_cholesky(covariances)
        except np.linalg.LinAlgError as exc:
            raise bad("a covariance matrix is not positive definite") from exc
        gmm.weights_, gmm.means_, gmm.covariances_ = weights, means, covariances
        gmm.precisions_cholesky_ = precisions_chol
        gmm.component_classes_ = component_classes
        gmm.classes_ = np.unique(component_classes)
        gmm.converged_ = bool(state.get("converged", False))
        gmm.n_iter_ = int(state.get("n_iter", 0))
        gmm.log_likelihood_history_ = list(state.get("log_likelihood_history", []))
        gmm.lower_bound_ = gmm.log_likelihood_history_[-1] if gmm.log_likelihood_history_ else float("nan")
        gmm.labelled_agreement_ = float(state.get("labelled_agreement", float("nan")))
        gmm.boundary_fraction_ = float(state.get("boundary_fraction", float("nan")))
        gmm.seeding_, gmm.schedule_ = (str(v) for v in state.get("chosen", ["", ""]))
        return gmm

    @property
    def n_features_(self) -> int:
        return int(self.means_.shape[1])
