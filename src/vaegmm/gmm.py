"""A Gaussian mixture with full covariances, fitted by EM, written from scratch in numpy.

The numerics follow scikit-learn's ``sklearn.mixture``: responsibilities are computed in log
space (log-sum-exp), covariances are regularised by ``reg_covar`` on the diagonal, and each
component keeps the Cholesky factor of its precision matrix so that log-densities never
invert a covariance. Components carry the class they stand for; an ``allowed`` mask restricts
which components a point may belong to (labelled points), which turns EM into semi-supervised
EM on the joint likelihood of unlabelled and labelled data.

How a few labels choose the starting point lives in :mod:`vaegmm.fewlabel`; this module only fits
from a given start and uses the result.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .clustering import nearest_centre
from .errors import DegenerateFitWarning, ModelFileError

LOG_2PI = float(np.log(2.0 * np.pi))
# A component whose summed responsibility falls below this is treated as empty.
_EMPTY_COMPONENT = 10 * np.finfo(np.float64).eps
# How many times a non-positive-definite covariance may be re-regularised (x10 each time).
_MAX_REG_RETRIES = 12
# Floats (2 MiB of float64) in a working block of the E-step: about what a core's L2 cache holds.
_CACHE_FLOATS = 1 << 18
# Floats (64 MiB) up to which a fit keeps every point's outer product for its E- and M-steps (Moments).
_PRODUCT_FLOATS = 1 << 23
# How large the terms EM subtracts may grow before a component's covariance or log-density is computed the direct
# way instead of from the points' moments about the data's mean (Moments): at most 6 of float64's 16 digits cancel,
# relative to a covariance's own variance, or 1e-10 nats of a log-density.
_MAX_CANCELLATION = 1e6
FORMAT = "vaegmm.gmm"
FORMAT_VERSION = 1


# --- pure numerical helpers -------------------------------------------------------------

def compute_precision_cholesky(covariances: np.ndarray) -> np.ndarray:
    """Cholesky factors of the precision matrices.

    covariances: (K, D, D) symmetric positive definite.
    Returns (K, D, D) upper-triangular ``P_k`` with ``P_k @ P_k.T == inv(covariances[k])``.
    Raises ``np.linalg.LinAlgError`` if a covariance is not positive definite.
    """
    cov_chol = np.linalg.cholesky(covariances)  # (K, D, D) lower, Σ = L Lᵀ
    identity = np.broadcast_to(np.eye(covariances.shape[-1]), covariances.shape)
    return np.linalg.solve(cov_chol, identity).transpose(0, 2, 1)  # L⁻ᵀ per component, one batched call


class Moments:
    """The data X (N, D) in the layouts EM needs, and scratch arrays reused by every iteration of one fit.

    EM runs with points along the last axis, ``(K, N)``: numpy reduces over a long contiguous axis far
    faster than over a short trailing one (a few components, a 2-D latent). ``XT`` is (D, N). Reusing
    the scratch arrays spares the page faults of allocating megabytes afresh every step.

    With more components than dimensions (:meth:`use_features`), both steps read each point through
    ``features`` (N, D·D + D), its outer product with itself and the point, about the data's mean
    x̃ = x - centre, computed once per fit: a step is then one matrix product for every component at once,
    2-4x faster than taking the components one by one (40 components in 10-D), which stays faster with
    fewer components. The M-step's covariance is then E[x̃x̃ᵀ] - μ̃μ̃ᵀ and the E-step's Mahalanobis distance
    x̃ᵀΛx̃ - 2μ̃ᵀΛx̃ + μ̃ᵀΛμ̃; both subtract large numbers where a component is tight and far from the
    data's mean, so such a component (beyond ``_MAX_CANCELLATION``) is computed the direct way.
    """

    def __init__(self, X: np.ndarray) -> None:
        self.X = X  # (N, D)
        self.XT = np.ascontiguousarray(X.T)  # (D, N)
        self._scratch: dict[str, np.ndarray] = {}
        self.centre = X.mean(axis=0) if len(X) else np.zeros(X.shape[1])  # (D,)
        self.radius2 = float(np.square(X - self.centre).sum(axis=1).max()) if len(X) else 0.0  # the farthest x̃ᵀx̃
        self._features: np.ndarray | None = None

    def scratch(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """An uninitialised float64 array of ``shape``, the same one each time it is asked for."""
        array = self._scratch.get(name)
        if array is None or array.shape != shape:
            array = self._scratch[name] = np.empty(shape)
        return array

    def use_features(self, n_components: int) -> bool:
        """Whether a step with ``n_components`` reads :attr:`features`: more components than dimensions, and
        data small enough to hold them (``_PRODUCT_FLOATS``)."""
        n_points, n_features = self.X.shape
        return n_components > n_features and 0 < n_points * (n_features ** 2 + n_features) <= _PRODUCT_FLOATS

    @property
    def features(self) -> np.ndarray:
        """(N, D·D + D): each point's outer product about the data's mean, then the point about it; built on first use."""
        if self._features is None:
            centred = self.X - self.centre  # (N, D)
            self._features = np.concatenate([_outer_products(centred), centred], axis=1)
        return self._features


def _outer_products(X: np.ndarray) -> np.ndarray:
    """Each row's outer product with itself, flattened: X (N, D) -> (N, D·D)."""
    return (X[:, :, None] * X[:, None, :]).reshape(len(X), -1)


