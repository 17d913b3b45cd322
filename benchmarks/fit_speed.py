"""How long the few-label GMM fit takes, on latents of N points in D dimensions with C classes.

Latents are synthetic: each class is two Gaussian blobs (a class's cluster in a VAE's latent space is
rarely one Gaussian), the classes' centres spread on a sphere so that neighbours overlap a little, and
5 labelled points per class are drawn from the data. Each case is fitted with the default GMMConfig
(components_per_class 4, both schedules, joint EM) and the seedings of --seedings (default: the default
ones); the best of --repeats wall times counts.
Real latents are timed too when --latents points at a file saved with keys Z, Zl, yl (Z the training
latents, Zl/yl the labelled ones), or Z and y (every training label): then --draws seeded draws of 5
labelled points per class are timed, one fit each, and the median and slowest count.

    python benchmarks/fit_speed.py [--quick] [--out benchmarks/results/fit_speed.json]
    python benchmarks/fit_speed.py --quick --latents latents.npz --draws 5 --seedings nearest,spreading --label-slack 2

Targets (issue 9): <= 1 s for 18k x 2-D with 3 classes, <= 3 s for 60k x 2-D with 10 classes,
<= 10 s for 60k x 10-D, and time growing no faster than linearly in N.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from vaegmm.config import GMMConfig
from vaegmm.fewlabel import FewLabelGMM

HERE = Path(__file__).resolve().parent
CASES = [  # (N, D, classes)
    (18_000, 2, 3), (60_000, 2, 3), (60_000, 2, 10), (1_000_000, 2, 10),
    (18_000, 10, 3), (60_000, 10, 10), (1_000_000, 10, 10),
    (18_000, 16, 3), (60_000, 16, 10), (1_000_000, 16, 10),
]
QUICK = [(18_000, 2, 3), (60_000, 2, 10), (60_000, 10, 10)]
LABELS_PER_CLASS = 5


def synthetic_latents(n: int, dim: int, n_classes: int, seed: int = 0):
    """X (n, dim), y (n,), labelled X (5 C, dim), labelled y: two blobs per class, classes slightly overlapping."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim))
    centres *= 3.0 / np.linalg.norm(centres, axis=1, keepdims=True)
    y = rng.integers(n_classes, size=n)
    mode = rng.integers(2, size=n)
    offsets = rng.normal(scale=0.6, size=(n_classes, 2, dim))
    X = centres[y] + offsets[y, mode] + rng.normal(scale=0.5, size=(n, dim)) * rng.uniform(0.5, 1.5, size=(n_classes, 1, dim))[y, 0]
    lab = np.concatenate([rng.choice(np.flatnonzero(y == c), LABELS_PER_CLASS, replace=False) for c in range(n_classes)])
    return X, y, X[lab], y[lab]


def settled(config: GMMConfig, dim: int) -> dict:
    """The seedings and label slack a fit in ``dim`` dimensions used (unset ones follow the latent size)."""
    resolved = config.for_latent(dim)
    return {"seedings": list(resolved.seedings), "label_slack": resolved.label_slack}


def time_fit(X, Xl, yl, *, config: GMMConfig, repeats: int) -> tuple[float, FewLabelGMM]:
    times, fit = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        fit = FewLabelGMM(config, random_state=0).fit(X, Xl, yl)
        times.append(time.perf_counter() - start)
    return min(times), fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only the three target cases")
    parser.add_argument("--repeats", type=int, default=2, help="timed fits per case (the best counts)")
    parser.add_argument("--latents", default=None, help="an .npz of real latents (keys Z, Zl, yl) to time as well")
    parser.add_argument("--seedings", default=None,
                        help="the GMMConfig seedings to time (default: vaegmm's for each case's latent size)")
    parser.add_argument("--label-slack", type=int, default=GMMConfig().label_slack)
    parser.add_argument("--draws", type=int, default=1, help="label draws timed on --latents holding every label (key y)")
    parser.add_argument("--out", default=HERE / "results" / "fit_speed.json")
    args = parser.parse_args()
    config = GMMConfig(seedings=tuple(args.seedings.split(",")) if args.seedings else None, label_slack=args.label_slack)
    warnings.simplefilter("ignore")
    results = []
    if args.latents:
        d = np.load(args.latents)
        if "y" in d:
            rng = np.random.default_rng(0)
            draws = [np.concatenate([rng.choice(np.flatnonzero(d["y"] == c), LABELS_PER_CLASS, replace=False)
                                     for c in np.unique(d["y"])]) for _ in range(args.draws)]
            times = [time_fit(d["Z"], d["Z"][idx], d["y"][idx], config=config, repeats=1)[0] for idx in draws]
            classes = len(np.unique(d["y"]))
        else:
            times = [time_fit(d["Z"], d["Zl"], d["yl"], config=config, repeats=args.repeats)[0]]
            classes = len(np.unique(d["yl"]))
        results.append({"data": f"real latents {args.latents}", "n": len(d["Z"]), "dim": d["Z"].shape[1],
                        "classes": classes, "seconds": float(np.median(times)), "slowest": max(times), "times": times,
                        "settled": settled(config, d["Z"].shape[1])})
        print(json.dumps(results[-1]), flush=True)
    for n, dim, n_classes in QUICK if args.quick else CASES:
        X, y, Xl, yl = synthetic_latents(n, dim, n_classes)
        seconds, fit = time_fit(X, Xl, yl, config=config, repeats=args.repeats if n < 1_000_000 else 1)
        results.append({"data": "synthetic", "n": n, "dim": dim, "classes": n_classes, "seconds": seconds,
                        "accuracy": float(np.mean(fit.gmm_.predict(X) == y)),
                        "chosen": [fit.chosen_.seeding, fit.chosen_.schedule], "settled": settled(config, dim)})
        print(json.dumps(results[-1]), flush=True)
    report = {"results": results, "gmm_config": config.to_dict(),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
