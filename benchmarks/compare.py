"""vaegmm's defaults against the recipe everyone copies, on the same machine and data, in one run.

The peer is pytorch/examples' VAE (MLP 784-400-z, ReLU, sigmoid output, BCE summed + KL, Adam 1e-3,
batch 128) with z = 2 and 30 epochs, followed by scikit-learn's GaussianMixture seeded with the
validation class means. Both are scored on the course's test file:

- score (mean of macro and micro F1) with the course's 15 validation labels;
- score over 10 seeded draws of 5 labels per digit from the training set (median, worst);
- SSIM and 1 - MSE of reconstructions; test ELBO per image; training wall time (best of --repeats).

    python benchmarks/compare.py [--data ../shared/data/mnist_1_4_8] [--out benchmarks/results/compare.json]
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import course_parser, labelled_draws, load_course
from torch import nn

from vaegmm.metrics import classification_report, one_minus_mse, ssim
from vaegmm.model import (
    TrainConfig,
    VAEConfig,
    count_parameters,
    elbo_per_image,
    encode_means,
    reconstruct,
)
from vaegmm.pipeline import GMMOptions
from vaegmm.training import train_vae


class PeerVAE(nn.Module):
    """pytorch/examples' VAE with a 2-D latent; decode_logits/decode so vaegmm's evaluation helpers apply."""

    def __init__(self, image_shape=(28, 28), hidden=400, latent=2):
        super().__init__()
        n = int(np.prod(image_shape))
        self.config = VAEConfig(image_shape=image_shape, hidden_sizes=(hidden,), latent_dim=latent)
        self.fc1, self.fc21, self.fc22 = nn.Linear(n, hidden), nn.Linear(hidden, latent), nn.Linear(hidden, latent)
        self.fc3, self.fc4 = nn.Linear(latent, hidden), nn.Linear(hidden, n)

    def encode(self, x):
        h = F.relu(self.fc1(x.reshape(len(x), -1)))
        return self.fc21(h), self.fc22(h)

    def decode_logits(self, z):
        return self.fc4(F.relu(self.fc3(z)))

    def decode(self, z):
        return torch.sigmoid(self.decode_logits(z)).reshape(len(z), *self.config.image_shape)

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.decode_logits(z)), mu, logvar


def train_peer(images: np.ndarray, *, epochs=30, batch_size=128, lr=1e-3) -> tuple[PeerVAE, float]:
    torch.manual_seed(0)
    start = time.perf_counter()
    model = PeerVAE(images.shape[1:])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    data = torch.as_tensor(images).reshape(len(images), -1)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(data)).split(batch_size):
            x = data[idx]
            recon, mu, logvar = model(x)
            bce = F.binary_cross_entropy(recon, x, reduction="sum")
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            opt.zero_grad()
            (bce + kld).backward()
            opt.step()
    model.eval()
    return model, time.perf_counter() - start


def peer_gmm(Z, Z_lab, y_lab):
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    classes = np.unique(y_lab)
    means = np.stack([Z_lab[y_lab == c].mean(0) for c in classes])
    gmm = SkGaussianMixture(len(classes), covariance_type="full", means_init=means, random_state=0).fit(Z)
    return lambda X: classes[gmm.predict(X)]


def vaegmm_gmm(Z, Z_lab, y_lab):
    gmm = GMMOptions().build(random_state=0).fit_seeded(Z, Z_lab, y_lab)
    return gmm.predict


def evaluate(name, model, seconds, fit, train, val, test) -> dict:
    Z, Z_val, Z_test = encode_means(model, train.images), encode_means(model, val.images), encode_means(model, test.images)
    course = classification_report(test.labels, fit(Z, Z_val, val.labels)(Z_test))["score"]
    draws = [classification_report(test.labels, fit(Z, Z[idx], train.labels[idx])(Z_test))["score"]
             for idx in labelled_draws(train.labels, np.unique(val.labels))]
    recon = reconstruct(model, test.images)
    out = {
        "name": name, "parameters": count_parameters(model), "train_seconds": seconds,
        "score_course_labels": course, "score_draws": draws,
        "score_draws_median": float(np.median(draws)), "score_draws_worst": float(np.min(draws)),
        "ssim": ssim(test.images, recon), "one_minus_mse": one_minus_mse(test.images, recon),
        "test_elbo_per_image": elbo_per_image(model, test.images),
    }
    print(json.dumps({k: v for k, v in out.items() if k != "score_draws"}), flush=True)
    return out


def main() -> None:
    parser = course_parser(__doc__, "compare.json")
    parser.add_argument("--repeats", type=int, default=2, help="timed trainings of each recipe (the best counts)")
    args = parser.parse_args()
    train, val, test = load_course(args.data)

    # Training is timed args.repeats times for each, interleaved, and the best time counts: on a shared
    # 2-core machine single timings vary by +-15%. Both trainings are seeded, so every repeat gives the same model.
    peer_times, our_times = [], []
    for _ in range(args.repeats):
        peer_model, seconds = train_peer(train.images)
        peer_times.append(seconds)
        result = train_vae(train.images, model_config=VAEConfig(image_shape=train.image_shape), train_config=TrainConfig(),
                           device=torch.device("cpu"), progress=False)
        our_times.append(result.seconds)
    peer = evaluate("peer: pytorch/examples VAE (784-400-2, 30 epochs) + seeded sklearn GMM", peer_model, min(peer_times),
                    peer_gmm, train, val, test)
    ours = evaluate("vaegmm defaults", result.model, min(our_times), vaegmm_gmm, train, val, test)
    peer["train_seconds_all"], ours["train_seconds_all"] = peer_times, our_times
    report = {
        "peer": peer, "vaegmm": ours, "time_ratio_vaegmm_over_peer": ours["train_seconds"] / peer["train_seconds"],
        "vaegmm_config": {"model": VAEConfig().to_dict(), "train": TrainConfig().to_dict(), "gmm": GMMOptions().__dict__},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"time ratio vaegmm / peer: {report['time_ratio_vaegmm_over_peer']:.2f}; saved {args.out}")


if __name__ == "__main__":
    main()