def _log_gaussian_prob_kn(XT: np.ndarray, means: np.ndarray, precisions_chol: np.ndarray,
                          moments: Moments | None = None) -> np.ndarray:
    """log N(x_n | μ_k, Σ_k) as (K, N). XT (D, N); means (K, D); precisions_chol (K, D, D).

    With ``moments`` (XT must be its ``XT``), from its features where it uses them (see :class:`Moments`)."""
    n_components, n_features = means.shape
    if moments is None or not moments.use_features(n_components):
        return _log_gaussian_prob_direct_kn(XT, means, precisions_chol, moments)
    log_det = np.log(np.diagonal(precisions_chol, axis1=1, axis2=2)).sum(axis=1)  # (K,) = -½ log|Σ_k|
    precisions = precisions_chol @ precisions_chol.transpose(0, 2, 1)  # (K, D, D) Λ_k = P_k P_kᵀ
    offsets = means - moments.centre  # (K, D) μ̃_k
    pulled = np.einsum("kde,ke->kd", precisions, offsets)  # (K, D) Λ_k μ̃_k
    coefficients = np.concatenate([precisions.reshape(n_components, n_features ** 2), -2.0 * pulled], axis=1)
    out = coefficients @ moments.features.T  # (K, N) = x̃ᵀΛx̃ - 2μ̃ᵀΛx̃
    out += (np.einsum("kd,kd->k", pulled, offsets) + n_features * LOG_2PI)[:, None]
    out *= -0.5
    out += log_det[:, None]
    # The terms subtracted are at most trace(Λ_k)·(|x̃|² + |μ̃_k|²): past _MAX_CANCELLATION, too many digits cancel.
    magnitude = np.square(precisions_chol).sum(axis=(1, 2)) * (moments.radius2 + np.square(offsets).sum(axis=1))  # (K,)
    far = magnitude > _MAX_CANCELLATION
    if far.any():
        out[far] = _log_gaussian_prob_direct_kn(XT, means[far], precisions_chol[far])
    return out


