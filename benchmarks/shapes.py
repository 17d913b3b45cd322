"""A grey image set that is not digits: rings, squares, triangles and crosses drawn at random.

`few_labels.py --sets shapes` reads it, so that the benchmark also measures vaegmm on images no default was
chosen on. Each image is one outline or filled shape, placed, sized, turned and stroked at random, dimmed at
random and covered in a little Gaussian noise. What tells the classes apart is the shape alone; where and how
large it is varies more from image to image than the class does, which is the hard case for a latent mixture.
"""

from __future__ import annotations

import numpy as np

SHAPES = ("ring", "square", "triangle", "cross")
# Sizes as shares of the image side, so that the set can be drawn at any size.
CENTRE_RANGE = (0.34, 0.66)  # where the shape's centre lies
RADIUS_RANGE = (0.19, 0.34)  # its radius
STROKE_RANGE = (0.04, 0.08)  # half its stroke's width
INK_RANGE = (0.7, 1.0)  # the brightness of its ink
NOISE_SD = 0.05  # pixel noise on a 0-1 scale


def draw_shape(kind: str, side: int, rng: np.random.Generator) -> np.ndarray:
    """One shape on a (side, side) float image in [0, 1]."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)  # (side, side) each
    cx, cy = rng.uniform(*CENTRE_RANGE, size=2) * side
    radius = rng.uniform(*RADIUS_RANGE) * side
    stroke = rng.uniform(*STROKE_RANGE) * side
    angle = rng.uniform(0, np.pi)

    def turned(by: float) -> tuple[np.ndarray, np.ndarray]:
        u = (xx - cx) * np.cos(by) + (yy - cy) * np.sin(by)
        return u, -(xx - cx) * np.sin(by) + (yy - cy) * np.cos(by)

    if kind == "ring":
        ink = np.abs(np.hypot(xx - cx, yy - cy) - radius) < stroke
    elif kind == "square":  # filled
        u, v = turned(angle)
        half = radius / np.sqrt(2)  # corners on the circle of the other shapes
        ink = (np.abs(u) < half) & (np.abs(v) < half)
    elif kind == "triangle":  # outline
        corners = [(cx + radius * np.cos(angle + k * 2 * np.pi / 3), cy + radius * np.sin(angle + k * 2 * np.pi / 3))
                   for k in range(3)]
        ink = np.zeros((side, side), dtype=bool)
        for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1]):
            dx, dy = x1 - x0, y1 - y0
            along = np.clip(((xx - x0) * dx + (yy - y0) * dy) / (dx * dx + dy * dy), 0, 1)
            ink |= np.hypot(xx - x0 - along * dx, yy - y0 - along * dy) < stroke
    elif kind == "cross":
        ink = np.zeros((side, side), dtype=bool)
        for by in (angle, angle + np.pi / 2):
            u, v = turned(by)
            ink |= (np.abs(v) < stroke) & (np.abs(u) < radius)
    else:
        raise ValueError(f"unknown shape {kind!r}; expected one of {SHAPES}")
    image = ink * rng.uniform(*INK_RANGE) + rng.normal(0, NOISE_SD, size=(side, side))
    return np.clip(image, 0, 1)


def make_shapes(n: int, *, side: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n images (n, side, side) float32 in [0, 1] and their classes (n,) int64, indices into SHAPES."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(SHAPES), size=n)
    images = np.stack([draw_shape(SHAPES[k], side, rng) for k in labels]) if n else np.zeros((0, side, side))
    return images.astype(np.float32), labels.astype(np.int64)
