"""Novelty: a score saying how unlike the training images an image is, and a threshold calibrated on them.

A plain VAE likelihood is a poor novelty detector (Nalisnick et al. 2019: models of one image set give
another a *higher* likelihood): a blank or simple image is easy to reconstruct. Detectors that work look
at several cheap statistics of each image's path through the model (the "likelihood path" principle).
Three per-image statistics come from one encoder and one decoder pass:

- ``recon_dissimilarity``: 1 minus the Pearson correlation between the image and its reconstruction
  (the decoded latent mean), in [0, 2] — high for images the decoder cannot draw: other shapes, noise,
  shifts, and a blank or constant image, whose correlation is undefined and counted as 0;
- ``edge_dissimilarity``: the same between the two images' edges (differences of neighbouring pixels),
  which weighs where strokes begin and end more than the ink between them; alone it ranks unseen digits
  about as the pixel correlation does, but it misses other images, so the two add up;
- ``latent_nll``: -log p(μ) under the GMM — high for latent means outside every class's cluster.

The correlations, unlike the summed reconstruction error, do not grow with how much ink an image holds
or how bright it is: they compare the reconstruction's *shape* with the image's. On the benchmark they
separate unseen digits and rotated digits better than the Bernoulli error, with or without an
adjustment for ink (benchmarks/README.md, "Novelty").

Each statistic is standardised by its mean and standard deviation on the training images, only its
unusual side counts (higher than ordinary), and the score is the sum of the three: the two
reconstruction statistics catch shapes the decoder cannot draw, the latent one images it draws well
but places off every cluster (a thin 1 against a model of 4, 7 and 9), and an image is novel when
together they say so. On eleven validation models (three digit triples at three training seeds each,
all ten digits at two) the sum ranked the unseen digits and the rotated digits of every one above the
previous format's larger score of two statistics (benchmarks/README.md). The threshold is the (1 - flag_rate)
quantile of the calibration images' scores, so that share of ordinary images is flagged.
``benchmarks/novelty.py`` compares this with each statistic alone.

The calibration images are the training images, or, on small sets and with a latent above 2-D
(``NoveltyConfig.share_for``), a share of them held out of the VAE's training (:func:`calibration_split`):
trained for many epochs, or with more latent dimensions, the VAE draws its own images better than new ones,
and a threshold set on them flags new ordinary images two or more times as often as asked
(``benchmarks/calibration.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ModelFileError

STATISTICS = ("recon_dissimilarity", "edge_dissimilarity", "latent_nll")
FORMAT = "vaegmm.novelty"
FORMAT_VERSION = 4


def novelty_statistics(encoded: dict[str, np.ndarray], gmm) -> np.ndarray:
    """The per-image STATISTICS (N, 3), from :func:`vaegmm.model.encode_statistics`'s output
    (``recon_corr``, ``edge_corr``, ``mu``) and the fitted GMM."""
    return np.stack([1.0 - encoded["recon_corr"], 1.0 - encoded["edge_corr"], -gmm.score_samples(encoded["mu"])], axis=1)


# Fewer held-out images than this place no useful quantile: the training images calibrate instead.
MIN_CALIBRATION_IMAGES = 20


def calibration_split(n_images: int, *, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (sorted) of the images the VAE trains on and of those held out to calibrate the threshold:
    a seeded random ``share`` of ``n_images``, or none when that is under MIN_CALIBRATION_IMAGES."""
    n_held = int(round(share * n_images))
    if n_held < MIN_CALIBRATION_IMAGES or n_held >= n_images:
        return np.arange(n_images), np.arange(0)
    order = np.random.default_rng(seed).permutation(n_images)
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def calibration_rows(n_images: int, *, novelty_config, train_config, latent_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a training set of ``n_images`` that `train` gives a VAE of ``latent_dim`` latent dimensions and
    those it holds out to calibrate the threshold on (:func:`calibration_split` with the configs' share and seed);
    a report re-derives them."""
    share = novelty_config.share_for(n_images, train_config, latent_dim=latent_dim)
    return calibration_split(n_images, share=share, seed=train_config.seed)


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
    """The sum of the STATISTICS' one-sided standard scores against the training images.

    Fitted attributes: mean_ (3,) and std_ (3,) of the statistics on the training images; threshold_, set on
    the n_calibration_ calibration images to flag flag_rate_ of them; held_out_, whether those images were
    kept out of the VAE's training.
    """

    def fit(self, statistics: np.ndarray, *, flag_rate: float, held_out: np.ndarray | None = None) -> "NoveltyDetector":
        """Calibrate on the training images' statistics (N, 3): the scales, then the threshold, which is set
        on ``held_out`` (M, 3) instead when given: images the VAE was not trained on."""
        self.mean_ = statistics.mean(axis=0)
        self.std_ = np.maximum(statistics.std(axis=0), np.finfo(np.float64).eps)
        # The scales stay the training images': they set how the statistics weigh against each other,
        # which the benchmarks measured, and only the threshold needs images the VAE has not fitted.
        calibration = statistics if held_out is None else held_out
        self.flag_rate_ = float(flag_rate)
        self.n_calibration_ = int(len(calibration))
        self.held_out_ = held_out is not None
        self.threshold_ = float(np.quantile(self.score(calibration), 1 - flag_rate))
        return self

    def standard_scores(self, statistics: np.ndarray) -> np.ndarray:
        """Each statistic's one-sided standard score (N, 3): standard deviations above its training mean, or 0."""
        return np.maximum((statistics - self.mean_) / self.std_, 0.0)

    def score(self, statistics: np.ndarray) -> np.ndarray:
        """Novelty scores (N,): the standard deviations by which the statistics lie above their training
        means, summed (0 when none does)."""
        return self.standard_scores(statistics).sum(axis=1)

    def flag(self, statistics: np.ndarray) -> np.ndarray:
        """True for images (N,) scoring above the calibrated threshold."""
        return self.score(statistics) > self.threshold_

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": FORMAT_VERSION, "statistics": list(STATISTICS),
                "mean": self.mean_.tolist(), "std": self.std_.tolist(), "threshold": self.threshold_, "flag_rate": self.flag_rate_,
                "calibrated_on": self.calibrated_on, "n_calibration": self.n_calibration_, "held_out": self.held_out_}

    @property
    def calibrated_on(self) -> str:
        """The calibration images in words, e.g. "65 training images held out of the VAE's training"."""
        if self.held_out_:
            return f"{self.n_calibration_} training images held out of the VAE's training"
        return f"{self.n_calibration_} training images"

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
            detector.held_out_ = bool(state.get("held_out", False))  # files before held-out calibration: training images
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
