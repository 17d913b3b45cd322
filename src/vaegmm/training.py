"""The training loop: Adam on the negative ELBO, data kept as one tensor, a checkpoint per epoch."""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import TrainConfig, VAEConfig
from .errors import ConfigError, ModelFileError
from .model import VAE, build_model, vae_loss
from .neighbours import neighbour_affinities, neighbour_embedding_loss
from .storage import atomic_output, atomic_write_bytes

CHECKPOINT_FORMAT = "vaegmm.checkpoint"


def pick_device(name: str = "auto") -> torch.device:
    """"auto" takes a GPU when one is present, the CPU otherwise; a GPU asked for by name must be there."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a device torch knows; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        # Without this check the first tensor moved there fails deep inside torch with a driver message.
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            raise ConfigError(f"--device {name!r} asked for a GPU, but torch sees {count} CUDA device(s) here; "
                              "use --device auto (a GPU when present) or --device cpu")
    return device


@dataclass
class TrainResult:
    model: VAE
    history: list[dict]
    seconds: float
    device: str
    seed: int = 0  # the seed of the VAE kept
    restart_losses: list[float] = field(default_factory=list)  # the final training loss of each restart, in seed order
    teacher: dict | None = None  # the teacher VAE's latent size, training time and final loss, when one was trained
    # The finished teacher itself, so that a companion of the same settings can be the teacher (companion.companion_of)
    teacher_run: "TrainResult | None" = field(default=None, repr=False)


def _rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def images_digest(images: np.ndarray) -> str:
    """A short hash of the training images (N, H, W): a checkpoint resumes only on the images it was made on."""
    import hashlib

    return hashlib.blake2b(np.ascontiguousarray(images, dtype=np.float32).tobytes(), digest_size=16).hexdigest()


def _save_checkpoint(path, *, model, optimizer, epoch, history, device, model_config, train_config, data):
    with atomic_output(path) as tmp:
        torch.save(
            {
                "format": CHECKPOINT_FORMAT,
                "config": model_config.to_dict(),
                "train_config": train_config.to_dict(),
                "data": data,
                "epoch": epoch,
                "history": history,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": _rng_state(device),
            },
            tmp,
        )


def _write_log(path, history: list[dict]) -> None:
    """The training log: one JSON line per epoch, replaced whole."""
    atomic_write_bytes(path, "".join(json.dumps(h) + "\n" for h in history).encode())


def _load_checkpoint(path: Path, *, model_config, train_config, device, data: dict) -> dict:
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise ModelFileError(f"{path}: cannot read the training checkpoint ({exc}). Delete it to start afresh.") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{path}: not a vaegmm training checkpoint. Delete it to start afresh.")
    try:
        same_model = VAEConfig.from_dict(ckpt["config"]) == model_config
    except (ConfigError, TypeError):
        same_model = False
    if not same_model or {k: v for k, v in ckpt["train_config"].items() if k != "epochs"} != {
        k: v for k, v in train_config.to_dict().items() if k != "epochs"
    }:
        raise ModelFileError(
            f"{path}: this checkpoint was made with other settings ({ckpt['config']}, {ckpt['train_config']}); "
            "resume with the same settings, or delete it to start afresh."
        )
    # Checkpoints written before the images were recorded carry no "data": they resume as before.
    if ckpt.get("data", data) != data:
        raise ModelFileError(
            f"{path}: this checkpoint was trained on other images ({ckpt['data']['n_images']} of them) than these "
            f"({data['n_images']}): resume with the same --train file and --calibration-share, or delete it to start afresh."
        )
    return ckpt


def teacher_config(model_config: VAEConfig) -> VAEConfig:
    """The teacher's settings: the model's, with the teacher's latent size, no neighbour term and no teacher."""
    return replace(model_config, latent_dim=model_config.teacher_latent_dim, neighbour_weight=0.0, neighbour_dof=None,
                   teacher_latent_dim=0)


def teacher_checkpoint_path(checkpoint_path: str | Path) -> Path:
    """Where the teacher's checkpoint lies beside the model's: kept until the model's training is done, so that a
    resumed run finds the teacher it started with."""
    return Path(str(checkpoint_path) + ".teacher")


