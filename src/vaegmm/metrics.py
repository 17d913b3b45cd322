"""Evaluation: reconstruction quality and classification scores, computed from their definitions."""

from __future__ import annotations

import numpy as np


def ssim(reference: np.ndarray, reconstruction: np.ndarray) -> float:
    """Mean structural similarity over images (N, H, W) in [0, 1] (skimage, data_range=1)."""
    from skimage.metrics import structural_similarity

    return float(np.mean([
        structural_similarity(a, b, data_range=1.0) for a, b in zip(np.asarray(reference, np.float64), np.asarray(reconstruction, np.float64))
    ]))


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
