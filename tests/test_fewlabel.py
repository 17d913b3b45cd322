"""The few-label fit: seedings, stages, candidates, subsets and threads."""


import numpy as np
import pytest

from vaegmm.candidates import UNSETTLED_DISAGREEMENT, boundary_fraction
from vaegmm.clustering import neighbour_graph
from vaegmm.config import MOST_COMPONENTS_PER_CLASS, GMMConfig, components_paid_for, component_parameter_count
from vaegmm.errors import ConfigError
from vaegmm.fewlabel import FewLabelGMM, component_schedule, random_subset

from .conftest import COVS, MEANS, few_label, make_blobs


def _bimodal_class(rng):
    """Class 0 is two far-apart blobs (its mean lies in empty space), class 1 one blob above it."""
    centres = np.array([[-6.0, 0.0], [6.0, 0.0], [0.0, 5.0]])
    X, y = make_blobs(rng, centres, [np.eye(2) * 0.5] * 3, [1500, 1500, 1500])
    return X, np.where(y == 2, 1, 0), centres


def test_staged_fit_gives_a_bimodal_class_one_component_per_mode():
    rng = np.random.default_rng(7)
    X, y, centres = _bimodal_class(rng)
    lab = np.concatenate([rng.choice(np.flatnonzero(y == k), 4, replace=False) for k in (0, 1)])
    fit = few_label(X, X[lab], y[lab], components_per_class=2)
    gmm = fit.gmm_
    assert np.mean(gmm.predict(X) == y) > 0.99
    assert fit.chosen_.labelled_agreement == 1.0
    class0 = gmm.means_[gmm.component_classes_ == 0]
    np.testing.assert_allclose(class0[np.argsort(class0[:, 0])], centres[:2], atol=0.15)


@pytest.mark.parametrize("schedule, k, expected", [
    ("direct", 4, [4]), ("doubling", 1, [1]), ("doubling", 4, [1, 2, 4]), ("doubling", 6, [1, 2, 4, 6]),
])
def test_component_schedule(schedule, k, expected):
    assert component_schedule(schedule, k) == expected


def test_a_single_unlabelled_point_and_one_component_per_class_fit_once_per_seeding():
    assert neighbour_graph(np.zeros((1, 2)), 10).shape == (1, 0)
    fit = few_label(np.array([[0.2, 0.1]]), np.array([[0, 0], [1, 1.0]]), np.array([0, 1]))
    assert [(c.seeding, c.schedule) for c in fit.candidates_] == [("kmeans", "direct"), ("nearest", "direct")]
    assert fit.gmm_.predict(np.array([[0.1, 0.0], [0.9, 1.0]])).tolist() == [0, 1]


def test_unknown_schedule_or_seeding_is_refused():
    with pytest.raises(ConfigError, match=r"schedules \(--schedules\) must be a list without repeats from \['direct', 'doubling'\], or empty; got \['tripling'\]"):
        GMMConfig(schedules=("tripling",))
    with pytest.raises(ConfigError, match="seedings"):
        GMMConfig(seedings=())
    with pytest.raises(ConfigError, match="seedings"):
        GMMConfig(seedings=("kmeans", "kmeans"))


def test_the_spreading_seeding_spreads_over_a_graph_of_spread_neighbors(monkeypatch, blobs):
    import vaegmm.fewlabel as fewlabel

    X, y = blobs
    labelled = np.concatenate([np.flatnonzero(y == c)[:5] for c in np.unique(y)])
    seen = []
    real = fewlabel.spread_labels

    def recording(*args, **kwargs):
        seen.append(kwargs["n_neighbors"])
        return real(*args, **kwargs)

    monkeypatch.setattr(fewlabel, "spread_labels", recording)
    for k in (3, 7):
        fit = FewLabelGMM(GMMConfig(seedings=("spreading",), spread_neighbors=k, components_per_class=1)).fit(
            X, X[labelled], y[labelled])
        assert np.mean(fit.gmm_.predict(X) == y) > 0.95
    assert seen == [3, 7]
    with pytest.raises(ConfigError, match=r"spread_neighbors \(--spread-neighbors\) must be >= 1; got 0"):
        GMMConfig(spread_neighbors=0)


