"""The VAE: an MLP encoder to a Gaussian latent, an MLP decoder to pixel intensities.

Architecture and loss settings live in :class:`~vaegmm.config.VAEConfig`, which is saved inside
every ``vae.pth`` beside the weights, so any command rebuilds the model without flags.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import RECON_LOSSES, TrainConfig, VAEConfig
from .errors import ConfigError, ModelFileError
from .similarity import edge_correlation, pearson_rows

FORMAT = "vaegmm.vae"
FORMAT_VERSION = 1


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers)


class VAE(nn.Module):
    """Kingma & Welling (2013), "Auto-Encoding Variational Bayes", with MLPs."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        hidden = list(config.hidden_sizes)
        self.encoder = _mlp([config.input_dim, *hidden])
        last = hidden[-1] if hidden else config.input_dim
        self.fc_mu = nn.Linear(last, config.latent_dim)
        self.fc_logvar = nn.Linear(last, config.latent_dim)
        self.decoder = _mlp([config.latent_dim, *reversed(hidden)])
        first = hidden[0] if hidden else config.latent_dim
        self.fc_out = nn.Linear(first, config.input_dim)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x.reshape(len(x), -1))  # (B, hidden[-1])
        return self.fc_mu(h), self.fc_logvar(h)  # (B, latent_dim) each

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        std = torch.exp(0.5 * logvar)
        return mu + std * torch.randn_like(std)  # (B, latent_dim)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc_out(self.decoder(z))  # (B, input_dim)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel intensities in [0, 1], shaped like the images: (B, *image_shape)."""
        return torch.sigmoid(self.decode_logits(z)).reshape(len(z), *self.config.image_shape)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        return self.decode_logits(self.reparameterize(mu, logvar)), mu, logvar


def vae_loss(
    logits: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    *,
    beta: float,
    recon_loss: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Negative ELBO per image, averaged over the batch: (loss, reconstruction, KL).

    Reconstruction is summed over pixels (Bernoulli log-likelihood for "bce", squared error
    for "mse"); the KL to N(0, I) is the closed form of Kingma & Welling (2013), Appendix B:
    -½ Σ (1 + log σ² - μ² - σ²).
    """
    x = x.reshape(len(x), -1)  # (B, input_dim)
    if recon_loss == "bce":
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)  # (B,)
    elif recon_loss == "mse":
        recon = ((torch.sigmoid(logits) - x) ** 2).sum(dim=1)  # (B,)
    else:
        raise ValueError(f"recon_loss must be one of {RECON_LOSSES}; got {recon_loss!r}.")
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)  # (B,)
    recon, kl = recon.mean(), kl.mean()
    return recon + beta * kl, recon, kl


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(config: VAEConfig) -> VAE:
    """A freshly initialised VAE (the config has already refused oversized architectures)."""
    return VAE(config)


def save_model(model: VAE, path: str | Path, *, train_config: TrainConfig | None = None, extra: dict | None = None) -> None:
    """Save config + weights as plain tensors and dicts (loadable with weights_only=True)."""
    from .storage import atomic_output

    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "train_config": train_config.to_dict() if train_config else None,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)


def load_model(path: str | Path, *, map_location: str | torch.device = "cpu") -> tuple[VAE, dict]:
    """Rebuild a VAE from ``path``; never executes code from the file. Returns (model, payload)."""
    path = Path(path)
    fix = "Re-create it with the 'train' command."
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file. Check the path, or create it with the 'train' command.")
    if path.stat().st_size == 0:
        raise ModelFileError(f"{path}: the model file is empty (0 bytes). {fix}")
    try:
        with warnings.catch_warnings():  # torch warns of a foreign pickle's protocol before refusing it
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt, truncated or foreign files
        from .gmm import FORMAT as GMM_FORMAT
        from .storage import plain_format

        if plain_format(path.read_bytes()) == GMM_FORMAT:  # the course's two file arguments swapped
            raise ModelFileError(
                f"{path}: is a vaegmm GMM parameter file (what 'train' writes as gmm_params.pkl), not a model file. "
                "Give the model file (vae.pth) here; the course's commands take the model file first and the GMM "
                "file second."
            ) from exc
        raise ModelFileError(
            f"{path}: not a readable vaegmm model file ({_load_failure(exc)}). vaegmm loads model files "
            f"with weights_only=True and never runs code from them. {fix}"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = type(payload).__name__ if not isinstance(payload, dict) else f"keys {sorted(payload)[:8]}"
        raise ModelFileError(
            f"{path}: not a vaegmm model file (expected a dict with format {FORMAT!r}, found {found}). "
            f"A plain state_dict from another script cannot be used: {fix}"
        )
    if payload.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: model format version {payload.get('format_version')!r}, expected {FORMAT_VERSION}. {fix}")
    try:
        config = VAEConfig.from_dict(payload["config"])
        model = VAE(config)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError, ConfigError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelFileError(
            f"{path}: its weights do not match its recorded architecture ({first[:300]}). {fix}"
        ) from exc
    for name, tensor in model.state_dict().items():
        if not torch.isfinite(tensor).all():
            raise ModelFileError(f"{path}: weight '{name}' holds NaN or infinite values (training diverged?). {fix}")
    model.eval()
    return model, payload


def _load_failure(exc: Exception) -> str:
    """Why torch.load(weights_only=True) refused a file, in a few words. Torch's own message advises
    re-running with weights_only=False, which would run the file's code: the one thing never to do with a
    file that fails here, so only its diagnosis is kept."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # torch colours part of its advice
    # "Unsupported global: GLOBAL m.f was not an allowed global" or "unsupported GLOBAL m.f whose module m is blocked"
    if found := re.search(r"unsupported (?:global: )?GLOBAL (\S+)", text, flags=re.I):
        return f"not loadable safely: it holds a Python object, {found.group(1)}, that only running code could rebuild"
    if found := re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\s*\n|$)", text, flags=re.S):
        return f"not a PyTorch file: {' '.join(found.group(1).split())[:200]}"
    if "weights_only" in text:  # a refusal in a wording not parsed above: never pass torch's advice on
        return "not loadable safely with weights_only=True"
    # The first sentence: torch goes on with guesses ("This is an internal miniz error. If you are seeing ...").
    first = re.split(r"(?<=\.)\s", text.strip().splitlines()[0])[0].rstrip(".") if text.strip() else type(exc).__name__
    kind = "truncated or corrupt" if isinstance(exc, (RuntimeError, zipfile.BadZipFile, EOFError)) else "not loadable"
    return f"{kind}: {first[:200]}"


