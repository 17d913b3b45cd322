"""The companion: a second VAE, of another latent size, whose latent means seed the few-label fit.

It is trained on the model's images with the model's settings and seed (GMMConfig.companion_latent_dim), never
sees a label and is not saved. Where the model's teacher already is that VAE, the teacher serves instead.
"""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import torch

from .config import TrainConfig, VAEConfig
from .training import TrainResult, helper_summary, train_vae


def companion_config(model_config: VAEConfig, latent_dim: int) -> VAEConfig:
    """The companion's settings: the model's, with ``latent_dim`` latent dimensions and that size's own defaults for
    the neighbour term (unset: off, but on small sets above 2-D) and no teacher."""
    return replace(model_config, latent_dim=latent_dim, neighbour_weight=None, neighbour_dof=None, teacher_latent_dim=0)


def train_companion(images: np.ndarray, *, model_config: VAEConfig, train_config: TrainConfig, latent_dim: int,
                    device: torch.device | None = None, progress: bool = True) -> TrainResult:
    """Train the companion VAE of ``latent_dim`` latent dimensions (GMMConfig.companion_latent_dim) on the model's
    images, with the model's training settings and seed (one run): its latent means seed the few-label fit."""
    if progress:
        print(f"companion: training a {latent_dim}-D VAE on the same images; the labels are spread over its latent "
              f"means to seed the mixture", file=sys.stderr, flush=True)
    return train_vae(images, model_config=companion_config(model_config, latent_dim),
                     train_config=replace(train_config, restarts=1), device=device, progress=progress)


def companion_of(teacher: TrainResult | None, *, model_config: VAEConfig, latent_dim: int,
                 n_images: int) -> TrainResult | None:
    """The teacher when it already is the companion of ``latent_dim`` dimensions for ``n_images`` images: trained on
    them with the same settings and seed (the companion's neighbour term settling to off, as the teacher's is),
    so training the companion would give the same VAE again; None otherwise."""
    if teacher is None:
        return None
    wanted = companion_config(model_config, latent_dim).for_training_set(n_images)
    return teacher if teacher.model.config == wanted else None


def companion_summary(companion: TrainResult) -> dict:
    """What run.json, the report and the command line say of the companion."""
    return {**helper_summary(companion), "neighbour_weight": companion.model.config.neighbour_weight}


def companion_run(images: np.ndarray, *, model_config: VAEConfig, train_config: TrainConfig, latent_dim: int,
                  device: torch.device | None = None, progress: bool = True,
                  teacher: TrainResult | None = None) -> tuple[TrainResult, dict]:
    """The companion VAE of ``latent_dim`` dimensions for images (N, H, W): ``teacher``, trained on the same images,
    where it already is that companion (:func:`companion_of`), else one trained here (:func:`train_companion`);
    and its summary (:func:`companion_summary`), whose ``teacher`` says which and whose ``seconds`` count only
    the training done here."""
    reused = companion_of(teacher, model_config=model_config, latent_dim=latent_dim, n_images=len(images))
    if reused is None:
        run = train_companion(images, model_config=model_config, train_config=train_config, latent_dim=latent_dim,
                              device=device, progress=progress)
    else:
        if progress:
            print(f"companion: the {latent_dim}-D teacher has the companion's settings, so it serves as the companion "
                  "(no second training)", file=sys.stderr, flush=True)
        run = reused
    summary = {**companion_summary(run), "teacher": reused is not None}
    if reused is not None:
        summary["seconds"] = 0.0  # nothing was trained for it: the teacher's time is on the teacher's line
    return run, summary
