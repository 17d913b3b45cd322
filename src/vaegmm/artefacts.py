"""A run's two files read and written together: what gmm_params.pkl holds, and each file loaded checked against the other.

The model file is a checkpoint (:mod:`vaegmm.model`); the GMM file is a plain pickle (:mod:`vaegmm.storage`) that
records the fingerprint of the VAE whose latent space it was fitted in, so neither is ever used with the wrong other.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .config import GMMConfig, NoveltyConfig
from .data import Dataset, check_same_image_shape
from .errors import ModelFileError
from .gmm import GaussianMixture
from .model import VAE, load_model
from .novelty import NoveltyDetector
from .storage import load_plain_pickle
from .training import pick_device


def model_fingerprint(model: VAE) -> str:
    """A hash of the weights, stored with the GMM so it is never used with another VAE."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def gmm_file_state(gmm: GaussianMixture, *, config: GMMConfig, fit_summary: dict | None, model: VAE,
                   novelty: NoveltyDetector, novelty_config: NoveltyConfig) -> dict:
    """What gmm_params.pkl holds: the mixture, the settings and choices that made it, the novelty
    calibration, and the VAE it belongs to."""
    state = gmm.to_dict()
    state["config"] = config.to_dict()
    if fit_summary is not None:
        state["fit"] = fit_summary
    state["novelty"] = {**novelty.to_dict(), "config": novelty_config.to_dict()}
    state["vae"] = {"latent_dim": model.config.latent_dim, "fingerprint": model_fingerprint(model)}
    return state


def load_gmm_file(gmm_path: str | Path, model: VAE, model_path: str | Path, *,
                  novelty: bool = True) -> tuple[GaussianMixture, NoveltyDetector | None]:
    """Load a GMM file safely, check that it was fitted in this model's latent space, and return the
    mixture with its novelty calibration (None in files written before it existed, or when ``novelty`` is
    False: labels alone do not need it, so a file of an older novelty format still classifies)."""
    state = load_plain_pickle(gmm_path)
    gmm = GaussianMixture.from_dict(state, source=str(gmm_path))
    latent_dim = model.config.latent_dim
    if gmm.n_features_ != latent_dim:
        raise ModelFileError(
            f"{gmm_path}: the GMM has {gmm.n_features_}-D components but {model_path} has a {latent_dim}-D latent "
            "space. Use the GMM file written together with this model by 'train'."
        )
    recorded = state.get("vae", {}).get("fingerprint") if isinstance(state.get("vae"), dict) else None
    if recorded is not None and recorded != model_fingerprint(model):
        raise ModelFileError(
            f"{gmm_path}: was fitted on another model's latent space than {model_path}. Use the GMM file "
            "written together with this model by 'train', or re-run 'train'."
        )
    if not novelty or "novelty" not in state:
        return gmm, None
    return gmm, NoveltyDetector.from_dict(state["novelty"], source=str(gmm_path))


def load_gmm_for(gmm_path: str | Path, model: VAE, model_path: str | Path) -> GaussianMixture:
    """The mixture of :func:`load_gmm_file`, without its novelty calibration."""
    return load_gmm_file(gmm_path, model, model_path, novelty=False)[0]


def load_model_for(model_path: str | Path, dataset: Dataset | None = None, *, device: str = "auto") -> VAE:
    model, _ = load_model(model_path, map_location=pick_device(device))
    if dataset is not None:
        check_same_image_shape(dataset, model.config.image_shape, model_source=str(model_path))
    return model
