"""What the latent space looks like, measured: each class's cluster shape, separations, confusions, and
sentences that say it (every number in them is measured)."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import chi2

GAUSSIAN_TOLERANCE = 0.05  # share-inside-ellipse differences below this read as "close to Gaussian"
# Above two dimensions a Gaussian holds almost nothing inside its 1σ ellipsoid (0.02% in 10-D), so every cluster
# would read "close to Gaussian"; there its shape is measured inside the ellipsoids holding these shares instead.
SHELL_MASSES = (0.5, 0.9)
# The explanation names this many of the closest class pairs; with many classes the rest are one sentence.
EXPLAINED_PAIRS = 10


def bhattacharyya(mean1, cov1, mean2, cov2) -> float:
    """Bhattacharyya distance between two Gaussians; exp(-distance) bounds their overlap."""
    cov = (cov1 + cov2) / 2
    diff = mean1 - mean2
    term1 = diff @ np.linalg.solve(cov, diff) / 8
    _, logdet = np.linalg.slogdet(cov)
    _, logdet1 = np.linalg.slogdet(cov1)
    _, logdet2 = np.linalg.slogdet(cov2)
    return float(term1 + 0.5 * (logdet - 0.5 * (logdet1 + logdet2)))


def shells(n_features: int) -> list[dict]:
    """The two ellipsoids a cluster's shape is measured in, as Mahalanobis radii with the share of a Gaussian's
    mass inside each: 1σ and 2σ up to two dimensions (the figures' ellipses), else the radii holding SHELL_MASSES."""
    if n_features <= 2:
        return [{"label": f"{r}σ", "radius": float(r), "expected": float(chi2.cdf(r**2, n_features))} for r in (1, 2)]
    return [{"label": f"{q:.0%}-mass", "radius": float(np.sqrt(chi2.ppf(q, n_features))), "expected": q} for q in SHELL_MASSES]


def _gaussian_shape(mean: np.ndarray, cov: np.ndarray, pts: np.ndarray) -> dict:
    """Spread, principal axes and the share of ``pts`` inside the 1σ and 2σ ellipses of N(mean, cov), and inside
    the :func:`shells` (the same two up to 2-D)."""
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = eigval[order], eigvec[:, order]
    major = eigvec[:, 0]
    angle = math.degrees(math.atan2(major[1], major[0])) if len(mean) >= 2 else 0.0
    angle = (angle + 90) % 180 - 90  # an axis has no direction: fold into [-90, 90)
    if len(pts):
        white = np.linalg.solve(np.linalg.cholesky(cov), (pts - mean).T)  # (D, n)
        maha = np.sqrt((white**2).sum(axis=0))
    else:
        maha = np.array([])
    inside = (lambda r: float(np.mean(maha <= r)) if len(pts) else None)  # None: JSON has no NaN
    return {
        "mean": mean.tolist(), "std_per_dimension": np.sqrt(np.diag(cov)).tolist(),
        "principal_std": np.sqrt(eigval).tolist(), "major_axis_angle_deg": angle,
        # Above 2-D an angle in the plane of dimensions 1 and 2 says little: name the dimension the axis follows.
        "major_axis_dimension": int(np.argmax(np.abs(major))) + 1, "major_axis_cosine": float(np.abs(major).max()),
        "n_points": int(len(pts)), "inside_1sigma": inside(1), "inside_2sigma": inside(2),
        "inside_shells": [inside(shell["radius"]) for shell in shells(len(mean))],
    }


def latent_analysis(gmm, Z: np.ndarray, *, confusion: np.ndarray | None = None) -> dict:
    """Shape statistics of each class's cluster and component, separations between classes, confusions.

    Z (N, D): latent means of the training images; each point belongs to the class (and component)
    of highest posterior. A class modelled by several components is summarised by the single
    Gaussian with the same mean and covariance as its components together (moment matching).
    confusion (C, C): test confusion matrix in ``gmm.classes_`` order (rows true, columns predicted).
    """
    n_features = Z.shape[1]
    class_of_point = gmm.predict(Z)
    component_of_point = gmm.predict_component(Z)
    per_class, summaries = [], {}
    for label in gmm.classes_.tolist():
        own = np.flatnonzero(gmm.component_classes_ == label)
        w = gmm.weights_[own]
        mean = (w[:, None] * gmm.means_[own]).sum(0) / w.sum()
        second = sum(wk * (gmm.covariances_[k] + np.outer(gmm.means_[k], gmm.means_[k])) for wk, k in zip(w, own)) / w.sum()
        cov = second - np.outer(mean, mean)
        summaries[label] = (mean, cov)
        components = [
            {"component": int(k), "weight": float(gmm.weights_[k]),
             **_gaussian_shape(gmm.means_[k], gmm.covariances_[k], Z[component_of_point == k])}
            for k in own
        ]
        per_class.append({"class": label, "weight": float(w.sum()), "components": components,
                       **_gaussian_shape(mean, cov, Z[class_of_point == label])})
    pairs = []
    labels = gmm.classes_.tolist()
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            (m1, c1), (m2, c2) = summaries[labels[i]], summaries[labels[j]]
            pairs.append({"classes": [labels[i], labels[j]], "bhattacharyya": bhattacharyya(m1, c1, m2, c2)})
    confusions = []
    if confusion is not None:
        for a in range(len(labels)):
            for b in range(len(labels)):
                if a != b and confusion[a, b] > 0:
                    confusions.append({"true": labels[a], "predicted": labels[b], "count": int(confusion[a, b]),
                                       "rate": float(confusion[a, b] / confusion[a].sum())})
        confusions.sort(key=lambda c: -c["count"])
    return {"expected_inside_1sigma": float(chi2.cdf(1, n_features)), "expected_inside_2sigma": float(chi2.cdf(4, n_features)),
            "shells": shells(n_features),
            "classes": per_class, "pairs": sorted(pairs, key=lambda p: p["bhattacharyya"]), "confusions": confusions,
            "confusion_known": confusion is not None}


def _shape_words(c: dict, e1: float, e2: float) -> str:
    d1, d2 = c["inside_shells"][0] - e1, c["inside_shells"][1] - e2
    if abs(d1) <= GAUSSIAN_TOLERANCE and abs(d2) <= GAUSSIAN_TOLERANCE:
        return "close to Gaussian"
    if d1 > GAUSSIAN_TOLERANCE:
        return "more peaked than a Gaussian, with a dense core and long tails"
    if d1 < -GAUSSIAN_TOLERANCE:
        return "flatter than a Gaussian: its points avoid the centre (a curved or multi-modal cluster)"
    return "near-Gaussian in its core but with a different tail"


def _form(stds: list[float]) -> tuple[str, float]:
    ratio = stds[0] / stds[-1] if stds[-1] > 0 else float("inf")
    return ("round" if ratio < 1.3 else "elongated" if ratio < 3 else "strongly elongated"), ratio


def _english_list(items) -> str:
    """'a', 'a and b', 'a, b and c': an English list of any length (a 10-D latent has ten axes)."""
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def explain(analysis: dict) -> list[str]:
    """Sentences generated from :func:`latent_analysis`; every number is measured."""
    inner, outer = analysis["shells"]
    e1, e2 = inner["expected"], outer["expected"]
    out = []
    for d in analysis["classes"]:
        form, ratio = _form(d["principal_std"])
        spread = ", ".join(f"{s:.2f} along latent dimension {i + 1}" for i, s in enumerate(d["std_per_dimension"]))
        mean = ", ".join(f"{m:.2f}" for m in d["mean"])
        comps = d["components"]
        n_dims = len(d["principal_std"])
        one_d = n_dims == 1  # a 1-D latent space: no axes or orientation to speak of
        region = "interval" if one_d else "ellipse" if n_dims == 2 else "ellipsoid"
        parts = "; ".join(
            f"component {c['component']}: weight {c['weight']:.1%}, mean ({', '.join(f'{m:.2f}' for m in c['mean'])}), "
            + ("" if one_d else f"{_form(c['principal_std'])[0]}, ")
            + (f"{c['inside_shells'][0]:.0%}/{c['inside_shells'][1]:.0%} inside {inner['label']}/{outer['label']}"
               if c["n_points"] else "no training image in it")
            for c in comps
        )
        images = f"{d['n_points']} training image{'' if d['n_points'] == 1 else 's'}"
        shape = (f"{d['inside_shells'][0]:.0%} of its points lie inside its {inner['label']} {region} and "
                 f"{d['inside_shells'][1]:.0%} inside its {outer['label']} {region}, against {e1:.0%} and {e2:.0%} for a "
                 f"Gaussian: {_shape_words(d, e1, e2)}. " if d["n_points"] else
                 "No training image falls in it, so its shape is not measured. ")
        if n_dims == 2:
            direction = f"the major one at {d['major_axis_angle_deg']:.0f}° from latent dimension 1"
        else:
            direction = (f"the major one mostly along latent dimension {d['major_axis_dimension']} "
                         f"(cosine {d['major_axis_cosine']:.2f})")
        axes = ("" if one_d else
                f"Its principal axes have standard deviations {_english_list(f'{s:.2f}' for s in d['principal_std'])}, "
                f"{direction}: the cluster is {form} (axis ratio {ratio:.1f}). ")
        out.append(
            f"**Class {d['class']}** (weight {d['weight']:.1%}, {images}): centred at ({mean}); "
            f"standard deviation {spread}. {axes}{shape}"
            + (f"The GMM models it with {len(comps)} components ({parts})." if len(comps) > 1 else "")
        )
    for p in analysis["pairs"][:EXPLAINED_PAIRS]:
        out.append(
            f"Classes {p['classes'][0]} and {p['classes'][1]}: Bhattacharyya distance {p['bhattacharyya']:.2f} between "
            f"their clusters, so these overlap by at most {math.exp(-p['bhattacharyya']):.1%}."
        )
    rest = analysis["pairs"][EXPLAINED_PAIRS:]
    if rest:
        out.append(f"The other {len(rest)} pairs lie further apart (Bhattacharyya distance {rest[0]['bhattacharyya']:.2f} "
                   f"or more; overlap at most {math.exp(-rest[0]['bhattacharyya']):.1%}); every pair is in evaluation.json.")
    if len(analysis["pairs"]) > 1:
        closest = analysis["pairs"][0]
        out.append(f"The closest pair is {closest['classes'][0]} and {closest['classes'][1]}.")
    if analysis["confusions"]:
        parts = [f"{c['count']} test image{'' if c['count'] == 1 else 's'} of {c['true']} "
                 f"{'was' if c['count'] == 1 else 'were'} taken for {c['predicted']} ({c['rate']:.1%} of the {c['true']}s)"
                 for c in analysis["confusions"][:6]]
        out.append("Confusions on the test images, most frequent first: " + "; ".join(parts) + ".")
    elif analysis["confusion_known"]:
        out.append("No test image was confused.")
    return out
