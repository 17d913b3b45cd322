"""The drawn-shapes set that benchmarks/few_labels.py measures vaegmm on (--sets shapes)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from shapes import SHAPES, draw_shape, make_shapes  # noqa: E402

from vaegmm.data import as_images  # noqa: E402


def test_shapes_are_grey_images_of_every_class_repeatable_from_their_seed():
    images, labels = make_shapes(200, side=24, seed=4)
    assert images.shape == (200, 24, 24) and images.dtype == np.float32 and labels.dtype == np.int64
    assert 0 <= images.min() and images.max() <= 1
    assert set(labels.tolist()) == set(range(len(SHAPES)))
    again, again_labels = make_shapes(200, side=24, seed=4)
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(labels, again_labels)
    assert not np.array_equal(images, make_shapes(200, side=24, seed=5)[0])
    np.testing.assert_array_equal(as_images(images, "shapes", "data"), images)  # vaegmm reads them as they are


def test_each_shape_is_drawn_as_named():
    rng = np.random.default_rng(0)
    side = 48
    mean = {kind: np.mean([draw_shape(kind, side, rng) for _ in range(50)], axis=0) for kind in SHAPES}
    centre = side // 2
    # Every shape is centred near the image's centre: a ring leaves it dark, the filled square covers it.
    assert mean["ring"][centre, centre] < 0.3 * mean["ring"].max()
    assert mean["square"][centre, centre] > 0.7
    kinds = list(mean)
    assert min(np.abs(mean[a] - mean[b]).max() for i, a in enumerate(kinds) for b in kinds[i + 1:]) > 0.1
    with pytest.raises(ValueError, match="unknown shape 'star'"):
        draw_shape("star", side, rng)
