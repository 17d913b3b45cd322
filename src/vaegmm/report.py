"""A run's report: figures, metrics and a latent-space explanation generated from measurements."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .analysis import explain, latent_analysis
from .candidates import (SUGGESTED_LATENT_DIM, UNSETTLED_DISAGREEMENT, components_phrase, rounds_phrase, spread_over_phrase,
                         unsettled_advice, warns_if_unsettled)
from .document import Report
from .evaluation import evaluate
from .explorer import explorer_data, explorer_html
from .figures import LatentPlane, make_figures
from .runs import open_run
from .storage import atomic_write_bytes


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2).encode())


def _evaluate_run(run_dir: Path, *, test_path, progress: bool) -> dict:
    """Open a run, encode its training images once, evaluate on the test images, draw every figure."""
    from .config import NoveltyConfig, TrainConfig
    from .model import encode_statistics
    from .novelty import calibration_rows, novelty_statistics

    info, model, gmm, novelty, train, labelled, test = open_run(run_dir, test_path=test_path, progress=progress)
    train_stats = encode_statistics(model, train.images)
    Z = train_stats["mu"]  # (N, latent_dim)
    test_stats = encode_statistics(model, test.images) if test is not None else None
    evaluation = evaluate(model, gmm, test, latents=test_stats["mu"]) if test is not None else {}
    confusion = np.array(evaluation["confusion"]) if "confusion" in evaluation else None
    scores = None
    if novelty is not None and test is not None:
        train_scores = novelty.score(novelty_statistics(train_stats, gmm))  # (N,)
        fit_rows, held_rows = np.arange(len(train)), np.arange(0)
        if novelty.held_out_:  # `train` kept some images out of the VAE's training to set the threshold on
            fit_rows, held_rows = calibration_rows(len(train), novelty_config=NoveltyConfig.from_dict(info["novelty_config"]),
                                                   train_config=TrainConfig.from_dict(info["train_config"]),
                                                   latent_dim=model.config.latent_dim)
        scores = {"train": train_scores[fit_rows], "held_out": train_scores[held_rows] if len(held_rows) else None,
                  "test": novelty.score(novelty_statistics(test_stats, gmm)),
                  "threshold": novelty.threshold_, "flag_rate": novelty.flag_rate_, "calibrated_on": novelty.calibrated_on}
        evaluation["novelty"] = {"threshold": novelty.threshold_, "flag_rate": novelty.flag_rate_,
                                 "flagged_test": int((scores["test"] > novelty.threshold_).sum()),
                                 "flagged_test_rate": float(np.mean(scores["test"] > novelty.threshold_))}
    figures = make_figures(run_dir, model=model, gmm=gmm, train=train, Z=Z, labelled=labelled, test=test,
                           confusion=confusion, history=info["history"], novelty_scores=scores)
    return {"info": info, "model": model, "gmm": gmm, "novelty": novelty, "train": train, "labelled": labelled,
            "test": test, "Z": Z, "evaluation": evaluation, "confusion": confusion, "figures": figures}


def build_run_figures(run_dir: str | Path, *, test_path=None, progress: bool = False) -> dict[str, Path]:
    """Every figure of a run folder, into RUN_DIR/figures/; nothing else is written."""
    return _evaluate_run(Path(run_dir), test_path=test_path, progress=progress)["figures"]


CAPTIONS = {
    "reconstructions": "Reconstructions (decoded latent means).",
    "manifold": "The generated 20×20 manifold (gnuplot2 colour map).",
    "manifold_spread": ("The same grid moved onto the training images' latent means (their mean and standard deviation "
                        "along each axis) instead of the prior's N(0, 1): where the latent means spread wider than the "
                        "prior, as β below 1 or a neighbour term makes them, it reaches the classes the first grid "
                        "leaves out."),
    "prior_samples": "Random samples from the prior.",
    "component_samples": "Samples drawn from each GMM component and decoded: a typical image of each class.",
    "latent": "The latent space, coloured by GMM cluster and by true label; stars are the labelled images.",
    "gmm": "The GMM's components with decision regions.",
    "curves": "Training curves.",
    "confusion": "Confusion matrix on the test images.",
    "novelty": "Novelty scores of the training images and of the test images, with the threshold.",
    "novelty_examples": "Test images by novelty score: the most typical, the least typical, and those flagged.",
}


def _relative(path: str, run_dir: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(run_dir.resolve()))
    except ValueError:
        return str(path)


def build_run_report(run_dir: str | Path, *, test_path=None, progress: bool = False) -> dict:
    """Figures, evaluation.json, report.md and report.html for a trained run folder.

    The report reads top-down: what was trained on what and the headline figures, then the figures,
    the measured explanation, and the configuration and environment as an appendix.
    """
    run_dir = Path(run_dir)
    run = _evaluate_run(run_dir, test_path=test_path, progress=progress)
    info, model, gmm, labelled, test = run["info"], run["model"], run["gmm"], run["labelled"], run["test"]
    evaluation, figures = run["evaluation"], run["figures"]
    analysis = latent_analysis(gmm, run["Z"], confusion=run["confusion"])
    write_json(run_dir / "evaluation.json", {"evaluation": evaluation, "latent_analysis": analysis})

    rep = Report("vaegmm run report")
    summary = info["summary"]
    classes = ", ".join(str(c) for c in gmm.classes_.tolist())
    rep.paragraph(f"A VAE with a {model.config.latent_dim}-D latent space was trained on {info['n_train']} unlabelled "
                  f"images ({_relative(info['train_file'], run_dir)}); its GMM of {len(gmm.weights_)} components models "
                  f"classes {classes}, seeded from {info['n_labelled']} labelled images ({_relative(labelled.source, run_dir)}).")
    teacher = summary.get("teacher")
    if teacher:
        rep.paragraph(f"Its neighbour-embedding term kept together the images that lie near each other in the latent space "
                      f"of a {teacher['latent_dim']}-D teacher VAE, trained first on the same images "
                      f"({teacher['epochs']} epochs, {teacher['seconds']:.1f} s), instead of those near in pixels.")
    companion = summary.get("companion")
    if companion:
        why = companion.get("unsettled_disagreement")
        # Fitted once within the spreading's classes with --seedings unset; given seedings, its classes only seed
        # candidates among others, whose borders may move.
        once = list(info["gmm_config"].get("schedules") or []) == [] and info["gmm_config"].get("seedings") == ["inputs"]
        rep.paragraph((f"The fit without a companion was unsettled (its candidates put a median {why:.1%} of the "
                       "training images in another class), so the labels " if why is not None else "The labels ")
                      + (f"were spread over the latent means of the {companion['latent_dim']}-D teacher, which has "
                         "a companion VAE's settings and so served as the companion (never shown a label, not saved), "
                         if companion.get("teacher") else
                         f"were spread over the latent means of a {companion['latent_dim']}-D companion VAE, trained "
                         f"beside it on the same images ({companion['epochs']} epochs, {companion['seconds']:.1f} s; "
                         "never shown a label, not saved), ")
                      + "and the GMM was "
                      + ("fitted within the classes that spreading gave the training images"
                         if once else "fitted from candidates that spreading's classes seeded among others")
                      + "; the GMM in this model's latent space is the classifier.")
    advice = unsettled_advice(summary["gmm"].get("disagreement"), latent_dim=model.config.latent_dim)
    if advice:
        rep.paragraph(f"**Warning:** {advice[0].upper()}{advice[1:]}")
    if evaluation:
        line = (f"On {evaluation['n_test']} test images ({_relative(test.source, run_dir)}): reconstruction SSIM "
                f"{evaluation['ssim']:.4f}, 1 − MSE {evaluation['one_minus_mse']:.4f}, ELBO {evaluation['elbo_per_image']:.2f} "
                "nats per image.")
        rep.paragraph(line)
        if "classification" in evaluation:
            c = evaluation["classification"]
            rep.paragraph(f"Classification: **score {c['score']:.4f}** (mean of macro F1 {c['f1_macro']:.4f} and micro F1 "
                          f"{c['f1_micro']:.4f}); accuracy {c['accuracy']:.4f}, macro precision {c['precision_macro']:.4f}, "
                          f"macro recall {c['recall_macro']:.4f}.")
    else:
        rep.paragraph("No test file was given, so no metrics were computed (use --test).")
    rep.heading("Interactive latent map")
    plane = LatentPlane.for_latents(run["Z"]) if model.config.latent_dim > 1 else None  # a 1-D latent has none
    if plane is None:
        rep.paragraph("The latent space has one dimension, so there is no plane to explore; the figures below draw "
                      "its one axis: histograms, component densities and images decoded along it.")
    else:
        data = explorer_data(model=model, gmm=gmm, novelty=run["novelty"], plane=plane,
                             Z=run["Z"], classes_of_points=gmm.predict(run["Z"]), images=run["train"].images)
        rep.html(explorer_html(data), "The interactive latent map is in report.html (it needs JavaScript; nothing is fetched).")
    rep.heading("Figures")
    if model.config.latent_dim > 2:
        rep.paragraph(f"The latent space has {model.config.latent_dim} dimensions; the scatter, ellipse and grid figures "
                      f"show {plane.describe()}. The measurements below use every dimension.")
    novelty_figures = ("novelty", "novelty_examples")  # shown under their own heading below
    for name, path in figures.items():
        if name not in novelty_figures:
            rep.figure(path, CAPTIONS[name])
    if "novelty" in evaluation:
        n = evaluation["novelty"]
        rep.heading("Novelty: images of no known class")
        rep.paragraph(f"Each image's novelty score sums three one-sided standard scores against the training images: "
                      f"how unlike its reconstruction it is (1 minus their correlation), how unlike the reconstruction's "
                      f"edges its edges are, and how improbable its latent mean is under the GMM (vaegmm.novelty). "
                      f"The threshold {n['threshold']:.2f} flags {n['flag_rate']:.1%} "
                      f"of {run['novelty'].calibrated_on}, on which it was calibrated; it flags {n['flagged_test']} of the "
                      f"{evaluation['n_test']} test images ({n['flagged_test_rate']:.1%}).")
        check = summary.get("novelty", {}).get("held_out_check")
        if check:
            rep.paragraph(f"Of the {check['n']} labelled images the VAE was not trained on, it flagged {check['flagged']} "
                          f"({check['expected']:.2f} expected at the calibrated rate; binomial p = {check['p_value']:.2g}, "
                          "small when new ordinary images are flagged more often than training images).")
        for name in novelty_figures:
            if name in figures:
                rep.figure(figures[name], CAPTIONS[name])
    rep.heading("The latent space, measured")
    for sentence in explain(analysis):
        rep.paragraph(sentence)
    if evaluation:
        rep.heading("Every metric")
        metric_rows = [["SSIM", evaluation["ssim"]], ["1 − MSE", evaluation["one_minus_mse"]],
                       ["test ELBO (nats per image)", evaluation["elbo_per_image"]]]
        metric_rows += [[k, v] for k, v in evaluation.get("classification", {}).items()]
        rep.table(["metric", "value"], metric_rows)
    rep.heading("Appendix: configuration and environment")
    chosen = summary["gmm"]["chosen"]
    rows = [["run folder", str(run_dir)], ["device", summary["device"]],
            ["training time (s)", round(summary["train_seconds"], 1)], ["GMM fit time (s)", round(summary["gmm_seconds"], 2)],
            ["parameters", f"{summary['parameters']:,}"],
            ["images the VAE trained on", f"{summary.get('vae_images', info['n_train']):,} of {info['n_train']:,}"],
            ["GMM candidate kept", components_phrase(summary["gmm"]) + f"{chosen['seeding']} seeding, {chosen['schedule']} schedule, "
                                   f"{rounds_phrase(chosen)}, joint EM "
                                   + ("kept" if chosen["joint_em_accepted"] else "not kept")
                                   + f"; its borders cut {chosen['boundary_fraction']:.1%} of the latent means' "
                                   "nearest-neighbour edges"
                                   + (f"; it agrees with label spreading over "
                                      f"{spread_over_phrase(summary.get('companion'))} on {chosen['input_agreement']:.1%} "
                                      "of them" if "input_agreement" in chosen else "")]]
    if summary["gmm"].get("disagreement") is not None:
        rows.append(["other GMM candidates' disagreement", f"a median {summary['gmm']['disagreement']:.1%} of the training "
                     f"images classified otherwise"
                     + (f" (unsettled above {UNSETTLED_DISAGREEMENT:.0%} in a latent under {SUGGESTED_LATENT_DIM}-D)"
                        if warns_if_unsettled(model.config.latent_dim) else "")])
    if run["novelty"] is not None:
        rows.append(["novelty threshold calibrated on", run["novelty"].calibrated_on])
    rows += [[f"model.{k}", v] for k, v in info["model_config"].items()]
    rows += [[f"train.{k}", v] for k, v in info["train_config"].items()]
    rows += [[f"gmm.{k}", v] for k, v in info["gmm_config"].items()]
    rows += [[f"novelty.{k}", v] for k, v in info.get("novelty_config", {}).items()]
    rows += [[f"env.{k}", v] for k, v in info["environment"].items()]
    rep.table(["setting", "value"], rows)
    md, page = rep.write(run_dir)
    return {"report_md": md, "report_html": page, "figures": figures, "evaluation": evaluation}