def train_teacher(images: np.ndarray, *, model_config: VAEConfig, train_config: TrainConfig, device: torch.device,
                  checkpoint_path: str | Path | None = None, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train the VAE of ``model_config.teacher_latent_dim`` latent dimensions whose latent means give the model's
    neighbour-embedding term its affinities, with the model's training settings and seed (one run)."""
    if progress:
        print(f"teacher: training a {model_config.teacher_latent_dim}-D VAE first; its latent means give the "
              f"neighbour-embedding term its affinities", file=sys.stderr, flush=True)
    return train_vae(images, model_config=teacher_config(model_config), train_config=replace(train_config, restarts=1),
                     device=device, checkpoint_path=teacher_checkpoint_path(checkpoint_path) if checkpoint_path else None,
                     resume=resume, progress=progress)


def train_vae(
    images: np.ndarray,
    *,
    model_config: VAEConfig,
    train_config: TrainConfig,
    device: torch.device | None = None,
    log_path: str | Path | None = None,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    teacher: TrainResult | None = None,
) -> TrainResult:
    """Train a VAE on images (N, H, W) float32 in [0, 1] for ``train_config.epochs_for(N)`` epochs; labels are never seen here.

    Writes one JSON line per epoch to ``log_path`` and, after every epoch, a checkpoint
    (weights, optimizer, epoch, RNG state) to ``checkpoint_path``; with ``resume`` an
    existing checkpoint is continued, giving the same model as an uninterrupted run.
    With ``model_config.teacher_latent_dim`` set, a teacher VAE is trained first (:func:`train_teacher`) unless
    ``teacher``, a finished one, is given. With ``train_config.restarts`` above 1, see :func:`train_restarts`.
    """
    settled = model_config.for_training_set(len(images))
    if progress and model_config.neighbour_weight is None and settled.neighbour_weight > 0:  # say so: nobody asked for it
        print(f"{len(images)} images are fewer than --small-set-images {model_config.small_set_images}: the "
              f"{model_config.latent_dim}-D latent trains with the neighbour-embedding term at "
              f"{settled.neighbour_weight:g} (--neighbour-weight 0 turns it off)", file=sys.stderr, flush=True)
    model_config = settled
    if train_config.restarts > 1:
        if resume:
            raise ConfigError(f"resuming continues one training run; it cannot be combined with restarts "
                              f"({train_config.restarts}). Train with --restarts 1 to resume, or start afresh.")
        return train_restarts(images, model_config=model_config, train_config=train_config, device=device,
                              log_path=log_path, progress=progress)
    device = device or pick_device()
    start = time.perf_counter()
    if model_config.teacher_latent_dim and teacher is None:
        teacher = train_teacher(images, model_config=model_config, train_config=train_config, device=device,
                                checkpoint_path=checkpoint_path, resume=resume, progress=progress)
    teacher_model = teacher.model.to(device).eval() if model_config.teacher_latent_dim else None
    torch.manual_seed(train_config.seed)
    model = build_model(model_config).to(device)
    # The fused kernel updates every parameter in one pass: a few percent faster on the CPU, same results each run.
    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.lr, fused=True)
    history: list[dict] = []
    first_epoch = 1
    checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
    data_record = {"n_images": len(images), "digest": images_digest(images)} if checkpoint_path else None
    if resume and checkpoint_path and checkpoint_path.is_file():
        ckpt = _load_checkpoint(checkpoint_path, model_config=model_config, train_config=train_config, device=device,
                                data=data_record)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        _set_rng_state(ckpt["rng"], device)
        history = list(ckpt["history"])
        first_epoch = int(ckpt["epoch"]) + 1

    data = torch.as_tensor(images, dtype=torch.float32).reshape(len(images), -1).to(device)  # (N, input_dim)
    n = len(data)
    n_batches = math.ceil(n / train_config.batch_size)
    epochs = train_config.epochs_for(n)
    if progress and epochs > train_config.epochs:  # say so: the user asked for fewer
        print(f"{n} images make {n_batches} steps an epoch: training {epochs} epochs instead of {train_config.epochs} "
              f"to reach --min-steps {train_config.min_steps} (--min-steps 0 trains exactly --epochs)",
              file=sys.stderr, flush=True)
    # A live bar only where someone watches it; a log or CI transcript gets one line per epoch instead
    # of hundreds of carriage-return frames.
    live = progress and sys.stderr.isatty()
    bar = tqdm(
        total=(epochs - first_epoch + 1) * n_batches,
        disable=not live,
        unit="batch",
        file=sys.stderr,
        dynamic_ncols=True,
    )
    # Per pixel, so that the term keeps its balance with the reconstruction, a sum over pixels, at any image size.
    neighbour_weight = model_config.neighbour_weight * model_config.input_dim
    model.train()
    for epoch in range(first_epoch, epochs + 1):
        epoch_start = time.perf_counter()
        bar.set_description(f"epoch {epoch}/{epochs}")
        perm = torch.randperm(n).to(device)  # (N,)
        sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss, recon, kl summed over images
        for b in range(n_batches):
            x = data[perm[b * train_config.batch_size: (b + 1) * train_config.batch_size]]  # (B, input_dim)
            lr = train_config.lr_at((epoch - 1) * n_batches + b, epochs * n_batches)
            for group in optimizer.param_groups:
                group["lr"] = lr
            logits, mu, logvar = model(x)
            loss, recon, kl = vae_loss(logits, x, mu, logvar, beta=model_config.beta, recon_loss=model_config.recon_loss)
            if neighbour_weight > 0 and len(x) > 1:  # a batch of one image has no neighbours
                with torch.no_grad():  # the affinities are targets, not parameters
                    # (B, teacher_latent_dim) teacher latent means, or the (B, input_dim) pixels
                    neighbours_of = x if teacher_model is None else teacher_model.encode(x)[0]
                    affinities = neighbour_affinities(neighbours_of, perplexity=model_config.perplexity)  # (B, B)
                loss = loss + neighbour_weight * neighbour_embedding_loss(affinities, mu, dof=model_config.neighbour_dof)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums += torch.stack([loss.detach(), recon.detach(), kl.detach()]).double() * len(x)
            bar.update(1)
            if live and (b % 20 == 0 or b == n_batches - 1):
                seen = min((b + 1) * train_config.batch_size, n)
                loss_m, recon_m, kl_m = (sums / seen).tolist()
                bar.set_postfix(loss=f"{loss_m:.2f}", recon=f"{recon_m:.2f}", kl=f"{kl_m:.2f}", refresh=False)
        loss_m, recon_m, kl_m = (sums / n).tolist()
        if not math.isfinite(loss_m) or not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            bar.close()
            raise FloatingPointError(
                f"training diverged at epoch {epoch} (loss {loss_m}); lower the learning rate (--lr)."
            )
        history.append(
            {"epoch": epoch, "loss": loss_m, "recon": recon_m, "kl": kl_m, "seconds": time.perf_counter() - epoch_start}
        )
        if progress and not live:
            print(f"epoch {epoch}/{epochs}: loss {loss_m:.2f} (reconstruction {recon_m:.2f}, "
                  f"KL {kl_m:.2f}), {history[-1]['seconds']:.1f} s", file=sys.stderr, flush=True)
        if log_path:
            _write_log(log_path, history)
        if checkpoint_path:
            _save_checkpoint(
                checkpoint_path, model=model, optimizer=optimizer, epoch=epoch, history=history,
                device=device, model_config=model_config, train_config=train_config, data=data_record,
            )
    bar.close()
    model.eval()
    return TrainResult(model=model, history=history, seconds=time.perf_counter() - start, device=str(device),
                       seed=train_config.seed, restart_losses=[history[-1]["loss"]],
                       teacher=teacher_summary(teacher, model_config),
                       teacher_run=teacher if model_config.teacher_latent_dim else None)


