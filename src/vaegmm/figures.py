"""Every figure of a run, assembled from the model, the GMM and the data (drawing is in :mod:`vaegmm.plots`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


FIGURES = {
    "reconstructions": "reconstructions.png",
    "manifold": "generated_manifold.png",
    "manifold_spread": "generated_manifold_spread.png",
    "prior_samples": "generated_prior_samples.png",
    "component_samples": "generated_per_component.png",
    "latent": "latent_space.png",
    "gmm": "gmm_ellipses.png",
    "curves": "training_curves.png",
    "confusion": "confusion_matrix.png",
    "novelty": "novelty_scores.png",
    "novelty_examples": "novelty_examples.png",
}
MANIFOLD_SIDE = 20
MANIFOLD_QUANTILES = (0.05, 0.95)
SAMPLES_PER_ROW = 10
LINE_AXIS = "latent dimension 1"


@dataclass(frozen=True)
class LatentPlane:
    """The 2-D plane of the latent space that the figures draw: z = origin + p @ axes.T for p in the plane.

    A 2-D latent space is its own plane (latent dimensions 1 and 2). A larger one is drawn on the plane
    through the origin (the prior's centre) spanned by the two leading principal axes of the training
    images' latent means, which show the most of their spread.
    origin (D,); axes (D, 2) orthonormal columns; names: the two axes' labels.
    """

    origin: np.ndarray
    axes: np.ndarray
    names: tuple[str, str]

    @classmethod
    def for_latents(cls, Z: np.ndarray) -> "LatentPlane":
        dim = Z.shape[1]
        if dim == 2:
            return cls(np.zeros(2), np.eye(2), ("latent dimension 1", "latent dimension 2"))
        _, _, vt = np.linalg.svd(Z - Z.mean(axis=0), full_matrices=False)
        axes = vt[:2].T  # (D, 2)
        axes *= np.where(axes[np.abs(axes).argmax(axis=0), [0, 1]] < 0, -1.0, 1.0)  # a sign that does not flip between runs
        return cls(np.zeros(dim), axes, ("principal axis 1 of the latent means", "principal axis 2 of the latent means"))

    def project(self, Z: np.ndarray) -> np.ndarray:
        """Coordinates in the plane of points Z (N, D): (N, 2)."""
        return (Z - self.origin) @ self.axes

    def lift(self, P: np.ndarray) -> np.ndarray:
        """Latent points (N, D) of plane coordinates P (N, 2)."""
        return self.origin + P @ self.axes.T

    def project_covariance(self, cov: np.ndarray) -> np.ndarray:
        """A covariance (D, D) seen in the plane: (2, 2)."""
        return self.axes.T @ cov @ self.axes

    def describe(self) -> str:
        if self.axes.shape[0] == 2:
            return "latent dimensions 1 and 2"
        return (f"the plane of the two leading principal axes of the training latent means, through the origin, "
                f"in the {self.axes.shape[0]}-D latent space")


def make_figures(run_dir: Path, *, model, gmm, train, Z, labelled, test, confusion, history,
                 novelty_scores: dict | None = None) -> dict[str, Path]:
    """Every figure of the report, into RUN_DIR/figures/.

    Z (N, D): the training images' latent means; confusion (C, C) on the test images, or None;
    novelty_scores: {"train": (N,), "held_out": (K,) or None, "test": (M,), "threshold", "flag_rate", "calibrated_on"},
    or None: "train" the images the VAE trained on, "held_out" those kept out of it to set the threshold on.
    """
    from . import plots
    from .model import decode_latents, encode_means, reconstruct

    folder = run_dir / "figures"
    folder.mkdir(exist_ok=True)
    paths = {name: folder / file for name, file in FIGURES.items()}
    shown = (test or train).images[:SAMPLES_PER_ROW]
    plots.reconstructions(shown, reconstruct(model, shown), paths["reconstructions"],
                          title=f"First {len(shown)} images of {Path((test or train).source).name}: original (top), reconstruction (bottom)")
    latent_dim = model.config.latent_dim
    Z_lab = encode_means(model, labelled.images)
    if latent_dim == 1:
        _draw_line(paths, model=model, gmm=gmm, train=train, Z=Z, Z_lab=Z_lab, labelled=labelled)
    else:
        _draw_plane(paths, model=model, gmm=gmm, train=train, Z=Z, Z_lab=Z_lab, labelled=labelled)
    rng = np.random.default_rng(0)
    prior = rng.standard_normal((SAMPLES_PER_ROW * SAMPLES_PER_ROW, latent_dim))
    plots.image_grid(decode_latents(model, prior), SAMPLES_PER_ROW, SAMPLES_PER_ROW, paths["prior_samples"],
                     title="Random samples: z ~ N(0, I), decoded")
    per_component = [gmm.sample(SAMPLES_PER_ROW, random_state=k, component=k)[0] for k in range(len(gmm.weights_))]
    plots.image_grid(decode_latents(model, np.concatenate(per_component)), len(per_component), SAMPLES_PER_ROW,
                     paths["component_samples"], title="Samples from each GMM component, decoded",
                     row_labels=[f"class {c} (comp. {k})" for k, c in enumerate(gmm.component_classes_)])
    plots.training_curves(history, paths["curves"], title="Training: the loss and the ELBO's two terms per epoch")
    if confusion is not None:
        plots.confusion(confusion, gmm.classes_.tolist(), paths["confusion"], title=f"Confusion on {len(test)} test images")
    else:
        paths.pop("confusion")
    if novelty_scores is not None:
        test_scores, threshold = novelty_scores["test"], novelty_scores["threshold"]
        plots.score_histogram(novelty_scores["train"], test_scores, threshold, paths["novelty"],
                              held_out_scores=novelty_scores.get("held_out"),
                              title=f"Novelty scores; the threshold flags {novelty_scores['flag_rate']:.1%} of {novelty_scores['calibrated_on']}")
        order = np.argsort(test_scores)
        flagged = order[test_scores[order] > threshold][::-1][:SAMPLES_PER_ROW]
        rows = [order[:SAMPLES_PER_ROW], order[::-1][:SAMPLES_PER_ROW]] + ([flagged] if len(flagged) else [])
        pictures = np.ones((len(rows) * SAMPLES_PER_ROW, *test.images.shape[1:]), dtype=np.float32)
        for r, idx in enumerate(rows):
            pictures[r * SAMPLES_PER_ROW: r * SAMPLES_PER_ROW + len(idx)] = test.images[idx]
        plots.image_grid(pictures, len(rows), SAMPLES_PER_ROW, paths["novelty_examples"],
                         title="Test images by novelty score",
                         row_labels=["most typical", "least typical", "flagged"][: len(rows)])
    else:
        paths.pop("novelty"), paths.pop("novelty_examples")
    return paths


def _manifold_grid():
    from scipy.stats import norm

    return norm.ppf(np.linspace(*MANIFOLD_QUANTILES, MANIFOLD_SIDE))  # (S,)


def spread_grid(values: np.ndarray) -> np.ndarray:
    """The course's grid moved onto the latent means along one axis: mean + sd * norm.ppf(linspace(0.05, 0.95)), (S,).

    values (N,): the training images' latent means along that axis. The course's grid spans the prior's N(0, 1);
    a VAE with β below 1 or a neighbour term spreads its latent means wider, and a grid over the prior then decodes
    only the classes near the centre. Both grids coincide where the latent means follow the prior.
    """
    return float(values.mean()) + float(values.std()) * _manifold_grid()


def _grid_points(grid_x: np.ndarray, grid_y: np.ndarray) -> np.ndarray:
    """Plane coordinates (S*S, 2) of the grid: row i holds grid_y[-1 - i] (top is high), column j grid_x[j]."""
    side = len(grid_x)
    return np.stack([np.tile(grid_x, side), np.repeat(grid_y[::-1], side)], axis=1)


def _draw_plane(paths: dict, *, model, gmm, train, Z, Z_lab, labelled) -> None:
    """The decoded grid, scatter and ellipse figures on the latent space's plane (:class:`LatentPlane`)."""
    from . import plots
    from .model import decode_latents

    plane = LatentPlane.for_latents(Z)
    P = plane.project(Z)  # (N, 2)
    grid = _manifold_grid()
    plots.manifold(decode_latents(model, plane.lift(_grid_points(grid, grid))), grid, paths["manifold"],
                   axis_names=plane.names,
                   title=f"Decoded latent grid, norm.ppf(linspace{MANIFOLD_QUANTILES}, {MANIFOLD_SIDE}) per axis")
    grid_x, grid_y = spread_grid(P[:, 0]), spread_grid(P[:, 1])
    plots.manifold(decode_latents(model, plane.lift(_grid_points(grid_x, grid_y))), grid_x, paths["manifold_spread"],
                   grid_y=grid_y, axis_names=plane.names,
                   title="Decoded latent grid over the latent means: mean + sd · norm.ppf(linspace"
                         f"{MANIFOLD_QUANTILES}, {MANIFOLD_SIDE}) per axis")
    plots.latent_space(P, gmm.predict(Z), paths["latent"], classes=gmm.classes_, true_labels=train.labels,
                       Z_labelled=plane.project(Z_lab), y_labelled=labelled.labels, axis_names=plane.names,
                       title=f"Latent means of the {len(Z)} training images")
    plots.gmm_ellipses(P, paths["gmm"], means=plane.project(gmm.means_),
                       covariances=np.stack([plane.project_covariance(c) for c in gmm.covariances_]),
                       component_classes=gmm.component_classes_, classes=gmm.classes_,
                       predict=lambda P: gmm.predict(plane.lift(P)), Z_labelled=plane.project(Z_lab),
                       y_labelled=labelled.labels, axis_names=plane.names,
                       title="GMM: 1σ and 2σ ellipses, means and decision regions")


def _draw_line(paths: dict, *, model, gmm, train, Z, Z_lab, labelled) -> None:
    """The same three figures for a 1-D latent space, which has no plane: drawn along its one axis."""
    from . import plots
    from .model import decode_latents

    grid = _manifold_grid()
    plots.manifold(decode_latents(model, grid[:, None]), grid, paths["manifold"], axis_names=(LINE_AXIS,),
                   title=f"Images decoded along the latent axis at norm.ppf(linspace{MANIFOLD_QUANTILES}, {MANIFOLD_SIDE})")
    spread = spread_grid(Z[:, 0])
    plots.manifold(decode_latents(model, spread[:, None]), spread, paths["manifold_spread"], axis_names=(LINE_AXIS,),
                   title="Images decoded along the latent axis over the latent means: mean + sd · "
                         f"norm.ppf(linspace{MANIFOLD_QUANTILES}, {MANIFOLD_SIDE})")
    plots.latent_line(Z[:, 0], gmm.predict(Z), paths["latent"], classes=gmm.classes_, true_labels=train.labels,
                      z_labelled=Z_lab[:, 0], y_labelled=labelled.labels, axis_name=LINE_AXIS,
                      title=f"Latent means of the {len(Z)} training images")
    plots.gmm_line(Z[:, 0], paths["gmm"], means=gmm.means_[:, 0], variances=gmm.covariances_[:, 0, 0],
                   weights=gmm.weights_, component_classes=gmm.component_classes_, classes=gmm.classes_,
                   predict=gmm.predict, z_labelled=Z_lab[:, 0], y_labelled=labelled.labels, axis_name=LINE_AXIS,
                   title="GMM: component densities, their 1σ and 2σ levels, means and decision regions")