def test_a_fit_once_seeding_adds_a_candidate_fitted_on_its_partition_as_it_stands(blobs):
    import vaegmm.fewlabel as fewlabel
    from vaegmm.clustering import spread_labels

    X, y = blobs
    labelled = np.concatenate([np.flatnonzero(y == c)[:5] for c in np.unique(y)])
    classes = np.unique(y)
    fit = few_label(X, X[labelled], y[labelled], seedings=("nearest", "spreading"), components_per_class=2)
    assert [(c.seeding, c.schedule) for c in fit.candidates_] == [
        ("nearest", "direct"), ("nearest", "doubling"), ("spreading", "direct"), ("spreading", "doubling"),
        ("spreading", "once")]
    once = fit.candidates_[-1]
    assert once.partition_rounds == 1 and not once.joint_em_accepted
    # The same mixture as one round of per-class EM on the spread partition, with nothing after it.
    config = fit.config_
    partition = spread_labels(X, X[labelled], y[labelled], classes, n_neighbors=config.spread_neighbors)
    expected = fewlabel.per_class_mixtures(X, X[labelled], y[labelled], classes, partition, n_components=2,
                                           config=config, rng=np.random.default_rng(0), random_state=0)
    np.testing.assert_allclose(once.gmm.means_, expected.means_)
    np.testing.assert_allclose(once.gmm.weights_, expected.weights_)
    # Only seedings among --seedings give one, and none with fit_once empty.
    assert "once" not in {c.schedule for c in few_label(X, X[labelled], y[labelled], seedings=("nearest",)).candidates_}
    assert "once" not in {c.schedule for c in few_label(X, X[labelled], y[labelled], seedings=("spreading",),
                                                        fit_once=()).candidates_}
    # Settings saved before the option had no such candidate; the option reaches the command line.
    saved = GMMConfig().for_latent(10).to_dict()  # what a GMM file holds: the settled config
    assert GMMConfig.from_dict(saved).fit_once == ("spreading",)
    del saved["fit_once"]
    assert GMMConfig.from_dict(saved).fit_once == ()
    from vaegmm.cli import build_parser, configs_from_args

    train = ["train", "--train", "t.npz", "--val", "v.npz"]
    for extra, wanted in (([], ("spreading",)), (["--fit-once", ""], ()), (["--fit-once", "nearest,spreading"],
                                                                           ("nearest", "spreading"))):
        assert configs_from_args(build_parser().parse_args(train + extra))[2].for_latent(2).fit_once == wanted
    with pytest.raises(ConfigError, match=r"fit_once \(--fit-once\) must be a list without repeats from .*; got \['spread'\]"):
        GMMConfig(fit_once=("spread",))


def test_unset_seedings_and_slack_follow_the_latent_size():
    assert GMMConfig().for_latent(2).seedings == ("kmeans", "nearest") and GMMConfig().for_latent(2).label_slack == 1
    assert GMMConfig().for_latent(1).seedings == ("kmeans", "nearest")
    assert GMMConfig().for_latent(10).seedings == ("nearest", "spreading") and GMMConfig().for_latent(3).label_slack == 2
    given = GMMConfig(seedings=("kmeans",), label_slack=0).for_latent(10)  # what the user gives is kept
    assert given.seedings == ("kmeans",) and given.label_slack == 0
    with pytest.raises(ConfigError, match="label_slack"):
        GMMConfig(label_slack=-1)
    with pytest.raises(ConfigError, match=r"seedings \(with --choose-by inputs\)"):
        GMMConfig(choose_by="inputs")  # unset seedings never include the images'
    # the fit records what it used, in 3-D as in 2-D
    rng = np.random.default_rng(0)
    X, y = make_blobs(rng, MEANS, COVS, [150] * len(MEANS))
    X3 = np.column_stack([X, rng.normal(size=len(X))])
    lab = np.concatenate([np.flatnonzero(y == c)[:5] for c in np.unique(y)])
    fit = FewLabelGMM().fit(X3, X3[lab], y[lab])
    assert fit.config_.seedings == ("nearest", "spreading") and fit.config_.label_slack == 2
    assert {c.seeding for c in fit.candidates_} == {"nearest", "spreading"} and fit.config.seedings is None


