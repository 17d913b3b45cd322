"""The one evaluation every front end reports: reconstruction, ELBO and (with labels) classification.

The command line, the report and the benchmarks all score through these functions, so a figure
means the same thing wherever it is printed.
"""

from __future__ import annotations

import numpy as np

from .metrics import classification_report, confusion_matrix, one_minus_mse, ssim


def reconstruction_metrics(images: np.ndarray, reconstructions: np.ndarray) -> dict[str, float]:
    """SSIM and 1 - MSE of reconstructions (N, H, W) against the images (N, H, W), both in [0, 1]."""
    return {"ssim": ssim(images, reconstructions), "one_minus_mse": one_minus_mse(images, reconstructions)}


def labels_outside(labels: np.ndarray, classes: np.ndarray) -> dict | None:
    """The labels (N,) that are none of the model's ``classes``: {"classes": [...], "n_images": k}, or None.

    Such images can only be misclassified; the scores count them so, and the front ends say so."""
    outside = ~np.isin(labels, classes)  # (N,)
    if not outside.any():
        return None
    return {"classes": np.unique(labels[outside]).tolist(), "n_images": int(outside.sum())}


def classification_metrics(labels: np.ndarray, predicted: np.ndarray, classes: np.ndarray) -> dict:
    """The course's scores and the confusion matrix (rows true, columns predicted, in ``classes`` order),
    and ``unknown_labels`` (see :func:`labels_outside`) when some labels are not among ``classes``."""
    out = {"classification": classification_report(labels, predicted),
           "confusion": confusion_matrix(labels, predicted, classes).tolist()}
    unknown = labels_outside(labels, classes)
    return out if unknown is None else {**out, "unknown_labels": unknown}


def evaluate(model, gmm, dataset, *, latents: np.ndarray | None = None) -> dict:
    """Every test metric of a model and its GMM on ``dataset``: n_test, ssim, one_minus_mse,
    elbo_per_image, and with labels classification and confusion. ``latents`` (N, latent_dim) are the
    dataset's latent means when already computed."""
    from .model import elbo_per_image, encode_means, reconstruct

    out = {"n_test": len(dataset), **reconstruction_metrics(dataset.images, reconstruct(model, dataset.images)),
           "elbo_per_image": elbo_per_image(model, dataset.images)}
    if dataset.labels is not None:
        Z = encode_means(model, dataset.images) if latents is None else latents  # (N, latent_dim)
        out.update(classification_metrics(dataset.labels, gmm.predict(Z), gmm.classes_))
    return out
