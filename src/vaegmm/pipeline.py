"""The three jobs (train, reconstruct, classify) as functions shared by every front end."""

from __future__ import annotations

import csv
import io
import json
import platform
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import __version__
from .artefacts import gmm_file_state
from .companion import companion_run
from .config import GMMConfig, NoveltyConfig, TrainConfig, VAEConfig
from .data import Dataset, check_labelled_set, check_same_image_shape, not_among
from .candidates import companion_for_unsettled, unsettled_advice
from .errors import DataError, UnsettledFitWarning
from .evaluation import classification_metrics, reconstruction_metrics
from .fewlabel import FewLabelGMM
from .gmm import GaussianMixture
from .model import (
    VAE,
    count_parameters,
    encode_means,
    encode_statistics,
    reconstruct,
    save_model,
)
from .novelty import NoveltyDetector, calibration_rows, held_out_flag_check, novelty_statistics
from .storage import (
    atomic_output,
    atomic_write_bytes,
    check_output_path,
    save_plain_pickle,
)
from .training import TrainResult, pick_device, teacher_checkpoint_path, train_vae


def environment() -> dict:
    return {
        "vaegmm": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "numpy": np.__version__, "platform": platform.platform(), "threads": torch.get_num_threads(),
    }


@dataclass(frozen=True)
class CompanionMeans:
    """A companion VAE's latent means, what the "inputs" seeding spreads the labels over: of the fitting points
    (N, d) and of the labelled images (M, d), with the companion's summary for run.json."""

    points: np.ndarray
    labelled: np.ndarray
    summary: dict


def companion_trainer(images: np.ndarray, labelled_images: np.ndarray, *, model_config: VAEConfig,
                      train_config: TrainConfig, device, progress: bool,
                      teacher: TrainResult | None = None) -> Callable[[int], CompanionMeans]:
    """A function of a latent size d that trains a companion VAE of d dimensions on images (N, H, W) and gives
    its :class:`CompanionMeans` of those images and of labelled_images (M, H, W). ``teacher``, the model's teacher
    trained on the same images, serves instead where it is that companion already (:func:`companion_run`)."""
    def train(latent_dim: int) -> CompanionMeans:
        companion, summary = companion_run(images, model_config=model_config, train_config=train_config,
                                           latent_dim=latent_dim, device=device, progress=progress, teacher=teacher)
        return CompanionMeans(encode_means(companion.model, images), encode_means(companion.model, labelled_images),
                              summary)
    return train


def fit_gmm(z_train: np.ndarray, labelled_latents: np.ndarray, labelled: Dataset, *, train_images: np.ndarray | None,
            config: GMMConfig, seed: int, source: str, labelled_inputs: np.ndarray | None = None,
            warn: bool = True) -> FewLabelGMM:
    """The few-label fit on the training images' latent means z_train (N, latent_dim), seeded by the labelled
    images' latent means (M, latent_dim); train_images (N, ...) are read by the "inputs" seeding only, with
    labelled_inputs (M, ...) beside them (default: the labelled images). ``source`` names the training file in errors.
    With ``warn``, an unsettled fit in a small latent warns (:func:`vaegmm.candidates.unsettled_advice`)."""
    for z, where in ((z_train, source), (labelled_latents, labelled.source)):
        if not np.isfinite(z).all():
            raise FloatingPointError(
                f"{where}: the trained encoder maps {int((~np.isfinite(z).all(axis=1)).sum())} images to NaN or "
                "infinite latent means: training diverged; lower the learning rate (--lr)."
            )
    fit = FewLabelGMM(config, random_state=seed).fit(z_train, labelled_latents, labelled.labels, inputs=train_images,
                                                     inputs_labelled=labelled.images if labelled_inputs is None
                                                     else labelled_inputs)
    if warn:
        _warn_if_unsettled(fit, latent_dim=z_train.shape[1])
    return fit


def _warn_if_unsettled(fit: FewLabelGMM, *, latent_dim: int) -> None:
    """Warn UnsettledFitWarning, pointed at the caller of the public function that called this, where
    :func:`vaegmm.candidates.unsettled_advice` has advice for the fit."""
    advice = unsettled_advice(fit.disagreement_, latent_dim=latent_dim)
    if advice:
        warnings.warn(advice, UnsettledFitWarning, stacklevel=3)


