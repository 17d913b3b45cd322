"""Fitting the latent mixture from a few labelled points: seedings, stages and candidates.

Plain EM seeded with the labelled class means drifts when a class's cluster is not one Gaussian: a
component balloons over the centre, or two classes share one. :class:`FewLabelGMM` therefore fits in
stages, each a pure function that builds fresh :class:`~vaegmm.gmm.GaussianMixture` estimators:

1. *Seeded partition* (:mod:`vaegmm.clustering`), once per entry of ``seedings``: "kmeans" runs k-means
   whose centroids start at the labelled class means, labelled points fixed in their class; "nearest"
   gives each point the class of its nearest labelled point; "spreading" spreads the labels over the
   points' neighbour graph, and "inputs" over the images' own (:mod:`vaegmm.inputspace`).
2. *Per-class mixtures* (:func:`refine_partition`): each class's components are fitted by EM on that
   class's points only (they cannot wander to another class), the points are re-assigned to the class
   of highest posterior, and this repeats until the partition is stable. With the "doubling" schedule
   this runs with 1, 2, 4, ... components per class up to ``components_per_class``, each stage from the
   last one's partition: a single Gaussian per class moves a wrong border, where several components
   per class would bend around it and keep it.
3. *Joint EM* (:func:`guarded_joint_em`, if ``joint_em``) on all points from that start, labelled points
   anchored to their class's components; kept only if it does not lower the share of labelled points
   classified as their own class and never moves more than ``max_class_shift`` of the points across
   classes (EM stops as soon as it does).

Each (seeding, schedule) pair gives a :class:`~vaegmm.candidates.Candidate`; each seeding in ``fit_once`` gives
one more, its partition fitted once as it stands (stage 2 for one round, no stage 3: the "once" schedule),
because re-assignment and joint EM can move a good graph-drawn border to one the likelihood prefers. And
:func:`~vaegmm.candidates.choose_candidate` picks one (see :mod:`vaegmm.candidates`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
from threadpoolctl import threadpool_limits

from .candidates import Candidate, boundary_fraction, choose_candidate, disagreement
from .clustering import SEEDINGS, kmeans, kmeans_plus_plus, neighbour_graph, spread_labels
from .config import ONCE_SCHEDULE, GMMConfig
from .gmm import GaussianMixture, check_X, class_indicator
from .inputspace import input_spreading


def check_inputs(inputs, inputs_labelled, *, n_points: int, n_labelled: int) -> tuple[np.ndarray, np.ndarray]:
    """The images behind the unlabelled and labelled points, one flattened image per row: (n_points, P)
    and (n_labelled, P)."""
    if inputs is None or inputs_labelled is None:
        raise ValueError("the 'inputs' seeding spreads labels over the images: pass fit(..., inputs=, "
                         "inputs_labelled=), the images behind X and X_labelled, or drop 'inputs' from the seedings.")
    inputs = np.asarray(inputs)
    inputs_labelled = np.asarray(inputs_labelled)
    inputs = inputs.reshape(len(inputs), -1)
    inputs_labelled = inputs_labelled.reshape(len(inputs_labelled), -1)
    if len(inputs) != n_points or len(inputs_labelled) != n_labelled or inputs.shape[1] != inputs_labelled.shape[1]:
        raise ValueError(f"inputs {inputs.shape} and inputs_labelled {inputs_labelled.shape} must hold one image of "
                         f"one size per point: {n_points} rows for X and {n_labelled} for X_labelled.")
    if not (np.isfinite(inputs).all() and np.isfinite(inputs_labelled).all()):
        raise ValueError("inputs and inputs_labelled must be finite; they hold NaN or infinite values.")
    return inputs, inputs_labelled


def random_subset(n_points: int, max_points: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of the points the fit uses: all of them, or a random ``max_points``."""
    if n_points <= max_points:
        return np.arange(n_points)
    return np.sort(rng.choice(n_points, size=max_points, replace=False))


# --- the stages -------------------------------------------------------------------------------

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
    raise ValueError(f"unknown schedule {schedule!r}; choose from ['direct', 'doubling'].")


def _estimator(config: GMMConfig, random_state: int) -> GaussianMixture:
    return GaussianMixture(reg_covar=config.reg_covar, tol=config.tol, max_iter=config.max_iter, random_state=random_state)


