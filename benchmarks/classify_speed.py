"""What the novelty score costs at classification time.

Times, on a trained run folder and a test file, the course's ``vae.py TEST test_classifier`` (labels
only: one encoder pass) against ``vaegmm classify`` (labels, probability and novelty: one encoder and
one decoder pass), each end to end in a fresh process and, separately, the work inside the process
(``classify_to_file`` with and without the novelty calibration). Best of --repeats, interleaved.
Target (issue 11): scoring at most doubles the time of classification.

    python benchmarks/classify_speed.py RUN_DIR TEST.npz [--repeats 5]   # writes results/classify_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def run(cmd: list[str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def in_process(run_dir: Path, test: str, repeats: int) -> dict[str, float]:
    from vaegmm.data import load_images
    from vaegmm.artefacts import load_gmm_file, load_model_for
    from vaegmm.pipeline import classify_to_file

    model = load_model_for(run_dir / "vae.pth")
    gmm, novelty = load_gmm_file(run_dir / "gmm_params.pkl", model, run_dir / "vae.pth")
    dataset = load_images(test)
    best = {"labels only": float("inf"), "with novelty": float("inf")}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            for name, calibration in (("labels only", None), ("with novelty", novelty)):
                start = time.perf_counter()
                classify_to_file(model, gmm, dataset, Path(tmp) / "out.csv", novelty=calibration)
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("test")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=HERE / "results" / "classify_speed.json")
    args = parser.parse_args()
    run_dir, test = args.run_dir.resolve(), str(Path(args.test).resolve())
    best = {"vae.py test_classifier": float("inf"), "vaegmm classify": float("inf")}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            best["vae.py test_classifier"] = min(best["vae.py test_classifier"], run(
                [sys.executable, str(REPO / "vae.py"), test, "test_classifier", str(run_dir / "vae.pth"),
                 str(run_dir / "gmm_params.pkl")], tmp))
            best["vaegmm classify"] = min(best["vaegmm classify"], run(
                [sys.executable, "-m", "vaegmm.cli", "classify", test, "--model", str(run_dir / "vae.pth"),
                 "--gmm", str(run_dir / "gmm_params.pkl"), "--out", str(Path(tmp) / "preds.csv")], tmp))
    inside = in_process(run_dir, test, args.repeats)
    report = {"end_to_end_seconds": best, "end_to_end_ratio": best["vaegmm classify"] / best["vae.py test_classifier"],
              "in_process_seconds": inside, "in_process_ratio": inside["with novelty"] / inside["labels only"],
              "test": test, "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}}
    print(json.dumps(report, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