def test_unset_components_per_class_are_those_the_points_pay_for():
    assert component_parameter_count(2) == 6 and component_parameter_count(10) == 66  # D + D(D+1)/2 + 1
    # 2-D: 24 points a class pay for 4 components, 23 for 3; 10-D: 100 points a class for 1, 200 for 3.
    assert components_paid_for(72, 3, 2, most=4) == 4 and components_paid_for(69, 3, 2, most=4) == 3
    assert components_paid_for(1000, 10, 10, most=4) == 1 and components_paid_for(2000, 10, 10, most=4) == 3
    assert components_paid_for(20, 10, 10, most=4) == 1  # never none
    assert components_paid_for(10**6, 10, 10, most=4) == 4  # never above the most
    assert GMMConfig().for_latent(10, n_points=1000, n_classes=10).components_per_class == 1
    assert GMMConfig().for_latent(10).components_per_class == MOST_COMPONENTS_PER_CLASS  # no counts: the most
    assert GMMConfig(components_per_class=4).for_latent(10, n_points=1000, n_classes=10).components_per_class == 4
    with pytest.raises(ConfigError, match=r"components_per_class \(--components-per-class\) must be an integer >= 1"):
        GMMConfig(components_per_class=0)
    # the fit settles it on the points it uses (its subset, above max_fit_points) and records it
    rng = np.random.default_rng(0)
    X, y = make_blobs(rng, MEANS, COVS, [150] * len(MEANS))
    lab = np.concatenate([np.flatnonzero(y == c)[:5] for c in np.unique(y)])
    X5 = np.column_stack([X, rng.normal(size=(len(X), 3))])  # 5-D: 21 parameters a component
    fit = FewLabelGMM().fit(X5, X5[lab], y[lab])
    assert fit.config_.components_per_class == min(4, 150 // 21) == 4
    fit = FewLabelGMM(GMMConfig(max_fit_points=len(MEANS) * 60)).fit(X5, X5[lab], y[lab])
    assert fit.config_.components_per_class == 60 // 21 == 2 and fit.config.components_per_class is None
    assert max(len(c.gmm.means_) for c in fit.candidates_) == 2 * len(MEANS)


def test_doubling_moves_a_border_that_many_components_would_keep():
    # Two unit Gaussians 3.2 apart; class 0's labels sit on its far side and class 1's near the
    # border, so the nearest-labelled partition starts with the border shifted well into class 0.
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal([-1.6, 0], 1, (2000, 2)), rng.normal([1.6, 0], 1, (2000, 2))])
    y = np.repeat([0, 1], 2000)
    X_lab, y_lab = np.array([[-4, 1.0], [-4, -1], [-3.5, 0], [0.6, 1], [0.6, -1], [1, 0]]), np.array([0, 0, 0, 1, 1, 1])
    fits = {schedule: few_label(X, X_lab, y_lab, components_per_class=4, joint_em=False, seedings=("nearest",),
                                schedules=(schedule,)) for schedule in ("direct", "doubling")}
    accuracy = {k: np.mean(f.gmm_.predict(X) == y) for k, f in fits.items()}
    assert accuracy["direct"] < 0.85
    assert accuracy["doubling"] > 0.93  # Bayes rate here: 0.945
    assert fits["doubling"].chosen_.boundary_fraction < fits["direct"].chosen_.boundary_fraction
    both = few_label(X, X_lab, y_lab, components_per_class=4, joint_em=False, seedings=("nearest",))
    assert both.chosen_.schedule == "doubling"


