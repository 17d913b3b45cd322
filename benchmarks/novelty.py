"""Does vaegmm know what it doesn't know? AUROC of novelty scores for images of no trained class.

A model of MNIST digits 1/4/8 is trained with the defaults (as `vaegmm train` does, novelty threshold
calibrated on its training images) and its 1/4/8 test images are scored against:

(a) each other digit's MNIST test images, one AUROC per digit;
(b) images that are not digits: uniform noise, blank (all 0), constant grey and white images, inverted
    test digits, test digits shifted 10 pixels off-centre, rotated 90 degrees, and with heavy noise.

It reports AUROC for each group and six scores — the negative ELBO alone (reconstruction error plus KL,
decoded at the latent mean), the latent density alone (-log p(mu) under the GMM), the reconstruction
dissimilarity alone (1 minus the correlation of image and reconstruction), the edge dissimilarity alone
(the same between their edges), the previous format's score (the larger one-sided standard score of the
reconstruction dissimilarity and the latent density), and vaegmm's novelty score (vaegmm.novelty: the sum
of the three statistics' one-sided standard scores) —
plus the false-alarm rate on the 1/4/8 test images at the calibrated threshold. A model of all ten digits is scored against (b) too.

    python benchmarks/novelty.py [--mnist ../shared/data/mnist]   # about 4 minutes; results/novelty.json
    python benchmarks/novelty.py --digits 4,7,9 --skip-all-ten --out benchmarks/results/novelty_479.json
    python benchmarks/novelty.py --latent-dim 10 --seedings nearest,spreading --out benchmarks/results/novelty_z10.json
    python benchmarks/novelty.py --companion-latent-dim 10 --out benchmarks/results/novelty_companion10.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vaegmm.artefacts import load_gmm_file, load_model_for
from vaegmm.config import GMMConfig, NoveltyConfig, TrainConfig, VAEConfig
from vaegmm.mnist import load_mnist_arrays, select_digits
from vaegmm.model import encode_statistics
from vaegmm.novelty import STATISTICS, novelty_statistics
from vaegmm.pipeline import train_and_fit

HERE = Path(__file__).resolve().parent
SHIFT = 10
SCORES = ("elbo", "latent_density", "recon_dissimilarity", "edge_dissimilarity", "format3_larger_of_two", "vaegmm")


def non_digit_groups(test: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Images (N, H, W) in [0, 1] that are not digits, as many as ``test`` holds of each kind (up to 1,000)."""
    n = min(len(test), 1000)
    digits = test[rng.choice(len(test), n, replace=False)]
    shape = digits.shape
    return {
        "uniform noise": rng.uniform(0, 1, shape),
        "blank": np.zeros(shape),
        "constant grey": np.full(shape, 0.5),
        "constant white": np.ones(shape),
        "inverted digits": 1 - digits,
        f"digits shifted {SHIFT} px": np.roll(digits, (SHIFT, SHIFT), axis=(1, 2)),
        "digits rotated 90°": np.rot90(digits, 1, axes=(1, 2)),
        "digits + heavy noise": np.clip(digits + rng.normal(0, 0.5, shape), 0, 1),
    }


@torch.no_grad()
def negative_elbo(model, images: np.ndarray, stats: dict) -> np.ndarray:
    """Per image (N,): the Bernoulli error of the image under its decoded latent mean plus the KL to N(0, I)."""
    x = torch.as_tensor(images.reshape(len(images), -1), dtype=torch.float32)  # (N, input_dim)
    logits = model.decode_logits(torch.as_tensor(stats["mu"], dtype=torch.float32))  # (N, input_dim)
    error = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1).double().numpy()
    return error + 0.5 * (stats["mu"] ** 2 + np.exp(stats["logvar"]) - stats["logvar"] - 1).sum(axis=1)


def scores(model, gmm, detector, images) -> dict[str, np.ndarray]:
    stats = encode_statistics(model, images.astype(np.float32))
    statistics = novelty_statistics(stats, gmm)  # (N, 3)
    standard = detector.standard_scores(statistics)  # (N, 3)
    pair = [STATISTICS.index("recon_dissimilarity"), STATISTICS.index("latent_nll")]
    return {"elbo": negative_elbo(model, images, stats), "latent_density": statistics[:, STATISTICS.index("latent_nll")],
            "recon_dissimilarity": statistics[:, STATISTICS.index("recon_dissimilarity")],
            "edge_dissimilarity": statistics[:, STATISTICS.index("edge_dissimilarity")],
            "format3_larger_of_two": standard[:, pair].max(axis=1), "vaegmm": detector.score(statistics)}


