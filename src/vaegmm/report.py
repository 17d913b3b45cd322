"""A run's report: figures, metrics and a latent-space explanation generated from measurements.

The report is built as a list of blocks (headings, paragraphs, tables, figures) rendered
twice: to Markdown with linked PNGs and to one self-contained HTML file with embedded PNGs.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import chi2

from .storage import atomic_write_bytes

GAUSSIAN_TOLERANCE = 0.05  # share-inside-ellipse differences below this read as "close to Gaussian"


# --- measurements ----------------------------------------------------------------------------

def bhattacharyya(mean1, cov1, mean2, cov2) -> float:
    """Bhattacharyya distance between two Gaussians; exp(-distance) bounds their overlap."""
    cov = (cov1 + cov2) / 2
    diff = mean1 - mean2
    term1 = diff @ np.linalg.solve(cov, diff) / 8
    _, logdet = np.linalg.slogdet(cov)
    _, logdet1 = np.linalg.slogdet(cov1)
    _, logdet2 = np.linalg.slogdet(cov2)
    return float(term1 + 0.5 * (logdet - 0.5 * (logdet1 + logdet2)))


def _gaussian_shape(mean: np.ndarray, cov: np.ndarray, pts: np.ndarray) -> dict:
    """Spread, principal axes and the share of ``pts`` inside the 1σ and 2σ ellipses of N(mean, cov)."""
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = eigval[order], eigvec[:, order]
    major = eigvec[:, 0]
    angle = math.degrees(math.atan2(major[1], major[0])) if len(mean) >= 2 else 0.0
    angle = (angle + 90) % 180 - 90  # an axis has no direction: fold into [-90, 90)
    if len(pts):
        white = np.linalg.solve(np.linalg.cholesky(cov), (pts - mean).T)  # (D, n)
        maha = np.sqrt((white**2).sum(axis=0))
    else:
        maha = np.array([])
    return {
        "mean": mean.tolist(), "std_per_dimension": np.sqrt(np.diag(cov)).tolist(),
        "principal_std": np.sqrt(eigval).tolist(), "major_axis_angle_deg": angle, "n_points": int(len(pts)),
        "inside_1sigma": float(np.mean(maha <= 1)) if len(pts) else float("nan"),
        "inside_2sigma": float(np.mean(maha <= 2)) if len(pts) else float("nan"),
    }


def latent_analysis(gmm, Z: np.ndarray, *, confusion: np.ndarray | None = None) -> dict:
    """Shape statistics of each digit's cluster and component, separations between digits, confusions.

    Z (N, D): latent means of the training images; each point belongs to the digit (and component)
    of highest posterior. A digit modelled by several components is summarised by the single
    Gaussian with the same mean and covariance as its components together (moment matching).
    confusion (C, C): test confusion matrix in ``gmm.classes_`` order (rows true, columns predicted).
    """
    n_features = Z.shape[1]
    digit_of_point = gmm.predict(Z)
    component_of_point = gmm.predict_component(Z)
    digits, summaries = [], {}
    for label in gmm.classes_.tolist():
        own = np.flatnonzero(gmm.component_classes_ == label)
        w = gmm.weights_[own]
        mean = (w[:, None] * gmm.means_[own]).sum(0) / w.sum()
        second = sum(wk * (gmm.covariances_[k] + np.outer(gmm.means_[k], gmm.means_[k])) for wk, k in zip(w, own)) / w.sum()
        cov = second - np.outer(mean, mean)
        summaries[label] = (mean, cov)
        components = [
            {"component": int(k), "weight": float(gmm.weights_[k]),
             **_gaussian_shape(gmm.means_[k], gmm.covariances_[k], Z[component_of_point == k])}
            for k in own
        ]
        digits.append({"digit": label, "weight": float(w.sum()), "components": components,
                       **_gaussian_shape(mean, cov, Z[digit_of_point == label])})
    pairs = []
    labels = gmm.classes_.tolist()
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            (m1, c1), (m2, c2) = summaries[labels[i]], summaries[labels[j]]
            pairs.append({"digits": [labels[i], labels[j]], "bhattacharyya": bhattacharyya(m1, c1, m2, c2)})
    confusions = []
    if confusion is not None:
        for a in range(len(labels)):
            for b in range(len(labels)):
                if a != b and confusion[a, b] > 0:
                    confusions.append({"true": labels[a], "predicted": labels[b], "count": int(confusion[a, b]),
                                       "rate": float(confusion[a, b] / confusion[a].sum())})
        confusions.sort(key=lambda c: -c["count"])
    return {"expected_inside_1sigma": float(chi2.cdf(1, n_features)), "expected_inside_2sigma": float(chi2.cdf(4, n_features)),
            "digits": digits, "pairs": sorted(pairs, key=lambda p: p["bhattacharyya"]), "confusions": confusions,
            "confusion_known": confusion is not None}


def _shape_words(c: dict, e1: float, e2: float) -> str:
    d1, d2 = c["inside_1sigma"] - e1, c["inside_2sigma"] - e2
    if abs(d1) <= GAUSSIAN_TOLERANCE and abs(d2) <= GAUSSIAN_TOLERANCE:
        return "close to Gaussian"
    if d1 > GAUSSIAN_TOLERANCE:
        return "more peaked than a Gaussian, with a dense core and long tails"
    if d1 < -GAUSSIAN_TOLERANCE:
        return "flatter than a Gaussian: its points avoid the centre (a curved or multi-modal cluster)"
    return "near-Gaussian in its core but with a different tail"


def _form(stds: list[float]) -> tuple[str, float]:
    ratio = stds[0] / stds[-1] if stds[-1] > 0 else float("inf")
    return ("round" if ratio < 1.3 else "elongated" if ratio < 3 else "strongly elongated"), ratio


def explain(analysis: dict) -> list[str]:
    """Sentences generated from :func:`latent_analysis`; every number is measured."""
    e1, e2 = analysis["expected_inside_1sigma"], analysis["expected_inside_2sigma"]
    out = []
    for d in analysis["digits"]:
        form, ratio = _form(d["principal_std"])
        spread = ", ".join(f"{s:.2f} along latent dimension {i + 1}" for i, s in enumerate(d["std_per_dimension"]))
        mean = ", ".join(f"{m:.2f}" for m in d["mean"])
        comps = d["components"]
        parts = "; ".join(
            f"component {c['component']}: weight {c['weight']:.1%}, mean ({', '.join(f'{m:.2f}' for m in c['mean'])}), "
            f"{_form(c['principal_std'])[0]}, {c['inside_1sigma']:.0%}/{c['inside_2sigma']:.0%} inside 1σ/2σ"
            for c in comps
        )
        out.append(
            f"**Digit {d['digit']}** (weight {d['weight']:.1%}, {d['n_points']} training images): centred at ({mean}); "
            f"standard deviation {spread}. Its principal axes have standard deviations "
            f"{' and '.join(f'{s:.2f}' for s in d['principal_std'])}, the major one at {d['major_axis_angle_deg']:.0f}° "
            f"from latent dimension 1: the cluster is {form} (axis ratio {ratio:.1f}). {d['inside_1sigma']:.0%} of its "
            f"points lie inside its 1σ ellipse and {d['inside_2sigma']:.0%} inside its 2σ ellipse, against {e1:.0%} "
            f"and {e2:.0%} for a Gaussian: {_shape_words(d, e1, e2)}. "
            + (f"The GMM models it with {len(comps)} components ({parts})." if len(comps) > 1 else "")
        )
    for p in analysis["pairs"]:
        out.append(
            f"Digits {p['digits'][0]} and {p['digits'][1]}: Bhattacharyya distance {p['bhattacharyya']:.2f} between "
            f"their clusters, so these overlap by at most {math.exp(-p['bhattacharyya']):.1%}."
        )
    if len(analysis["pairs"]) > 1:
        closest = analysis["pairs"][0]
        out.append(f"The closest pair is {closest['digits'][0]} and {closest['digits'][1]}.")
    if analysis["confusions"]:
        parts = [f"{c['count']} test images of {c['true']} were taken for {c['predicted']} ({c['rate']:.1%} of the {c['true']}s)"
                 for c in analysis["confusions"][:6]]
        out.append("Confusions on the test images, most frequent first: " + "; ".join(parts) + ".")
    elif analysis["confusion_known"]:
        out.append("No test image was confused.")
    return out


# --- rendering ---------------------------------------------------------------------------------

@dataclass
class Report:
    title: str
    blocks: list[tuple] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: list[str], rows: list[list]) -> None:
        self.blocks.append(("table", header, rows))

    def figure(self, path: Path, caption: str) -> None:
        self.blocks.append(("img", Path(path), caption))

    def to_markdown(self, base: Path) -> str:
        lines = [f"# {self.title}", ""]
        for block in self.blocks:
            kind = block[0]
            if kind == "h2":
                lines += [f"## {block[1]}", ""]
            elif kind == "p":
                lines += [block[1], ""]
            elif kind == "table":
                header, rows = block[1], block[2]
                lines.append("| " + " | ".join(header) + " |")
                lines.append("|" + "---|" * len(header))
                lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
                lines.append("")
            elif kind == "img":
                lines += [f"![{block[2]}]({block[1].relative_to(base).as_posix()})", f"*{block[2]}*", ""]
        return "\n".join(lines)

    def to_html(self) -> str:
        import re

        def inline(text: str) -> str:
            return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))

        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for block in self.blocks:
            kind = block[0]
            if kind == "h2":
                body.append(f"<h2>{html.escape(block[1])}</h2>")
            elif kind == "p":
                body.append(f"<p>{inline(block[1])}</p>")
            elif kind == "table":
                head = "".join(f"<th>{html.escape(h)}</th>" for h in block[1])
                rows = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in block[2])
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif kind == "img":
                data = base64.b64encode(block[1].read_bytes()).decode()
                body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(block[2])}">'
                            f"<figcaption>{html.escape(block[2])}</figcaption></figure>")
        style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;line-height:1.5;color:#222}"
                 "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}"
                 "th{background:#f3f3f3}img{max-width:100%}figure{margin:1.5em 0}figcaption{color:#555;font-style:italic}")
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(self.title)}</title>"
                f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")

    def write(self, folder: Path) -> tuple[Path, Path]:
        md, page = folder / "report.md", folder / "report.html"
        atomic_write_bytes(md, self.to_markdown(folder).encode())
        atomic_write_bytes(page, self.to_html().encode())
        return md, page


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2).encode())


# --- a run's figures and report ------------------------------------------------------------------

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


def load_run_data(info: dict, *, test_path=None, progress: bool = False):
    """Re-open the data a run was trained on: returns (train, labelled, test or None)."""
    from .data import load_mnist, load_npz
    from .errors import DataError

    spec = info.get("data") or {}
    if spec.get("kind") == "mnist":
        splits = load_mnist(spec["dir"], digits=tuple(spec["digits"]), labels_per_digit=spec["labels_per_digit"],
                            seed=spec["seed"], progress=progress)
        test = load_npz(test_path) if test_path else splits.test
        return splits.train, splits.labelled, test
    if spec.get("kind") == "files":
        test = test_path or spec.get("test")
        return load_npz(spec["train"]), load_npz(spec["val"], require_labels=True), (load_npz(test) if test else None)
    raise DataError("run.json: records no training data; re-run 'vaegmm train' (or 'vaegmm demo') to make this run folder.")


def evaluate(model, gmm, test) -> dict:
    """Test metrics: reconstruction, classification (when labelled) and ELBO per image."""
    from .metrics import classification_report, confusion_matrix, one_minus_mse, ssim
    from .model import elbo_per_image, encode_means, reconstruct

    recon = reconstruct(model, test.images)
    out = {"n_test": len(test), "ssim": ssim(test.images, recon), "one_minus_mse": one_minus_mse(test.images, recon),
           "elbo_per_image": elbo_per_image(model, test.images)}
    if test.labels is not None:
        predicted = gmm.predict(encode_means(model, test.images))
        out["classification"] = classification_report(test.labels, predicted)
        out["confusion"] = confusion_matrix(test.labels, predicted, gmm.classes_).tolist()
    return out


def make_figures(run_dir: Path, *, model, gmm, train, Z, labelled, test, confusion, history) -> dict[str, Path]:
    """Every figure of the report, into RUN_DIR/figures/.

    Z (N, D): the training images' latent means; confusion (C, C) on the test images, or None.
    """
    from scipy.stats import norm

    from . import plots
    from .model import decode_latents, encode_means, reconstruct

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
    per_component = []
    for k in range(len(gmm.weights_)):
        per_component.append(rng.multivariate_normal(gmm.means_[k], gmm.covariances_[k], size=SAMPLES_PER_ROW))
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


def open_run(run_dir: Path, *, test_path=None, progress: bool = False):
    """A run folder's record, model, GMM and data: (info, model, gmm, train, labelled, test)."""
    from .errors import DataError
    from .pipeline import load_gmm_for, load_model_for

    info_path = run_dir / "run.json"
    if not info_path.is_file():
        raise DataError(f"{info_path}: not found; RUN_DIR must be a folder written by 'vaegmm train --out-dir' or 'vaegmm demo'.")
    info = json.loads(info_path.read_text())
    model = load_model_for(run_dir / "vae.pth")
    gmm = load_gmm_for(run_dir / "gmm_params.pkl", model, run_dir / "vae.pth")
    train, labelled, test = load_run_data(info, test_path=test_path, progress=progress)
    return info, model, gmm, train, labelled, test