def few_label_fit(z_train: np.ndarray, labelled_latents: np.ndarray, labelled: Dataset, *,
                  train_images: np.ndarray | None, companion: Callable[[int], CompanionMeans], config: GMMConfig,
                  seed: int, source: str, progress: bool = False) -> tuple[FewLabelGMM, dict | None]:
    """:func:`fit_gmm` with the companion that ``config`` asks for, or that an unsettled fit calls for
    (:func:`vaegmm.candidates.companion_for_unsettled`); ``companion(d)`` trains one of d latent dimensions
    (:func:`companion_trainer`). Returns the fit and the companion's summary (None without one), which holds
    ``unsettled_disagreement``, the disagreement of the fit without it, when an unsettled fit called for it."""
    fit_args = dict(seed=seed, source=source)
    if config.companion_latent_dim:
        means = companion(config.companion_latent_dim)
        return fit_gmm(z_train, labelled_latents, labelled, train_images=means.points, labelled_inputs=means.labelled,
                       config=config, **fit_args), means.summary
    fit = fit_gmm(z_train, labelled_latents, labelled, train_images=train_images, config=config, warn=False, **fit_args)
    latent_dim = z_train.shape[1]
    size = companion_for_unsettled(config, fit.disagreement_, latent_dim=latent_dim)
    if not size:
        _warn_if_unsettled(fit, latent_dim=latent_dim)
        return fit, None
    if progress:
        print(f"GMM: the fit is unsettled (its candidates disagree on {fit.disagreement_:.1%} of the training images), "
              f"so the labels are spread over a {size}-D companion's latent instead (--companion-latent-dim 0: "
              "keep the fit and warn)", file=sys.stderr, flush=True)
    means = companion(size)
    refit = fit_gmm(z_train, labelled_latents, labelled, train_images=means.points, labelled_inputs=means.labelled,
                    config=replace(config, companion_latent_dim=size), **fit_args)
    return refit, {**means.summary, "unsettled_disagreement": fit.disagreement_}


