"""Command-line front ends: the ``vaegmm`` command and the course-compatible ``vae.py``.

This module parses arguments and prints results; every job it runs lives in :mod:`vaegmm.pipeline`
and :mod:`vaegmm.report`. The options that shape a model, its training or its GMM are generated from
the fields of :mod:`vaegmm.config`'s dataclasses, so every setting is reachable and ``--help`` shows it.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from dataclasses import fields
from pathlib import Path
from typing import Callable, Sequence

from .candidates import components_phrase, rounds_phrase, spread_over_phrase
from .config import GMMConfig, NoveltyConfig, TrainConfig, VAEConfig
from .errors import DataWarning, DegenerateFitWarning, UnsettledFitWarning, VaegmmError

COURSE_USAGE = """usage:
  python vae.py TRAIN.npz VAL.npz train vae.pth gmm_params.pkl   [settings of 'vaegmm train', e.g. --latent-dim 10]
  python vae.py RECON.npz test_reconstruction vae.pth            (writes vae_reconstructed.npz)
  python vae.py TEST.npz test_classifier vae.pth gmm_params.pkl  (writes vae.csv)"""

EXIT_USAGE = 2
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
# Below this binomial p-value, the labelled images flagged by the novelty threshold earn a warning.
HELD_OUT_ALERT_P = 0.01
OWN_WARNINGS = (DegenerateFitWarning, DataWarning, UnsettledFitWarning)  # shown as one line, like errors
CONFIG_GROUPS = (
    (VAEConfig, "model (saved in the model file)"),
    (TrainConfig, "training (saved in the model file)"),
    (GMMConfig, "GMM and its few-label fit (saved in the GMM file)"),
    (NoveltyConfig, "novelty detection (saved in the GMM file)"),
)


def _print_metrics(title: str, metrics: dict) -> None:
    print(title)
    for key, value in metrics.items():
        print(f"  {key:<16} {value:.4f}" if isinstance(value, float) else f"  {key:<16} {value}")


def _guarded(job: Callable[[], None], *, on_interrupt: str) -> int:
    """Run a job; user errors become one line on stderr and a non-zero exit, never a traceback.

    ``on_interrupt`` is what to tell the user after Ctrl-C: how to go on with the command they ran.
    """
    with warnings.catch_warnings():
        for category in OWN_WARNINGS:
            warnings.simplefilter("default", category)
        warnings.showwarning = _show_warning
        try:
            job()
        except (VaegmmError, FloatingPointError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            print(f"\ninterrupted: outputs were left as they were; {on_interrupt}", file=sys.stderr)
            return EXIT_INTERRUPTED
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """vaegmm's own warnings as one line, like its errors; any other warning as Python shows it."""
    if issubclass(category, OWN_WARNINGS):
        print(f"warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


# --- options generated from the config dataclasses ------------------------------------------

def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 512,256; got {text!r}")
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative integers; got {text!r}")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number such as 5; got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1; got {value}")
    return value


def _str_list(text: str) -> tuple[str, ...]:
    return tuple(v for v in text.replace(" ", "").split(",") if v)