@pytest.mark.parametrize("slack", [0, 1, 15])
def test_fit_seeded_keeps_the_fewest_cut_edges_among_candidates_agreeing_with_the_labels(blobs, slack):
    X, y = blobs
    rng = np.random.default_rng(4)
    lab = np.concatenate([rng.choice(np.flatnonzero(y == k), 5, replace=False) for k in range(3)])
    fit = few_label(X, X[lab], y[lab], components_per_class=2, joint_em=False, label_slack=slack)
    assert len(fit.candidates_) == 4  # 2 seedings x 2 schedules
    agreeing = [c for c in fit.candidates_
                if round(c.labelled_agreement * 15) >= max(round(d.labelled_agreement * 15) for d in fit.candidates_) - slack]
    best = min(agreeing, key=lambda c: (c.boundary_fraction, -c.lower_bound))
    assert fit.chosen_ is best
    assert fit.chosen_.boundary_fraction == boundary_fraction(fit.gmm_.predict(X), neighbour_graph(X, fit.config.n_neighbors))


def test_joint_em_is_rejected_by_the_drift_guard():
    # Two overlapping classes of different shapes: the unlabelled likelihood prefers a border a third
    # of the points away from the labelled partition, so an unguarded joint EM drifts on its own.
    rng = np.random.default_rng(1)
    X, y = make_blobs(rng, [[0.0, 0.0], [1.5, 0.0]], [np.eye(2), np.diag([0.2, 3.0])], [2000, 1000])
    lab = np.concatenate([rng.choice(np.flatnonzero(y == k), 4, replace=False) for k in (0, 1)])
    settings = dict(components_per_class=1, anchor_labels=False, seedings=("kmeans",))
    unguarded = few_label(X, X[lab], y[lab], joint_em=True, max_class_shift=1.0, **settings)
    assert unguarded.chosen_.joint_em_accepted and unguarded.chosen_.class_shift > 0.3
    guarded = few_label(X, X[lab], y[lab], joint_em=True, **settings)  # the default guard: 5% of the points
    staged = few_label(X, X[lab], y[lab], joint_em=False, **settings)
    assert not guarded.chosen_.joint_em_accepted
    # EM stopped as soon as it moved more than 5% of the points, long before its own end.
    assert 0.05 < guarded.chosen_.class_shift < unguarded.chosen_.class_shift
    np.testing.assert_array_equal(guarded.gmm_.means_, staged.gmm_.means_)


def test_joint_em_is_kept_when_it_stays_on_its_classes():
    rng = np.random.default_rng(8)
    X, y = make_blobs(rng, MEANS, COVS, [1500, 1000, 500])
    lab = np.concatenate([rng.choice(np.flatnonzero(y == k), 4, replace=False) for k in range(3)])
    fit = few_label(X, X[lab], y[lab], components_per_class=2)
    assert fit.chosen_.joint_em_accepted and fit.gmm_.n_iter_ >= 1
    assert fit.chosen_.class_shift <= 0.05


def test_random_subset_is_every_point_below_the_cap_and_a_seeded_subset_above():
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(random_subset(50, 50, rng), np.arange(50))
    a = random_subset(1000, 100, np.random.default_rng(3))
    assert len(a) == 100 and len(np.unique(a)) == 100 and np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(a, random_subset(1000, 100, np.random.default_rng(3)))


def test_a_fit_on_a_subset_classifies_like_the_fit_on_every_point(blobs):
    X, y = blobs
    rng = np.random.default_rng(4)
    lab = np.concatenate([rng.choice(np.flatnonzero(y == k), 5, replace=False) for k in range(3)])
    full = few_label(X, X[lab], y[lab], components_per_class=2)
    capped = few_label(X, X[lab], y[lab], components_per_class=2, max_fit_points=1500)
    assert np.mean(capped.gmm_.predict(X) == full.gmm_.predict(X)) > 0.99
    def class_weights(g):
        return [g.weights_[g.component_classes_ == c].sum() for c in g.classes_]
    np.testing.assert_allclose(class_weights(capped.gmm_), class_weights(full.gmm_), atol=0.02)
    assert not np.array_equal(capped.gmm_.means_, full.gmm_.means_)  # it did fit on fewer points


def test_the_result_does_not_depend_on_the_number_of_threads(blobs):
    X, y = blobs
    lab = np.concatenate([np.flatnonzero(y == k)[:5] for k in range(3)])
    one = FewLabelGMM(GMMConfig(components_per_class=2), n_jobs=1).fit(X, X[lab], y[lab])
    many = FewLabelGMM(GMMConfig(components_per_class=2), n_jobs=4).fit(X, X[lab], y[lab])
    np.testing.assert_array_equal(one.gmm_.means_, many.gmm_.means_)
    assert one.summary() == many.summary()