def aurocs(inlier: dict, outlier: dict) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    return {name: float(roc_auc_score(np.r_[np.zeros(len(inlier[name])), np.ones(len(outlier[name]))],
                                      np.r_[inlier[name], outlier[name]])) for name in inlier}


def run_model(digits, arrays, out_dir: Path, *, others: bool, mnist_dir: str, model_config: VAEConfig,
              gmm_config: GMMConfig) -> dict:
    splits = select_digits(arrays, digits=digits, labels_per_digit=5, seed=0, source=mnist_dir)
    start = time.perf_counter()
    summary = train_and_fit(splits.train, splits.labelled, model_config=model_config, train_config=TrainConfig(),
                            gmm_config=gmm_config, novelty_config=NoveltyConfig(), model_path=out_dir / "vae.pth",
                            gmm_path=out_dir / "gmm_params.pkl", progress=False)
    seconds = time.perf_counter() - start
    model = load_model_for(out_dir / "vae.pth")
    gmm, detector = load_gmm_file(out_dir / "gmm_params.pkl", model, out_dir / "vae.pth")
    inlier = scores(model, gmm, detector, splits.test.images)
    false_alarm = float(np.mean(inlier["vaegmm"] > detector.threshold_))
    groups = {}
    if others:
        for digit in sorted(set(range(10)) - set(digits)):
            images = np.asarray(arrays["test_images"])[np.asarray(arrays["test_labels"]) == digit] / 255.0
            groups[f"digit {digit}"] = aurocs(inlier, scores(model, gmm, detector, images))
    rng = np.random.default_rng(0)
    for name, images in non_digit_groups(splits.test.images, rng).items():
        groups[name] = aurocs(inlier, scores(model, gmm, detector, images))
    result = {"digits": list(digits), "train_seconds": seconds, "n_test": len(splits.test),
              "threshold": detector.threshold_, "flag_rate": detector.flag_rate_,
              "false_alarm_rate_on_test": false_alarm, "auroc": groups,
              # whether the default rule trained a companion for an unsettled fit, and why
              "companion": summary["companion"], "disagreement": summary["gmm"].get("disagreement")}
    unseen = [v["vaegmm"] for k, v in groups.items() if k.startswith("digit ")]
    if unseen:
        result["mean_auroc_unseen_digits"] = {s: float(np.mean([v[s] for k, v in groups.items() if k.startswith("digit ")]))
                                              for s in SCORES}
    print(json.dumps(result, indent=1), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", default=os.environ.get("VAEGMM_DATA", str(HERE.parent.parent / "shared/data/mnist")))
    parser.add_argument("--out", default=HERE / "results" / "novelty.json")
    parser.add_argument("--digits", default="1,4,8", help="the trained classes of the first model (1,4,8 as the course)")
    parser.add_argument("--skip-all-ten", action="store_true")
    parser.add_argument("--latent-dim", type=int, default=VAEConfig().latent_dim,
                        help="the models' latent size (README recommends 10 for classification)")
    parser.add_argument("--seedings", default=None, help="the GMMConfig seedings (default: vaegmm's for the latent size)")
    parser.add_argument("--neighbour-weight", type=float, default=VAEConfig().neighbour_weight,
                        help="the VAE's neighbour-embedding weight (README's 2-D recommendation: 0.4)")
    parser.add_argument("--teacher-latent-dim", type=int, default=VAEConfig().teacher_latent_dim,
                        help="latent size of the teacher VAE giving the neighbour term its affinities (0: the pixels)")
    parser.add_argument("--companion-latent-dim", type=int, default=GMMConfig().companion_latent_dim,
                        help="latent size of a companion VAE whose latent means seed the GMM (0: none; README: 10 in 2-D)")
    args = parser.parse_args()
    model_config = VAEConfig(latent_dim=args.latent_dim, neighbour_weight=args.neighbour_weight,
                             teacher_latent_dim=args.teacher_latent_dim)
    gmm_config = GMMConfig(seedings=tuple(args.seedings.split(",")) if args.seedings else None,
                           companion_latent_dim=args.companion_latent_dim)
    warnings.simplefilter("ignore")
    arrays = load_mnist_arrays(args.mnist)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        digits = tuple(int(d) for d in args.digits.split(","))
        configs = {"mnist_dir": args.mnist, "model_config": model_config, "gmm_config": gmm_config}
        results = [run_model(digits, arrays, Path(tmp), others=True, **configs)]
        if not args.skip_all_ten:
            results.append(run_model(tuple(range(10)), arrays, Path(tmp), others=False, **configs))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"results": results, "novelty_config": NoveltyConfig().to_dict(),
                                           "model_config": model_config.to_dict(), "gmm_config": gmm_config.to_dict(),
                                           "train_config": TrainConfig().to_dict()}, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