def per_class_mixtures(X, X_labelled, y_labelled, classes, partition, *, n_components, config, rng, random_state,
                       previous: GaussianMixture | None = None, unchanged: frozenset = frozenset()) -> GaussianMixture:
    """EM within each class's points (its partition share plus its labelled points); one mixture of them all.

    X (N, D), X_labelled (M, D), y_labelled (M,), classes (C,), partition (N,) the class of each row of X.
    Warm-started from ``previous`` (same components per class) when given, else k-means++ then k-means
    inside each class with ``n_components`` components. Classes in ``unchanged`` hold the same points as
    when ``previous`` was fitted: they keep its components as they are.
    """
    weights, means, covariances, component_classes = [], [], [], []
    for c in classes:
        n_points = int(np.sum(partition == c)) + int(np.sum(y_labelled == c))
        if previous is not None:
            own = previous.component_classes_ == c
            class_weights = previous.weights_[own] / previous.weights_[own].sum()
            if c in unchanged:
                weights.append(class_weights * n_points)
                means.append(previous.means_[own])
                covariances.append(previous.covariances_[own])
                component_classes += [c] * int(own.sum())
                continue
        pts = np.concatenate([X[partition == c], X_labelled[y_labelled == c]])  # (n_c, D)
        inner = _estimator(config, random_state)
        if previous is not None:
            inner.fit(pts, means_init=previous.means_[own], weights_init=class_weights,
                      covariances_init=previous.covariances_[own])
        else:
            n_comp = min(n_components, len(pts))
            inner.fit(pts, means_init=kmeans(pts, kmeans_plus_plus(pts, n_comp, rng))[0])
        weights.append(inner.weights_ * n_points)
        means.append(inner.means_)
        covariances.append(inner.covariances_)
        component_classes += [c] * len(inner.weights_)
    weights = np.concatenate(weights)
    return GaussianMixture.from_parameters(weights / weights.sum(), np.concatenate(means), np.concatenate(covariances),
                                           np.array(component_classes), **_estimator(config, random_state).get_params())


def refine_partition(X, X_labelled, y_labelled, classes, partition, *, n_components, config, random_state) -> tuple[GaussianMixture, int]:
    """Stage 2: per-class EM and re-assignment until at most ``partition_tol`` of the points change class.

    Returns the mixture and the number of rounds.
    """
    rng = np.random.default_rng(random_state)
    gmm = None
    unchanged: frozenset = frozenset()
    for rounds in range(1, config.max_partition_rounds + 1):
        gmm = per_class_mixtures(X, X_labelled, y_labelled, classes, partition, n_components=n_components,
                                 config=config, rng=rng, random_state=random_state, previous=gmm, unchanged=unchanged)
        new_partition = gmm.predict(X)  # (N,)
        moved = new_partition != partition  # (N,)
        # A class no point entered or left keeps its fit next round: its EM has already converged on those points.
        unchanged = frozenset(classes.tolist()) - set(partition[moved].tolist()) - set(new_partition[moved].tolist())
        partition = new_partition
        if np.mean(moved) <= config.partition_tol:
            break
    return gmm, rounds


def guarded_joint_em(staged: GaussianMixture, X, X_labelled, y_labelled, *, config, random_state) -> tuple[GaussianMixture, bool, float]:
    """Stage 3: EM on all points from ``staged``, labelled points anchored if ``anchor_labels``.

    Returns the mixture kept (the joint one, or ``staged`` when the drift guard refuses it), whether the
    joint EM was accepted, and the share of points it moved across classes.
    """
    staged_agreement = float(np.mean(staged.predict(X_labelled) == y_labelled))
    staged_partition = staged.predict(X)  # (N,)
    classes_k = staged.component_classes_
    allowed = None
    if config.anchor_labels:
        allowed = np.concatenate([np.ones((len(X), len(classes_k)), bool), y_labelled[:, None] == classes_k[None]])
    indicator = class_indicator(staged.classes_, classes_k)  # (C, K)
    staged_index = np.searchsorted(staged.classes_, staged_partition)  # (N,)

    def within_guard(resp: np.ndarray) -> bool:
        """Whether the parameters whose responsibilities (K, N + M) these are move at most
        ``max_class_shift`` of the points across classes: once they move more, EM stops and is refused."""
        moved = np.argmax(indicator @ resp[:, :len(X)], axis=0) != staged_index  # (N,)
        return float(np.mean(moved)) <= config.max_class_shift

    joint = _estimator(config, random_state).fit(
        np.concatenate([X, X_labelled]), means_init=staged.means_, weights_init=staged.weights_,
        covariances_init=staged.covariances_, component_classes=classes_k, allowed=allowed, keep_going=within_guard)
    agreement = float(np.mean(joint.predict(X_labelled) == y_labelled))
    shift = float(np.mean(joint.predict(X) != staged_partition))
    accepted = not joint.stopped_ and agreement >= staged_agreement and shift <= config.max_class_shift
    return (joint if accepted else staged), accepted, shift