def train_and_fit(
    train: Dataset,
    labelled: Dataset,
    *,
    model_config: VAEConfig,
    train_config: TrainConfig,
    gmm_config: GMMConfig,
    novelty_config: NoveltyConfig | None = None,
    model_path: str | Path,
    gmm_path: str | Path,
    log_path: str | Path | None = None,
    run_info_path: str | Path | None = None,
    digits: tuple[int, ...] | None = None,
    data_spec: dict | None = None,
    resume: bool = False,
    progress: bool = True,
    device: str = "auto",
) -> dict:
    """Train the VAE on ``train`` (labels ignored), fit the GMM from ``labelled``, save both.

    Every output path is checked before training starts, so a typo costs no training time.
    """
    for path in (model_path, gmm_path, log_path, run_info_path):
        if path:
            check_output_path(path)
    classes = check_labelled_set(labelled)
    if digits is not None:
        missing = sorted(set(digits) - set(classes.tolist()))
        if missing:
            raise DataError(
                f"{labelled.source}: no labelled image of class(es) {missing}; found labels {classes.tolist()}. "
                "Add labelled images of every class, or leave those classes out of --digits."
            )
        keep = np.isin(labelled.labels, digits)
        labelled = Dataset(labelled.images[keep], labelled.labels[keep], labelled.source)
    check_same_image_shape(labelled, train.image_shape, model_source=f"being trained on {train.source}")
    model_config = VAEConfig(**{**model_config.to_dict(), "image_shape": train.image_shape})
    gmm_config.for_latent(model_config.latent_dim)  # settings that leave no candidate fit fail here, before training
    checkpoint_path = Path(str(model_path) + ".ckpt")
    torch_device = pick_device(device)
    novelty_config = novelty_config or NoveltyConfig()
    # On small sets and above 2-D a share of the training images is kept from the VAE to calibrate the novelty
    # threshold on.
    fit_rows, held_rows = calibration_rows(len(train), novelty_config=novelty_config, train_config=train_config,
                                           latent_dim=model_config.latent_dim)
    images = train.images[fit_rows] if len(held_rows) else train.images  # (N_fit, H, W)
    result = train_vae(
        images, model_config=model_config, train_config=train_config, device=torch_device,
        log_path=log_path, checkpoint_path=checkpoint_path, resume=resume, progress=progress,
    )
    model = result.model
    start = time.perf_counter()
    statistics = encode_statistics(model, images)  # one encoder and one decoder pass: μ, log σ², error
    encode_seconds = time.perf_counter() - start
    labelled_statistics = encode_statistics(model, labelled.images)  # μ seeds the fit; the rest checks the threshold
    gmm_start = time.perf_counter()
    fit, companion = few_label_fit(
        statistics["mu"], labelled_statistics["mu"], labelled, train_images=images, config=gmm_config,
        companion=companion_trainer(images, labelled.images, model_config=model_config, train_config=train_config,
                                    device=torch_device, progress=progress, teacher=result.teacher_run),
        seed=train_config.seed, source=train.source, progress=progress)
    # The companion's training is reported on its own line, as the model's is.
    gmm_seconds = time.perf_counter() - gmm_start - (companion["seconds"] if companion else 0.0)
    calibration = (novelty_statistics(encode_statistics(model, train.images[held_rows]), fit.gmm_)
                   if len(held_rows) else None)
    novelty = NoveltyDetector().fit(novelty_statistics(statistics, fit.gmm_), flag_rate=novelty_config.flag_rate,
                                    held_out=calibration)
    # The labelled images the VAE never saw are ordinary new images: how many the threshold flags tells a
    # user whether it holds beyond the images it was calibrated on.
    unseen = not_among(labelled.images, images)  # (M,)
    held_out = None
    if unseen.any():
        scores = novelty.score(novelty_statistics(labelled_statistics, fit.gmm_))  # (M,)
        held_out = held_out_flag_check(scores[unseen], threshold=novelty.threshold_, flag_rate=novelty.flag_rate_)
    state = gmm_file_state(fit.gmm_, config=fit.config_, fit_summary=fit.summary(), model=model, novelty=novelty,
                           novelty_config=novelty_config)
    summary = {
        "parameters": count_parameters(model),
        "vae_images": len(images),
        "train_seconds": result.seconds,
        "encode_seconds": encode_seconds,
        "gmm_seconds": gmm_seconds,
        "device": result.device,
        "final_epoch": result.history[-1],
        "restarts": {"final_losses": result.restart_losses, "kept_seed": result.seed},
        "teacher": result.teacher,
        "companion": companion,
        "neighbour_term": {"weight": model.config.neighbour_weight,
                           "by_small_set_rule": model_config.neighbour_weight is None and model.config.neighbour_weight > 0},
        "gmm": fit.summary(),
        "novelty": {**novelty.to_dict(), "held_out_check": held_out},
    }
    save_model(model, model_path, train_config=train_config,
               extra={"fingerprint": state["vae"]["fingerprint"], "train_seconds": result.seconds,
                      "restarts": summary["restarts"]})  # the kept seed: train_config's seed is the first one
    save_plain_pickle(state, gmm_path)
    if run_info_path:
        info = {
            "model_config": model.config.to_dict(), "train_config": train_config.to_dict(),  # as trained: the term settled
            "gmm_config": fit.config_.to_dict(), "novelty_config": novelty_config.to_dict(),
            "environment": environment(), "summary": summary,
            "train_file": train.source, "labelled_file": labelled.source, "n_train": len(train),
            "n_labelled": len(labelled), "history": result.history, "data": data_spec,
        }
        atomic_write_bytes(run_info_path, json.dumps(info, indent=2).encode())
    checkpoint_path.unlink(missing_ok=True)  # the finished model supersedes it, and its teacher's
    teacher_checkpoint_path(checkpoint_path).unlink(missing_ok=True)
    return summary


