"""Few labels, any classes: vaegmm's score with 5 labels per class against what its latent space allows.

For each class set — MNIST digits {1,4,8}, {3,5,8}, {4,7,9}, all ten (from the full MNIST in
../shared/data/mnist, or --mnist), scikit-learn's 8x8 digits, and, not run by default, those digits as they
are, mirrored and turned 90 degrees, thirty classes (``--sets digits8x3``) and four classes of drawn shapes
that are not digits (``--sets shapes``, benchmarks/shapes.py) — it trains a VAE with the defaults on
the training images (labels never read) and reports, over --draws seeded draws of 5 labelled training
images per class:

- vaegmm's score (mean of macro and micro F1) for each GMM variant in --variants, median and worst draw,
  the GMM fit time, and each draw's disagreement among the candidate fits (``FewLabelGMM.disagreement_``);
- the latent space's ceiling: a 10-nearest-neighbour classifier given every training label;
- the standard recipe: pytorch/examples' VAE (z = 2, 30 epochs) with scikit-learn's GaussianMixture
  seeded by the labelled class means (--peer);
- scikit-learn's LabelSpreading (kNN kernel) on the raw pixels with the same labels.

The split is honest: with ``--split validation`` (the default) a seeded tenth of the training images
is held out and scored (their labels are used only to score) and the VAE trains on the rest; defaults
are chosen on these figures. ``--split test`` trains on every training image and scores the official
test images: run it once, at the end. Results go to benchmarks/results/few_labels_<split>.json.

    python benchmarks/few_labels.py [--sets 148,358,479,all,digits8] [--split validation|test]
    python benchmarks/few_labels.py --neighbour-weight 0.4 --variants default --no-peer --no-pixels \
        --out benchmarks/results/few_labels_validation_z2_neighbours.json
    python benchmarks/few_labels.py --sets 358,479,all --neighbour-weight 0.4 --variants default --no-peer \
        --no-pixels --train-seed 1 --out benchmarks/results/few_labels_validation_z2_neighbours_seed1.json

``--variants companion`` also trains a 10-D companion VAE per set (``GMMConfig.companion_latent_dim``) and
spreads the labels over its latent means; in 2-D ``default`` trains one when a draw's fit is unsettled, as
``vaegmm train`` does (every variant fits through ``vaegmm.pipeline.few_label_fit``), and ``no_companion`` never.

``--train-seed`` trains the VAE with another seed and keeps the label draws: how much one trained VAE
moves the figures. ``--train-size N`` keeps a seeded N of the training images (after the validation
tenth is set aside, which stays whole) and ``--downsample K`` averages K x K pixel blocks: small sets and
small images cut from MNIST, as a practitioner's own set may be.

    python benchmarks/few_labels.py --sets 148,358,479,all --train-size 1250 --latent-dim 10 --variants spreading \
        --label-slack 2 --no-peer --draws 10 --out benchmarks/results/few_labels_validation_z10_small.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from compare import peer_gmm, train_peer  # noqa: E402
from shapes import make_shapes  # noqa: E402

from vaegmm.companion import companion_run  # noqa: E402
from vaegmm.config import GMMConfig, NoveltyConfig, TrainConfig, VAEConfig  # noqa: E402
from vaegmm.data import Dataset, as_images  # noqa: E402
from vaegmm.errors import UnsettledFitWarning  # noqa: E402
from vaegmm.evaluation import classification_metrics  # noqa: E402
from vaegmm.mnist import load_mnist_arrays  # noqa: E402
from vaegmm.model import encode_means  # noqa: E402
from vaegmm.novelty import calibration_rows  # noqa: E402
from vaegmm.pipeline import CompanionMeans, few_label_fit  # noqa: E402
from vaegmm.training import pick_device, train_vae  # noqa: E402

SETS = {"148": (1, 4, 8), "358": (3, 5, 8), "479": (4, 7, 9), "all": tuple(range(10)), "digits8": None, "digits8x3": None,
        "shapes": None}
LABELS_PER_CLASS = 5
VALIDATION_SHARE = 0.1
DIGITS8_TEST = 550  # scikit-learn's 1,797 8x8 digits: 1,247 for training, 550 for testing
# digits8x3: each 8x8 digit as it is, mirrored left to right and turned 90 degrees, each a class of its own
# (digit + 10 * k): thirty classes of about 125 training images, a many-class set that no default was chosen on.
DIGITS8_VARIANTS = 3
# shapes (benchmarks/shapes.py): four classes of 32x32 shapes that are not digits, drawn from fixed seeds
SHAPES_TRAIN, SHAPES_TEST, SHAPES_SIDE = 6000, 2000, 32
VARIANTS = {
    # vaegmm's: k-means + nearest in 2-D, nearest + spreading (and slack 2) above, unless given; in 2-D a
    # 10-D companion where that fit is unsettled (since the stop of 2026-12-07, sixth)
    "default": {},
    "no_companion": {"companion_latent_dim": 0},  # the 2-D default before: an unsettled fit warns and is kept
    "kmeans_nearest": {"seedings": ("kmeans", "nearest")},  # the 2-D default at any size ("default" in 10-D before)
    "spreading": {"seedings": ("nearest", "spreading")},
    "all_seedings": {"seedings": ("kmeans", "nearest", "spreading")},
    # nearest + spreading at 4 components per class whatever the points: the 10-D recommendation before the
    # components a class's points pay for were settled from the data
    "spreading_k4": {"seedings": ("nearest", "spreading"), "components_per_class": 4},
    "inputs": {"seedings": ("kmeans", "nearest", "inputs"), "choose_by": "inputs"},
    # label spreading over a 10-D companion VAE's latent means, the mixture fitted once within its partition
    "companion": {"companion_latent_dim": 10},
    # the companion's single fit at 4 components per class (the cap before it took up to 8), and at 12 and 16
    "companion_k4": {"companion_latent_dim": 10, "components_per_class": 4},
    "companion_k12": {"companion_latent_dim": 10, "components_per_class": 12},
    "companion_k16": {"companion_latent_dim": 10, "components_per_class": 16},
    # nearest + spreading with label spreading over ten neighbours a point: the recommendation before five
    "spreading_nb10": {"seedings": ("nearest", "spreading"), "spread_neighbors": 10},
    # nearest + spreading without the candidate fitted once on the spread partition: the recommendation before it
    "spreading_refined": {"seedings": ("nearest", "spreading"), "fit_once": ()},
}


def load_set(name: str, mnist_dir: Path, split: str, seed: int = 0, *, train_size: int = 0, downsample: int = 1):
    """(train images, train labels, eval images, eval labels) as float32 (N, H, W) in [0, 1] and int64; with
    ``train_size`` a seeded subset of that many training images, with ``downsample`` K the mean of K x K blocks."""
    x_train, y_train, x_eval, y_eval = _split_set(name, mnist_dir, split, seed)
    if train_size:
        keep = np.sort(np.random.default_rng(seed + 2).permutation(len(y_train))[:train_size])
        x_train, y_train = x_train[keep], y_train[keep]
    return _downsample(x_train, downsample), y_train, _downsample(x_eval, downsample), y_eval


def _downsample(images: np.ndarray, k: int) -> np.ndarray:
    """The mean of each k x k block of images (N, H, W), edges cropped to a multiple of k: (N, H // k, W // k)."""
    n, h, w = images.shape
    return images[:, : h - h % k, : w - w % k].reshape(n, h // k, k, w // k, k).mean(axis=(2, 4))


def _split_set(name: str, mnist_dir: Path, split: str, seed: int):
    if name in ("digits8", "digits8x3"):
        from sklearn.datasets import load_digits

        d = load_digits()
        images, labels = as_images(d.images * (255 / 16), "sklearn digits", "images"), d.target.astype(np.int64)
        order = np.random.default_rng(seed).permutation(len(labels))
        test, train = order[:DIGITS8_TEST], order[DIGITS8_TEST:]
        x_train, y_train, x_test, y_test = images[train], labels[train], images[test], labels[test]
        if name == "digits8x3":
            # The variants of one source image stay on one side of the split.
            x_train, y_train, x_test, y_test = (*_variants(x_train, y_train), *_variants(x_test, y_test))
    elif name == "shapes":
        x_train, y_train = make_shapes(SHAPES_TRAIN, side=SHAPES_SIDE, seed=seed)
        x_test, y_test = make_shapes(SHAPES_TEST, side=SHAPES_SIDE, seed=seed + 1)
    else:
        arrays = load_mnist_arrays(mnist_dir)
        keep = np.isin(arrays["train_labels"], SETS[name])
        x_train = as_images(np.asarray(arrays["train_images"])[keep], "mnist", "train")
        y_train = np.asarray(arrays["train_labels"])[keep].astype(np.int64)
        keep = np.isin(arrays["test_labels"], SETS[name])
        x_test = as_images(np.asarray(arrays["test_images"])[keep], "mnist", "test")
        y_test = np.asarray(arrays["test_labels"])[keep].astype(np.int64)
    if split == "test":
        return x_train, y_train, x_test, y_test
    order = np.random.default_rng(seed + 1).permutation(len(y_train))
    n_val = int(round(VALIDATION_SHARE * len(order)))
    val, rest = np.sort(order[:n_val]), np.sort(order[n_val:])
    return x_train[rest], y_train[rest], x_train[val], y_train[val]


def _variants(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) as they are, mirrored and turned 90 degrees, as classes label + 10 k: (3N, H, W), (3N,)."""
    forms = (images, images[:, :, ::-1], np.rot90(images, 1, axes=(1, 2)))
    step = int(labels.max()) + 1
    return (np.ascontiguousarray(np.concatenate(forms[:DIGITS8_VARIANTS])),
            np.concatenate([labels + step * k for k in range(DIGITS8_VARIANTS)]))


def draws(labels: np.ndarray, n_draws: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    classes = np.unique(labels)
    return [np.concatenate([rng.choice(np.flatnonzero(labels == c), LABELS_PER_CLASS, replace=False) for c in classes])
            for _ in range(n_draws)]


def score(y_true, y_pred) -> float:
    return classification_metrics(y_true, y_pred, np.unique(y_true))["classification"]["score"]


def summary(scores: list[float], **extra) -> dict:
    return {"scores": scores, "median": float(np.median(scores)), "worst": float(np.min(scores)), **extra}


def gmm_config(variant: str, args) -> GMMConfig:
    """The GMM settings of a variant, with the command line's --label-slack."""
    return GMMConfig(**{**VARIANTS[variant], "label_slack": args.label_slack})


def run_set(name: str, args) -> dict:
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.semi_supervised import LabelSpreading

    x_train, y_train, x_eval, y_eval = load_set(name, Path(args.mnist), args.split, train_size=args.train_size,
                                                downsample=args.downsample)
    labelled_sets = draws(y_train, args.draws)
    model_config = VAEConfig(image_shape=x_train.shape[1:], latent_dim=args.latent_dim,
                             neighbour_weight=args.neighbour_weight, neighbour_dof=args.neighbour_dof,
                             perplexity=args.perplexity, teacher_latent_dim=args.teacher_latent_dim)
    train_config = TrainConfig(seed=args.train_seed, restarts=args.restarts)
    # As `vaegmm train` does: on small sets and above 2-D a share of the images calibrates the novelty threshold
    # instead of training the VAE, and the mixture is fitted on the rest (the labelled draws may fall in either part).
    novelty_config = NoveltyConfig(calibration_share=args.calibration_share)
    fit_rows, _ = calibration_rows(len(x_train), novelty_config=novelty_config, train_config=train_config,
                                   latent_dim=model_config.latent_dim)
    result = train_vae(x_train[fit_rows], model_config=model_config, train_config=train_config,
                       device=pick_device(args.device), progress=False)
    Z, Z_eval = encode_means(result.model, x_train), encode_means(result.model, x_eval)
    out = {"set": name, "classes": np.unique(y_train).tolist(), "n_train": len(y_train), "n_eval": len(y_eval),
           "train_size": args.train_size, "downsample": args.downsample, "image_shape": list(x_train.shape[1:]),
           "split": args.split, "latent_dim": args.latent_dim, "neighbour_weight": result.model.config.neighbour_weight,
           "neighbour_dof": model_config.neighbour_dof, "perplexity": args.perplexity,
           "teacher_latent_dim": args.teacher_latent_dim, "teacher": result.teacher,
           "train_seed": args.train_seed, "restarts": args.restarts, "kept_seed": result.seed,
           "calibration_share": novelty_config.share_for(len(x_train), train_config,
                                                          latent_dim=model_config.latent_dim), "vae_images": len(fit_rows),
           "restart_losses": result.restart_losses,
           "train_seconds": result.seconds, "device": result.device, "vaegmm": {}}
    companions = {}  # latent size -> (the companion's latent means of every training image, its training seconds)

    def companion_means(dim: int) -> np.ndarray:
        """The companion's latent means of every training image (N, dim), trained once per set."""
        if dim not in companions:
            # the teacher where it has the companion's settings, as `vaegmm train` does: nothing trained, 0 s
            companion, summary = companion_run(x_train[fit_rows], model_config=model_config, train_config=train_config,
                                               latent_dim=dim, device=pick_device(args.device), progress=False,
                                               teacher=result.teacher_run)
            companions[dim] = encode_means(companion.model, x_train), summary["seconds"]  # (N, dim)
            out.setdefault("companions", {})[str(dim)] = summary
        return companions[dim][0]

    for variant in args.variants:
        scores, seconds, unsettled, with_companion = [], [], [], []
        config = gmm_config(variant, args)
        for idx in labelled_sets:
            # The product's own fit (vaegmm.pipeline.few_label_fit): with the companion the config asks for, or
            # that an unsettled fit calls for; the companion's training is timed apart, as `vaegmm train` does.
            def companion(dim: int) -> CompanionMeans:
                means = companion_means(dim)
                return CompanionMeans(means[fit_rows], means[idx], out["companions"][str(dim)])

            trained = sum(t for _, t in companions.values())
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UnsettledFitWarning)  # recorded below as the disagreement
                fit, used = few_label_fit(Z[fit_rows], Z[idx], Dataset(x_train[idx], y_train[idx], name), train_images=
                                          x_train[fit_rows], companion=companion, config=config, seed=0, source=name)
            seconds.append(time.perf_counter() - start - (sum(t for _, t in companions.values()) - trained))
            scores.append(score(y_eval, fit.gmm_.predict(Z_eval)))
            unsettled.append(fit.disagreement_ if used is None else used.get("unsettled_disagreement"))
            with_companion.append(used is not None)
        settled = fit.config_
        out["vaegmm"][variant] = summary(scores, fit_seconds_median=float(np.median(seconds)),
                                         seedings=list(settled.seedings), label_slack=settled.label_slack,
                                         components_per_class=settled.components_per_class,
                                         disagreements=unsettled, with_companion=with_companion)
    out["ceiling_knn_all_labels"] = score(y_eval, KNeighborsClassifier(10).fit(Z, y_train).predict(Z_eval))
    if args.peer:
        peer, seconds = train_peer(x_train)
        Zp, Zp_eval = encode_means(peer, x_train), encode_means(peer, x_eval)
        out["standard_recipe"] = summary([score(y_eval, peer_gmm(Zp, Zp[idx], y_train[idx])(Zp_eval)) for idx in labelled_sets],
                                         train_seconds=seconds)
    if args.pixels:
        flat, flat_eval = x_train.reshape(len(x_train), -1), x_eval.reshape(len(x_eval), -1)
        scores = []
        for idx in labelled_sets:
            y = np.full(len(y_train), -1)
            y[idx] = y_train[idx]
            spreading = LabelSpreading(kernel="knn", n_neighbors=10, n_jobs=-1).fit(flat, y)
            scores.append(score(y_eval, spreading.predict(flat_eval)))
        out["label_spreading_pixels"] = summary(scores)
    print(json.dumps({k: (v if not isinstance(v, dict) else {kk: vv for kk, vv in v.items() if kk != "scores"})
                      for k, v in out.items()}), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="148,358,479,all,digits8", help=f"comma-separated, from {list(SETS)}")
    parser.add_argument("--split", choices=("validation", "test"), default="validation")
    parser.add_argument("--draws", type=int, default=5, help="label draws of 5 per class")
    parser.add_argument("--latent-dim", type=int, default=VAEConfig().latent_dim)
    parser.add_argument("--neighbour-weight", type=float, default=VAEConfig().neighbour_weight,
                        help="the VAE's neighbour-embedding weight (README recommends 0.4 with a 2-D latent); "
                             "unset: vaegmm's rule (0.03 for a latent above 2-D on fewer than 2,000 images, else off)")
    parser.add_argument("--neighbour-dof", type=float, default=None,
                        help="degrees of freedom of the neighbour term's Student-t kernel (default: the latent size - 1)")
    parser.add_argument("--perplexity", type=float, default=VAEConfig().perplexity,
                        help="the neighbour term's effective number of neighbours per image in a batch")
    parser.add_argument("--teacher-latent-dim", type=int, default=VAEConfig().teacher_latent_dim,
                        help="latent size of a teacher VAE whose latent means give the neighbour term its affinities "
                             "(0: the pixels; README recommends 10 with a 2-D latent)")
    parser.add_argument("--train-seed", type=int, default=TrainConfig().seed,
                        help="the VAE's training seed: rerun with others to see how much one trained VAE moves the figures")
    parser.add_argument("--restarts", type=int, default=TrainConfig().restarts,
                        help="VAEs trained per set (seeds --train-seed, +1, ...); the lowest final loss is kept")
    parser.add_argument("--device", default="cpu",
                        help="where the VAEs train: cpu (the default; the published figures) or auto / cuda for a GPU, "
                             "whose float32 rounding gives other VAEs than the CPU's")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"GMM variants, from {list(VARIANTS)}")
    parser.add_argument("--label-slack", type=int, default=GMMConfig().label_slack,
                        help="labelled points a candidate fit may misplace beyond the best one's")
    parser.add_argument("--calibration-share", type=float, default=NoveltyConfig().calibration_share,
                        help="share of the training images kept from the VAE for the novelty calibration "
                             "(default: vaegmm's rule, 0.1 on sets small enough that --min-steps raises the epochs)")
    parser.add_argument("--train-size", type=int, default=0, help="keep a seeded this many training images (0: all)")
    parser.add_argument("--downsample", type=int, default=1, help="average K x K pixel blocks (1: the images as they are)")
    parser.add_argument("--no-peer", dest="peer", action="store_false", help="skip the standard recipe")
    parser.add_argument("--no-pixels", dest="pixels", action="store_false", help="skip LabelSpreading on pixels")
    parser.add_argument("--mnist", default=os.environ.get("VAEGMM_DATA", HERE.parent.parent / "shared/data/mnist"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.train_size < 0 or args.downsample < 1:
        parser.error(f"--train-size must be 0 (all) or more and --downsample 1 or more; got {args.train_size} and {args.downsample}")
    args.variants = args.variants.split(",")
    warnings.simplefilter("ignore")
    results = [run_set(name, args) for name in args.sets.split(",")]
    out = Path(args.out or HERE / "results" / f"few_labels_{args.split}_z{args.latent_dim}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "results": results, "variants": {k: gmm_config(k, args).to_dict() for k in VARIANTS if k in args.variants},
        "model": VAEConfig(latent_dim=args.latent_dim, neighbour_weight=args.neighbour_weight,
                           neighbour_dof=args.neighbour_dof, perplexity=args.perplexity,
                           teacher_latent_dim=args.teacher_latent_dim).to_dict(),
        "train": TrainConfig(seed=args.train_seed, restarts=args.restarts).to_dict(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "device": args.device},
    }, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
