"""Does the novelty threshold flag the asked share of *new* ordinary images, whatever the training set's size?

`train` sets the threshold so that --flag-rate (1%) of its calibration images score above it. On a small
set, trained for many epochs (--min-steps), the VAE draws its own images better than new ones, so a
threshold set on them flags new ordinary images far more often; vaegmm then holds a share of the training
images out of the VAE's training and calibrates on those (`NoveltyConfig.share_for`). For each set this
trains a model with that default and one calibrated on its training images (--calibration-share 0) and
reports, on the set's test images of the trained classes: the share flagged (the false-alarm rate, asked:
1%), the AUROC against the test images of the other classes (does the hold-out change the ranking?), and
the classification score with 5 labels per class.

Sets: MNIST digits 1/4/8 cut to 600, 2,000 and 6,000 training images and in full (18,623 images: 20 epochs
already reach --min-steps, so nothing is held out and one model serves both rows), and scikit-learn's 8×8
digits 0–4 and 5–9 (the other five classes are the unseen ones).

    python benchmarks/calibration.py     # about 5 minutes on 2 CPU cores; results/calibration.json

``--sets 148,all,digits8`` instead takes few_labels.py's sets whole (MNIST 1/4/8, all ten digits, the 8x8
digits) with its split: ``--split validation`` trains on nine tenths of the training images and scores the
held-out tenth (the other classes: a seeded sample of the other digits' training images), so a default can be
chosen there; ``--split test`` scores the official test images, once. ``--latent-dim`` and ``--shares``
(comma-separated; ``default`` is the rule) say which models are trained:

    python benchmarks/calibration.py --sets 148,all --latent-dim 10 --shares 0.1,0 \
        --out benchmarks/results/calibration_validation_z10.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from novelty import aurocs, scores

from vaegmm.artefacts import load_gmm_file, load_model_for
from vaegmm.config import GMMConfig, NoveltyConfig, TrainConfig, VAEConfig
from vaegmm.data import Dataset, as_images
from vaegmm.evaluation import classification_metrics
from vaegmm.mnist import load_mnist_arrays
from vaegmm.pipeline import train_and_fit

HERE = Path(__file__).resolve().parent
LABELS_PER_CLASS = 5
MNIST_SIZES = (600, 2000, 6000, None)  # None: every training image of the digits
DIGITS8_TEST_SHARE = 0.25


def mnist_sets(mnist_dir: str, digits=(1, 4, 8)):
    arrays = load_mnist_arrays(mnist_dir)
    x, y = np.asarray(arrays["train_images"]), np.asarray(arrays["train_labels"]).astype(np.int64)
    xt, yt = np.asarray(arrays["test_images"]), np.asarray(arrays["test_labels"]).astype(np.int64)
    rng = np.random.default_rng(0)
    own = np.flatnonzero(np.isin(y, digits))
    for size in MNIST_SIZES:
        rows = np.sort(rng.choice(own, size, replace=False)) if size else own
        yield (f"MNIST {'/'.join(map(str, digits))}, {len(rows)} training images", x[rows], y[rows],
               xt[np.isin(yt, digits)], yt[np.isin(yt, digits)], xt[~np.isin(yt, digits)])


def digits8_sets():
    from sklearn.datasets import load_digits

    d = load_digits()
    images, labels = np.round(d.images * (255 / 16)).astype(np.uint8), d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(labels))
    n_test = int(round(DIGITS8_TEST_SHARE * len(order)))
    test, train = order[:n_test], order[n_test:]
    for classes in ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9)):
        own_train, own_test = train[np.isin(labels[train], classes)], test[np.isin(labels[test], classes)]
        other_test = test[~np.isin(labels[test], classes)]
        yield (f"8x8 digits {classes[0]}-{classes[-1]}", images[own_train], labels[own_train], images[own_test],
               labels[own_test], images[other_test])


OTHER_IMAGES = 5000  # validation: a seeded sample of this many training images of the digits a set leaves out


def split_sets(mnist_dir: str, names: list[str], split: str):
    """few_labels.py's sets and split, with the other digits' images of the same split (none for all ten digits
    or the 8x8 digits, whose classes are all trained)."""
    from few_labels import SETS, load_set

    arrays = load_mnist_arrays(mnist_dir)
    for name in names:
        x, y, x_eval, y_eval = load_set(name, Path(mnist_dir), split)
        digits = SETS[name]
        other = np.zeros((0, *x.shape[1:]), np.float32)
        if digits is not None and len(digits) < 10:
            key = "test" if split == "test" else "train"
            images, labels = np.asarray(arrays[f"{key}_images"]), np.asarray(arrays[f"{key}_labels"])
            rows = np.flatnonzero(~np.isin(labels, digits))
            if split != "test":
                rows = np.sort(np.random.default_rng(0).choice(rows, min(OTHER_IMAGES, len(rows)), replace=False))
            other = as_images(images[rows], name, "other digits")
        yield f"{name} ({split})", x, y, x_eval, y_eval, other


def draw_scores(model, train: Dataset, fit_rows: np.ndarray, test_images, y_test, *, n_draws: int) -> list[float]:
    """The score of n_draws more labelled draws (5 per class, from the images the VAE trained on), each GMM fitted
    as ``train`` fits it on the same latent means: how much of a score difference is the draw's."""
    from vaegmm.model import encode_means
    from vaegmm.pipeline import fit_gmm

    fit_images, y_fit = train.images[fit_rows], train.labels[fit_rows]  # (N_fit, H, W), (N_fit,)
    z_fit, z_test = encode_means(model, fit_images), encode_means(model, test_images)
    out = []
    for draw in range(1, n_draws + 1):
        rng = np.random.default_rng(draw)
        rows = np.concatenate([rng.choice(np.flatnonzero(y_fit == c), LABELS_PER_CLASS, replace=False)
                               for c in np.unique(y_fit)])
        labelled = Dataset(fit_images[rows], y_fit[rows], train.source + " (labelled)")
        fit = fit_gmm(z_fit, z_fit[rows], labelled, train_images=fit_images, config=GMMConfig(),
                      seed=TrainConfig().seed, source=train.source, warn=False)
        out.append(classification_metrics(y_test, fit.gmm_.predict(z_test), fit.gmm_.classes_)["classification"]["score"])
    return out


