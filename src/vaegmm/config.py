"""Every setting of a run, one frozen dataclass per concern.

- :class:`VAEConfig` shapes the model and its loss; it is saved inside ``vae.pth``.
- :class:`TrainConfig` shapes the optimisation; it is saved inside ``vae.pth`` and the checkpoint.
- :class:`GMMConfig` shapes the mixture and its few-label fit; it is saved inside ``gmm_params.pkl``.

Each field is validated in ``__post_init__`` (a bad value raises :class:`ConfigError` naming the field,
the value and what is accepted), written into ``run.json`` and the benchmark JSON through
``to_dict``, and reachable from the command line: a field's ``metadata`` holds its help text and,
where it differs from the field name, its flag (see :func:`vaegmm.cli`'s option builder).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .errors import ConfigError

RECON_LOSSES = ("bce", "mse")
LR_SCHEDULES = ("constant", "cosine")
SEEDINGS = ("kmeans", "nearest", "spreading", "inputs")
CHOICE_RULES = ("boundary", "inputs")
SCHEDULES = ("direct", "doubling")
# The schedule of a candidate fitted once on its seeding's partition as it stands (GMMConfig.fit_once).
ONCE_SCHEDULE = "once"
# In a 10-D latent the per-class re-assignment and the joint EM move label spreading's partition towards borders
# the unlabelled likelihood prefers and the labels do not: on 1/4/8's validation split the first per-class fit on
# the spread partition scored 0.974-0.988, and the rounds and joint EM took it to 0.942-0.988 (median 0.964).
# A candidate fitted once on the spread partition, competing with the others, lifted 1/4/8 from 0.964 / 0.956
# to 0.981 / 0.974 (median / worst of 10 draws), the thirty classes of digits8x3 from 0.826 to 0.843 and the
# drawn shapes from 0.767 / 0.724 to 0.778 / 0.732, and moved 3/5/8, 4/7/9, the ten digits and the 8x8 digits
# by 0.004 or less (benchmarks/README.md, "Label spreading's partition as it stands").
FIT_ONCE = ("spreading",)
# Neighbours a point in the graph the "spreading" seeding runs over. Five, not ten: on the validation splits of
# seven sets in a 10-D latent (10 label draws each) five lifted the drawn shapes (median / worst 0.740 / 0.575 ->
# 0.767 / 0.724), the 8x8 digits (0.967 / 0.942 -> 0.975 / 0.951) and the thirty classes of digits8x3 (0.816 ->
# 0.826), left 3/5/8, 4/7/9 and the ten digits within 0.003, and cost 1/4/8 0.013 of median (0.977 -> 0.964,
# worst 0.955 -> 0.956; benchmarks/README.md, "Neighbours to spread the labels over").
SPREAD_NEIGHBOURS = 5
# Held out of a small training set to calibrate the novelty threshold (scikit-learn's validation_fraction for
# early stopping is also 0.1); measured by benchmarks/calibration.py (benchmarks/README.md).
AUTO_CALIBRATION_SHARE = 0.1
# Above this latent size the VAE draws its own training images better than new ones by enough that a threshold
# set on them flags new ordinary images two to three times as often as asked (benchmarks/calibration.py), so
# a share is held out whatever the set's size; the course's 2-D latent calibrates on its training images.
HOLD_OUT_ABOVE_LATENT_DIM = 2
MAX_CALIBRATION_SHARE = 0.5  # beyond this the VAE would lose more images than it keeps
# Beyond this the model no longer "trains fast on a laptop CPU"; a typo such as --hidden 8000,4000 is caught early.
MAX_PARAMETERS = 20_000_000


def _opt(default, help: str, *, flag: str | None = None, cli: bool = True, choices: tuple | None = None,
         type: type | None = None):
    """A dataclass field with its command-line help (and flag, when not derived from its name).

    ``type`` is the option's type where the default (None: derived from other fields) does not show it."""
    return field(default=default, metadata={"help": help, "flag": flag, "cli": cli, "choices": choices, "type": type})


