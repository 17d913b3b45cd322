"""Ranking candidate fits of the few-label mixture, and choosing one.

The unlabelled likelihood cannot choose among candidate fits: a class's sparse tail is often likelier
under a broad neighbouring class. :func:`choose_candidate` instead keeps the candidates that place the
labelled points (almost) as well as the best one, then prefers the one whose class borders cut the
fewest edges of the data's nearest-neighbour graph — borders through sparse regions, the cluster
assumption of semi-supervised learning — then the likelier one. In a 2-D latent that graph itself
joins classes the images keep apart, so there the rule can instead keep the candidate that agrees most
with label spreading over the images (``GMMConfig.choose_by="inputs"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import UNSETTLED_COMPANION_LATENT_DIM, UNSETTLED_COMPANION_UP_TO_LATENT, GMMConfig
from .gmm import GaussianMixture

# Above this disagreement a small-latent fit is called unsettled. On few_labels.py's validation split
# (benchmarks/README.md, "Unsettled fits"), every 2-D draw on the course digits 1/4/8 stayed at or under 0.033,
# and every 2-D draw on digit sets that share strokes (3/5/8, 4/7/9, all ten, scikit-learn's 8x8 digits),
# scoring 0.45-0.89, was 0.196 or more. In a 10-D latent the figure is no alarm: draws scoring 0.95-0.97 reached 0.263.
UNSETTLED_DISAGREEMENT = 0.1
# The latent size the benchmarks measured for classification. Only a latent smaller than this is warned about,
# because only there the warning has a remedy to offer.
SUGGESTED_LATENT_DIM = 10


def boundary_fraction(labels: np.ndarray, neighbours: np.ndarray) -> float:
    """Share of nearest-neighbour edges whose two ends carry different labels.

    labels (N,); neighbours (N, k) from :func:`vaegmm.clustering.neighbour_graph`. A partition whose class borders run
    through sparse regions cuts few edges.
    """
    if neighbours.size == 0:
        return 0.0
    return float(np.mean(labels[neighbours] != labels[:, None]))


def disagreement(chosen: np.ndarray, others: list[np.ndarray]) -> float | None:
    """How unsettled a fit is: the median, over the other candidates, of the share of points whose class
    differs from the chosen candidate's. ``chosen`` (N,) and each of ``others`` (N,) are class partitions of
    the same points; None when there is no other candidate.

    Where a latent keeps the classes apart, fits from different seedings and schedules land on the same
    borders and this is a few percent; where classes overlap, each start settles on other borders. The
    median, not the mean, so that one odd candidate does not make a settled fit look unsettled.
    """
    if not others:
        return None
    return float(np.median([np.mean(other != chosen) for other in others]))


@dataclass
class Candidate:
    """One candidate fit and what ranks it."""

    gmm: GaussianMixture
    seeding: str
    schedule: str
    partition_rounds: int
    joint_em_accepted: bool
    class_shift: float  # share of points the joint EM moved across classes
    labelled_agreement: float  # share of labelled points classified as their own class
    lower_bound: float  # mean log-likelihood per point, labelled points included
    boundary_fraction: float = float("nan")  # share of neighbour-graph edges its partition cuts
    input_agreement: float = float("nan")  # share of points in the class the "inputs" seeding gave them

    def summary(self) -> dict:
        """Plain data for run.json and the GMM file."""
        return {"seeding": self.seeding, "schedule": self.schedule, "labelled_agreement": self.labelled_agreement,
                "boundary_fraction": self.boundary_fraction, "lower_bound": self.lower_bound,
                "partition_rounds": self.partition_rounds, "joint_em_accepted": self.joint_em_accepted,
                "class_shift": self.class_shift, "em_iterations": int(self.gmm.n_iter_),
                "em_converged": bool(self.gmm.converged_),
                **({"input_agreement": self.input_agreement} if np.isfinite(self.input_agreement) else {})}


def choose_candidate(candidates: list, *, n_labelled: int, label_slack: int, by: str = "boundary"):
    """With ``by="boundary"``, the candidate whose borders cut the fewest neighbour edges, among those
    misplacing at most ``label_slack`` more of the ``n_labelled`` labelled points than the best one; with
    ``by="inputs"``, the candidate agreeing most with label spreading over the images. Ties go to the
    higher lower bound. Candidates need ``labelled_agreement``, ``boundary_fraction`` (or
    ``input_agreement``) and ``lower_bound``."""
    if by == "inputs":
        return max(candidates, key=lambda c: (c.input_agreement, c.lower_bound))
    kept = [round(c.labelled_agreement * n_labelled) for c in candidates]
    eligible = [c for c, k in zip(candidates, kept) if k >= max(kept) - label_slack]
    return min(eligible, key=lambda c: (c.boundary_fraction, -c.lower_bound))


def warns_if_unsettled(latent_dim: int) -> bool:
    """Whether a fit in a latent of this size is warned about when unsettled (only under SUGGESTED_LATENT_DIM)."""
    return latent_dim < SUGGESTED_LATENT_DIM


def companion_for_unsettled(config: GMMConfig, disagreement_share: float | None, *, latent_dim: int) -> int:
    """The latent size of the companion VAE to train after a fit with ``config`` whose candidates disagree on
    ``disagreement_share`` of the points (:func:`disagreement`) in a latent of ``latent_dim`` dimensions, 0 for none.

    UNSETTLED_COMPANION_LATENT_DIM only where the user left the choice to vaegmm (``companion_latent_dim`` and
    ``seedings`` unset), the latent has at most UNSETTLED_COMPANION_UP_TO_LATENT dimensions and the fit is
    unsettled: the case the companion was measured to lift, which the course's digits never reach.
    """
    if config.companion_latent_dim is not None or config.seedings is not None or latent_dim > UNSETTLED_COMPANION_UP_TO_LATENT:
        return 0
    return UNSETTLED_COMPANION_LATENT_DIM if disagreement_share is not None and disagreement_share > UNSETTLED_DISAGREEMENT else 0


def unsettled_advice(disagreement_share: float | None, *, latent_dim: int) -> str | None:
    """The warning for an unsettled fit in a latent smaller than SUGGESTED_LATENT_DIM, else None.

    ``disagreement_share`` is :func:`disagreement`; a fit is unsettled above UNSETTLED_DISAGREEMENT. A latent of
    SUGGESTED_LATENT_DIM or more is never warned about: there, well-classifying fits measured above the threshold
    too, and the remedy the warning offers is already taken.
    """
    if disagreement_share is None or disagreement_share <= UNSETTLED_DISAGREEMENT or not warns_if_unsettled(latent_dim):
        return None
    return (f"the few-label fit is unsettled: the other candidate fits put a median {disagreement_share:.1%} of the "
            f"training images in another class than the kept fit (at most {UNSETTLED_DISAGREEMENT:.0%} where the "
            f"latent keeps the classes apart), so the classes overlap in this {latent_dim}-D latent and many new "
            f"images will be misclassified. A larger latent keeps apart classes that share strokes: --latent-dim "
            f"{SUGGESTED_LATENT_DIM} (VAEConfig(latent_dim={SUGGESTED_LATENT_DIM})) classified such digit sets far "
            "better on the benchmark (README, 'Few labels on harder classes'); more labelled images per class help too.")


def components_phrase(fit_summary: dict) -> str:
    """'N components per class, ' from a few-label fit's summary (``FewLabelGMM.summary``); '' for a summary
    written before it held the number."""
    k = fit_summary.get("components_per_class")
    return "" if k is None else f"{k} component{'' if k == 1 else 's'} per class, "


def spread_over_phrase(companion: dict | None) -> str:
    """What the 'inputs' seeding spread the labels over, from a run summary's ``companion`` entry (None: none)."""
    return "the images" if not companion else f"the {companion['latent_dim']}-D companion's latent means"


def rounds_phrase(candidate_summary: dict) -> str:
    """'N rounds of per-class EM' from a candidate's summary (``Candidate.summary``), singular for one round (the
    "once" schedule's)."""
    n = candidate_summary["partition_rounds"]
    return f"{n} round{'' if n == 1 else 's'} of per-class EM"