def run(name, x, y, x_test, y_test, x_other, share, folder: Path, *, model_config: VAEConfig,
        extra_draws: int = 0) -> dict:
    rng = np.random.default_rng(0)
    labelled_rows = np.concatenate([rng.choice(np.flatnonzero(y == c), LABELS_PER_CLASS, replace=False) for c in np.unique(y)])
    train = Dataset(as_images(x, name, "train"), y, name)
    labelled = Dataset(train.images[labelled_rows], y[labelled_rows], name + " (labelled)")
    novelty_config = NoveltyConfig(calibration_share=share)
    start = time.perf_counter()
    summary = train_and_fit(train, labelled, model_config=model_config, train_config=TrainConfig(), gmm_config=GMMConfig(),
                            novelty_config=novelty_config, model_path=folder / "vae.pth", gmm_path=folder / "gmm_params.pkl",
                            progress=False)
    seconds = time.perf_counter() - start
    model = load_model_for(folder / "vae.pth")
    gmm, detector = load_gmm_file(folder / "gmm_params.pkl", model, folder / "vae.pth")
    test_images = as_images(x_test, name, "test")
    other_images = as_images(x_other, name, "other") if len(x_other) else x_other
    inlier = scores(model, gmm, detector, test_images)
    outlier = scores(model, gmm, detector, other_images) if len(other_images) else None
    from vaegmm.model import encode_means

    predicted = gmm.predict(encode_means(model, test_images))
    result = {"set": name, "latent_dim": model_config.latent_dim,
              "calibration_share": novelty_config.share_for(len(train), TrainConfig(), latent_dim=model_config.latent_dim),
              "n_train": len(train), "vae_images": summary["vae_images"], "calibrated_on": detector.calibrated_on,
              "epochs": summary["final_epoch"]["epoch"], "threshold": detector.threshold_,
              "false_alarm_rate_on_test": float(np.mean(inlier["vaegmm"] > detector.threshold_)),
              "auroc_other_classes": aurocs(inlier, outlier)["vaegmm"] if outlier else None,
              "score": classification_metrics(y_test, predicted, gmm.classes_)["classification"]["score"],
              "seconds": seconds}
    if extra_draws:
        from vaegmm.novelty import calibration_rows

        fit_rows, _ = calibration_rows(len(train), novelty_config=novelty_config, train_config=TrainConfig(),
                                       latent_dim=model_config.latent_dim)
        result["scores_of_more_draws"] = draw_scores(model, train, fit_rows, test_images, y_test, n_draws=extra_draws)
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", default=os.environ.get("VAEGMM_DATA", str(HERE.parent.parent / "shared/data/mnist")))
    parser.add_argument("--out", default=HERE / "results" / "calibration.json")
    parser.add_argument("--sets", default="", help="few_labels.py's sets (e.g. 148,all,digits8) instead of the sizes")
    parser.add_argument("--split", choices=("validation", "test"), default="test", help="with --sets")
    parser.add_argument("--latent-dim", type=int, default=VAEConfig().latent_dim)
    parser.add_argument("--more-draws", type=int, default=0, help="score this many more label draws per model "
                        "(GMMs fitted without a companion)")
    parser.add_argument("--shares", default="", help="calibration shares to train with, e.g. 0.1,0 ('default': the "
                                                     "rule); unset: the rule and 0, or the rule alone where it is 0")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    model_config = VAEConfig(latent_dim=args.latent_dim)
    sets = (split_sets(args.mnist, args.sets.split(","), args.split) if args.sets
            else [*mnist_sets(args.mnist), *digits8_sets()])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, x, y, x_test, y_test, x_other in sets:
            if args.shares:
                shares = [None if s == "default" else float(s) for s in args.shares.split(",")]
            else:
                shares = [None, 0.0]  # vaegmm's default rule, then calibration on the training images
                if NoveltyConfig().share_for(len(x), TrainConfig(), latent_dim=args.latent_dim) == 0.0:
                    shares = [None]  # the default holds nothing out: one model is both rows
            for share in shares:
                results.append(run(name, x, y, x_test, y_test, x_other, share, Path(tmp), model_config=model_config,
                                   extra_draws=args.more_draws))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"results": results, "novelty_config": NoveltyConfig().to_dict(),
                                           "train_config": TrainConfig().to_dict(), "model_config": model_config.to_dict(),
                                           "gmm_config": GMMConfig().to_dict()}, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
