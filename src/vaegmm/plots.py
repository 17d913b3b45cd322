"""The report's figures, drawn with matplotlib's Agg backend and written atomically as PNG.

Every function takes arrays (no model), so figures are cheap to test and reproducible.
Colours follow the class, the same in every figure and in the explorer page (:func:`class_colours`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .storage import atomic_output

DPI = 110


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


# Drawn for a label that is none of the model's classes (a true label the model was not trained on).
OTHER_COLOUR = "#555555"
# Up to this many entries a legend sits inside the axes; more would cover the points, so it goes below.
LEGEND_INSIDE_MAX = 12
LEGEND_COLUMNS = 6


def class_colours(classes) -> dict[int, str]:
    """One colour per class (hex strings): digits 0-9 keep tab10's colour of that digit, so MNIST runs of
    any digits look alike; other class sets take tab10, then tab20, by rank, and beyond 20 classes
    evenly spaced colours of the "turbo" map."""
    import matplotlib
    from matplotlib.colors import to_hex

    classes = [int(c) for c in np.unique(classes)]
    n = len(classes)
    if all(0 <= c <= 9 for c in classes):
        return {c: to_hex(matplotlib.colormaps["tab10"](c)) for c in classes}
    if n <= 20:
        cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
        return {c: to_hex(cmap(i)) for i, c in enumerate(classes)}
    return {c: to_hex(matplotlib.colormaps["turbo"](i / (n - 1))) for i, c in enumerate(classes)}


def _save(fig, path: str | Path) -> Path:
    plt = _plt()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return Path(path)


def tile(images: np.ndarray, rows: int, cols: int, *, pad: int = 0) -> np.ndarray:
    """Arrange images (rows*cols, H, W) into one (rows*H, cols*W) picture, row by row."""
    n, h, w = images.shape
    canvas = np.ones((rows * (h + pad) - pad, cols * (w + pad) - pad), dtype=np.float32)
    for i in range(min(n, rows * cols)):
        r, c = divmod(i, cols)
        canvas[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = images[i]
    return canvas


def reconstructions(originals: np.ndarray, recons: np.ndarray, path, *, title: str) -> Path:
    """Originals on the top row, their reconstructions below (the course's layout)."""
    plt = _plt()
    n = len(originals)
    fig, axes = plt.subplots(2, n, figsize=(1.2 * n, 2.9), squeeze=False)
    for i in range(n):
        for row, img in enumerate((originals[i], recons[i])):
            ax = axes[row, i]
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
    axes[0, 0].set_ylabel("original", fontsize=10)
    axes[1, 0].set_ylabel("reconstruction", fontsize=10)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def manifold(images: np.ndarray, grid: np.ndarray, path, *, title: str, grid_y: np.ndarray | None = None,
             axis_names: Sequence[str] = ("Latent dimension 1", "Latent dimension 2")) -> Path:
    """The decoded latent grid: images (n*n, H, W) for z = (grid[j], grid_y[n - 1 - i]) at row i, column j.

    Row 0 is drawn at the top with the largest latent dimension 2, like a scatter plot's axes; grid_y defaults
    to grid. With one axis name (a 1-D latent space) the images are (n, H, W), decoded at z = grid[j], in one row.
    """
    plt = _plt()
    n = len(grid)
    rows = n if len(axis_names) > 1 else 1
    picture = tile(images, rows, n)
    h, w = images.shape[1:]
    width = 8 if rows > 1 else 16
    fig, ax = plt.subplots(figsize=(width, max(width * rows * h / (n * w), 1.0) + 0.8))
    ax.imshow(picture, cmap="gnuplot2", vmin=0, vmax=1)
    ticks = np.arange(n)
    step = max(n // 5, 1)
    ax.set_xticks(ticks[::step] * w + w / 2, [f"{v:.2f}" for v in grid[::step]])
    ax.set_xlabel(axis_names[0])
    if rows > 1:
        ax.set_yticks(ticks[::step] * h + h / 2, [f"{v:.2f}" for v in (grid if grid_y is None else grid_y)[::-1][::step]])
        ax.set_ylabel(axis_names[1])
    else:
        ax.set_yticks([])
    ax.set_title(title)
    return _save(fig, path)


def image_grid(images: np.ndarray, rows: int, cols: int, path, *, title: str, row_labels: Sequence[str] | None = None) -> Path:
    plt = _plt()
    h, w = images.shape[1:]
    fig, ax = plt.subplots(figsize=(0.8 * cols + 1, 0.8 * rows + 0.6))
    ax.imshow(tile(images, rows, cols, pad=2), cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    if row_labels:
        ax.set_yticks(np.arange(rows) * (h + 2) + h / 2, row_labels)
    else:
        ax.set_yticks([])
    ax.set_title(title)
    return _save(fig, path)


def _scatter_by(ax, Z, labels, colours: dict) -> None:
    for label in np.unique(labels):
        pts = Z[labels == label]
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.35, color=colours.get(int(label), OTHER_COLOUR),
                   label=f"{label}", rasterized=True)


def _mark_labelled(ax, Z_labelled, y_labelled, colours: dict) -> None:
    for label in np.unique(y_labelled):
        pts = Z_labelled[y_labelled == label]
        ax.scatter(pts[:, 0], pts[:, 1], s=110, marker="*", color=colours.get(int(label), OTHER_COLOUR),
                   edgecolor="black", linewidth=0.9, zorder=5)
    ax.scatter([], [], s=110, marker="*", color="white", edgecolor="black", label="labelled image")


def _legend(ax, title: str | None = None) -> None:
    entries = len(ax.get_legend_handles_labels()[1])
    if entries <= LEGEND_INSIDE_MAX:
        leg = ax.legend(loc="best", fontsize=9, framealpha=0.85, title=title, title_fontsize=9)
    else:  # below the axes, in columns: inside, so many entries would hide the points
        leg = ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=LEGEND_COLUMNS, fontsize=8, frameon=False,
                        title=title, title_fontsize=8)
    for handle in leg.legend_handles:
        handle.set_alpha(1)
        if hasattr(handle, "set_sizes"):
            handle.set_sizes([40])


def latent_space(Z, clusters, path, *, classes=None, true_labels=None, Z_labelled=None, y_labelled=None, title: str,
                 axis_names: Sequence[str] = ("Latent dimension 1", "Latent dimension 2")) -> Path:
    """Latent means Z (N, 2), in the figure's plane, coloured by GMM cluster (and, when labels exist, by true label).

    ``classes`` (C,), the model's classes, fix the colours (default: those in ``clusters``)."""
    plt = _plt()
    colours = class_colours(np.unique(clusters) if classes is None else classes)
    panels = 2 if true_labels is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.2 * panels, 5.6), squeeze=False, sharex=True, sharey=True)
    for ax, (labels, name, sub) in zip(
        axes[0], [(clusters, "cluster of class", "coloured by GMM cluster"), (true_labels, "true class", "coloured by true label")]
    ):
        _scatter_by(ax, Z, labels, colours)
        if Z_labelled is not None:
            _mark_labelled(ax, Z_labelled, y_labelled, colours)
        ax.set_xlabel(axis_names[0])
        ax.set_ylabel(axis_names[1])
        ax.set_title(sub)
        _legend(ax, title=name)
    fig.suptitle(title)
    return _save(fig, path)