def fit_candidate(X, X_labelled, y_labelled, classes, first_partition, *, sizes, seeding, schedule, config,
                  random_state) -> tuple[Candidate, np.ndarray]:
    """Stages 2 and 3 for each entry of ``sizes`` (components per class), each from the last one's partition.

    With the "once" schedule, ``sizes`` is one stage, fitted once on ``first_partition`` as it stands: one round of
    per-class EM and no joint EM. Returns the candidate and its final partition of X (N,).
    """
    if schedule == ONCE_SCHEDULE:
        config = replace(config, max_partition_rounds=1, joint_em=False)
    partition = first_partition
    for n_components in sizes:
        staged, rounds = refine_partition(X, X_labelled, y_labelled, classes, partition, n_components=n_components,
                                          config=config, random_state=random_state)
        partition = staged.predict(X)
    # The joint EM runs once, on the last stage: the earlier stages only move the borders it starts from.
    gmm, accepted, shift = staged, False, 0.0
    if config.joint_em:
        gmm, accepted, shift = guarded_joint_em(staged, X, X_labelled, y_labelled, config=config,
                                                random_state=random_state)
        partition = gmm.predict(X)
    if not accepted:  # the per-class fits stand: record their likelihood on all points as the bound
        gmm.log_likelihood_history_ = [gmm.score(np.concatenate([X, X_labelled]))]
        gmm.lower_bound_ = gmm.log_likelihood_history_[-1]
    candidate = Candidate(gmm=gmm, seeding=seeding, schedule=schedule, partition_rounds=rounds,
                          joint_em_accepted=accepted, class_shift=shift,
                          labelled_agreement=float(np.mean(gmm.predict(X_labelled) == y_labelled)),
                          lower_bound=gmm.lower_bound_)
    return candidate, partition


