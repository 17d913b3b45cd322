"""Evaluation: reconstruction quality and classification scores, computed from their definitions."""

from __future__ import annotations

import numpy as np


# skimage's default SSIM window is 7x7 (uniform); images with a side below it get the largest odd window
# that fits, down to 3, the smallest with a sample variance of more than one pixel per side.
SSIM_WINDOW = 7
SSIM_MIN_WINDOW = 3
# Wang et al.'s stabilising constants, (K * data_range)^2 with K1 = 0.01, K2 = 0.03 and data_range 1.
SSIM_C1, SSIM_C2 = 0.01 ** 2, 0.03 ** 2


def global_ssim(reference: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """SSIM of each image pair (N, H, W) with the whole image as one window: (N,). For images too thin for
    a 3x3 window (a side of 1 or 2 pixels), where the windowed index is undefined."""
    a = reference.reshape(len(reference), -1)  # (N, P)
    b = reconstruction.reshape(len(reconstruction), -1)  # (N, P)
    ddof = 1 if a.shape[1] > 1 else 0  # sample statistics, as skimage's windows use
    mu_a, mu_b = a.mean(axis=1), b.mean(axis=1)  # (N,)
    var_a, var_b = a.var(axis=1, ddof=ddof), b.var(axis=1, ddof=ddof)  # (N,)
    cov = ((a - mu_a[:, None]) * (b - mu_b[:, None])).sum(axis=1) / (a.shape[1] - ddof)  # (N,)
    return ((2 * mu_a * mu_b + SSIM_C1) * (2 * cov + SSIM_C2)
            / ((mu_a ** 2 + mu_b ** 2 + SSIM_C1) * (var_a + var_b + SSIM_C2)))


def ssim(reference: np.ndarray, reconstruction: np.ndarray) -> float:
    """Mean structural similarity over images (N, H, W) in [0, 1] (skimage, data_range=1).

    The window is skimage's 7x7 where the images allow it, else the largest odd one that fits; images with
    a side under 3 pixels are compared as one window (:func:`global_ssim`)."""
    from skimage.metrics import structural_similarity

    reference = np.asarray(reference, np.float64)
    reconstruction = np.asarray(reconstruction, np.float64)
    side = min(reference.shape[1:])
    if side < SSIM_MIN_WINDOW:
        return float(np.mean(global_ssim(reference, reconstruction)))
    window = min(SSIM_WINDOW, side if side % 2 else side - 1)
    return float(np.mean([structural_similarity(a, b, data_range=1.0, win_size=window)
                          for a, b in zip(reference, reconstruction)]))


def one_minus_mse(reference: np.ndarray, reconstruction: np.ndarray) -> float:
    """1 - mean squared pixel error, for images in [0, 1]."""
    return float(1.0 - np.mean((np.asarray(reference, np.float64) - np.asarray(reconstruction, np.float64)) ** 2))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(C, C) counts: rows are true classes, columns predicted classes, both in ``classes`` order."""
    index = {c: i for i, c in enumerate(np.asarray(classes).tolist())}
    matrix = np.zeros((len(index), len(index)), dtype=np.int64)
    for t, p in zip(np.asarray(y_true).tolist(), np.asarray(y_pred).tolist()):
        if t in index and p in index:
            matrix[index[t], index[p]] += 1
    return matrix


def classification_report(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy, macro/micro precision, recall and F1, and the course score (mean of macro and micro F1).

    Classes are those present in either array; a class never predicted has precision 0
    (scikit-learn's ``zero_division=0``).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1 or len(y_true) == 0:
        raise ValueError(f"y_true and y_pred must be non-empty and of equal length; got {y_true.shape} and {y_pred.shape}.")
    classes = np.union1d(y_true, y_pred)
    cm = confusion_matrix(y_true, y_pred, classes).astype(np.float64)
    tp = np.diag(cm)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    micro = tp.sum() / cm.sum()  # micro precision = recall = F1 = accuracy for single-label data
    macro_f1 = float(f1.mean())
    return {
        "accuracy": float(micro),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": macro_f1,
        "precision_micro": float(micro),
        "recall_micro": float(micro),
        "f1_micro": float(micro),
        "score": (macro_f1 + float(micro)) / 2,
    }
