"""Command-line front ends: the ``vaegmm`` command and the course-compatible ``vae.py``."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Callable, Sequence

from .errors import DegenerateFitWarning, VaegmmError

COURSE_USAGE = """usage:
  python vae.py TRAIN.npz VAL.npz train vae.pth gmm_params.pkl
  python vae.py RECON.npz test_reconstruction vae.pth            (writes vae_reconstructed.npz)
  python vae.py TEST.npz test_classifier vae.pth gmm_params.pkl  (writes vae.csv)"""

EXIT_USAGE = 2
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def _print_metrics(title: str, metrics: dict) -> None:
    print(title)
    for key, value in metrics.items():
        print(f"  {key:<16} {value:.4f}" if isinstance(value, float) else f"  {key:<16} {value}")


def _guarded(job: Callable[[], None]) -> int:
    """Run a job; user errors become one line on stderr and a non-zero exit, never a traceback."""
    warnings.simplefilter("default", DegenerateFitWarning)
    try:
        job()
    except VaegmmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except FloatingPointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted: outputs were left as they were; 'vaegmm train --resume' continues a training run.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


# --- the jobs ----------------------------------------------------------------------------

def job_train(args: argparse.Namespace) -> None:
    from .data import load_npz
    from .pipeline import train_and_fit

    train = load_npz(args.train)
    labelled = load_npz(args.val, require_labels=True)
    model_config, train_config, gmm_options = args.configs
    out = Path(args.out_dir)
    if args.out_dir != "." and not out.exists():
        out.mkdir(parents=True)
    summary = train_and_fit(
        train, labelled, model_config=model_config, train_config=train_config, gmm_options=gmm_options,
        model_path=out / args.model, gmm_path=out / args.gmm, log_path=out / args.log,
        run_info_path=out / "run.json", digits=args.digits, resume=args.resume,
        data_spec={"kind": "files", "train": str(Path(args.train).resolve()), "val": str(Path(args.val).resolve()),
                   "test": str(Path(args.test).resolve()) if args.test else None},
        progress=not args.no_progress, device=args.device,
    )
    _report_training(summary, out / args.model, out / args.gmm)


def _configs(args: argparse.Namespace):
    """The three settings objects from the options _add_training_options defines.

    Raises ValueError for an out-of-range option; the GMM options are checked too, so a bad one is
    refused before training rather than after it."""
    from .model import TrainConfig, VAEConfig
    from .pipeline import GMMOptions

    gmm_options = GMMOptions(components_per_class=args.components_per_class, reg_covar=args.reg_covar)
    gmm_options.build(random_state=args.seed)
    return (
        VAEConfig(hidden_sizes=args.hidden, latent_dim=args.latent_dim, recon_loss=args.loss, beta=args.beta),
        TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup_fraction=args.warmup,
                    seed=args.seed),
        gmm_options,
    )


def _report_training(summary: dict, model_path: Path, gmm_path: Path) -> None:
    print(f"parameters: {summary['parameters']:,}")
    print(f"training: {summary['train_seconds']:.1f} s on {summary['device']}; final loss {summary['final_epoch']['loss']:.2f}")
    if summary["gmm_joint_em_accepted"]:
        state = "converged" if summary["gmm_converged"] else "did NOT converge"
        em = f"joint EM {state} in {summary['gmm_iterations']} iterations"
    else:
        em = "per-digit EM fits kept"
    chosen = summary["gmm_chosen"]
    print(
        f"GMM: {chosen['seeding']} seeding, {chosen['schedule']} schedule ({len(summary['gmm_candidates'])} candidates; "
        f"its borders cut {chosen['boundary_fraction']:.1%} of neighbour edges), "
        f"{summary['gmm_partition_rounds']} rounds of per-digit EM, {em}; "
        f"{summary['gmm_labelled_agreement']:.0%} of the labelled images fall in their digit's components"
    )
    print(f"wrote {model_path} and {gmm_path}")


def job_reconstruct(args: argparse.Namespace) -> None:
    from .data import load_npz
    from .pipeline import load_model_for, reconstruct_to_file

    dataset = load_npz(args.input)
    model = load_model_for(args.model, dataset, device=args.device)
    metrics = reconstruct_to_file(model, dataset, args.out)
    _print_metrics(f"reconstruction of {metrics.pop('n_images')} images from {args.input}:", metrics)
    print(f"wrote {args.out}")


def job_classify(args: argparse.Namespace) -> None:
    from .data import load_npz
    from .pipeline import classify_to_file, load_gmm_for, load_model_for

    dataset = load_npz(args.input)
    model = load_model_for(args.model, dataset, device=args.device)
    gmm = load_gmm_for(args.gmm, model, args.model)
    predictions, metrics = classify_to_file(model, gmm, dataset, args.out)
    if metrics is not None:
        _print_metrics(f"classification of {len(predictions)} images from {args.input}:", metrics)
    print(f"wrote {args.out} ({len(predictions)} predictions)")


def job_report(args: argparse.Namespace) -> None:
    from .report import build_run_report

    result = build_run_report(args.run_dir, test_path=args.test, progress=not args.no_progress)
    _print_evaluation(result["evaluation"])
    print(f"wrote {len(result['figures'])} figures into {Path(args.run_dir) / 'figures'}")
    print(f"wrote {result['report_md']} and {result['report_html']}")


def job_plot(args: argparse.Namespace) -> None:
    from .report import build_run_figures

    figures = build_run_figures(args.run_dir, test_path=args.test, progress=not args.no_progress)
    for path in figures.values():
        print(f"wrote {path}")


def _print_evaluation(evaluation: dict) -> None:
    if not evaluation:
        return
    flat = {"ssim": evaluation["ssim"], "one_minus_mse": evaluation["one_minus_mse"], "elbo_per_image": evaluation["elbo_per_image"]}
    flat.update(evaluation.get("classification", {}))
    _print_metrics(f"test metrics ({evaluation['n_test']} images):", flat)


def job_demo(args: argparse.Namespace) -> None:
    import time

    from .data import default_data_dir, load_mnist
    from .pipeline import train_and_fit
    from .report import build_run_report

    start = time.perf_counter()
    folder = default_data_dir(args.data_dir)
    splits = load_mnist(folder, digits=args.digits, labels_per_digit=args.labels_per_digit, seed=args.seed,
                        progress=not args.no_progress)
    print(f"MNIST from {folder}: {len(splits.train)} training images of digits {list(args.digits)}, "
          f"{len(splits.labelled)} labelled, {len(splits.test)} test")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_config, train_config, gmm_options = args.configs
    summary = train_and_fit(
        splits.train, splits.labelled,
        model_config=model_config, train_config=train_config, gmm_options=gmm_options,
        model_path=out / "vae.pth", gmm_path=out / "gmm_params.pkl", log_path=out / "train_log.jsonl",
        run_info_path=out / "run.json", progress=not args.no_progress, device=args.device,
        data_spec={"kind": "mnist", "dir": str(folder.resolve()), "digits": list(args.digits),
                   "labels_per_digit": args.labels_per_digit, "seed": args.seed},
    )
    _report_training(summary, out / "vae.pth", out / "gmm_params.pkl")
    result = build_run_report(out)
    _print_evaluation(result["evaluation"])
    print(f"demo finished in {time.perf_counter() - start:.0f} s; report: {result['report_html']}")


# --- the `vaegmm` command ------------------------------------------------------------------

def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 512,256; got {text!r}")
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative integers; got {text!r}")
    return values


def _add_training_options(p: argparse.ArgumentParser) -> None:
    from .model import TrainConfig, VAEConfig
    from .pipeline import GMMOptions

    vae, tr, gm = VAEConfig(), TrainConfig(), GMMOptions()
    p.add_argument("--epochs", type=int, default=tr.epochs, help="training epochs")
    p.add_argument("--batch-size", type=int, default=tr.batch_size, help="images per step")
    p.add_argument("--lr", type=float, default=tr.lr, help="Adam's peak learning rate")
    p.add_argument("--warmup", type=float, default=tr.warmup_fraction,
                   help="share of the steps over which the learning rate ramps up linearly")
    p.add_argument("--seed", type=int, default=tr.seed, help="torch.manual_seed for the whole run")
    p.add_argument("--beta", type=float, default=vae.beta, help="weight of the KL term")
    p.add_argument("--hidden", type=_int_list, default=vae.hidden_sizes, help="hidden layer sizes, e.g. 512,256")
    p.add_argument("--latent-dim", type=int, default=vae.latent_dim, help="latent size")
    p.add_argument("--loss", choices=("bce", "mse"), default=vae.recon_loss, help="reconstruction loss")
    p.add_argument("--components-per-class", type=int, default=gm.components_per_class, help="GMM components per digit")
    p.add_argument("--reg-covar", type=float, default=gm.reg_covar, help="added to GMM covariance diagonals")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu or cuda")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="vaegmm", description="VAE + latent GMM on handwritten digits.", formatter_class=fmt)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train the VAE and fit the GMM", formatter_class=fmt)
    p.add_argument("--train", required=True, help="NPZ of training images (labels are ignored)")
    p.add_argument("--val", required=True, help="NPZ of labelled images seeding the GMM")
    p.add_argument("--out-dir", default=".", help="folder for every output (created if missing)")
    p.add_argument("--model", default="vae.pth", help="model file name inside --out-dir")
    p.add_argument("--gmm", default="gmm_params.pkl", help="GMM file name inside --out-dir")
    p.add_argument("--log", default="train_log.jsonl", help="per-epoch log file name inside --out-dir")
    p.add_argument("--digits", type=_int_list, default=None, help="digits to model (default: those labelled in --val)")
    p.add_argument("--test", default=None, help="NPZ of test images that 'vaegmm report' evaluates on")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint an interrupted run left")
    _add_training_options(p)
    p.set_defaults(job=job_train)

    p = sub.add_parser("demo", help="the whole job on MNIST: train, fit, evaluate, figures and report", formatter_class=fmt)
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: $VAEGMM_DATA, else the user cache; downloaded if missing)")
    p.add_argument("--out-dir", default="runs/demo", help="run folder for every output")
    p.add_argument("--digits", type=_int_list, default=(1, 4, 8), help="digits to model")
    p.add_argument("--labels-per-digit", type=int, default=5, help="labelled training images drawn per digit for the GMM")
    _add_training_options(p)
    p.set_defaults(job=job_demo)

    for name, text, job in (("report", "figures, metrics and report.md/report.html for a run folder", job_report),
                            ("plot", "every figure of a run folder, into RUN_DIR/figures", job_plot)):
        p = sub.add_parser(name, help=text, formatter_class=fmt)
        p.add_argument("run_dir", help="folder written by 'vaegmm train --out-dir' or 'vaegmm demo'")
        p.add_argument("--test", default=None, help="NPZ of test images (default: the run's own test data)")
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")
        p.set_defaults(job=job)

    p = sub.add_parser("reconstruct", help="reconstruct images with a trained VAE", formatter_class=fmt)
    p.add_argument("input", help="NPZ of images")
    p.add_argument("--model", default="vae.pth", help="trained model")
    p.add_argument("--out", default="vae_reconstructed.npz", help="output NPZ (key 'data')")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(job=job_reconstruct)

    p = sub.add_parser("classify", help="classify images with the VAE and its GMM", formatter_class=fmt)
    p.add_argument("input", help="NPZ of images (metrics are printed when it has labels)")
    p.add_argument("--model", default="vae.pth", help="trained model")
    p.add_argument("--gmm", default="gmm_params.pkl", help="GMM fitted with that model")
    p.add_argument("--out", default="vae.csv", help="output CSV (column Predicted_Label)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(job=job_classify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "epochs"):  # the commands that train: check their settings before any work
        try:
            args.configs = _configs(args)
        except ValueError as exc:
            parser.error(str(exc))
    return _guarded(lambda: args.job(args))


# --- the course's `python vae.py ...` --------------------------------------------------------

def course_main(argv: Sequence[str] | None = None) -> int:
    """``vae.py`` exactly as the course runs it; outputs go to the current folder."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 5 and argv[2] == "train":
        return _guarded(lambda: _course_train(train=argv[0], val=argv[1], model_path=argv[3], gmm_path=argv[4]))
    if len(argv) == 3 and argv[1] == "test_reconstruction":
        args = argparse.Namespace(input=argv[0], model=argv[2], out="vae_reconstructed.npz", device="auto")
        return _guarded(lambda: job_reconstruct(args))
    if len(argv) == 4 and argv[1] == "test_classifier":
        args = argparse.Namespace(input=argv[0], model=argv[2], gmm=argv[3], out="vae.csv", device="auto")
        return _guarded(lambda: job_classify(args))
    print(COURSE_USAGE, file=sys.stderr)
    return EXIT_USAGE


def _course_train(*, train: str, val: str, model_path: str, gmm_path: str) -> None:
    """Train with the defaults; the per-epoch log goes beside the model as <model>_train_log.jsonl."""
    from .data import load_npz
    from .model import TrainConfig, VAEConfig
    from .pipeline import GMMOptions, train_and_fit

    model = Path(model_path)
    summary = train_and_fit(
        load_npz(train), load_npz(val, require_labels=True),
        model_config=VAEConfig(), train_config=TrainConfig(), gmm_options=GMMOptions(),
        model_path=model, gmm_path=gmm_path, log_path=model.with_name(model.stem + "_train_log.jsonl"),
    )
    _report_training(summary, model, Path(gmm_path))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