def _dest(cls: type, name: str) -> str:
    return f"config_{cls.__name__}_{name}"


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per settable field of each config dataclass, its default and help from the dataclass."""
    for cls, title in CONFIG_GROUPS:
        group = parser.add_argument_group(title)
        defaults = cls()
        for f in fields(cls):
            meta = f.metadata
            if not meta.get("cli", True):
                continue
            # A field left None is derived from the others in the config; the option must leave it None.
            default = None if f.default is None else getattr(defaults, f.name)
            kwargs: dict = {"dest": _dest(cls, f.name), "default": default, "help": meta["help"]}
            if isinstance(default, bool):
                kwargs["action"] = argparse.BooleanOptionalAction
            elif isinstance(default, tuple) or meta.get("type") is tuple:
                kwargs["type"] = _int_list if default and all(isinstance(v, int) for v in default) else _str_list
                kwargs["metavar"] = "A,B,..."
            elif meta.get("choices"):
                kwargs["choices"] = meta["choices"]
            else:
                kwargs["type"] = meta.get("type") or type(default)
                kwargs["metavar"] = "N" if kwargs["type"] is int else "X"
            group.add_argument(meta.get("flag") or "--" + f.name.replace("_", "-"), **kwargs)


def configs_from_args(args: argparse.Namespace) -> tuple[VAEConfig, TrainConfig, GMMConfig, NoveltyConfig]:
    """The configs from the generated options; a bad value raises ConfigError naming the option."""
    built = []
    for cls, _ in CONFIG_GROUPS:
        built.append(cls(**{f.name: getattr(args, _dest(cls, f.name)) for f in fields(cls) if f.metadata.get("cli", True)}))
    return tuple(built)  # type: ignore[return-value]


def _add_common_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu or cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress output (a bar on a terminal, else a line per epoch)")


# --- the jobs ----------------------------------------------------------------------------

def _report_training(summary: dict, model_path: Path, gmm_path: Path) -> None:
    print(f"parameters: {summary['parameters']:,}")
    final = summary["final_epoch"]
    print(f"training: {final['epoch']} epochs on {summary['vae_images']} images, {summary['train_seconds']:.1f} s on {summary['device']}; "
          f"final loss {final['loss']:.2f}")
    term = summary.get("neighbour_term") or {}
    if term.get("by_small_set_rule"):
        print(f"neighbour term: {term['weight']:g} per pixel, as the VAE trained on fewer images than --small-set-images "
              "(--neighbour-weight 0 turns it off)")
    companion = summary.get("companion")
    if companion:
        why = companion.get("unsettled_disagreement")
        trained = ("the teacher, which has the companion's settings (no second training)" if companion.get("teacher")
                   else f"a {companion['latent_dim']}-D VAE trained {companion['epochs']} epochs in "
                        f"{companion['seconds']:.1f} s (final loss {companion['final_loss']:.2f})")
        print(f"companion: {trained}; the labels were spread over its latent means to seed the mixture"
              + ("" if why is None else f", as the fit without it was unsettled ({why:.1%} disagreement; "
                                        "--companion-latent-dim 0 keeps that fit)"))
    teacher = summary.get("teacher")
    if teacher:
        print(f"teacher: a {teacher['latent_dim']}-D VAE trained {teacher['epochs']} epochs in {teacher['seconds']:.1f} s "
              f"(final loss {teacher['final_loss']:.2f}); its latent means gave the neighbour term its affinities")
    restarts = summary["restarts"]
    if len(restarts["final_losses"]) > 1:
        losses = ", ".join(f"{loss:.2f}" for loss in restarts["final_losses"])
        print(f"restarts: final losses {losses}; kept the VAE of seed {restarts['kept_seed']}")
    chosen, candidates = summary["gmm"]["chosen"], summary["gmm"]["candidates"]
    if chosen["joint_em_accepted"]:
        em = f"joint EM {'converged' if chosen['em_converged'] else 'did NOT converge'} in {chosen['em_iterations']} iterations"
    else:
        em = "per-class EM fits kept"
    print(
        f"GMM: fitted in {summary['gmm_seconds']:.2f} s; {components_phrase(summary['gmm'])}{chosen['seeding']} seeding, "
        f"{chosen['schedule']} schedule "
        f"({len(candidates)} candidate{'' if len(candidates) == 1 else 's'}; its borders cut "
        f"{chosen['boundary_fraction']:.1%} of neighbour edges"
        + (f", and it agrees with label spreading over {spread_over_phrase(companion)} on "
           f"{chosen['input_agreement']:.1%} of them"
           if "input_agreement" in chosen else "") + "), "
        f"{rounds_phrase(chosen)}, {em}; "
        f"{chosen['labelled_agreement']:.0%} of the labelled images fall in their class's components"
        + ("" if summary["gmm"].get("disagreement") is None else
           f"; the other candidates classify a median {summary['gmm']['disagreement']:.1%} of the training images otherwise")
    )
    novelty = summary["novelty"]
    print(f"novelty threshold {novelty['threshold']:.2f}, flagging {novelty['flag_rate']:.1%} of {novelty['calibrated_on']}")
    check = novelty.get("held_out_check")
    if check:
        print(f"novelty on the {check['n']} labelled images the VAE was not trained on: {check['flagged']} flagged "
              f"({check['expected']:.2f} expected at that rate)")
        if check["p_value"] < HELD_OUT_ALERT_P:
            remedy = ("hold out more images to calibrate on (--calibration-share)" if novelty["held_out"] else
                      "calibrate on images the VAE does not train on (--calibration-share 0.1)")
            print(f"warning: that is more than a {novelty['flag_rate']:.1%} rate plausibly flags (binomial p = "
                  f"{check['p_value']:.2g}): new ordinary images will be flagged more often than --flag-rate says. "
                  f"To correct it, {remedy}, train on more images, or lower --flag-rate (a higher threshold).",
                  file=sys.stderr)
    print(f"wrote {model_path} and {gmm_path}")


def job_train(args: argparse.Namespace) -> None:
    from .data import load_images
    from .pipeline import train_and_fit

    model_config, train_config, gmm_config, novelty_config = args.configs
    out = Path(args.out_dir)
    train = load_images(args.train)
    labelled = load_images(args.val, require_labels=True)
    _note_minus_one(labelled)
    if args.out_dir != "." and not out.exists():
        out.mkdir(parents=True)
    summary = train_and_fit(
        train, labelled, model_config=model_config, train_config=train_config, gmm_config=gmm_config,
        novelty_config=novelty_config, model_path=out / args.model, gmm_path=out / args.gmm, log_path=out / args.log,
        run_info_path=out / "run.json", digits=args.digits, resume=args.resume,
        data_spec={"kind": "files", "train": str(Path(args.train).resolve()), "val": str(Path(args.val).resolve()),
                   "test": str(Path(args.test).resolve()) if args.test else None},
        progress=not args.no_progress, device=args.device,
    )
    _report_training(summary, out / args.model, out / args.gmm)


def _note_minus_one(labelled) -> None:
    import numpy as np

    from .data import UNLABELLED

    # scikit-learn's semi-supervised estimators, and vaegmm's own VAEGMM.fit, read -1 as "unlabelled"; here
    # every label is a class, so say so before a file written for that convention trains a class of leftovers.
    classes = np.unique(labelled.labels)
    if UNLABELLED in classes and len(classes) > 1:
        n = int((labelled.labels == UNLABELLED).sum())
        print(f"note: {labelled.source}: {n} image{'s are' if n > 1 else ' is'} labelled {UNLABELLED}, which is trained "
              f"as a class of its own here. If {UNLABELLED} marks unlabelled images (as in scikit-learn), leave them "
              "out of this file: every image in it seeds its class.", file=sys.stderr)


def job_reconstruct(args: argparse.Namespace) -> None:
    from .data import load_images
    from .artefacts import load_model_for
    from .pipeline import reconstruct_to_file

    dataset = load_images(args.input)
    model = load_model_for(args.model, dataset, device=args.device)
    metrics = reconstruct_to_file(model, dataset, args.out)
    _print_metrics(f"reconstruction of {metrics.pop('n_images')} images from {args.input}:", metrics)
    print(f"wrote {args.out}")


def job_classify(args: argparse.Namespace) -> None:
    from .data import load_images
    from .artefacts import load_gmm_file, load_model_for
    from .pipeline import classify_to_file

    dataset = load_images(args.input)
    model = load_model_for(args.model, dataset, device=args.device)
    # The course's grader reads a single Predicted_Label column: vae.py never adds the novelty columns, nor reads
    # the calibration behind them.
    gmm, novelty = load_gmm_file(args.gmm, model, args.model, novelty=not args.course)
    predictions, metrics, flags = classify_to_file(model, gmm, dataset, args.out, novelty=novelty)
    if metrics is not None:
        _print_metrics(f"classification of {len(predictions)} images from {args.input}:", metrics["classification"])
        _note_unknown_labels(metrics.get("unknown_labels"), len(predictions))
    if flags is not None:
        print(f"novelty: {int(flags.sum())} of {len(flags)} images ({flags.mean():.1%}) score above the threshold "
              f"{novelty.threshold_:.2f} (set to flag {novelty.flag_rate_:.1%} of {novelty.calibrated_on}): they belong "
              "to no known class (column Novel = 1)")
    print(f"wrote {args.out} ({len(predictions)} prediction{'' if len(predictions) == 1 else 's'})")


def _note_unknown_labels(unknown: dict | None, n_images: int) -> None:
    if unknown:
        print(f"note: {unknown['n_images']} of {n_images} images are labelled with classes the model was not trained "
              f"on ({unknown['classes']}); the scores above count them as misclassified", file=sys.stderr)


def _print_evaluation(evaluation: dict) -> None:
    if not evaluation:
        return
    flat = {"ssim": evaluation["ssim"], "one_minus_mse": evaluation["one_minus_mse"], "elbo_per_image": evaluation["elbo_per_image"]}
    flat.update(evaluation.get("classification", {}))
    _print_metrics(f"test metrics ({evaluation['n_test']} images):", flat)
    _note_unknown_labels(evaluation.get("unknown_labels"), evaluation["n_test"])


def job_report(args: argparse.Namespace) -> None:
    from .report import build_run_report

    result = build_run_report(args.run_dir, test_path=args.test, progress=not args.no_progress)
    _print_evaluation(result["evaluation"])
    print(f"wrote {len(result['figures'])} figures into {Path(args.run_dir) / 'figures'}")
    print(f"wrote {result['report_md']} and {result['report_html']}")


def job_plot(args: argparse.Namespace) -> None:
    from .report import build_run_figures

    for path in build_run_figures(args.run_dir, test_path=args.test, progress=not args.no_progress).values():
        print(f"wrote {path}")


def job_demo(args: argparse.Namespace) -> None:
    from .pipeline import run_demo

    model_config, train_config, gmm_config, novelty_config = args.configs
    result = run_demo(data_dir=args.data_dir, digits=args.digits, labels_per_digit=args.labels_per_digit,
                      out_dir=args.out_dir, model_config=model_config, train_config=train_config, gmm_config=gmm_config,
                      novelty_config=novelty_config,
                      progress=not args.no_progress, device=args.device)
    out = Path(args.out_dir)
    _report_training(result["summary"], out / "vae.pth", out / "gmm_params.pkl")
    _print_evaluation(result["report"]["evaluation"])
    print(f"demo finished in {result['seconds']:.0f} s; report: {result['report']['report_html']}")


# --- the `vaegmm` command ------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="vaegmm", description="VAE + latent GMM: few-label classification of grey images (MNIST digits by default).", formatter_class=fmt)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train the VAE and fit the GMM", formatter_class=fmt)
    p.add_argument("--train", required=True, help="NPZ of training images (labels are ignored)")
    p.add_argument("--val", required=True, help="NPZ of labelled images seeding the GMM")
    p.add_argument("--out-dir", default=".", help="folder for every output (created if missing)")
    p.add_argument("--model", default="vae.pth", help="model file name inside --out-dir")
    p.add_argument("--gmm", default="gmm_params.pkl", help="GMM file name inside --out-dir")
    p.add_argument("--log", default="train_log.jsonl", help="per-epoch log file name inside --out-dir")
    p.add_argument("--digits", "--classes", dest="digits", type=_int_list, default=None,
                   help="classes to model (default: every class labelled in --val)")
    p.add_argument("--test", default=None, help="NPZ of test images that 'vaegmm report' evaluates on")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint an interrupted run left")
    _add_common_run_options(p)
    _add_config_options(p)
    p.set_defaults(job=job_train, interrupt_hint="run the same command again with --resume to continue from the last finished epoch.")

    p = sub.add_parser("demo", help="the whole job on MNIST: train, fit, evaluate, figures and report", formatter_class=fmt)
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: $VAEGMM_DATA, else the user cache; downloaded if missing)")
    p.add_argument("--out-dir", default="runs/demo", help="run folder for every output")
    p.add_argument("--digits", type=_int_list, default=(1, 4, 8), help="digits to model")
    p.add_argument("--labels-per-digit", type=_positive_int, default=5, help="labelled training images drawn per digit for the GMM")
    _add_common_run_options(p)
    _add_config_options(p)
    p.set_defaults(job=job_demo, interrupt_hint="run 'vaegmm demo' again to start over.")

    for name, text, job in (("report", "figures, metrics and report.md/report.html for a run folder", job_report),
                            ("plot", "every figure of a run folder, into RUN_DIR/figures", job_plot)):
        p = sub.add_parser(name, help=text, formatter_class=fmt)
        p.add_argument("run_dir", help="folder written by 'vaegmm train --out-dir' or 'vaegmm demo'")
        p.add_argument("--test", default=None, help="NPZ of test images (default: the run's own test data)")
        p.add_argument("--no-progress", action="store_true", help="hide progress output")
        p.set_defaults(job=job, interrupt_hint=f"run 'vaegmm {name}' again.")

    p = sub.add_parser("reconstruct", help="reconstruct images with a trained VAE", formatter_class=fmt)
    p.add_argument("input", help="NPZ of images")
    p.add_argument("--model", default="vae.pth", help="trained model")
    p.add_argument("--out", default="vae_reconstructed.npz", help="output NPZ (key 'data')")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(job=job_reconstruct, interrupt_hint="run 'vaegmm reconstruct' again.")

    p = sub.add_parser("classify", help="classify images with the VAE and its GMM", formatter_class=fmt)
    p.add_argument("input", help="NPZ of images (metrics are printed when it has labels)")
    p.add_argument("--model", default="vae.pth", help="trained model")
    p.add_argument("--gmm", default="gmm_params.pkl", help="GMM fitted with that model")
    p.add_argument("--out", default="vae.csv", help="output CSV: Predicted_Label, Probability, Novelty_Score, Novel")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(job=job_classify, course=False, interrupt_hint="run 'vaegmm classify' again.")
    return parser


def _checked_settings(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """The configs of a command that trains, and its --device, checked before any work: a bad value is a usage
    error naming the option (exit 2), before any file is read or written."""
    try:
        configs = configs_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    _check_device(parser, args)
    return configs


def _check_device(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if getattr(args, "device", "auto") != "auto":
        from .training import pick_device
        try:
            pick_device(args.device)
        except ValueError as exc:
            parser.error(str(exc))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, _dest(TrainConfig, "epochs")):  # the commands that train
        args.configs = _checked_settings(parser, args)
    else:
        _check_device(parser, args)
    return _guarded(lambda: args.job(args), on_interrupt=args.interrupt_hint)


# --- the course's `python vae.py ...` --------------------------------------------------------

def course_main(argv: Sequence[str] | None = None) -> int:
    """``vae.py`` exactly as the course runs it; outputs go to the current folder."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 5 and argv[2] == "train":
        # The course's five arguments train with the defaults; settings after them (any of 'vaegmm train's, such
        # as --latent-dim 10) are checked before any work, as 'vaegmm train' checks them.
        parser = _course_train_parser()
        options = parser.parse_args(argv[5:])
        configs = _checked_settings(parser, options)
        return _guarded(lambda: _course_train(train=argv[0], val=argv[1], model_path=argv[3], gmm_path=argv[4],
                                              configs=configs, device=options.device, progress=not options.no_progress),
                        on_interrupt=f"run 'python vae.py {' '.join(argv)}' again to train afresh.")
    if len(argv) == 3 and argv[1] == "test_reconstruction":
        args = argparse.Namespace(input=argv[0], model=argv[2], out="vae_reconstructed.npz", device="auto")
        return _guarded(lambda: job_reconstruct(args), on_interrupt="run the same command again.")
    if len(argv) == 4 and argv[1] == "test_classifier":
        args = argparse.Namespace(input=argv[0], model=argv[2], gmm=argv[3], out="vae.csv", device="auto", course=True)
        return _guarded(lambda: job_classify(args), on_interrupt="run the same command again.")
    print(COURSE_USAGE, file=sys.stderr)
    return EXIT_USAGE


