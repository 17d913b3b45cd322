import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _course_dir() -> Path | None:
    for candidate in (os.environ.get("VAEGMM_COURSE_DATA"), REPO.parent / "shared" / "data" / "mnist_1_4_8"):
        if candidate and (Path(candidate) / "mnist_1_4_8_train.npz").is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def course_dir() -> Path:
    found = _course_dir()
    if found is None:
        pytest.skip("the course files (mnist_1_4_8_*.npz) are not available; set VAEGMM_COURSE_DATA")
    return found


@pytest.fixture(scope="session")
def small_course_files(course_dir, tmp_path_factory) -> dict[str, Path]:
    """A small slice of the real course files, in the course's format, for end-to-end runs."""
    out = tmp_path_factory.mktemp("course")
    rng = np.random.default_rng(0)
    files = {}
    for name, n in (("train", 1200), ("val", None), ("test", 300), ("test_recon", None)):
        with np.load(course_dir / f"mnist_1_4_8_{name}.npz") as archive:
            data, labels = archive["data"], archive["labels"]
        if n is not None:
            idx = np.sort(rng.choice(len(data), size=n, replace=False))
            data, labels = data[idx], labels[idx]
        files[name] = out / f"{name}.npz"
        np.savez(files[name], data=data, labels=labels)
    return files


@pytest.fixture(scope="module")
def course_arrays(small_course_files):
    """(X, y, X_test, y_test) of the small course slice; y holds 5 labels per class and -1 elsewhere."""
    with np.load(small_course_files["train"]) as f:
        X, y_true = f["data"], f["labels"]
    with np.load(small_course_files["test"]) as f:
        X_test, y_test = f["data"], f["labels"]
    y = np.full(len(X), -1)
    rng = np.random.default_rng(0)
    for c in np.unique(y_true):
        y[rng.choice(np.flatnonzero(y_true == c), 5, replace=False)] = c
    return X, y, X_test, y_test


def run_course(args, cwd, env_extra=None):
    """The course's ``python vae.py ...`` as a user runs it, from ``cwd``; ``env_extra`` adds to the environment."""
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, str(REPO / "vae.py"), *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env, timeout=600
    )


MEANS = np.array([[-4.0, 0.0], [3.0, 3.0], [3.0, -3.0]])
COVS = np.array([[[1.0, 0.6], [0.6, 1.0]], [[0.5, 0.0], [0.0, 2.0]], [[1.5, -0.4], [-0.4, 0.3]]])


@pytest.fixture
def blobs():
    """Three Gaussian classes of 3,000, 2,000 and 1,000 points with known MEANS and COVS."""
    return make_blobs(np.random.default_rng(1), MEANS, COVS, [3000, 2000, 1000])


def make_blobs(rng, means, covs, counts):
    X = np.concatenate([rng.multivariate_normal(m, c, size=n) for m, c, n in zip(means, covs, counts)])
    y = np.concatenate([np.full(n, k) for k, n in enumerate(counts)])
    return X, y


def few_label(X, X_labelled, y_labelled, **settings):
    """The few-label fit with one component per class unless ``settings`` say otherwise; returns the FewLabelGMM."""
    from vaegmm.config import GMMConfig
    from vaegmm.fewlabel import FewLabelGMM

    return FewLabelGMM(GMMConfig(**{"components_per_class": 1, **settings})).fit(X, X_labelled, y_labelled)