def test_fit_refuses_labels_of_one_class_and_mismatched_shapes():
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match="at least 2 classes"):
        few_label(X, X[:3], np.zeros(3, int))
    with pytest.raises(ValueError, match="3 features but X has 2"):
        few_label(X, np.zeros((2, 3)), np.array([0, 1]))
    with pytest.raises(ValueError, match="1 labels for 2 labelled points"):
        few_label(X, X[:2], np.array([0]))


def test_regression_on_real_latents_of_the_course_model():
    """Latent means saved from the default model trained on the course's digits 1/4/8 (tests/data)."""
    from pathlib import Path

    d = np.load(Path(__file__).parent / "data" / "course_latents.npz")
    fit = FewLabelGMM(GMMConfig()).fit(d["train"], d["labelled"], d["labelled_y"])
    accuracy = np.mean(fit.gmm_.predict(d["test"]) == d["test_y"])
    assert accuracy >= 0.98, accuracy  # 0.985 here; one component per class gives 0.953, "nearest" seeding alone 0.979


def test_the_course_latents_give_a_settled_fit_and_overlapping_2d_latents_an_unsettled_one():
    """Both files hold latent means of VAEs trained with the defaults: the course's 1/4/8, whose classes lie
    apart, and 4,000 of the 2-D latents of MNIST's 4/7/9 (few_labels.py's validation split, one label draw),
    whose classes overlap (validation score 0.61 against 0.97 for 1/4/8)."""
    from pathlib import Path

    data = Path(__file__).parent / "data"
    course = np.load(data / "course_latents.npz")
    settled = FewLabelGMM(GMMConfig()).fit(course["train"], course["labelled"], course["labelled_y"])
    hard = np.load(data / "latents_479_2d.npz")
    unsettled = FewLabelGMM(GMMConfig()).fit(hard["train"], hard["labelled"], hard["labelled_y"])
    assert settled.disagreement_ < UNSETTLED_DISAGREEMENT / 2 < 2 * UNSETTLED_DISAGREEMENT < unsettled.disagreement_
    assert settled.summary()["disagreement"] == settled.disagreement_


def test_a_single_candidate_has_no_disagreement():
    X, y = make_blobs(np.random.default_rng(2), MEANS, COVS, [300, 200, 100])
    lab = np.concatenate([np.flatnonzero(y == k)[:5] for k in range(3)])
    fit = FewLabelGMM(GMMConfig(seedings=("nearest",), schedules=("direct",))).fit(X, X[lab], y[lab])
    assert len(fit.candidates_) == 1 and fit.disagreement_ is None


def test_an_unsettled_fit_warns_once_with_its_advice_and_the_command_line_shows_it_as_one_line(capsys):
    import warnings
    from pathlib import Path

    from vaegmm.cli import _guarded
    from vaegmm.data import Dataset
    from vaegmm.errors import UnsettledFitWarning
    from vaegmm.pipeline import fit_gmm

    data = Path(__file__).parent / "data"

    def fit(name: str):
        d = np.load(data / name)
        labelled = Dataset(np.zeros((len(d["labelled_y"]), 2, 2), np.float32), d["labelled_y"], "VAL.npz")
        return fit_gmm(d["train"], d["labelled"], labelled, train_images=None, config=GMMConfig(), seed=0, source="TRAIN.npz")

    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsettledFitWarning)
        fit("course_latents.npz")  # settled: no warning
    with pytest.warns(UnsettledFitWarning, match=r"unsettled.*2-D latent.*--latent-dim 10") as record:
        fit("latents_479_2d.npz")
    assert len(record) == 1
    assert _guarded(lambda: fit("latents_479_2d.npz"), on_interrupt="") == 0  # advice, not an error
    err = capsys.readouterr().err
    assert err.startswith("warning: the few-label fit is unsettled") and err.count("\n") == 1
