"""Novelty: a score saying how unlike the training images an image is, and a threshold calibrated on them.

A plain VAE likelihood is a poor novelty detector (Nalisnick et al. 2019: models of one image set give
another a *higher* likelihood): a blank or simple image is easy to reconstruct. Detectors that work look
at several cheap statistics of each image's path through the model (the "likelihood path" principle).
Three per-image features come from one encoder and one decoder pass:

- ``log_recon``: log of the reconstruction error (Bernoulli negative log-likelihood of the image under
  its decoded latent mean) — high for images the decoder cannot draw (other shapes, noise, shifts);
- ``log_ink``: log of the image's mean intensity, floored at one fully lit pixel's share;
- ``latent_nll``: -log p(μ) under the GMM — high for latent means outside every class's cluster.

The reconstruction error grows with how much an image holds: on the training images, log_recon rises
almost linearly with log_ink. So the detector fits that line on the training images (least squares) and
also scores the *ink-adjusted* error, log_recon minus the line: an image whose error is high for what
it holds — a blank square, whose error is modest but whose ink is nil, or a thin unseen digit — stands
out there even when its raw error looks ordinary.

Each of the three statistics (raw error, ink-adjusted error, latent density) is standardised by its mean
and standard deviation on the training images, only its unusual side counts (higher than ordinary), and
the score is the largest of them: an image is novel when any says so. The threshold is the
(1 - flag_rate) quantile of the training images' scores, so that share of ordinary images is flagged.
``benchmarks/novelty.py`` compares this with each statistic alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ModelFileError

FEATURES = ("log_recon", "log_ink", "latent_nll")
STATISTICS = ("log_recon", "ink_adjusted_log_recon", "latent_nll")
FORMAT = "vaegmm.novelty"
FORMAT_VERSION = 2


def novelty_features(statistics: dict[str, np.ndarray], gmm) -> np.ndarray:
    """The per-image features (N, 3) in FEATURES order, from :func:`vaegmm.model.encode_statistics`'s
    output (``recon_bce``, ``ink``, ``n_pixels``, ``mu``) and the fitted GMM."""
    # A floor of one fully lit pixel keeps a blank image's log finite and as far below the others as a
    # pixel's worth allows, whatever the image size.
    log_ink = np.log(statistics["ink"] + 1.0 / statistics["n_pixels"])
    return np.stack([np.log(statistics["recon_bce"] + 1e-12), log_ink, -gmm.score_samples(statistics["mu"])], axis=1)


class NoveltyDetector:
    """The largest one-sided standard score of the STATISTICS against the training images.

    Fitted attributes: ink_coef_ (2,) the line log_recon ≈ ink_coef_[0] + ink_coef_[1]·log_ink, mean_ (3,)
    and std_ (3,) of the statistics, threshold_, flag_rate_, n_calibration_.
    """

    def statistics(self, features: np.ndarray) -> np.ndarray:
        """The STATISTICS (N, 3) from features (N, 3)."""
        log_recon, log_ink, latent_nll = features.T
        adjusted = log_recon - self.ink_coef_[0] - self.ink_coef_[1] * log_ink
        return np.stack([log_recon, adjusted, latent_nll], axis=1)

    def fit(self, features: np.ndarray, *, flag_rate: float) -> "NoveltyDetector":
        """Calibrate on the training images' features (N, 3): the ink line, the scales, then the threshold."""
        log_recon, log_ink = features[:, 0], features[:, 1]
        if np.ptp(log_ink) > 0:
            design = np.stack([np.ones_like(log_ink), log_ink], axis=1)  # (N, 2)
            self.ink_coef_ = np.linalg.lstsq(design, log_recon, rcond=None)[0]
        else:  # every training image holds the same ink: nothing to adjust for
            self.ink_coef_ = np.array([float(log_recon.mean()), 0.0])
        stats = self.statistics(features)
        self.mean_ = stats.mean(axis=0)
        self.std_ = np.maximum(stats.std(axis=0), np.finfo(np.float64).eps)
        self.flag_rate_ = float(flag_rate)
        self.n_calibration_ = int(len(features))
        self.threshold_ = float(np.quantile(self.score(features), 1 - flag_rate))
        return self

    def standard_scores(self, features: np.ndarray) -> np.ndarray:
        """Each statistic's one-sided standard score (N, 3): standard deviations above its training mean, or 0."""
        return np.maximum((self.statistics(features) - self.mean_) / self.std_, 0.0)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Novelty scores (N,): how many standard deviations the most unusual statistic lies above its
        training mean (0 when none does)."""
        return self.standard_scores(features).max(axis=1)

    def flag(self, features: np.ndarray) -> np.ndarray:
        """True for images (N,) scoring above the calibrated threshold."""
        return self.score(features) > self.threshold_

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": FORMAT_VERSION, "features": list(FEATURES),
                "statistics": list(STATISTICS), "ink_coef": self.ink_coef_.tolist(), "mean": self.mean_.tolist(),
                "std": self.std_.tolist(), "threshold": self.threshold_, "flag_rate": self.flag_rate_,
                "calibrated_on": f"{self.n_calibration_} training images", "n_calibration": self.n_calibration_}

    @classmethod
    def from_dict(cls, state: Any, *, source: str) -> "NoveltyDetector":
        def bad(what: str) -> ModelFileError:
            return ModelFileError(f"{source}: its novelty calibration {what}; re-create the file with the 'train' command.")

        if (not isinstance(state, dict) or state.get("format") != FORMAT or state.get("version") != FORMAT_VERSION
                or state.get("features") != list(FEATURES)):
            raise bad("is missing or of another version")
        try:
            detector = cls()
            detector.ink_coef_ = np.asarray(state["ink_coef"], dtype=np.float64)
            detector.mean_ = np.asarray(state["mean"], dtype=np.float64)
            detector.std_ = np.asarray(state["std"], dtype=np.float64)
            detector.threshold_ = float(state["threshold"])
            detector.flag_rate_ = float(state["flag_rate"])
            detector.n_calibration_ = int(state["n_calibration"])
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"is malformed ({exc})") from exc
        n = len(STATISTICS)
        if detector.mean_.shape != (n,) or detector.std_.shape != (n,) or detector.ink_coef_.shape != (2,):
            raise bad("has the wrong shape")
        if not all(np.isfinite(a).all() for a in (detector.ink_coef_, detector.mean_, detector.std_, detector.threshold_)):
            raise bad("holds NaN or infinite values")
        if (detector.std_ <= 0).any():
            raise bad("has a non-positive scale")
        return detector