def ellipse_points(mean: np.ndarray, cov: np.ndarray, n_sigma: float, n: int = 200) -> np.ndarray:
    """Points (n, 2) on the n_sigma Mahalanobis contour of a 2-D Gaussian."""
    eigval, eigvec = np.linalg.eigh(cov)
    t = np.linspace(0, 2 * np.pi, n)
    circle = np.stack([np.cos(t), np.sin(t)], axis=1)  # (n, 2)
    return mean + n_sigma * (circle * np.sqrt(eigval)) @ eigvec.T


def gmm_ellipses(Z, path, *, means, covariances, component_classes, classes, predict, Z_labelled=None,
                 y_labelled=None, title: str, axis_names: Sequence[str] = ("Latent dimension 1", "Latent dimension 2"),
                 grid_points: int = 300) -> Path:
    """Latent means with each component's 1σ and 2σ ellipses, its mean, and shaded decision regions.

    Everything is given in the figure's plane: Z (N, 2), means (K, 2), covariances (K, 2, 2); ``predict``
    maps plane points (M, 2) to classes, ``classes`` (C,) sorted.
    """
    plt = _plt()
    from matplotlib.colors import ListedColormap

    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    lo, hi = Z.min(axis=0), Z.max(axis=0)
    margin = 0.05 * (hi - lo)
    xs = np.linspace(lo[0] - margin[0], hi[0] + margin[0], grid_points)
    ys = np.linspace(lo[1] - margin[1], hi[1] + margin[1], grid_points)
    gx, gy = np.meshgrid(xs, ys)
    region = np.searchsorted(classes, predict(np.stack([gx.ravel(), gy.ravel()], axis=1))).reshape(gx.shape)
    colours = class_colours(classes)
    cmap = ListedColormap([colours[int(c)] for c in classes])
    ax.contourf(gx, gy, region, levels=np.arange(len(classes) + 1) - 0.5, cmap=cmap, alpha=0.12)
    ax.scatter(Z[:, 0], Z[:, 1], s=1.5, color="0.35", alpha=0.25, rasterized=True, label="training image (latent mean)")
    for mean, cov, label in zip(means, covariances, component_classes):
        for n_sigma, style in ((1, "-"), (2, "--")):
            pts = ellipse_points(mean, cov, n_sigma)
            ax.plot(pts[:, 0], pts[:, 1], style, color=colours[int(label)], linewidth=2)
        ax.plot(*mean, marker="X", markersize=12, color=colours[int(label)], markeredgecolor="black")
        ax.annotate(f"{label}", mean, xytext=(6, 6), textcoords="offset points", fontsize=14, weight="bold",
                    color="black", bbox=dict(boxstyle="round,pad=0.2", fc="white", alpha=0.8))
    if Z_labelled is not None:
        _mark_labelled(ax, Z_labelled, y_labelled, colours)
    ax.plot([], [], "-", color="black", label="1σ ellipse (39% of a Gaussian)")
    ax.plot([], [], "--", color="black", label="2σ ellipse (86%)")
    ax.set_xlim(xs[0], xs[-1]), ax.set_ylim(ys[0], ys[-1])
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.set_title(title)
    _legend(ax)
    return _save(fig, path)