def helper_summary(result: TrainResult) -> dict:
    """A finished helper VAE (teacher or companion) as run.json and the command line give it."""
    return {"latent_dim": result.model.config.latent_dim, "seconds": result.seconds,
            "epochs": result.history[-1]["epoch"], "final_loss": result.history[-1]["loss"]}


def teacher_summary(teacher: TrainResult | None, model_config: VAEConfig) -> dict | None:
    """What run.json and the command line say of the teacher: None when the model had none."""
    if teacher is None or not model_config.teacher_latent_dim:
        return None
    return helper_summary(teacher)


def train_restarts(images: np.ndarray, *, model_config: VAEConfig, train_config: TrainConfig,
                   device: torch.device | None = None, log_path: str | Path | None = None,
                   progress: bool = True) -> TrainResult:
    """Train ``train_config.restarts`` VAEs with seeds ``seed``, ``seed + 1``, ... and keep the one with the
    lowest final training loss, the objective they all minimise (as ``n_init`` does for scikit-learn's
    mixtures). No checkpoints are written; ``log_path`` receives the kept run's epochs."""
    start = time.perf_counter()
    device = device or pick_device()
    # One teacher for all restarts: they differ in their own seeds, not in the affinities they are taught.
    teacher = (train_teacher(images, model_config=model_config, train_config=train_config, device=device,
                             progress=progress) if model_config.teacher_latent_dim else None)
    best, losses = None, []
    for i in range(train_config.restarts):
        run = train_vae(images, model_config=model_config, progress=progress, device=device, teacher=teacher,
                        train_config=replace(train_config, seed=train_config.seed + i, restarts=1))
        losses.append(run.history[-1]["loss"])
        if progress:
            print(f"restart {i + 1}/{train_config.restarts} (seed {run.seed}): final loss {losses[-1]:.2f}",
                  file=sys.stderr, flush=True)
        if best is None or losses[-1] < best.history[-1]["loss"]:
            best = run
    if log_path:
        _write_log(log_path, best.history)
    return replace(best, seconds=time.perf_counter() - start, restart_losses=losses)