def _course_train_parser() -> argparse.ArgumentParser:
    """The settings ``vae.py ... train`` accepts after its five arguments: those of ``vaegmm train``'s configs."""
    parser = argparse.ArgumentParser(
        prog="python vae.py TRAIN.npz VAL.npz train vae.pth gmm_params.pkl",
        description="Settings after the five arguments; none given trains exactly as the course does (2-D latent).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_config_options(parser)
    _add_common_run_options(parser)
    return parser


def _course_train(*, train: str, val: str, model_path: str, gmm_path: str,
                  configs: tuple[VAEConfig, TrainConfig, GMMConfig, NoveltyConfig], device: str = "auto",
                  progress: bool = True) -> None:
    """Train with ``configs`` (the defaults unless settings followed the five arguments); the per-epoch log goes
    beside the model as <model>_train_log.jsonl."""
    from .data import load_images
    from .pipeline import train_and_fit

    model = Path(model_path)
    labelled = load_images(val, require_labels=True)
    _note_minus_one(labelled)
    model_config, train_config, gmm_config, novelty_config = configs
    summary = train_and_fit(
        load_images(train), labelled,
        model_config=model_config, train_config=train_config, gmm_config=gmm_config, novelty_config=novelty_config,
        model_path=model, gmm_path=gmm_path, log_path=model.with_name(model.stem + "_train_log.jsonl"),
        progress=progress, device=device,
    )
    _report_training(summary, model, Path(gmm_path))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