def _require(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{name} must be {expected}; got {value!r}.")


def _numpydoc(cls):
    """Append a numpydoc "Parameters" section built from the fields' defaults and help texts."""
    lines = ["", "    Parameters", "    ----------"]
    for f in fields(cls):
        kind = (f.metadata.get("type") or type(f.default)).__name__
        lines += [f"    {f.name} : {kind}, default {f.default!r}", f"        {f.metadata['help']}."]
    cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n" + "\n".join(lines) + "\n"
    return cls


class _Config:
    """Shared dict conversion for the config dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown settings {sorted(unknown)}; known ones are {sorted(known)}.")
        return cls(**d)


@_numpydoc
@dataclass(frozen=True)
class VAEConfig(_Config):
    """Everything needed to rebuild the model and its loss."""

    image_shape: tuple[int, ...] = _opt((28, 28), "image height and width (taken from the training data)", cli=False)
    hidden_sizes: tuple[int, ...] = _opt((512, 256), "hidden layer sizes of the encoder (mirrored in the decoder)",
                                         flag="--hidden")
    latent_dim: int = _opt(2, "latent size: 2 as the course asks; 10 classifies classes that share strokes far "
                                 "better (README, 'Few labels on harder classes')")
    recon_loss: str = _opt("bce", "reconstruction loss", flag="--loss", choices=RECON_LOSSES)
    # Below 1, digits separate better in 2-D and reconstruct sharper (benchmarks/README.md).
    beta: float = _opt(0.4, "weight of the KL term")
    # Off by default in 2-D so that the course's model and its reconstructions stay as they were; with a 2-D
    # latent, 0.4 lifts the few-label scores of classes that share strokes (benchmarks/README.md).
    neighbour_weight: float | None = _opt(None, "weight per pixel of the neighbour-embedding term (parametric t-SNE, "
                                                "vaegmm.neighbours) that keeps neighbouring images together in the "
                                                "latent; 0 turns it off, 0.4 is the README's choice for a 2-D latent "
                                                "(with --teacher-latent-dim 10); unset (None): off, but for a latent "
                                                "above 2-D trained on fewer than --small-set-images images, which get "
                                                "--small-set-neighbour-weight", type=float)
    # A VAE of a thousand-odd images draws a latent whose neighbours are noisier than the images' own: there, in
    # 10-D, the term at 0.03 raised the few-label median of every validation set (1,125-1,620 images the VAE
    # trained on, six sets) and every test median (five sets), and passed pixel LabelSpreading on the 8x8 digits;
    # from 2,250 images on its gains were mixed (the ten digits lost; benchmarks/README.md, "the term at 0.03 on
    # other small sets"). 2-D is left as it was: there the term costs reconstruction, and it was not measured.
    small_set_images: int = _opt(2000, "with a latent above 2-D and --neighbour-weight unset, a VAE trained on fewer "
                                       "images than this gets the neighbour-embedding term at "
                                       "--small-set-neighbour-weight; 0 never")
    small_set_neighbour_weight: float = _opt(0.03, "the neighbour-embedding term's weight per pixel on such small sets")
    perplexity: float = _opt(3.0, "the neighbour-embedding term's effective number of neighbours per image "
                                  "within a batch")
    # van der Maaten (2009) gives a D-dimensional embedding D - 1 degrees of freedom, t-SNE's 1 in 2-D; with a
    # 10-D latent, 9 scored better than 1 on four of the five validation sets (benchmarks/README.md).
    neighbour_dof: float | None = _opt(None, "degrees of freedom of the neighbour-embedding term's Student-t kernel "
                                             "in the latent; unset (None): the latent size - 1, at least 1, as in "
                                             "parametric t-SNE (1, t-SNE's, in 2-D)", type=float)
    # Pixel distances join images that share strokes (4 and 9), so the term keeps such classes together in 2-D; a
    # 10-D VAE's latent already holds them apart (a 10-NN classifier: 0.97 on 4/7/9 against 0.85 with pixel
    # affinities), and its neighbours are what the 2-D latent then keeps (benchmarks/README.md, "teacher").
    teacher_latent_dim: int = _opt(0, "latent size of a teacher VAE trained first on the same images (same settings, no "
                                      "neighbour term) whose latent means give the neighbour-embedding term its "
                                      "affinities in place of the pixels; 0: the pixels. 10 is the README's choice "
                                      "for a 2-D latent, with --neighbour-weight 0.4")

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_shape", tuple(int(s) for s in self.image_shape))
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        _require(len(self.image_shape) == 2 and all(s >= 1 for s in self.image_shape), "image_shape",
                 self.image_shape, "two positive sizes (height, width)")
        _require(all(h >= 1 for h in self.hidden_sizes), "hidden_sizes (--hidden)", self.hidden_sizes,
                 "positive layer sizes such as 512,256")
        _require(self.latent_dim >= 1, "latent_dim (--latent-dim)", self.latent_dim, ">= 1")
        _require(self.recon_loss in RECON_LOSSES, "recon_loss (--loss)", self.recon_loss, f"one of {RECON_LOSSES}")
        _require(math.isfinite(self.beta) and self.beta >= 0, "beta", self.beta, "a finite number >= 0")
        _require(self.neighbour_weight is None or (isinstance(self.neighbour_weight, (int, float))
                                                   and math.isfinite(self.neighbour_weight) and self.neighbour_weight >= 0),
                 "neighbour_weight (--neighbour-weight)", self.neighbour_weight, "a finite number >= 0, or unset")
        _require(isinstance(self.small_set_images, int) and self.small_set_images >= 0,
                 "small_set_images (--small-set-images)", self.small_set_images, "an integer >= 0")
        _require(math.isfinite(self.small_set_neighbour_weight) and self.small_set_neighbour_weight >= 0,
                 "small_set_neighbour_weight (--small-set-neighbour-weight)", self.small_set_neighbour_weight,
                 "a finite number >= 0")
        _require(math.isfinite(self.perplexity) and self.perplexity > 1, "perplexity", self.perplexity,
                 "a finite number > 1")
        if self.neighbour_dof is None:
            object.__setattr__(self, "neighbour_dof", float(max(1, self.latent_dim - 1)))
        _require(isinstance(self.neighbour_dof, (int, float)) and math.isfinite(self.neighbour_dof)
                 and self.neighbour_dof > 0, "neighbour_dof", self.neighbour_dof, "a finite number > 0")
        object.__setattr__(self, "neighbour_dof", float(self.neighbour_dof))
        _require(isinstance(self.teacher_latent_dim, int) and self.teacher_latent_dim >= 0,
                 "teacher_latent_dim (--teacher-latent-dim)", self.teacher_latent_dim, "an integer >= 0")
        _require(self.teacher_latent_dim == 0 or (self.neighbour_weight or 0) > 0, "teacher_latent_dim (--teacher-latent-dim)",
                 self.teacher_latent_dim, "0 unless --neighbour-weight is above 0: the teacher only gives the "
                 "neighbour-embedding term its affinities")
        n = self.n_parameters
        if n > MAX_PARAMETERS:
            raise ConfigError(
                f"hidden_sizes {list(self.hidden_sizes)} on {self.image_shape[0]}x{self.image_shape[1]} images give "
                f"{n:,} parameters, over the {MAX_PARAMETERS:,} limit; use smaller layers (e.g. --hidden 512,256)."
            )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VAEConfig":
        # Files written before neighbour_dof existed were trained with t-SNE's kernel, whatever the latent size.
        return super().from_dict({"neighbour_dof": 1.0, **d})

    def neighbour_weight_for(self, n_images: int) -> float:
        """The neighbour-embedding term's weight for a VAE trained on ``n_images``: ``neighbour_weight`` when set;
        unset, ``small_set_neighbour_weight`` for a latent above 2-D on fewer than ``small_set_images`` images,
        else 0."""
        if self.neighbour_weight is not None:
            return float(self.neighbour_weight)
        return self.small_set_neighbour_weight if self.latent_dim > 2 and n_images < self.small_set_images else 0.0

    def for_training_set(self, n_images: int) -> "VAEConfig":
        """This config with the neighbour term's weight settled for ``n_images`` (what the model file records)."""
        return replace(self, neighbour_weight=self.neighbour_weight_for(n_images))

    @property
    def input_dim(self) -> int:
        return math.prod(self.image_shape)

    @property
    def n_parameters(self) -> int:
        """The model's parameter count, from the sizes alone (weights and biases of every linear layer)."""
        enc = [self.input_dim, *self.hidden_sizes]
        last = enc[-1]
        count = sum((a + 1) * b for a, b in zip(enc[:-1], enc[1:])) + 2 * (last + 1) * self.latent_dim
        dec = [self.latent_dim, *reversed(self.hidden_sizes), self.input_dim]
        return count + sum((a + 1) * b for a, b in zip(dec[:-1], dec[1:]))


@_numpydoc
@dataclass(frozen=True)
class TrainConfig(_Config):
    """Optimisation settings; saved with the model for provenance."""

    epochs: int = _opt(20, "training epochs (more on small training sets: see --min-steps)")
    # Twenty epochs of a large set are thousands of Adam steps, of a small one (scikit-learn's 1,247 8x8
    # digits) a few hundred: far from converged (validation kNN ceiling 0.74 against 0.95 after about
    # 2,400 steps; benchmarks/README.md). The course's 18,420 images take 2,880 steps and every MNIST
    # class set of the benchmark at least 2,400, so they train as before.
    min_steps: int = _opt(2400, "fewest optimisation steps: on small training sets the epochs grow to reach "
                                "them (0 trains exactly --epochs)")
    batch_size: int = _opt(128, "images per step")
    lr: float = _opt(4e-3, "Adam's peak learning rate")
    lr_schedule: str = _opt("cosine", "learning-rate decay after the warm-up", choices=LR_SCHEDULES)
    final_lr_ratio: float = _opt(0.05, "the cosine schedule's last rate, as a share of --lr")
    # A linear ramp over the first tenth of the steps makes twice the former peak rate stable: a
    # sharper decoder in the same time (SSIM 0.701 against 0.694; benchmarks/README.md).
    warmup_fraction: float = _opt(0.1, "share of the steps over which the learning rate ramps up linearly",
                                  flag="--warmup")
    seed: int = _opt(0, "torch.manual_seed for the whole run (also seeds the GMM fit)")
    # One trained VAE can land in a much better or worse latent than another seed's (3/5/8 in 2-D: median
    # 0.78-0.92 over five seeds, the best with the clearly lowest loss; benchmarks/README.md).
    restarts: int = _opt(1, "VAEs trained, with seeds --seed, --seed + 1, ...; the one with the lowest final "
                            "training loss is kept (as n_init in scikit-learn)")

    def __post_init__(self) -> None:
        _require(self.epochs >= 1, "epochs", self.epochs, ">= 1")
        _require(self.min_steps >= 0, "min_steps (--min-steps)", self.min_steps, ">= 0")
        _require(self.batch_size >= 1, "batch_size (--batch-size)", self.batch_size, ">= 1")
        _require(math.isfinite(self.lr) and self.lr > 0, "lr", self.lr, "a finite number > 0")
        _require(self.lr_schedule in LR_SCHEDULES, "lr_schedule", self.lr_schedule, f"one of {LR_SCHEDULES}")
        _require(0 <= self.final_lr_ratio <= 1, "final_lr_ratio", self.final_lr_ratio, "in [0, 1]")
        _require(0 <= self.warmup_fraction < 1, "warmup_fraction (--warmup)", self.warmup_fraction, "in [0, 1)")
        _require(self.seed >= 0, "seed", self.seed, ">= 0")
        _require(self.restarts >= 1, "restarts", self.restarts, ">= 1")

    def epochs_for(self, n_images: int) -> int:
        """Epochs to train on ``n_images``: ``epochs``, or more so that there are at least ``min_steps`` steps."""
        steps_per_epoch = math.ceil(n_images / self.batch_size)
        return max(self.epochs, math.ceil(self.min_steps / steps_per_epoch))

    def lr_at(self, step: int, total_steps: int) -> float:
        """Learning rate of optimisation step ``step`` (0-based); a pure function, so resuming needs no state."""
        warmup = min(1.0, (step + 1) / (self.warmup_fraction * total_steps)) if self.warmup_fraction > 0 else 1.0
        if self.lr_schedule == "constant":
            return self.lr * warmup
        progress = min(step / max(total_steps - 1, 1), 1.0)
        cosine = self.final_lr_ratio + (1 - self.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        return self.lr * cosine * warmup


# The few-label fit's defaults by latent size (GMMConfig.for_latent; chosen on validation, benchmarks/README.md).
SEEDINGS_UP_TO_2D = ("kmeans", "nearest")
SEEDINGS_ABOVE_2D = ("nearest", "spreading")
LABEL_SLACK_UP_TO_2D = 1
LABEL_SLACK_ABOVE_2D = 2
MOST_COMPONENTS_PER_CLASS = 4
# A mixture fitted once within the companion's partition cannot drift across classes, so a class may take more
# components to follow its shape: on the validation splits 8 lifted every set's median and worst draw over 4 (3/5/8
# 0.838 / 0.824 -> 0.847 / 0.842), where 12 and 16 gained under 0.005 more on three sets and lost up to 0.020 on the
# 8x8 digits (benchmarks/README.md, "Components within the companion's partition").
MOST_COMPONENTS_WITH_COMPANION = 8
# The companion an unsettled fit gets when --companion-latent-dim is unset, and the largest latent it is trained
# for: it was measured with 2-D models only.
UNSETTLED_COMPANION_LATENT_DIM = 10
UNSETTLED_COMPANION_UP_TO_LATENT = 2


def component_parameter_count(n_features: int) -> int:
    """Free parameters of one full-covariance mixture component in ``n_features`` dimensions: its mean, its
    covariance's D (D + 1) / 2 entries and its weight."""
    return n_features + n_features * (n_features + 1) // 2 + 1


def components_paid_for(n_points: int, n_classes: int, n_features: int, *, most: int) -> int:
    """Components per class, up to ``most``, whose free parameters a class's expected share of ``n_points``
    (n_points / n_classes) pays for at one point per parameter; at least 1.

    In 2-D a component has 6 parameters, so 4 per class need only 24 points a class. In 10-D it has 66: 4 per
    class need 264, which a class of scikit-learn's 8x8 digits (about 100 images) does not have.
    """
    return int(min(most, max(1, (n_points // n_classes) // component_parameter_count(n_features))))


@_numpydoc
@dataclass(frozen=True)
class GMMConfig(_Config):
    """The latent mixture and how a few labels seed it (see :mod:`vaegmm.fewlabel`)."""

    # On validation sets of about 100 images a class in a 10-D latent, 4 components per class (264 parameters a
    # class) fitted each class's few points too closely: one per class, as many as the points pay for, lifted
    # the 8x8 digits' worst draw from 0.906 to 0.942 and the ten digits on 1,250 MNIST images from 0.746 to 0.778
    # (benchmarks/README.md, "Components a class's points pay for"). On MNIST's full sets nothing changes.
    components_per_class: int | None = _opt(
        None, f"GMM components per class; unset (None): up to {MOST_COMPONENTS_PER_CLASS} (with a companion's single "
              f"fit, {MOST_COMPONENTS_WITH_COMPANION}), as many as a class's "
              "expected share of the fitting points pays for at one point per free parameter (a full-covariance "
              "Gaussian in D dimensions has D + D(D+1)/2 + 1), at least 1", type=int)
    reg_covar: float = _opt(1e-6, "added to every GMM covariance diagonal")
    tol: float = _opt(1e-4, "EM stops when the mean log-likelihood per point improves by less than this",
                      flag="--gmm-tol")
    max_iter: int = _opt(300, "most EM iterations per fit", flag="--gmm-max-iter")
    joint_em: bool = _opt(True, "finish each candidate with EM on all points jointly (kept only if the drift guard passes)")
    anchor_labels: bool = _opt(True, "in the joint EM, keep labelled points in their class's components")
    max_class_shift: float = _opt(0.05, "largest share of points the joint EM may move across classes")
    max_partition_rounds: int = _opt(50, "most rounds of per-class EM and re-assignment")
    partition_tol: float = _opt(1e-3, "the rounds stop once at most this share of points changes class")
    # In 10-D, nearest + spreading matched all three seedings on every validation set and beat k-means + nearest on
    # every one (4/7/9's worst draw 0.725 -> 0.935, ten digits 0.894 -> 0.948); a second label of slack lifted the
    # worst draws of 4/7/9 and the ten digits and lowered none (benchmarks/README.md, "a 10-D latent"). In 2-D the
    # k-means seeding and one label of slack keep the course's draws at 0.98 or more.
    seedings: tuple[str, ...] | None = _opt(None, f"initial partitions tried, from {list(SEEDINGS)}; unset (None): "
                                                  f"{','.join(SEEDINGS_UP_TO_2D)} for a latent of up to 2 dimensions, "
                                                  f"{','.join(SEEDINGS_ABOVE_2D)} above", type=tuple)
    schedules: tuple[str, ...] | None = _opt(None, f"ways to reach components_per_class, from {list(SCHEDULES)}; '' for "
                                                   "none (only the --fit-once candidates); unset (None): all of them, but "
                                                   "none with --companion-latent-dim and --seedings unset", type=tuple)
    fit_once: tuple[str, ...] | None = _opt(None, "seedings whose partition, where they are among --seedings, also gives "
                                                  "a candidate fitted once as it stands (components per class fitted "
                                                  f"within it; no re-assignment, no joint EM; the '{ONCE_SCHEDULE}' "
                                                  f"schedule); '' for none; unset (None): {','.join(FIT_ONCE)}; "
                                                  "inputs with --companion-latent-dim and --seedings unset", type=tuple)
    n_neighbors: int = _opt(10, "neighbours per point in the graph whose cut edges rank the candidate fits")
    spread_neighbors: int = _opt(SPREAD_NEIGHBOURS, "neighbours per point in the graph the 'spreading' seeding "
                                                    "spreads the labels over")
    # A 2-D latent trained with pixel neighbours squeezes classes that share strokes together; the images
    # themselves keep them apart better, so there the candidate agreeing most with label spreading over the
    # images is the better pick (benchmarks/README.md). In 10-D, and in a 2-D latent taught by a 10-D one
    # (--teacher-latent-dim), the latent's own graph is the better judge. It is not the default:
    # on the course's 1/4/8 one label draw in five to ten falls by 0.02-0.04 with it (compare.py's worst draw
    # 0.945 against the 0.98 the defaults must keep), and the fit takes 5-6 s instead of 1.
    choose_by: str = _opt("boundary", "how one candidate fit is chosen: 'boundary' (its class borders cut the fewest "
                                      "edges of the latent neighbour graph) or 'inputs' (it agrees most with the "
                                      "'inputs' seeding, label spreading over the images or the companion's latent means)",
                          choices=CHOICE_RULES)
    # 50 components hold 85% of the variance of MNIST's digits and drop their pixel noise, and the neighbour
    # search on them stays under two seconds for 20,000 images.
    input_components: int = _opt(50, "leading principal components of the images in which the 'inputs' seeding "
                                     "finds each image's neighbours")
    label_slack: int | None = _opt(None, "a candidate may misplace this many more labelled points than the best one; "
                                         f"unset (None): {LABEL_SLACK_UP_TO_2D} for a latent of up to 2 dimensions, "
                                         f"{LABEL_SLACK_ABOVE_2D} above (give 2 with --teacher-latent-dim; README)", type=int)
    # A 2-D latent squeezes classes that share strokes together, and a 10-D one trained on the same images keeps
    # them apart: label spreading over its latent means, with the 2-D mixture fitted once within the partition
    # it makes, lifted every validation set over the 2-D defaults (4/7/9 0.588 -> 0.763, ten digits 0.690 ->
    # 0.799, worst draws too), and the model and its reconstructions stay the course's (benchmarks/README.md,
    # "A companion latent for the 2-D mixture").
    # Unset, a companion is trained only where it was measured to help: a fit in a latent of up to 2-D whose
    # candidates disagree (the classes overlap there). On the validation splits that was every draw of 3/5/8,
    # 4/7/9, the ten digits and the 8x8 digits, and no draw of 1/4/8 (benchmarks/README.md, "A companion when
    # the fit is unsettled"), so the course's model and mixture stay as they were.
    companion_latent_dim: int | None = _opt(
        None, "latent size of a companion VAE trained beside the model on the same images (the model's settings and "
              "seed; never shown a label, not saved): the 'inputs' seeding spreads the labels over its latent means "
              "instead of the images' pixels; with --seedings unset the mixture is then fitted once within that "
              "partition (--seedings inputs --schedules '' --fit-once inputs). 0: none; unset (None): a "
              f"{UNSETTLED_COMPANION_LATENT_DIM}-D one, trained only when the fit without it is unsettled in a latent "
              f"of up to {UNSETTLED_COMPANION_UP_TO_LATENT}-D with --seedings unset", type=int)
    # A mixture of a few dozen components is pinned down by tens of thousands of points; beyond that, more
    # points only cost time. Below this many (the course's 18,420 included) every point is used.
    max_fit_points: int = _opt(20_000, "most unlabelled points (a seeded random subset) the fit and its ranking graph use")

    def __post_init__(self) -> None:
        if self.seedings is not None:
            object.__setattr__(self, "seedings", tuple(self.seedings))
        for name in ("schedules", "fit_once"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(getattr(self, name)))
        _require(self.components_per_class is None
                 or (isinstance(self.components_per_class, int) and self.components_per_class >= 1),
                 "components_per_class (--components-per-class)", self.components_per_class, "an integer >= 1, or unset")
        _require(math.isfinite(self.reg_covar) and self.reg_covar >= 0, "reg_covar", self.reg_covar, "a finite number >= 0")
        _require(self.tol > 0, "tol (--gmm-tol)", self.tol, "> 0")
        _require(self.max_iter >= 1, "max_iter (--gmm-max-iter)", self.max_iter, ">= 1")
        _require(0 <= self.max_class_shift <= 1, "max_class_shift", self.max_class_shift, "in [0, 1]")
        _require(self.max_partition_rounds >= 1, "max_partition_rounds", self.max_partition_rounds, ">= 1")
        _require(0 <= self.partition_tol <= 1, "partition_tol", self.partition_tol, "in [0, 1]")
        _require(self.seedings is None or (bool(self.seedings) and set(self.seedings) <= set(SEEDINGS)
                                           and len(set(self.seedings)) == len(self.seedings)),
                 "seedings", self.seedings if self.seedings is None else list(self.seedings),
                 f"a non-empty list without repeats from {list(SEEDINGS)}")
        for name, flag, given, known in (("schedules", "--schedules", self.schedules, SCHEDULES),
                                         ("fit_once", "--fit-once", self.fit_once, SEEDINGS)):
            _require(given is None or (set(given) <= set(known) and len(set(given)) == len(given)),
                     f"{name} ({flag})", given if given is None else list(given),
                     f"a list without repeats from {list(known)}, or empty")
        _require(self.companion_latent_dim is None
                 or (isinstance(self.companion_latent_dim, int) and self.companion_latent_dim >= 0),
                 "companion_latent_dim (--companion-latent-dim)", self.companion_latent_dim, "an integer >= 0, or unset")
        _require(not self.companion_latent_dim or self.seedings is None or "inputs" in self.seedings,
                 "seedings (with --companion-latent-dim)", self.seedings if self.seedings is None else list(self.seedings),
                 "unset, or a list including 'inputs', the seeding that reads the companion's latent means")
        _require(self.n_neighbors >= 1, "n_neighbors", self.n_neighbors, ">= 1")
        _require(self.spread_neighbors >= 1, "spread_neighbors (--spread-neighbors)", self.spread_neighbors, ">= 1")
        _require(self.label_slack is None or (isinstance(self.label_slack, int) and self.label_slack >= 0),
                 "label_slack (--label-slack)", self.label_slack, "an integer >= 0, or unset")
        _require(self.choose_by in CHOICE_RULES, "choose_by", self.choose_by, f"one of {CHOICE_RULES}")
        _require(self.choose_by != "inputs" or "inputs" in (self.seedings or ()), "seedings (with --choose-by inputs)",
                 self.seedings if self.seedings is None else list(self.seedings),
                 "a list including 'inputs', the label spreading the candidates are compared with")
        _require(self.input_components >= 1, "input_components", self.input_components, ">= 1")
        _require(self.max_fit_points >= 2, "max_fit_points", self.max_fit_points, ">= 2")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GMMConfig":
        # Settings saved before fit_once existed were fitted without the candidates it adds, and those saved
        # before companion_latent_dim existed without a companion.
        return super().from_dict({"fit_once": (), "companion_latent_dim": 0, **d})

    def for_latent(self, latent_dim: int, *, n_points: int | None = None, n_classes: int | None = None) -> "GMMConfig":
        """This config with ``seedings``, ``label_slack`` and ``components_per_class`` settled, where they are
        unset, for ``n_points`` points of ``n_classes`` classes in a latent of ``latent_dim`` dimensions (what
        the GMM file and run.json record). Without the counts, unset components are the most a class may take:
        MOST_COMPONENTS_PER_CLASS, or MOST_COMPONENTS_WITH_COMPANION for the companion's single fit."""
        small = latent_dim <= 2
        if self.companion_latent_dim and self.seedings is None:  # the fit the companion was measured with
            defaults, most = (("inputs",), (), ("inputs",)), MOST_COMPONENTS_WITH_COMPANION
        else:
            defaults, most = (SEEDINGS_UP_TO_2D if small else SEEDINGS_ABOVE_2D, SCHEDULES, FIT_ONCE), MOST_COMPONENTS_PER_CLASS
        seedings, schedules, fit_once = (given if given is not None else default for given, default
                                         in zip((self.seedings, self.schedules, self.fit_once), defaults))
        if not schedules and not set(fit_once) & set(seedings):
            raise ConfigError(f"no candidate fit to make: no --schedules and no --fit-once seeding among the seedings "
                              f"{list(seedings)}. Give a schedule from {list(SCHEDULES)} or a --fit-once seeding.")
        slack = self.label_slack if self.label_slack is not None else (LABEL_SLACK_UP_TO_2D if small else LABEL_SLACK_ABOVE_2D)
        components = self.components_per_class
        if components is None:
            components = (most if n_points is None or n_classes is None else
                          components_paid_for(n_points, n_classes, latent_dim, most=most))
        return replace(self, seedings=seedings, schedules=schedules, fit_once=fit_once, label_slack=slack,
                       components_per_class=components)

    def uses_inputs(self) -> bool:
        """Whether the fit reads the 'inputs' (the images, or the companion's latent means): the 'inputs' seeding,
        a derived default only with a companion."""
        return "inputs" in (self.seedings or ()) or bool(self.companion_latent_dim)


@_numpydoc
@dataclass(frozen=True)
class NoveltyConfig(_Config):
    """How images that belong to no known class are flagged (see :mod:`vaegmm.novelty`)."""

    flag_rate: float = _opt(0.01, "share of ordinary images the novelty threshold flags (set on the calibration "
                                  "images); new images scoring above it are reported as belonging to no known class")
    calibration_share: float | None = _opt(
        None, "share of the training images kept out of the VAE's training to calibrate the novelty threshold on; "
              f"unset (None): {AUTO_CALIBRATION_SHARE} with a latent above {HOLD_OUT_ABOVE_LATENT_DIM}-D or when "
              "--min-steps raises the epochs (a small set), where the VAE draws its own images better than new ones, "
              "else 0 (calibrate on the training images)", type=float)

    def __post_init__(self) -> None:
        _require(0 < self.flag_rate < 1, "flag_rate (--flag-rate)", self.flag_rate, "in (0, 1)")
        if self.calibration_share is not None:
            _require(isinstance(self.calibration_share, (int, float)) and 0 <= self.calibration_share <= MAX_CALIBRATION_SHARE,
                     "calibration_share (--calibration-share)", self.calibration_share, f"in [0, {MAX_CALIBRATION_SHARE}]")

    def share_for(self, n_images: int, train_config: TrainConfig, *, latent_dim: int) -> float:
        """The share of ``n_images`` training images held out for calibration by a VAE of ``latent_dim`` latent
        dimensions: ``calibration_share``, or when unset, AUTO_CALIBRATION_SHARE if the latent is above
        HOLD_OUT_ABOVE_LATENT_DIM or ``train_config`` trains the images for more than its ``epochs``, else 0."""
        if self.calibration_share is not None:
            return float(self.calibration_share)
        grown = train_config.epochs_for(n_images) > train_config.epochs
        return AUTO_CALIBRATION_SHARE if grown or latent_dim > HOLD_OUT_ABOVE_LATENT_DIM else 0.0
