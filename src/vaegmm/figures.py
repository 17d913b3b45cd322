"""Every figure of a run, assembled from the model, the GMM and the data (drawing is in :mod:`vaegmm.plots`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ConfigError

FIGURES = {
    "reconstructions": "reconstructions.png",
    "manifold": "generated_manifold.png",
    "prior_samples": "generated_prior_samples.png",
    "component_samples": "generated_per_component.png",
    "latent": "latent_space.png",
    "gmm": "gmm_ellipses.png",
    "curves": "training_curves.png",
    "confusion": "confusion_matrix.png",
}
MANIFOLD_SIDE = 20
MANIFOLD_QUANTILES = (0.05, 0.95)
SAMPLES_PER_ROW = 10


def make_figures(run_dir: Path, *, model, gmm, train, Z, labelled, test, confusion, history) -> dict[str, Path]:
    """Every figure of the report, into RUN_DIR/figures/.

    Z (N, D): the training images' latent means; confusion (C, C) on the test images, or None.
    """
    from scipy.stats import norm

    from . import plots
    from .model import decode_latents, encode_means, reconstruct

    if model.config.latent_dim < 2:
        raise ConfigError(
            f"{run_dir}: the model has a 1-D latent space, but the scatter, ellipse and grid figures need a plane. "
            "Training, reconstruction and classification work with it; for figures and a report, train with "
            "--latent-dim 2 or more."
        )
    folder = run_dir / "figures"
    folder.mkdir(exist_ok=True)
    paths = {name: folder / file for name, file in FIGURES.items()}
    shown = (test or train).images[:SAMPLES_PER_ROW]
    plots.reconstructions(shown, reconstruct(model, shown), paths["reconstructions"],
                          title=f"First {len(shown)} images of {Path((test or train).source).name}: original (top), reconstruction (bottom)")
    latent_dim = model.config.latent_dim
    grid = norm.ppf(np.linspace(*MANIFOLD_QUANTILES, MANIFOLD_SIDE))
    # Row i holds latent dimension 2 = grid[-1 - i] (top is high), column j dimension 1 = grid[j]; others 0.
    z = np.zeros((MANIFOLD_SIDE * MANIFOLD_SIDE, latent_dim))
    z[:, 0] = np.tile(grid, MANIFOLD_SIDE)
    if latent_dim > 1:
        z[:, 1] = np.repeat(grid[::-1], MANIFOLD_SIDE)
    plots.manifold(decode_latents(model, z), grid, paths["manifold"],
                   title=f"Decoded latent grid, norm.ppf(linspace{MANIFOLD_QUANTILES}, {MANIFOLD_SIDE}) per axis")
    rng = np.random.default_rng(0)
    prior = rng.standard_normal((SAMPLES_PER_ROW * SAMPLES_PER_ROW, latent_dim))
    plots.image_grid(decode_latents(model, prior), SAMPLES_PER_ROW, SAMPLES_PER_ROW, paths["prior_samples"],
                     title="Random samples: z ~ N(0, I), decoded")
    per_component = [gmm.sample(SAMPLES_PER_ROW, random_state=k, component=k)[0] for k in range(len(gmm.weights_))]
    plots.image_grid(decode_latents(model, np.concatenate(per_component)), len(per_component), SAMPLES_PER_ROW,
                     paths["component_samples"], title="Samples from each GMM component, decoded",
                     row_labels=[f"digit {c} (comp. {k})" for k, c in enumerate(gmm.component_classes_)])
    Z_lab = encode_means(model, labelled.images)
    plots.latent_space(Z, gmm.predict(Z), paths["latent"], true_labels=train.labels, Z_labelled=Z_lab,
                       y_labelled=labelled.labels, title=f"Latent means of the {len(Z)} training images")
    plots.gmm_ellipses(Z, gmm, paths["gmm"], Z_labelled=Z_lab, y_labelled=labelled.labels,
                       title="GMM: 1σ and 2σ ellipses, means and decision regions")
    plots.training_curves(history, paths["curves"], title="Training: negative ELBO and its two terms per epoch")
    if confusion is not None:
        plots.confusion(confusion, gmm.classes_.tolist(), paths["confusion"], title=f"Confusion on {len(test)} test images")
    else:
        paths.pop("confusion")
    return paths
