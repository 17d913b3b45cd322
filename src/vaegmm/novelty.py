"""Novelty: a score saying how unlike the training images an image is, and a threshold calibrated on them.

A plain VAE likelihood is a poor novelty detector (Nalisnick et al. 2019: models of one image set give
another a *higher* likelihood): a blank or simple image is easy to reconstruct. Detectors that work look
at several cheap statistics of each image's path through the model (the "likelihood path" principle).
Two per-image statistics come from one encoder and one decoder pass:

- ``recon_dissimilarity``: 1 minus the Pearson correlation between the image and its reconstruction
  (the decoded latent mean), in [0, 2] — high for images the decoder cannot draw: other shapes, noise,
  shifts, and a blank or constant image, whose correlation is undefined and counted as 0;
- ``latent_nll``: -log p(μ) under the GMM — high for latent means outside every class's cluster.

The correlation, unlike the summed reconstruction error, does not grow with how much ink an image holds
or how bright it is: it compares the reconstruction's *shape* with the image's. On the benchmark it
separates unseen digits and rotated digits better than the Bernoulli error, with or without an
adjustment for ink (benchmarks/README.md, "Novelty").

Each statistic is standardised by its mean and standard deviation on the training images, only its
unusual side counts (higher than ordinary), and the score is the larger of the two: an image is novel
when either says so. The threshold is the (1 - flag_rate) quantile of the training images' scores, so
that share of ordinary images is flagged. ``benchmarks/novelty.py`` compares this with each statistic alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ModelFileError

STATISTICS = ("recon_dissimilarity", "latent_nll")
FORMAT = "vaegmm.novelty"
FORMAT_VERSION = 3


def novelty_statistics(encoded: dict[str, np.ndarray], gmm) -> np.ndarray:
    """The per-image STATISTICS (N, 2), from :func:`vaegmm.model.encode_statistics`'s output
    (``recon_corr``, ``mu``) and the fitted GMM."""
    return np.stack([1.0 - encoded["recon_corr"], -gmm.score_samples(encoded["mu"])], axis=1)


def held_out_flag_check(scores: np.ndarray, *, threshold: float, flag_rate: float) -> dict[str, Any]:
    """How many of n ordinary images the model was not trained on (their novelty scores (n,)) the threshold
    flags, against the rate it was calibrated to flag on the training images.

    Returns {"n", "flagged", "expected", "p_value"}; ``p_value`` is the binomial chance of flagging at least
    that many if the calibrated rate held for new images. A small one says the model fits its own training
    images better than new ones (small training sets), so new ordinary images are flagged more often.
    """
    from scipy.stats import binom

    n, flagged = int(len(scores)), int(np.sum(scores > threshold))
    p_value = float(binom.sf(flagged - 1, n, flag_rate)) if n else 1.0
    return {"n": n, "flagged": flagged, "expected": n * flag_rate, "p_value": p_value}


class NoveltyDetector:
    """The larger one-sided standard score of the STATISTICS against the training images.

    Fitted attributes: mean_ (2,) and std_ (2,) of the statistics on the training images, threshold_,
    flag_rate_, n_calibration_.
    """

    def fit(self, statistics: np.ndarray, *, flag_rate: float) -> "NoveltyDetector":
        """Calibrate on the training images' statistics (N, 2): the scales, then the threshold."""
        self.mean_ = statistics.mean(axis=0)
        self.std_ = np.maximum(statistics.std(axis=0), np.finfo(np.float64).eps)
        self.flag_rate_ = float(flag_rate)
        self.n_calibration_ = int(len(statistics))
        self.threshold_ = float(np.quantile(self.score(statistics), 1 - flag_rate))
        return self

    def standard_scores(self, statistics: np.ndarray) -> np.ndarray:
        """Each statistic's one-sided standard score (N, 2): standard deviations above its training mean, or 0."""
        return np.maximum((statistics - self.mean_) / self.std_, 0.0)

    def score(self, statistics: np.ndarray) -> np.ndarray:
        """Novelty scores (N,): how many standard deviations the more unusual statistic lies above its
        training mean (0 when neither does)."""
        return self.standard_scores(statistics).max(axis=1)

    def flag(self, statistics: np.ndarray) -> np.ndarray:
        """True for images (N,) scoring above the calibrated threshold."""
        return self.score(statistics) > self.threshold_

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": FORMAT_VERSION, "statistics": list(STATISTICS),
                "mean": self.mean_.tolist(), "std": self.std_.tolist(), "threshold": self.threshold_, "flag_rate": self.flag_rate_,
                "calibrated_on": f"{self.n_calibration_} training images", "n_calibration": self.n_calibration_}

    @classmethod
    def from_dict(cls, state: Any, *, source: str) -> "NoveltyDetector":
        def bad(what: str) -> ModelFileError:
            return ModelFileError(f"{source}: its novelty calibration {what}; re-create the file with the 'train' command.")

        if (not isinstance(state, dict) or state.get("format") != FORMAT or state.get("version") != FORMAT_VERSION
                or state.get("statistics") != list(STATISTICS)):
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
        n = len(STATISTICS)
        if detector.mean_.shape != (n,) or detector.std_.shape != (n,):
            raise bad("has the wrong shape")
        if not all(np.isfinite(a).all() for a in (detector.mean_, detector.std_, detector.threshold_)):
            raise bad("holds NaN or infinite values")
        if (detector.std_ <= 0).any():
            raise bad("has a non-positive scale")
        return detector
