"""The three jobs (train, reconstruct, classify) as functions shared by every front end."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .data import Dataset, check_labelled_set, check_same_image_shape
from .errors import DataError, ModelFileError
from .gmm import GaussianMixture
from .metrics import classification_report, one_minus_mse, ssim
from .model import TrainConfig, VAE, VAEConfig, count_parameters, encode_means, load_model, reconstruct, save_model
from .storage import atomic_output, atomic_write_bytes, check_output_path, load_plain_pickle, save_plain_pickle
from .training import pick_device, train_vae


@dataclass(frozen=True)
class GMMOptions:
    """How the latent mixture is fitted (see :class:`vaegmm.gmm.GaussianMixture`)."""

    components_per_class: int = 4
    reg_covar: float = 1e-6
    tol: float = 1e-4
    max_iter: int = 300
    joint_em: bool = True

    def build(self, *, random_state: int) -> GaussianMixture:
        return GaussianMixture(**asdict(self), random_state=random_state)


def model_fingerprint(model: VAE) -> str:
    """A hash of the weights, stored with the GMM so it is never used with another VAE."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def environment() -> dict:
    return {
        "vaegmm": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "numpy": np.__version__, "platform": platform.platform(), "threads": torch.get_num_threads(),
    }


def fit_gmm(model: VAE, train: Dataset, labelled: Dataset, *, options: GMMOptions, seed: int) -> GaussianMixture:
    """EM on the training images' latent means, seeded (and anchored) by the labelled images."""
    z_train = encode_means(model, train.images)  # (N, latent_dim)
    z_labelled = encode_means(model, labelled.images)  # (M, latent_dim)
    return options.build(random_state=seed).fit_seeded(z_train, z_labelled, labelled.labels)


def train_and_fit(
    train: Dataset,
    labelled: Dataset,
    *,
    model_config: VAEConfig,
    train_config: TrainConfig,
    gmm_options: GMMOptions,
    model_path: str | Path,
    gmm_path: str | Path,
    log_path: str | Path | None = None,
    run_info_path: str | Path | None = None,
    digits: tuple[int, ...] | None = None,
    data_spec: dict | None = None,
    resume: bool = False,
    progress: bool = True,
    device: str = "auto",
) -> dict:
    """Train the VAE on ``train`` (labels ignored), fit the GMM from ``labelled``, save both.

    Every output path is checked before training starts, so a typo costs no training time.
    """
    for path in (model_path, gmm_path, log_path, run_info_path):
        if path:
            check_output_path(path)
    classes = check_labelled_set(labelled)
    if digits is not None:
        missing = sorted(set(digits) - set(classes.tolist()))
        if missing:
            raise DataError(
                f"{labelled.source}: no labelled image of digit(s) {missing}; found labels {classes.tolist()}. "
                "Add labelled images of every digit, or leave those digits out."
            )
        keep = np.isin(labelled.labels, digits)
        labelled = Dataset(labelled.images[keep], labelled.labels[keep], labelled.source)
    check_same_image_shape(labelled, train.image_shape, model_source=f"being trained on {train.source}")
    model_config = VAEConfig(**{**model_config.to_dict(), "image_shape": train.image_shape})
    checkpoint_path = Path(str(model_path) + ".ckpt")
    torch_device = pick_device(device)
    result = train_vae(
        train.images, model_config=model_config, train_config=train_config, device=torch_device,
        log_path=log_path, checkpoint_path=checkpoint_path, resume=resume, progress=progress,
    )
    model = result.model
    fit_start = time.perf_counter()
    gmm = fit_gmm(model, train, labelled, options=gmm_options, seed=train_config.seed)
    gmm_seconds = time.perf_counter() - fit_start
    fingerprint = model_fingerprint(model)
    summary = {
        "parameters": count_parameters(model),
        "train_seconds": result.seconds,
        "gmm_seconds": gmm_seconds,
        "device": result.device,
        "final_epoch": result.history[-1],
        "gmm_converged": bool(gmm.converged_),
        "gmm_iterations": int(gmm.n_iter_),
        "gmm_partition_rounds": int(gmm.partition_rounds_),
        "gmm_joint_em_accepted": bool(gmm.joint_em_accepted_),
        "gmm_labelled_agreement": gmm.labelled_agreement_,
        "gmm_chosen": {"seeding": gmm.seeding_, "schedule": gmm.schedule_, "boundary_fraction": gmm.boundary_fraction_},
        "gmm_candidates": gmm.candidates_,
    }
    save_model(model, model_path, train_config=train_config, extra={"fingerprint": fingerprint, "train_seconds": result.seconds})
    state = gmm.to_dict()
    state["vae"] = {"latent_dim": model_config.latent_dim, "fingerprint": fingerprint}
    save_plain_pickle(state, gmm_path)
    if run_info_path:
        info = {
            "model_config": model_config.to_dict(), "train_config": train_config.to_dict(),
            "gmm_options": asdict(gmm_options), "environment": environment(), "summary": summary,
            "train_file": train.source, "labelled_file": labelled.source, "n_train": len(train),
            "n_labelled": len(labelled), "history": result.history, "data": data_spec,
        }
        atomic_write_bytes(run_info_path, json.dumps(info, indent=2).encode())
    checkpoint_path.unlink(missing_ok=True)  # the finished model supersedes it
    return summary


def load_gmm_for(gmm_path: str | Path, model: VAE, model_path: str | Path) -> GaussianMixture:
    """Load a GMM file safely and check that it was fitted in this model's latent space."""
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
    return gmm


def load_model_for(model_path: str | Path, dataset: Dataset | None = None, *, device: str = "auto") -> VAE:
    model, _ = load_model(model_path, map_location=pick_device(device))
    if dataset is not None:
        check_same_image_shape(dataset, model.config.image_shape, model_source=str(model_path))
    return model


def reconstruct_to_file(model: VAE, dataset: Dataset, out_path: str | Path) -> dict:
    """Write reconstructions (float32 in [0, 1], the input's shape) under key ``data``; return metrics."""
    check_output_path(out_path)
    recon = reconstruct(model, dataset.images)  # (N, H, W)
    shape = dataset.stored_shape or recon.shape
    with atomic_output(out_path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, data=recon.reshape(shape).astype(np.float32))
    return {"ssim": ssim(dataset.images, recon), "one_minus_mse": one_minus_mse(dataset.images, recon), "n_images": len(recon)}


def classify_to_file(model: VAE, gmm: GaussianMixture, dataset: Dataset, out_path: str | Path) -> tuple[np.ndarray, dict | None]:
    """Write ``Predicted_Label`` rows in input order; return predictions and metrics if labels exist."""
    check_output_path(out_path)
    predictions = gmm.predict(encode_means(model, dataset.images))  # (N,)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["Predicted_Label"])
    writer.writerows([int(p)] for p in predictions)
    atomic_write_bytes(out_path, buffer.getvalue().encode())
    metrics = classification_report(dataset.labels, predictions) if dataset.labels is not None else None
    return predictions, metrics