def reconstruct_to_file(model: VAE, dataset: Dataset, out_path: str | Path) -> dict:
    """Write reconstructions (float32 in [0, 1], the input's shape) under key ``data``; return metrics."""
    check_output_path(out_path)
    recon = reconstruct(model, dataset.images)  # (N, H, W)
    shape = dataset.stored_shape or recon.shape
    with atomic_output(out_path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, data=recon.reshape(shape).astype(np.float32))
    return {**reconstruction_metrics(dataset.images, recon), "n_images": len(recon)}


def classify_to_file(model: VAE, gmm: GaussianMixture, dataset: Dataset, out_path: str | Path, *,
                     novelty: NoveltyDetector | None = None) -> tuple[np.ndarray, dict | None, np.ndarray | None]:
    """Write one row per image, in input order, and return predictions (N,), the metrics of
    :func:`vaegmm.evaluation.classification_metrics` (if labels exist) and the novelty flags (N,) or None.

    Without ``novelty`` the file has the course's single column ``Predicted_Label``. With it, also
    ``Probability`` (the predicted class's posterior), ``Novelty_Score`` and ``Novel`` (1 when the
    score is above the calibrated threshold: the image belongs to no known class); scoring costs one
    decoder pass more than classifying.
    """
    check_output_path(out_path)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    flags = None
    if novelty is None:
        predictions = gmm.predict(encode_means(model, dataset.images))  # (N,)
        writer.writerow(["Predicted_Label"])
        writer.writerows([int(p)] for p in predictions)
    else:
        statistics = encode_statistics(model, dataset.images)
        proba = gmm.predict_proba(statistics["mu"])  # (N, C)
        predictions = gmm.classes_[proba.argmax(axis=1)]
        scores = novelty.score(novelty_statistics(statistics, gmm))  # (N,)
        flags = scores > novelty.threshold_
        writer.writerow(["Predicted_Label", "Probability", "Novelty_Score", "Novel"])
        # One %-format per row over plain Python numbers: a third of the csv writer's time on these four columns.
        rows = zip(predictions.tolist(), proba.max(axis=1).tolist(), scores.tolist(), flags.astype(int).tolist())
        buffer.write("".join(["%d,%.6f,%.4f,%d\n" % row for row in rows]))
    atomic_write_bytes(out_path, buffer.getvalue().encode())
    metrics = None
    if dataset.labels is not None:
        metrics = classification_metrics(dataset.labels, predictions, gmm.classes_)
    return predictions, metrics, flags


def run_demo(
    *,
    data_dir: str | Path | None,
    digits: tuple[int, ...],
    labels_per_digit: int,
    out_dir: str | Path,
    model_config: VAEConfig,
    train_config: TrainConfig,
    gmm_config: GMMConfig,
    novelty_config: NoveltyConfig | None = None,
    progress: bool = True,
    device: str = "auto",
    notify=print,
) -> dict:
    """The whole job on MNIST: load ``digits``, draw ``labels_per_digit`` labelled training images of each,
    train, fit, and write every figure and the report into ``out_dir``. ``notify`` receives progress lines.

    Returns {"summary": train_and_fit's summary, "report": build_run_report's result, "seconds": wall time}.
    """
    from .mnist import default_data_dir, load_mnist
    from .report import build_run_report

    start = time.perf_counter()
    folder = default_data_dir(data_dir)
    splits = load_mnist(folder, digits=digits, labels_per_digit=labels_per_digit, seed=train_config.seed,
                        progress=progress)
    notify(f"MNIST from {folder}: {len(splits.train)} training images of digits {list(digits)}, "
           f"{len(splits.labelled)} labelled, {len(splits.test)} test")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = train_and_fit(
        splits.train, splits.labelled, model_config=model_config, train_config=train_config, gmm_config=gmm_config,
        novelty_config=novelty_config, model_path=out / "vae.pth", gmm_path=out / "gmm_params.pkl", log_path=out / "train_log.jsonl",
        run_info_path=out / "run.json", progress=progress, device=device,
        data_spec={"kind": "mnist", "dir": str(folder.resolve()), "digits": list(digits),
                   "labels_per_digit": labels_per_digit, "seed": train_config.seed},
    )
    report = build_run_report(out)
    return {"summary": summary, "report": report, "seconds": time.perf_counter() - start}