def _log_gaussian_prob_direct_kn(XT: np.ndarray, means: np.ndarray, precisions_chol: np.ndarray,
                                 moments: Moments | None = None) -> np.ndarray:
    """:func:`_log_gaussian_prob_kn` by projecting each point with each P_k: no subtraction of large terms.
    ``moments`` lends its scratch space when given (XT must be its ``XT``)."""
    n_components, n_features = means.shape
    n_points = XT.shape[1]
    log_det = np.log(np.diagonal(precisions_chol, axis1=1, axis2=2)).sum(axis=1)  # (K,) = -½ log|Σ_k|
    stacked = precisions_chol.transpose(0, 2, 1).reshape(n_components * n_features, n_features)  # (K·D, D): rows P_kᵀ
    shift = np.einsum("kd,kde->ke", means, precisions_chol)[:, :, None]  # (K, D, 1) = (μ_k P_k)ᵀ
    out = np.empty((n_components, n_points))
    # Points in blocks, so that the (K, D, block) projection stays in cache: twice as fast as one
    # pass over a (K, D, N) array of tens of megabytes (40 components in 10-D on 20,000 points).
    block = max(1, _CACHE_FLOATS // (n_components * n_features))
    buffer = None if moments is None else moments.scratch("projected", (n_components * n_features, min(block, n_points)))
    for start in range(0, n_points, block):
        stop = min(start + block, n_points)
        y = np.matmul(stacked, XT[:, start:stop], out=None if buffer is None else buffer[:, :stop - start])
        y = y.reshape(n_components, n_features, stop - start)  # (K, D, b) = (x_n P_k)ᵀ
        y -= shift
        np.square(y, out=y)
        y.sum(axis=1, out=out[:, start:stop])  # (K, b)
    out += n_features * LOG_2PI
    out *= -0.5
    out += log_det[:, None]
    return out


def class_indicator(classes: np.ndarray, component_classes: np.ndarray) -> np.ndarray:
    """(C, K) float: 1 where component k stands for class c. Its product with component posteriors (K, N)
    sums them into class posteriors (C, N)."""
    return (classes[:, None] == component_classes[None]).astype(np.float64)


def estimate_log_gaussian_prob(X: np.ndarray, means: np.ndarray, precisions_chol: np.ndarray) -> np.ndarray:
    """log N(x_n | μ_k, Σ_k) for every point and component.

    X: (N, D); means: (K, D); precisions_chol: (K, D, D). Returns (N, K).
    """
    return _log_gaussian_prob_kn(np.ascontiguousarray(X.T), means, precisions_chol).T


def _normalise_kn(log_prob: np.ndarray) -> np.ndarray:
    """Turn log π_k N(x_n | μ_k, Σ_k) (K, N) into responsibilities, in place; return log p(x_n) (N,).

    A log-sum-exp whose exponentials are kept as the unnormalised responsibilities: one pass of exp.
    Columns of -inf (a point no component may take) give -inf.
    """
    top = log_prob.max(axis=0)  # (N,)
    top[~np.isfinite(top)] = 0.0
    log_prob -= top
    resp = np.exp(log_prob, out=log_prob)  # (K, N), the largest of each column is 1
    total = resp.sum(axis=0)  # (N,) >= 1 wherever a component is allowed
    resp /= total
    with np.errstate(divide="ignore"):
        return np.log(total) + top


def _gaussian_parameters_kn(moments: Moments, resp: np.ndarray, reg_covar: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The M-step from responsibilities resp (K, N): nk (K,), means (K, D), covariances (K, D, D)."""
    nk = resp.sum(axis=1) + _EMPTY_COMPONENT  # (K,)
    n_components, n_features = len(resp), moments.X.shape[1]
    diagonal = np.arange(n_features)
    if not moments.use_features(n_components):
        means = resp @ moments.X / nk[:, None]  # (K, D)
        covariances = np.empty((n_components, n_features, n_features))
        # One component at a time: its (D, N) arrays stay in cache where a (K, D, N) pair would not.
        for k in range(n_components):
            covariances[k] = _centred_scatter(moments, means[k], resp[k])
        covariances /= nk[:, None, None]
        covariances[:, diagonal, diagonal] += reg_covar
        return nk, means, covariances
    square = n_features ** 2
    sums = resp @ moments.features  # (K, D·D + D): the weighted x̃x̃ᵀ and x̃
    offsets = sums[:, square:] / nk[:, None]  # (K, D): the means less the data's mean
    covariances = sums[:, :square].reshape(n_components, n_features, n_features) / nk[:, None, None]
    covariances -= offsets[:, :, None] * offsets[:, None, :]
    # E[x̃x̃ᵀ] - μ̃μ̃ᵀ keeps 16 - log10(ratio) digits, the ratio of a component's squared distance from the data's
    # mean to its variance; past _MAX_CANCELLATION (a tight component far off) it is centred on its own mean.
    spread = np.maximum(covariances[:, diagonal, diagonal].min(axis=1), np.finfo(np.float64).tiny)  # (K,)
    means = offsets + moments.centre
    for k in np.flatnonzero(np.square(offsets).sum(axis=1) > _MAX_CANCELLATION * spread):
        covariances[k] = _centred_scatter(moments, means[k], resp[k]) / nk[k]
    covariances[:, diagonal, diagonal] += reg_covar
    return nk, means, covariances


def _centred_scatter(moments: Moments, mean: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Σ_n weights[n] (x_n - mean)(x_n - mean)ᵀ (D, D), centred first: no cancellation, unlike E[xxᵀ] - μμᵀ."""
    shape = moments.XT.shape
    diff, weighted = moments.scratch("diff", shape), moments.scratch("weighted", shape)  # (D, N) each
    np.subtract(moments.XT, mean[:, None], out=diff)
    np.multiply(diff, weights, out=weighted)
    return weighted @ diff.T


def estimate_gaussian_parameters(X: np.ndarray, resp: np.ndarray, reg_covar: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The M-step for full covariances.

    X: (N, D); resp: (N, K) responsibilities. Returns nk (K,), means (K, D), covariances (K, D, D).
    """
    return _gaussian_parameters_kn(Moments(X), np.ascontiguousarray(resp.T), reg_covar)


def _weighted_log_prob_kn(XT, weights, means, precisions_chol, allowed_kn=None, moments=None) -> np.ndarray:
    log_prob = _log_gaussian_prob_kn(XT, means, precisions_chol, moments)  # (K, N)
    log_prob += np.log(weights)[:, None]
    if allowed_kn is not None:
        log_prob[~allowed_kn] = -np.inf
    return log_prob


def _e_step_kn(XT, weights, means, precisions_chol, allowed_kn=None, moments=None) -> tuple[float, np.ndarray]:
    resp = _weighted_log_prob_kn(XT, weights, means, precisions_chol, allowed_kn, moments)  # (K, N), log-space
    log_norm = _normalise_kn(resp)  # (N,); resp now holds the responsibilities
    return float(log_norm.mean()), resp


def e_step(X, weights, means, precisions_chol, allowed=None) -> tuple[float, np.ndarray]:
    """Mean log-likelihood per point and responsibilities (N, K).

    ``allowed`` (N, K) bool, optional: components each point may belong to (labelled points).
    """
    allowed_kn = None if allowed is None else np.ascontiguousarray(np.asarray(allowed, bool).T)
    lower_bound, resp = _e_step_kn(np.ascontiguousarray(X.T), weights, means, precisions_chol, allowed_kn)
    return lower_bound, resp.T


def _m_step_kn(moments, resp, reg_covar, previous_means, previous_covariances):
    nk, means, covariances = _gaussian_parameters_kn(moments, resp, reg_covar)
    empty = nk <= 2 * _EMPTY_COMPONENT
    if empty.any():
        warnings.warn(
            f"EM: component(s) {np.flatnonzero(empty).tolist()} lost all their points; keeping their "
            "previous mean and covariance. Fewer components may fit this data better.",
            DegenerateFitWarning,
            stacklevel=4,
        )
        means[empty] = previous_means[empty]
        covariances[empty] = previous_covariances[empty]
    return nk / nk.sum(), means, covariances


def m_step(X, resp, reg_covar, *, previous_means, previous_covariances) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights (K,), means (K, D) and covariances (K, D, D) from responsibilities resp (N, K).

    A component that lost all its points keeps its previous mean and covariance (with a warning),
    so one bad step cannot turn the mixture into NaNs.
    """
    return _m_step_kn(Moments(X), np.ascontiguousarray(resp.T), reg_covar, previous_means, previous_covariances)


def safe_precision_cholesky(covariances: np.ndarray, reg_covar: float) -> tuple[np.ndarray, np.ndarray]:
    """Cholesky precisions, adding diagonal regularisation (with a warning) when a covariance is singular.

    Returns the (possibly regularised) covariances (K, D, D) and their precision Cholesky factors (K, D, D).
    """
    try:
        return covariances, compute_precision_cholesky(covariances)
    except np.linalg.LinAlgError:
        pass
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


def check_X(X: Any, name: str = "X") -> np.ndarray:
    """X as a finite float64 (N, D) array, or a ValueError saying what arrived."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n_samples, n_features); got shape {X.shape}.")
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinite values; remove or fix them before fitting.")
    return X


class GaussianMixture:
    """Full-covariance Gaussian mixture whose components stand for classes, fitted by EM.

    Parameters
    ----------
    reg_covar : float
        Added to every covariance diagonal; keeps them positive definite.
    tol : float
        EM stops when the mean log-likelihood per point improves by less than this.
    max_iter : int
        Most EM iterations.
    random_state : int
        Default seed of :meth:`sample`.

    Fitted attributes
    -----------------
    weights_ (K,), means_ (K, D), covariances_ (K, D, D), precisions_cholesky_ (K, D, D),
    component_classes_ (K,) the class of each component, classes_ (C,) the sorted classes,
    converged_, stopped_ (a keep_going guard ended EM), n_iter_, lower_bound_ (final mean log-likelihood per point) and
    log_likelihood_history_ (one entry per iteration).
    """

    def __init__(self, *, reg_covar: float = 1e-6, tol: float = 1e-4, max_iter: int = 300, random_state: int = 0) -> None:
        if not reg_covar >= 0:
            raise ValueError(f"reg_covar must be >= 0; got {reg_covar}.")
        if max_iter < 1:
            raise ValueError(f"max_iter must be >= 1; got {max_iter}.")
        self.reg_covar = reg_covar
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state

    def get_params(self) -> dict[str, Any]:
        return {"reg_covar": self.reg_covar, "tol": self.tol, "max_iter": self.max_iter, "random_state": self.random_state}

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
        keep_going: Callable[[np.ndarray], bool] | None = None,
    ) -> "GaussianMixture":
        """EM on X (N, D) from the given start.

        means_init (K, D); weights_init (K,) defaults to the shares of a hard nearest-mean assignment;
        covariances_init (K, D, D) to that assignment's covariances. ``allowed`` (N, K) restricts which
        components each point may belong to (labelled points). ``component_classes`` (K,) defaults to
        one class per component. ``keep_going``, given the responsibilities (K, N) of each E-step, may
        return False to stop EM there (``stopped_`` is then True): a guard that refuses a fit once it
        strays spares the remaining iterations.
        """
        X = check_X(X)
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
            if allowed is None:
                nearest = nearest_centre(X, means)
            else:
                nearest = np.where(allowed, ((X[:, None, :] - means[None]) ** 2).sum(-1), np.inf).argmin(axis=1)
            hard = np.zeros((len(X), n_components))
            hard[np.arange(len(X)), nearest] = 1.0
            nk, _, covariances = estimate_gaussian_parameters(X, hard, self.reg_covar)
            weights = nk / nk.sum()
        if weights_init is not None:
            weights = np.array(weights_init, dtype=np.float64)
        if covariances_init is not None:
            covariances = np.array(covariances_init, dtype=np.float64)
        covariances, precisions_chol = safe_precision_cholesky(covariances, self.reg_covar)

        moments = Moments(X)
        allowed_kn = None if allowed is None else np.ascontiguousarray(allowed.T)  # (K, N)
        history: list[float] = []
        converged = stopped = False
        for n_iter in range(1, self.max_iter + 1):
            lower_bound, resp = _e_step_kn(moments.XT, weights, means, precisions_chol, allowed_kn, moments)  # (K, N)
            if keep_going is not None and not keep_going(resp):
                history.append(lower_bound)  # the likelihood of the parameters kept
                stopped = True
                break
            weights, means, covariances = _m_step_kn(moments, resp, self.reg_covar, means, covariances)
            covariances, precisions_chol = safe_precision_cholesky(covariances, self.reg_covar)
            change = lower_bound - history[-1] if history else np.inf
            history.append(lower_bound)
            if abs(change) < self.tol:
                converged = True
                break
        if not converged and not stopped:
            warnings.warn(
                f"EM did not converge in {self.max_iter} iterations (last change {change:.3g} > tol "
                f"{self.tol:g}). Increase max_iter or tol.",
                DegenerateFitWarning,
                stacklevel=2,
            )
        self._set_parameters(weights, means, covariances, precisions_chol,
                             np.arange(n_components) if component_classes is None else component_classes)
        self.converged_ = converged
        self.stopped_ = stopped
        self.n_iter_ = n_iter
        self.log_likelihood_history_ = history
        self.lower_bound_ = history[-1]
        return self

    @classmethod
    def from_parameters(cls, weights, means, covariances, component_classes, **params) -> "GaussianMixture":
        """A fitted mixture with the given weights (K,), means (K, D), covariances (K, D, D) and classes (K,).

        No EM runs: ``converged_`` is True and ``n_iter_`` 0. Singular covariances are regularised.
        """
        gmm = cls(**params)
        covariances, precisions_chol = safe_precision_cholesky(np.asarray(covariances, dtype=np.float64), gmm.reg_covar)
        gmm._set_parameters(np.asarray(weights, dtype=np.float64), np.asarray(means, dtype=np.float64), covariances,
                            precisions_chol, component_classes)
        gmm.converged_, gmm.n_iter_, gmm.log_likelihood_history_, gmm.lower_bound_ = True, 0, [], float("nan")
        gmm.stopped_ = False
        return gmm

    def _set_parameters(self, weights, means, covariances, precisions_chol, component_classes) -> None:
        self.weights_, self.means_, self.covariances_ = weights, means, covariances
        self.precisions_cholesky_ = precisions_chol
        self.component_classes_ = np.asarray(component_classes)
        self.classes_ = np.unique(self.component_classes_)

    # --- inference -------------------------------------------------------------------

    def _check_fitted_X(self, X) -> np.ndarray:
        if not hasattr(self, "means_"):
            raise RuntimeError("this GaussianMixture is not fitted yet; call fit first.")
        X = check_X(X)
        if X.shape[1] != self.means_.shape[1]:
            raise ValueError(f"X has {X.shape[1]} features but the mixture was fitted on {self.means_.shape[1]}.")
        return X

    @property
    def n_features_(self) -> int:
        return int(self.means_.shape[1])

    def _component_log_prob_kn(self, X: np.ndarray) -> np.ndarray:
        XT = np.ascontiguousarray(self._check_fitted_X(X).T)  # (D, N)
        return _weighted_log_prob_kn(XT, self.weights_, self.means_, self.precisions_cholesky_)  # (K, N)

    def component_log_prob(self, X: np.ndarray) -> np.ndarray:
        """log π_k N(x | μ_k, Σ_k): (N, K)."""
        return self._component_log_prob_kn(X).T

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """log p(x) under the mixture: (N,)."""
        return _normalise_kn(self._component_log_prob_kn(X))

    def score(self, X: np.ndarray) -> float:
        """Mean log-likelihood per point."""
        return float(self.score_samples(X).mean())

    def _component_proba_kn(self, X: np.ndarray) -> np.ndarray:
        resp = self._component_log_prob_kn(X)  # (K, N), log-space
        _normalise_kn(resp)
        return resp

    def _class_proba_kn(self, X: np.ndarray) -> np.ndarray:
        return class_indicator(self.classes_, self.component_classes_) @ self._component_proba_kn(X)  # (C, N)

    def predict_component_proba(self, X: np.ndarray) -> np.ndarray:
        """Posterior over components: (N, K)."""
        return self._component_proba_kn(X).T

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Posterior over classes (N, C), columns in the order of ``classes_``."""
        return self._class_proba_kn(X).T

    def predict_component(self, X: np.ndarray) -> np.ndarray:
        """The component of highest posterior: (N,)."""
        return self._component_log_prob_kn(X).argmax(axis=0)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The class of highest posterior (summed over its components): (N,)."""
        return self.classes_[self._class_proba_kn(X).argmax(axis=0)]

    def sample(self, n_samples: int, *, random_state: int | None = None, component: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Draw n_samples points from the mixture, or from one ``component`` only.

        Returns X (n_samples, D) and each point's component index (n_samples,).
        """
        if not hasattr(self, "means_"):
            raise RuntimeError("this GaussianMixture is not fitted yet; call fit first.")
        rng = np.random.default_rng(self.random_state if random_state is None else random_state)
        if component is None:
            components = rng.choice(len(self.weights_), size=n_samples, p=self.weights_ / self.weights_.sum())
        else:
            components = np.full(n_samples, int(component))
        X = np.empty((n_samples, self.n_features_))
        for k in np.unique(components):
            idx = components == k
            X[idx] = rng.multivariate_normal(self.means_[k], self.covariances_[k], size=int(idx.sum()))
        return X, components

    # --- persistence as plain data ---------------------------------------------------

    def to_dict(self) -> dict:
        """Plain data only (nested lists, numbers, strings): safe to pickle and to load."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "params": self.get_params(),
            "component_classes": self.component_classes_.tolist(),
            "weights": self.weights_.tolist(),
            "means": self.means_.tolist(),
            "covariances": self.covariances_.tolist(),
            "converged": bool(self.converged_),
            "n_iter": int(self.n_iter_),
            "log_likelihood_history": [float(v) for v in self.log_likelihood_history_],
        }

    @classmethod
    def from_dict(cls, state: Any, *, source: str = "GMM parameters") -> "GaussianMixture":
        """Rebuild from :meth:`to_dict`'s output, checking every field; never runs code from it."""
        def bad(what: str) -> ModelFileError:
            return ModelFileError(f"{source}: {what}. This is not a usable vaegmm GMM file; re-create it with the 'train' command.")

        if not isinstance(state, dict) or state.get("format") != FORMAT:
            found = type(state).__name__ if not isinstance(state, dict) else f"format {state.get('format')!r}"
            raise bad(f"expected a dict with format {FORMAT!r}, found {found}")
        if state.get("format_version") != FORMAT_VERSION:
            raise bad(f"format version {state.get('format_version')!r} is not the supported {FORMAT_VERSION}")
        try:
            params = state["params"]
            # Files written before the few-label fit moved out also list its settings: keep the estimator's own.
            gmm = cls(**{k: params[k] for k in ("reg_covar", "tol", "max_iter", "random_state") if k in params})
            weights = np.asarray(state["weights"], dtype=np.float64)
            means = np.asarray(state["means"], dtype=np.float64)
            covariances = np.asarray(state["covariances"], dtype=np.float64)
            component_classes = np.asarray(state["component_classes"], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"a field is missing or malformed ({type(exc).__name__}: {exc})") from exc
        k = len(weights)
        if k == 0 or weights.ndim != 1 or means.ndim != 2 or means.shape[0] != k or covariances.shape != (k, means.shape[1], means.shape[1]) or component_classes.shape != (k,):
            raise bad(
                f"inconsistent shapes: weights {weights.shape}, means {means.shape}, covariances "
                f"{covariances.shape}, component_classes {component_classes.shape}"
            )
        if not (np.isfinite(weights).all() and np.isfinite(means).all() and np.isfinite(covariances).all()):
            raise bad("it contains NaN or infinite parameters")
        if (weights <= 0).any():
            raise bad("a component weight is not positive")
        if not np.allclose(covariances, covariances.transpose(0, 2, 1)):
            raise bad("a covariance matrix is not symmetric")
        try:
            precisions_chol = compute_precision_cholesky(covariances)
        except np.linalg.LinAlgError as exc:
            raise bad("a covariance matrix is not positive definite") from exc
        gmm._set_parameters(weights, means, covariances, precisions_chol, component_classes)
        gmm.converged_ = bool(state.get("converged", False))
        gmm.stopped_ = False  # a saved mixture is a finished one
        gmm.n_iter_ = int(state.get("n_iter", 0))
        gmm.log_likelihood_history_ = [float(v) for v in state.get("log_likelihood_history", [])]
        gmm.lower_bound_ = gmm.log_likelihood_history_[-1] if gmm.log_likelihood_history_ else float("nan")
        return gmm