def _evaluate_run(run_dir: Path, *, test_path, progress: bool) -> dict:
    """Open a run, encode its training images once, evaluate on the test images, draw every figure."""
    from .model import encode_means

    info, model, gmm, train, labelled, test = open_run(run_dir, test_path=test_path, progress=progress)
    Z = encode_means(model, train.images)  # (N, latent_dim)
    evaluation = evaluate(model, gmm, test) if test is not None else {}
    confusion = np.array(evaluation["confusion"]) if "confusion" in evaluation else None
    figures = make_figures(run_dir, model=model, gmm=gmm, train=train, Z=Z, labelled=labelled, test=test,
                           confusion=confusion, history=info["history"])
    return {"info": info, "model": model, "gmm": gmm, "labelled": labelled, "test": test, "Z": Z,
            "evaluation": evaluation, "confusion": confusion, "figures": figures}


def build_run_figures(run_dir: str | Path, *, test_path=None, progress: bool = False) -> dict[str, Path]:
    return _evaluate_run(Path(run_dir), test_path=test_path, progress=progress)["figures"]


def build_run_report(run_dir: str | Path, *, test_path=None, progress: bool = False) -> dict:
    """Figures, evaluation.json, report.md and report.html for a trained run folder."""
    from .model import count_parameters

    run_dir = Path(run_dir)
    run = _evaluate_run(run_dir, test_path=test_path, progress=progress)
    info, model, gmm, labelled, test = run["info"], run["model"], run["gmm"], run["labelled"], run["test"]
    evaluation, figures = run["evaluation"], run["figures"]
    analysis = latent_analysis(gmm, run["Z"], confusion=run["confusion"])
    write_json(run_dir / "evaluation.json", {"evaluation": evaluation, "latent_analysis": analysis})

    rep = Report("vaegmm run report")
    summary = info["summary"]
    rep.paragraph(f"Run folder `{run_dir}`. A VAE was trained on {info['n_train']} unlabelled images; the GMM was seeded "
                  f"from {info['n_labelled']} labelled images ({labelled.source}).")
    rep.heading("Configuration and environment")
    rows = [[f"model.{k}", v] for k, v in info["model_config"].items()]
    rows += [[f"train.{k}", v] for k, v in info["train_config"].items()]
    rows += [[f"gmm.{k}", v] for k, v in info["gmm_options"].items()]
    rows += [[f"env.{k}", v] for k, v in info["environment"].items()]
    rows += [["device", summary["device"]], ["seed", info["train_config"]["seed"]],
             ["training time (s)", round(summary["train_seconds"], 1)], ["GMM fit time (s)", round(summary["gmm_seconds"], 2)],
             ["parameters", f"{count_parameters(model):,}"],
             ["GMM fit", f"{summary.get('gmm_partition_rounds', '?')} rounds of per-digit EM; joint EM "
                         + (f"kept ({summary['gmm_iterations']} iterations)" if summary.get("gmm_joint_em_accepted") else "not used")]]
    chosen = summary.get("gmm_chosen")
    if chosen:
        rows.append(["GMM candidate kept", f"{chosen['seeding']} seeding, {chosen['schedule']} schedule; its borders cut "
                     f"{chosen['boundary_fraction']:.1%} of the latent means' nearest-neighbour edges"])
    rep.table(["setting", "value"], rows)
    if evaluation:
        rep.heading(f"Metrics on {evaluation['n_test']} test images ({test.source})")
        metric_rows = [["SSIM", evaluation["ssim"]], ["1 − MSE", evaluation["one_minus_mse"]],
                       ["test ELBO (nats per image)", evaluation["elbo_per_image"]]]
        if "classification" in evaluation:
            metric_rows += [[k, v] for k, v in evaluation["classification"].items()]
        rep.table(["metric", "value"], metric_rows)
    else:
        rep.paragraph("No test file was given, so no metrics were computed (use --test).")
    rep.heading("Figures")
    captions = {
        "reconstructions": "Reconstructions (decoded latent means).",
        "manifold": "The generated 20×20 manifold (gnuplot2 colour map).",
        "prior_samples": "Random samples from the prior.",
        "component_samples": "Samples drawn from each GMM component and decoded: a typical image of each digit.",
        "latent": "The latent space, coloured by GMM cluster and by true label; stars are the labelled images.",
        "gmm": "The GMM's components with decision regions.",
        "curves": "Training curves.",
        "confusion": "Confusion matrix on the test images.",
    }
    for name, path in figures.items():
        rep.figure(path, captions[name])
    rep.heading("The latent space, measured")
    if model.config.latent_dim > 2:
        rep.paragraph(f"The latent space has {model.config.latent_dim} dimensions; the figures show the first two.")
    for sentence in explain(analysis):
        rep.paragraph(sentence)
    md, page = rep.write(run_dir)
    return {"report_md": md, "report_html": page, "figures": figures, "evaluation": evaluation}
