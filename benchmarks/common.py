"""What the benchmark scripts share: the course files, their command line, and the labelled draws."""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

import numpy as np

from vaegmm.data import Dataset, load_npz

HERE = Path(__file__).resolve().parent
DRAWS = 10
LABELS_PER_DIGIT = 5


def course_parser(doc: str, result_name: str) -> argparse.ArgumentParser:
    """--data (the course files' folder) and --out (the JSON written under results/)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("VAEGMM_COURSE_DATA", HERE.parent.parent / "shared/data/mnist_1_4_8"))
    parser.add_argument("--out", default=HERE / "results" / result_name)
    return parser


def load_course(folder: str | Path) -> tuple[Dataset, Dataset, Dataset]:
    """The course's train, validation and test files; the training labels serve only to draw labelled sets and to score."""
    warnings.simplefilter("ignore")
    folder = Path(folder)
    return (load_npz(folder / "mnist_1_4_8_train.npz"), load_npz(folder / "mnist_1_4_8_val.npz", require_labels=True),
            load_npz(folder / "mnist_1_4_8_test.npz", require_labels=True))


def labelled_draws(labels: np.ndarray, classes: np.ndarray) -> list[np.ndarray]:
    """Indices of DRAWS labelled sets of LABELS_PER_DIGIT images per class, the same in every script and run."""
    rng = np.random.default_rng(0)
    return [np.concatenate([rng.choice(np.flatnonzero(labels == c), LABELS_PER_DIGIT, replace=False) for c in classes])
            for _ in range(DRAWS)]