# --- inference helpers (no gradients, batched so memory stays flat) ------------------------

def _batches(images, batch_size: int, device: torch.device):
    for start in range(0, len(images), batch_size):
        yield torch.as_tensor(images[start: start + batch_size], dtype=torch.float32, device=device)


@torch.no_grad()
def encode_means(model: VAE, images, *, batch_size: int = 4096):
    """Latent means μ of images (N, H, W) in [0, 1]: numpy (N, latent_dim) float64."""
    device = next(model.parameters()).device
    model.eval()
    parts = [model.encode(x)[0].double().cpu() for x in _batches(images, batch_size, device)]
    return torch.cat(parts).numpy()


@torch.no_grad()
def encode_statistics(model: VAE, images, *, batch_size: int = 4096) -> dict[str, np.ndarray]:
    """One encoder and one decoder pass over images (N, H, W) in [0, 1], and what they say of each image:
    ``mu`` and ``logvar`` (N, latent_dim) float64; ``recon_corr`` (N,), the Pearson correlation between
    the image and its reconstruction, the decoded latent mean; ``edge_corr`` (N,), the same between their
    edges (:func:`~vaegmm.similarity.edge_correlation`). Either correlation is 0 where one side is constant."""
    device = next(model.parameters()).device
    model.eval()
    mus, logvars, corrs, edge_corrs = [], [], [], []
    for x in _batches(images, batch_size, device):
        x = x.reshape(len(x), *model.config.image_shape)  # (B, H, W)
        flat = x.reshape(len(x), -1)  # (B, input_dim)
        mu, logvar = model.encode(flat)  # (B, latent_dim) each
        recon = model.decode(mu)  # (B, H, W)
        mus.append(mu.double().cpu()), logvars.append(logvar.double().cpu())
        # float32 sums of one image's pixels: within 1e-6 of float64, 10x faster
        corrs.append(pearson_rows(flat, recon.reshape(len(x), -1)).double().cpu())
        edge_corrs.append(edge_correlation(x, recon).double().cpu())
    return {"mu": torch.cat(mus).numpy(), "logvar": torch.cat(logvars).numpy(), "recon_corr": torch.cat(corrs).numpy(),
            "edge_corr": torch.cat(edge_corrs).numpy()}


@torch.no_grad()
def reconstruct(model: VAE, images, *, batch_size: int = 4096):
    """Decode each image's latent mean: numpy (N, *image_shape) float32 in [0, 1]."""
    device = next(model.parameters()).device
    model.eval()
    parts = [model.decode(model.encode(x)[0]).cpu() for x in _batches(images, batch_size, device)]
    return torch.cat(parts).numpy().astype("float32")


@torch.no_grad()
def decode_latents(model: VAE, z) -> "torch.Tensor":
    """Decode latent points z (N, latent_dim): numpy (N, *image_shape) float32 in [0, 1]."""
    device = next(model.parameters()).device
    model.eval()
    return model.decode(torch.as_tensor(z, dtype=torch.float32, device=device)).cpu().numpy()


@torch.no_grad()
def elbo_per_image(model: VAE, images, *, n_samples: int = 10, seed: int = 0, batch_size: int = 4096) -> float:
    """Mean ELBO in nats per image under a Bernoulli decoder, averaged over n_samples draws of z.

    Uses a private generator so that evaluating never disturbs the global RNG.
    """
    device = next(model.parameters()).device
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    total = 0.0
    for x in _batches(images, batch_size, device):
        x = x.reshape(len(x), -1)  # (B, input_dim)
        mu, logvar = model.encode(x)
        std = torch.exp(0.5 * logvar)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)  # (B,)
        recon = torch.zeros(len(x), device=device, dtype=torch.float64)
        for _ in range(n_samples):
            z = mu + std * torch.randn(std.shape, generator=gen, device=device)
            logits = model.decode_logits(z)
            recon += F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1).double()
        total += float((-(recon / n_samples) - kl.double()).sum())
    return total / len(images)