# A 1-D latent space has no plane: its figures are histograms and densities along its one axis.
LINE_BINS = 80


def latent_line(z, clusters, path, *, classes=None, true_labels=None, z_labelled=None, y_labelled=None, title: str,
                axis_name: str = "latent dimension 1") -> Path:
    """The 1-D counterpart of :func:`latent_space`: histograms of the latent means z (N,) per GMM cluster (and,
    when labels exist, per true label); stars on the axis mark the labelled images z_labelled (M,)."""
    plt = _plt()
    colours = class_colours(np.unique(clusters) if classes is None else classes)
    panels = [(clusters, "cluster of class", "by GMM cluster")]
    if true_labels is not None:
        panels.append((true_labels, "true class", "by true label"))
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 3.4 * len(panels)), squeeze=False, sharex=True)
    bins = np.histogram_bin_edges(z, LINE_BINS)
    for ax, (labels, name, sub) in zip(axes[:, 0], panels):
        for label in np.unique(labels):
            ax.hist(z[labels == label], bins=bins, histtype="stepfilled", alpha=0.45,
                    color=colours.get(int(label), OTHER_COLOUR), label=f"{label}")
        if z_labelled is not None:
            _mark_labelled(ax, np.stack([z_labelled, np.zeros_like(z_labelled)], axis=1), y_labelled, colours)
        ax.set_ylabel("images")
        ax.set_title(sub)
        _legend(ax, title=name)
    axes[-1, 0].set_xlabel(axis_name)
    fig.suptitle(title)
    return _save(fig, path)


