"""Novelty: a score saying how unlike the training images an image is, and a threshold calibrated on them.

A plain VAE likelihood is a poor novelty detector (Nalisnick et al. 2019: models of one image set give
another a *higher* likelihood): a blank or simple image is easy to reconstruct. Detectors that work look
at several cheap statistics of each image's path through the model (the "likelihood path" principle).
Two statistics, from one encoder and one decoder pass, carry the signal here (benchmarks/novelty.py
measured the encoder's variance and the KL term too; adding them lowered every AUROC):

- ``log_recon``: log of the reconstruction error (Bernoulli negative log-likelihood of the image under
  its decoded latent mean) — high for images the decoder cannot draw (other shapes, noise, shifts);
- ``latent_nll``: -log p(μ) under the GMM — high for latent means outside every class's cluster, which
  catches what is too *easy* to reconstruct (a blank square).

Each is standardised by its mean and standard deviation on the training images, only its unusual side
counts (higher than ordinary), and the score is the larger of the two: an image is novel when either
says so. The threshold is the (1 - flag_rate) quantile of the training images' scores, so that share of
ordinary images is flagged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ModelFileError

FEATURES = ("log_recon", "latent_nll")
FORMAT = "vaegmm.novelty"


def novelty_features(statistics: dict[str, np.ndarray], gmm) -> np.ndarray:
    """The per-image statistics (N, 2) in FEATURES order, from :func:`vaegmm.model.encode_statistics`'s
    output and the fitted GMM."""
    return np.stack([np.log(statistics["recon_bce"] + 1e-12), -gmm.score_samples(statistics["mu"])], axis=1)


class NoveltyDetector:
    """The larger of the features' one-sided standard scores against the training images.

    Fitted attributes: mean_ (F,), std_ (F,), threshold_, flag_rate_, n_calibration_.
    """

    def fit(self, features: np.ndarray, *, flag_rate: float) -> "NoveltyDetector":
        """Calibrate on the training images' features (N, F): their scale, then the threshold."""
        self.mean_ = features.mean(axis=0)
        self.std_ = np.maximum(features.std(axis=0), np.finfo(np.float64).eps)
        self.flag_rate_ = float(flag_rate)
        self.n_calibration_ = int(len(features))
        self.threshold_ = float(np.quantile(self.score(features), 1 - flag_rate))
        return self

    def score(self, features: np.ndarray) -> np.ndarray:
        """Novelty scores (N,): how many standard deviations the most unusual statistic lies above its
        training mean (0 when none does)."""
        return np.maximum((features - self.mean_) / self.std_, 0.0).max(axis=1)

    def flag(self, features: np.ndarray) -> np.ndarray:
        """True for images (N,) scoring above the calibrated threshold."""
        return self.score(features) > self.threshold_

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "features": list(FEATURES), "mean": self.mean_.tolist(),
                "std": self.std_.tolist(), "threshold": self.threshold_, "flag_rate": self.flag_rate_,
                "calibrated_on": f"{self.n_calibration_} training images", "n_calibration": self.n_calibration_}

    @classmethod
    def from_dict(cls, state: Any, *, source: str) -> "NoveltyDetector":
        def bad(what: str) -> ModelFileError:
            return ModelFileError(f"{source}: its novelty calibration {what}; re-create the file with the 'train' command.")

        if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("features") != list(FEATURES):
            raise bad("is missing or of another version")
        try:
            detector = cls()
            detector.mean_ = np.asarray(state["mean"], dtype=np.float64)
            detector.std_ = np.asarray(state["std"], dtype=np.float64)
            detector.threshold_ = float(state["threshold"])
            detector.flag_rate_ = float(state["flag_rate"])
            detector.n_calibration_ = int(state["n_calibration"])
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"is malformed ({exc})") from exc
        n = len(FEATURES)
        if detector.mean_.shape != (n,) or detector.std_.shape != (n,):
            raise bad("has the wrong shape")
        if not (np.isfinite(detector.mean_).all() and np.isfinite(detector.std_).all() and np.isfinite(detector.threshold_)):
            raise bad("holds NaN or infinite values")
        if (detector.std_ <= 0).any():
            raise bad("has a non-positive scale")
        return detector
