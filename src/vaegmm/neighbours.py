"""A neighbour-embedding term for VAE training: images that are near in pixel space (or in a teacher VAE's
latent, :func:`vaegmm.training.train_teacher`) stay near in the latent.

A VAE's 2-D latent keeps classes that share strokes (4 and 9, 3/5/8) in one continuous cloud, with no
low-density gap for a few labels to find. Parametric t-SNE (van der Maaten 2009, "Learning a parametric
embedding by preserving local structure"), added to a VAE's loss as in VAE-SNE (Graving & Couzin 2020),
pulls each image's few nearest pixel-space neighbours in the batch close in the latent and, through
the heavy-tailed Student-t kernel, lets separate groups drift apart. Labels are never used.

Per batch of B images:

- P (B, B): t-SNE's input affinities — for each image a Gaussian over the squared pixel distances (or
  teacher-latent distances) to the others, its precision found by bisection so that its perplexity (2 to the entropy in bits, the
  effective number of neighbours) is ``perplexity``; then symmetrised, P = (P_j|i + P_i|j) / 2B;
- Q (B, B): Student-t affinities of the latent means, (1 + |z_i - z_j|²)⁻¹ normalised over all pairs;
- the loss is KL(P ‖ Q) = Σ P log(P / Q), in nats.
"""

from __future__ import annotations

import math

import torch

# Bisection bounds on the log of the Gaussian precision, in units of 1 / (each row's median squared
# distance): e^-20 is flat over any batch, e^8 puts all weight on the nearest image.
_LOG_PRECISION_BOUNDS = (-20.0, 8.0)
_BISECTION_STEPS = 40  # halves the 28-wide bracket to below 1e-10


def conditional_affinities(x: torch.Tensor, *, perplexity: float) -> torch.Tensor:
    """Rows P_j|i (B, B) of images x (B, F), their pixels or a teacher's latent means: each a Gaussian over the
    squared distances to the other images, zero on the diagonal, summing to 1, with perplexity ``perplexity`` capped at B - 1 (the
    most neighbours a batch holds). B must be at least 2."""
    n = len(x)
    if n < 2:
        raise ValueError(f"neighbour affinities need at least 2 images in a batch; got {n}.")
    target_entropy = math.log(min(perplexity, n - 1))  # nats
    eye = torch.eye(n, dtype=torch.bool, device=x.device)
    d2 = torch.cdist(x, x).pow(2)  # (B, B)
    # Distances in units of each row's median keep the bracket valid whatever the image size or contrast.
    scale = d2.masked_fill(eye, float("nan")).nanmedian(dim=1, keepdim=True).values.clamp_min(torch.finfo(x.dtype).tiny)
    d2 = (d2 / scale).masked_fill(eye, float("inf"))  # (B, B)
    lo = torch.full((n, 1), _LOG_PRECISION_BOUNDS[0], device=x.device, dtype=x.dtype)
    hi = torch.full((n, 1), _LOG_PRECISION_BOUNDS[1], device=x.device, dtype=x.dtype)
    for _ in range(_BISECTION_STEPS):
        mid = (lo + hi) / 2
        log_p = torch.log_softmax(-d2 * mid.exp(), dim=1)  # (B, B)
        entropy = -(log_p.exp() * log_p.masked_fill(eye, 0.0)).sum(dim=1, keepdim=True)  # (B, 1)
        too_flat = entropy > target_entropy  # too many neighbours: sharpen
        lo = torch.where(too_flat, mid, lo)
        hi = torch.where(too_flat, hi, mid)
    return torch.softmax(-d2 * ((lo + hi) / 2).exp(), dim=1)


def neighbour_affinities(x: torch.Tensor, *, perplexity: float) -> torch.Tensor:
    """t-SNE's symmetric input affinities P (B, B) of images x (B, F): zero diagonal, sum 1."""
    conditional = conditional_affinities(x, perplexity=perplexity)  # (B, B)
    return (conditional + conditional.T) / (2 * len(x))


def neighbour_embedding_loss(affinities: torch.Tensor, z: torch.Tensor, *, dof: float = 1.0) -> torch.Tensor:
    """KL(P ‖ Q) in nats between affinities P (B, B) and the Student-t affinities Q of latent points z (B, D).

    Q's kernel is (1 + |z_i - z_j|² / dof)^-(dof + 1)/2; dof = 1 is t-SNE's. van der Maaten (2009) takes
    dof = D - 1 for a D-dimensional embedding: a tail as heavy as t-SNE's is needed against crowding in
    2-D, less so with more room.
    """
    n = len(z)
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    d2 = torch.cdist(z, z).pow(2)  # (B, B)
    # dof = 1 keeps t-SNE's exact arithmetic, so models trained before dof existed retrain bit for bit.
    kernel = (1 + d2).reciprocal() if dof == 1 else (1 + d2 / dof).pow(-(dof + 1) / 2)  # (B, B)
    kernel = kernel.masked_fill(eye, 0.0)
    log_q = torch.log(kernel.masked_fill(eye, 1.0)) - torch.log(kernel.sum())  # (B, B); diagonal unused
    log_p = torch.log(affinities.masked_fill(eye, 1.0).clamp_min(torch.finfo(affinities.dtype).tiny))
    return (affinities * (log_p - log_q)).masked_fill(eye, 0.0).sum()