def _runs(values: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) index pairs of the runs of equal consecutive values of a 1-D array."""
    cuts = np.flatnonzero(np.diff(values)) + 1
    edges = np.concatenate([[0], cuts, [len(values)]])
    return list(zip(edges[:-1], edges[1:]))


def gmm_line(z, path, *, means, variances, weights, component_classes, classes, predict, z_labelled=None,
             y_labelled=None, title: str, axis_name: str = "latent dimension 1", grid_points: int = 600) -> Path:
    """The 1-D counterpart of :func:`gmm_ellipses`: the latent means' histogram as a density, each component's
    weighted Gaussian density with its means and its 1σ and 2σ level lines (the 1-D ellipses), and shaded
    decision regions. z (N,), means, variances, weights (K,); ``predict`` maps points (M, 1) to classes."""
    plt = _plt()
    from scipy.stats import norm

    fig, ax = plt.subplots(figsize=(9, 4.8))
    margin = 0.05 * (z.max() - z.min())
    xs = np.linspace(z.min() - margin, z.max() + margin, grid_points)
    region = np.searchsorted(classes, predict(xs[:, None]))
    colours = class_colours(classes)
    for start, stop in _runs(region):
        ax.axvspan(xs[start], xs[min(stop, len(xs) - 1)], color=colours[int(classes[region[start]])], alpha=0.12, lw=0)
    ax.hist(z, bins=LINE_BINS, density=True, color="0.35", alpha=0.3, label="training images (latent means)")
    for mean, var, weight, label in zip(means, variances, weights, component_classes):
        sd, colour = np.sqrt(var), colours[int(label)]
        ax.plot(xs, weight * norm.pdf(xs, mean, sd), color=colour, linewidth=2)
        for n_sigma, style in ((1, "-"), (2, "--")):
            ax.hlines(weight * norm.pdf(n_sigma) / sd, mean - n_sigma * sd, mean + n_sigma * sd, colors=colour,
                      linestyles=style, linewidth=1.5)
        peak = weight * norm.pdf(0) / sd
        ax.plot(mean, peak, marker="X", markersize=12, color=colour, markeredgecolor="black")
        ax.annotate(f"{label}", (mean, peak), xytext=(6, 6), textcoords="offset points", fontsize=14, weight="bold",
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", alpha=0.8))
    if z_labelled is not None:
        _mark_labelled(ax, np.stack([z_labelled, np.zeros_like(z_labelled)], axis=1), y_labelled, colours)
    ax.plot([], [], "-", color="black", label="weighted component density; its 1σ level")
    ax.plot([], [], "--", color="black", label="2σ level")
    ax.set_xlim(xs[0], xs[-1])
    ax.set_xlabel(axis_name)
    ax.set_ylabel("density")
    ax.set_title(title)
    _legend(ax)
    return _save(fig, path)


def training_curves(history: list[dict], path, *, title: str) -> Path:
    plt = _plt()
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key, label in zip(axes, ("loss", "recon", "kl"), ("training loss", "reconstruction", "KL to N(0, I)")):
        ax.plot(epochs, [h[key] for h in history], marker="o", markersize=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{label}, nats per image")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def score_histogram(train_scores: np.ndarray, test_scores: np.ndarray, threshold: float, path, *, title: str,
                    held_out_scores: np.ndarray | None = None) -> Path:
    """Histograms of the score samples (training, held-out when given, test) and the threshold as a line;
    scores beyond the range gather in the last bin."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    samples = [(train_scores, "training images")]
    if held_out_scores is not None:
        samples.append((held_out_scores, "held-out training images (set the threshold)"))
    samples.append((test_scores, "test images"))
    top = max(float(np.quantile(np.concatenate([s for s, _ in samples]), 0.999)), 1.5 * threshold)
    bins = np.linspace(0, top, 60)
    for scores, label in samples:
        ax.hist(np.minimum(scores, top), bins=bins, alpha=0.55, label=f"{label} ({len(scores)})",
                weights=np.full(len(scores), 1 / len(scores)))
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.2f}")
    ax.set_yscale("log")
    ax.set_xlabel("novelty score (summed standard deviations above the training images; 0: nothing unusual)")
    ax.set_ylabel("share of the images")
    ax.set_title(title)
    ax.legend(fontsize=9)
    return _save(fig, path)


# The confusion matrix's cell size (inches); its figure grows with the classes. Above CONFUSION_FEW classes
# the counts are set smaller, zeros are left blank and the column labels turn upright.
CONFUSION_CELL = 0.45
CONFUSION_MIN_SIDE = 4.2
CONFUSION_MARGIN = 1.5  # inches around the cells for the labels and title; the row labels take 0.6 more
CONFUSION_ROW_LABELS = 0.6
CONFUSION_FEW = 10
CONFUSION_FONTS = (12, 8)  # count font with few classes, and with many


def confusion(matrix: np.ndarray, classes: Sequence[int], path, *, title: str) -> Path:
    plt = _plt()
    n = len(classes)
    few = n <= CONFUSION_FEW
    side = max(CONFUSION_MIN_SIDE, CONFUSION_CELL * n + CONFUSION_MARGIN)
    fig, ax = plt.subplots(figsize=(side + CONFUSION_ROW_LABELS, side))
    ax.imshow(matrix, cmap="Blues")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if matrix[i, j] or few:  # with many classes the zeros are left blank, so the errors stand out
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=CONFUSION_FONTS[0 if few else 1],
                        color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_xticks(range(n), [str(c) for c in classes], rotation=0 if few else 90)
    ax.set_yticks(range(n), [str(c) for c in classes])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    return _save(fig, path)