class FewLabelGMM:
    """Fits a :class:`~vaegmm.gmm.GaussianMixture` whose components stand for classes, from unlabelled
    points and a few labelled ones (see the module's docstring for the stages).

    Parameters
    ----------
    config : GMMConfig
        Every setting of the mixture and of this fit.
    random_state : int
        Seeds k-means++ inside each class and the subset of points used above ``max_fit_points``.
    n_jobs : int or None
        Threads fitting candidates at once (None: one per core). The result does not depend on it.

    Fitted attributes
    -----------------
    gmm_ : GaussianMixture, the chosen fit; chosen_ : Candidate; candidates_ : list of Candidate;
    config_ : GMMConfig, ``config`` with the settings left unset settled for the latent's size;
    disagreement_ : float or None, how unsettled the fit is (:func:`~vaegmm.candidates.disagreement`: the median
    share of points the other candidates classify otherwise; None with a single candidate).
    """

    def __init__(self, config: GMMConfig | None = None, *, random_state: int = 0, n_jobs: int | None = None) -> None:
        self.config = config or GMMConfig()
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X: np.ndarray, X_labelled: np.ndarray, y_labelled: np.ndarray, *, inputs: np.ndarray | None = None,
            inputs_labelled: np.ndarray | None = None) -> "FewLabelGMM":
        """Fit on unlabelled X (N, D) seeded by labelled points X_labelled (M, D), y_labelled (M,).

        ``inputs`` (N, ...) and ``inputs_labelled`` (M, ...), the images behind X and X_labelled, are read
        only by the "inputs" seeding. Above ``max_fit_points`` unlabelled points, a seeded random subset of
        that many is used (every labelled point always is), so the time stops growing with N.
        """
        X = check_X(X)
        X_labelled = check_X(X_labelled, "X_labelled")
        y_labelled = np.asarray(y_labelled)
        if X_labelled.shape[1] != X.shape[1]:
            raise ValueError(f"X_labelled has {X_labelled.shape[1]} features but X has {X.shape[1]}.")
        if len(y_labelled) != len(X_labelled):
            raise ValueError(f"y_labelled has {len(y_labelled)} labels for {len(X_labelled)} labelled points.")
        classes = np.unique(y_labelled)
        if len(classes) < 2:
            raise ValueError(f"need labelled points of at least 2 classes to seed the mixture; got {classes.tolist()}.")
        used = random_subset(len(X), self.config.max_fit_points, np.random.default_rng(self.random_state))
        # Unset seedings and label slack follow the latent's size, unset components per class the points each class
        # can expect in it; the settled config is what the fit used.
        config = self.config_ = self.config.for_latent(X.shape[1], n_points=len(used), n_classes=len(classes))
        if "inputs" in config.seedings:
            inputs, inputs_labelled = check_inputs(inputs, inputs_labelled, n_points=len(X), n_labelled=len(X_labelled))
            inputs = inputs[used]  # (n, P)
        X = X[used]  # (n, D), n <= max_fit_points
        # Schedules with the same stages (both are [1] with one component per class) fit the same thing.
        stages: dict[tuple[int, ...], str] = {}
        for schedule in config.schedules:
            stages.setdefault(tuple(component_schedule(schedule, config.components_per_class)), schedule)
        tasks = [(seeding, sizes, schedule) for seeding in config.seedings for sizes, schedule in stages.items()]
        tasks += [(seeding, (config.components_per_class,), ONCE_SCHEDULE) for seeding in config.seedings
                  if seeding in config.fit_once]

        def fit_task(task: tuple[str, tuple[int, ...], str]) -> tuple[Candidate, np.ndarray]:
            seeding, sizes, schedule = task
            return fit_candidate(X, X_labelled, y_labelled, classes, first_partitions[seeding], sizes=sizes,
                                 seeding=seeding, schedule=schedule, config=config, random_state=self.random_state)

        def seed(seeding: str) -> np.ndarray:
            if seeding == "inputs":
                return input_spreading(inputs, inputs_labelled, y_labelled, classes, n_components=config.input_components,
                                       n_neighbors=config.n_neighbors, random_state=self.random_state)  # (n,)
            if seeding == "spreading":
                return spread_labels(X, X_labelled, y_labelled, classes, n_neighbors=config.spread_neighbors)  # (n,)
            return SEEDINGS[seeding](X, X_labelled, y_labelled, classes)  # (n,)

        # The seedings, the neighbour graph and the candidates are independent, and numpy and scipy release
        # the GIL in their loops, so threads share them out over the cores; no result depends on which
        # thread ran it. Each seeding is computed once, for all the schedules that start from it.
        workers = min(len(tasks) + 1, self.n_jobs or os.cpu_count() or 1)
        with threadpool_limits(limits=1, user_api="blas"):
            if workers == 1:
                neighbours = neighbour_graph(X, config.n_neighbors)  # (n, n_neighbors)
                first_partitions = {seeding: seed(seeding) for seeding in config.seedings}
                fitted = [fit_task(task) for task in tasks]
            else:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    graph = pool.submit(neighbour_graph, X, config.n_neighbors)
                    first_partitions = dict(zip(config.seedings, pool.map(seed, config.seedings)))
                    fitted = list(pool.map(fit_task, tasks))
                    neighbours = graph.result()
        candidates, partitions = [], []
        for candidate, partition in fitted:
            partitions.append(partition)
            candidate.boundary_fraction = boundary_fraction(partition, neighbours)
            if "inputs" in first_partitions:
                candidate.input_agreement = float(np.mean(partition == first_partitions["inputs"]))
            candidates.append(candidate)
        self.candidates_ = candidates
        self.chosen_ = choose_candidate(candidates, n_labelled=len(X_labelled), label_slack=config.label_slack,
                                        by=config.choose_by)
        self.gmm_ = self.chosen_.gmm
        chosen = next(i for i, c in enumerate(candidates) if c is self.chosen_)  # by identity: candidates hold arrays
        self.disagreement_ = disagreement(partitions[chosen], [p for i, p in enumerate(partitions) if i != chosen])
        return self

    def summary(self) -> dict:
        """The chosen candidate and every candidate, as plain data."""
        return {"chosen": self.chosen_.summary(), "candidates": [c.summary() for c in self.candidates_],
                "disagreement": self.disagreement_, "components_per_class": self.config_.components_per_class}
