"""vaegmm as a scikit-learn-style estimator: fit on images with a few labels, then predict, encode, decode.

The estimator runs the same jobs as the command line (:mod:`vaegmm.pipeline`, :mod:`vaegmm.training`,
:mod:`vaegmm.fewlabel`, :mod:`vaegmm.novelty`) and saves and loads the same files, so a model trained by
``vaegmm train`` loads here and the other way round.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from .config import GMMConfig, NoveltyConfig, TrainConfig, VAEConfig
from .data import UNLABELLED, Dataset, as_images, check_labelled_set, check_same_image_shape
from .errors import DataError



class VAEGMM:
    """A VAE learnt on images, and a Gaussian mixture on its latent space classifying them from a few labels.

    Parameters
    ----------
    vae : VAEConfig, optional
        The model's architecture and loss (its ``image_shape`` is taken from the data).
    train : TrainConfig, optional
        The optimisation. Its ``seed`` is replaced by ``random_state``.
    gmm : GMMConfig, optional
        The mixture and its few-label fit.
    novelty : NoveltyConfig, optional
        How the novelty threshold is calibrated.
    n_components : int or None
        Components of the unsupervised mixture that ``fit(X)`` without labels fits; its classes are then
        the component indices. Ignored when labels are given.
    random_state : int
        Seeds the VAE's training (``torch.manual_seed``) and the mixture's fit.
    device : str
        "auto" (a GPU when present), "cpu" or "cuda".
    verbose : bool
        Progress output while training (off by default).

    Attributes
    ----------
    model_ : vaegmm.model.VAE
    gmm_ : vaegmm.gmm.GaussianMixture
    novelty_ : vaegmm.novelty.NoveltyDetector
    classes_ : ndarray (C,)
    image_shape_ : tuple (H, W)
    history_ : list of dict, one per epoch
    companion_ : dict or None
        What the companion VAE was (latent size, epochs, seconds, final loss; ``unsettled_disagreement`` when an
        unsettled fit called for it, ``GMMConfig.companion_latent_dim`` unset), when one was trained; it is not
        kept. None without one, and after ``load``.
    """

    def __init__(self, *, vae: VAEConfig | None = None, train: TrainConfig | None = None, gmm: GMMConfig | None = None,
                 novelty: NoveltyConfig | None = None, n_components: int | None = None, random_state: int = 0,
                 device: str = "auto", verbose: bool = False) -> None:
        self.vae = vae
        self.train = train
        self.gmm = gmm
        self.novelty = novelty
        self.n_components = n_components
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # --- scikit-learn's parameter protocol --------------------------------------------------

    _PARAMS = ("vae", "train", "gmm", "novelty", "n_components", "random_state", "device", "verbose")

    def get_params(self, deep: bool = True) -> dict:
        """The constructor's parameters (configs are immutable, so ``deep`` changes nothing)."""
        return {name: getattr(self, name) for name in self._PARAMS}

    def set_params(self, **params) -> "VAEGMM":
        unknown = set(params) - set(self._PARAMS)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)} for VAEGMM; valid ones are {list(self._PARAMS)}.")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.get_params().items() if v != VAEGMM().get_params()[k]}
        return "VAEGMM(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"

    # --- fitting ---------------------------------------------------------------------------

    def fit(self, X, y=None) -> "VAEGMM":
        """Train the VAE on the images of X (it never reads y), then fit the mixture.

        On a small X, or with a latent above 2-D (``NoveltyConfig.share_for``), a seeded share of the unlabelled
        images is kept out of the VAE's training to calibrate the novelty threshold on; otherwise the VAE trains
        on every image.

        X : array (N, H, W) or (N, H·W), uint8 0-255 or float 0-1.
        y : array (N,) of integer classes with -1 for unlabelled images, or None. With labels, the mixture
            is seeded by the labelled images (the few-label fit); without, an unsupervised mixture of
            ``n_components`` is fitted.

        When the few-label fit's candidates disagree on many images in a 2-D latent (the classes overlap there)
        and ``GMMConfig.companion_latent_dim`` and ``seedings`` are unset, a 10-D companion VAE is trained and
        the fit redone within the partition that label spreading over its latent gives. Where none is trained,
        such a fit in a latent under 10-D warns :class:`vaegmm.errors.UnsettledFitWarning` (a larger
        ``latent_dim`` is advised).
        """
        from .model import encode_statistics
        from .novelty import NoveltyDetector, calibration_split, novelty_statistics
        from .pipeline import CompanionMeans, companion_trainer, few_label_fit
        from .training import pick_device, train_vae

        images = self._images(X, "X")
        labelled = None
        if y is not None:
            y = self._labels(y, len(images))
            mask = y != UNLABELLED
            labelled = Dataset(images[mask], y[mask], "y (the labelled images of X)")
            check_labelled_set(labelled)
        elif not self.n_components or self.n_components < 1:
            raise ValueError("fit(X) without labels fits an unsupervised mixture: give n_components (>= 1), or "
                             "labels y with -1 for the unlabelled images.")
        vae = replace(self.vae or VAEConfig(), image_shape=images.shape[1:])
        if labelled is not None:  # GMM settings that leave no candidate fit fail here, before any training
            (self.gmm or GMMConfig()).for_latent(vae.latent_dim)
        train = replace(self.train or TrainConfig(), seed=self.random_state)
        novelty = self.novelty or NoveltyConfig()
        # Calibration images are drawn from the unlabelled ones: every labelled image seeds the mixture.
        unlabelled_rows = np.flatnonzero(~mask) if labelled is not None else np.arange(len(images))
        share = novelty.share_for(len(images), train, latent_dim=vae.latent_dim)
        _, held = calibration_split(len(unlabelled_rows), share=share, seed=self.random_state)
        in_fit = np.ones(len(images), dtype=bool)
        in_fit[unlabelled_rows[held]] = False
        device = pick_device(self.device)
        result = train_vae(images[in_fit] if len(held) else images, model_config=vae, train_config=train,
                           device=device, progress=self.verbose)
        model = result.model
        stats = encode_statistics(model, images)  # every image: the labelled seed, the rest fit or calibrate
        if labelled is not None:
            config = self.gmm or GMMConfig()
            unlabelled = ~mask & in_fit
            # The companion trains on the images the VAE trained on, as the command line's does, and the fit
            # reads its means of the unlabelled ones among them.
            train_companion = companion_trainer(images[in_fit], labelled.images, model_config=vae, train_config=train,
                                                device=device, progress=self.verbose, teacher=result.teacher_run)

            def companion(latent_dim: int) -> CompanionMeans:
                means = train_companion(latent_dim)
                return replace(means, points=means.points[unlabelled[in_fit]])  # (N_unlabelled, d)

            # masking copies every unlabelled image; only the "inputs" seeding reads them
            unlabelled_images = images[unlabelled] if config.uses_inputs() and not config.companion_latent_dim else None
            fit, self.companion_ = few_label_fit(stats["mu"][unlabelled], stats["mu"][mask], labelled,
                                                 train_images=unlabelled_images, companion=companion, config=config,
                                                 seed=self.random_state, source="X", progress=self.verbose)
            self.fit_ = fit
            gmm = fit.gmm_
        else:
            gmm = self._unsupervised_mixture(stats["mu"][in_fit])
            self.fit_ = self.companion_ = None
        self.model_, self.gmm_, self.history_ = model, gmm, result.history
        statistics = novelty_statistics(stats, gmm)  # (N, 3)
        self.novelty_ = NoveltyDetector().fit(statistics[in_fit], flag_rate=novelty.flag_rate,
                                              held_out=statistics[~in_fit] if len(held) else None)
        self.classes_ = gmm.classes_
        self.image_shape_ = tuple(images.shape[1:])
        return self

    def _unsupervised_mixture(self, Z: np.ndarray):
        from .clustering import kmeans, kmeans_plus_plus
        from .gmm import GaussianMixture

        config = self.gmm or GMMConfig()
        rng = np.random.default_rng(self.random_state)
        centres, _ = kmeans(Z, kmeans_plus_plus(Z, min(self.n_components, len(Z)), rng))
        return GaussianMixture(reg_covar=config.reg_covar, tol=config.tol, max_iter=config.max_iter,
                               random_state=self.random_state).fit(Z, means_init=centres)

    # --- using the fitted model --------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError("this VAEGMM is not fitted yet; call fit(X, y) or VAEGMM.load(folder) first.")

    def _images(self, X, name: str) -> np.ndarray:
        X = np.asarray(X)
        images = as_images(X, name, "images")
        if hasattr(self, "image_shape_"):
            check_same_image_shape(Dataset(images, None, name), self.image_shape_, model_source="this VAEGMM")
        return images

    @staticmethod
    def _labels(y, n: int) -> np.ndarray:
        y = np.asarray(y)
        if y.shape != (n,):
            raise DataError(f"y: has shape {y.shape} for {n} images; expected one label per image, -1 where unlabelled.")
        if y.dtype.kind not in "iu":
            if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
                y = y.astype(np.int64)
            else:
                raise DataError(f"y: has dtype {y.dtype}; expected integer classes, -1 for unlabelled images.")
        return y.astype(np.int64)

    def transform(self, X) -> np.ndarray:
        """Latent means of the images: (N, latent_dim)."""
        from .model import encode_means

        self._check_fitted()
        return encode_means(self.model_, self._images(X, "X"))

    def inverse_transform(self, Z) -> np.ndarray:
        """Images (N, H, W) in [0, 1] decoded from latent points Z (N, latent_dim)."""
        from .model import decode_latents

        self._check_fitted()
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim != 2 or Z.shape[1] != self.model_.config.latent_dim:
            raise ValueError(f"Z must have shape (N, {self.model_.config.latent_dim}); got {Z.shape}.")
        return decode_latents(self.model_, Z)

    def reconstruct(self, X) -> np.ndarray:
        """Each image decoded from its latent mean: (N, H, W) in [0, 1]."""
        from .model import reconstruct

        self._check_fitted()
        return reconstruct(self.model_, self._images(X, "X"))

    def predict_proba(self, X) -> np.ndarray:
        """Class posteriors (N, C), columns in the order of ``classes_``."""
        Z = self.transform(X)  # (N, latent_dim)
        return self.gmm_.predict_proba(Z)

    def predict(self, X) -> np.ndarray:
        """The class of highest posterior: (N,)."""
        Z = self.transform(X)  # (N, latent_dim)
        return self.gmm_.predict(Z)

    def score_samples(self, X) -> np.ndarray:
        """How typical each image is, higher for more typical (scikit-learn's convention): minus the
        novelty score. Images below ``-novelty_.threshold_`` belong to no known class. (N,)"""
        from .model import encode_statistics
        from .novelty import novelty_statistics

        self._check_fitted()
        stats = encode_statistics(self.model_, self._images(X, "X"))
        return -self.novelty_.score(novelty_statistics(stats, self.gmm_))

    def score(self, X, y) -> float:
        """The course's score on labelled images: the mean of macro and micro F1."""
        from .evaluation import classification_metrics

        y = self._labels(y, len(np.asarray(X)))
        return classification_metrics(y, self.predict(X), self.classes_)["classification"]["score"]

    def sample(self, n: int, class_: int | None = None, *, random_state: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """n images (n, H, W) decoded from the mixture, or from one class's components only, and their classes (n,)."""
        self._check_fitted()
        rng = np.random.default_rng(self.random_state if random_state is None else random_state)
        gmm = self.gmm_
        if class_ is None:
            Z, comp = gmm.sample(n, random_state=int(rng.integers(2**31)))
        else:
            own = np.flatnonzero(gmm.component_classes_ == class_)
            if not len(own):
                raise ValueError(f"class_ {class_!r} is not one of the model's classes {self.classes_.tolist()}.")
            comp = rng.choice(own, size=n, p=gmm.weights_[own] / gmm.weights_[own].sum())
            Z = np.empty((n, gmm.n_features_))
            for k in np.unique(comp):
                Z[comp == k] = gmm.sample(int((comp == k).sum()), random_state=int(rng.integers(2**31)), component=k)[0]
        return self.inverse_transform(Z), gmm.component_classes_[comp]

    # --- files ------------------------------------------------------------------------------

    def save(self, folder) -> Path:
        """Write ``vae.pth`` and ``gmm_params.pkl`` into ``folder`` (created if missing), as ``vaegmm train`` does."""
        from .model import save_model
        from .artefacts import gmm_file_state
        from .storage import save_plain_pickle

        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        # As the few-label fit settled it; the unsupervised mixture settles nothing from the data.
        if self.fit_ is not None:
            settled = self.fit_.config_
        else:
            settled = (self.gmm or GMMConfig()).for_latent(self.model_.config.latent_dim)
        state = gmm_file_state(self.gmm_, config=settled, model=self.model_, novelty=self.novelty_,
                               fit_summary=None if self.fit_ is None else self.fit_.summary(),
                               novelty_config=self.novelty or NoveltyConfig())
        save_model(self.model_, folder / "vae.pth", train_config=replace(self.train or TrainConfig(), seed=self.random_state),
                   extra={"fingerprint": state["vae"]["fingerprint"]})
        save_plain_pickle(state, folder / "gmm_params.pkl")
        return folder

    @classmethod
    def load(cls, folder, *, device: str = "auto") -> "VAEGMM":
        """A fitted VAEGMM from a folder holding ``vae.pth`` and ``gmm_params.pkl`` (written by :meth:`save`,
        ``vaegmm train`` or ``vaegmm demo``). Nothing in the files is executed."""
        from .model import load_model
        from .artefacts import load_gmm_file
        from .training import pick_device

        folder = Path(folder)
        model, payload = load_model(folder / "vae.pth", map_location=pick_device(device))
        gmm, novelty = load_gmm_file(folder / "gmm_params.pkl", model, folder / "vae.pth")
        train = TrainConfig.from_dict(payload["train_config"]) if payload.get("train_config") else None
        estimator = cls(vae=model.config, train=train, random_state=train.seed if train else 0, device=device)
        estimator.model_, estimator.gmm_, estimator.novelty_, estimator.fit_ = model, gmm, novelty, None
        estimator.companion_ = None
        estimator.classes_, estimator.image_shape_, estimator.history_ = gmm.classes_, model.config.image_shape, []
        if novelty is None:
            print(f"note: {folder / 'gmm_params.pkl'} has no novelty calibration; score_samples needs a newer file",
                  file=sys.stderr)
        return estimator
