"""Re-opening a run folder: its record (run.json), model, GMM and the data it was trained on."""

from __future__ import annotations

import json
from pathlib import Path

from .data import check_same_image_shape, load_images
from .errors import DataError
from .mnist import load_mnist


def _recorded(path: str, what: str, **kwargs):
    """A data file whose path run.json recorded; gone, the error says where the path came from."""
    if not Path(path).exists():
        raise DataError(f"{path}: the {what} that run.json records for this run is no longer there. Put it back "
                        "at that path (report and plot re-read it), or train the run again.")
    return load_images(path, **kwargs)


def load_run_data(info: dict, *, test_path=None, progress: bool = False):
    """Re-open the data a run was trained on: returns (train, labelled, test or None)."""
    spec = info.get("data") or {}
    if spec.get("kind") == "mnist":
        splits = load_mnist(spec["dir"], digits=tuple(spec["digits"]), labels_per_digit=spec["labels_per_digit"],
                            seed=spec["seed"], progress=progress)
        test = load_images(test_path) if test_path else splits.test
        return splits.train, splits.labelled, test
    if spec.get("kind") == "files":
        test = load_images(test_path) if test_path else (_recorded(spec["test"], "test file") if spec.get("test") else None)
        return _recorded(spec["train"], "training file"), _recorded(spec["val"], "labelled file", require_labels=True), test
    raise DataError("run.json: records no training data; re-run 'vaegmm train' (or 'vaegmm demo') to make this run folder.")


def open_run(run_dir: Path, *, test_path=None, progress: bool = False):
    """A run folder's record, model, GMM, novelty detector (or None) and data:
    (info, model, gmm, novelty, train, labelled, test)."""
    from .artefacts import load_gmm_file, load_model_for

    info_path = run_dir / "run.json"
    if not info_path.is_file():
        raise DataError(f"{info_path}: not found; RUN_DIR must be a folder written by 'vaegmm train --out-dir' or 'vaegmm demo'.")
    info = json.loads(info_path.read_text())
    model = load_model_for(run_dir / "vae.pth")
    gmm, novelty = load_gmm_file(run_dir / "gmm_params.pkl", model, run_dir / "vae.pth")
    train, labelled, test = load_run_data(info, test_path=test_path, progress=progress)
    for dataset in (train, labelled, test):
        if dataset is not None:  # e.g. a --test file of another image size: refused before any figure is drawn
            check_same_image_shape(dataset, model.config.image_shape, model_source=str(run_dir / "vae.pth"))
    return info, model, gmm, novelty, train, labelled, test
