"""A companion VAE: the labels are spread over a larger latent's means to seed the model's mixture."""

import json
import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from vaegmm import fewlabel
from vaegmm.candidates import UNSETTLED_DISAGREEMENT, companion_for_unsettled
from vaegmm.companion import companion_config, companion_of, train_companion
from vaegmm.config import (MOST_COMPONENTS_PER_CLASS, MOST_COMPONENTS_WITH_COMPANION, SCHEDULES,
                           UNSETTLED_COMPANION_LATENT_DIM, GMMConfig, NoveltyConfig, TrainConfig, VAEConfig)
from vaegmm.data import Dataset
from vaegmm.errors import ConfigError
from vaegmm.fewlabel import FewLabelGMM, per_class_mixtures
from vaegmm.inputspace import input_spreading
from vaegmm.model import encode_means
from vaegmm.pipeline import CompanionMeans, companion_trainer, few_label_fit, train_and_fit
from vaegmm.training import train_vae

MODEL = VAEConfig(image_shape=(6, 6), hidden_sizes=(16,), latent_dim=2, beta=0.7, neighbour_weight=0.4,
                  teacher_latent_dim=3)
TRAIN = TrainConfig(epochs=2, min_steps=0, batch_size=32, seed=5)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 1, (96, 6, 6)).astype(np.float32)


def test_unset_settings_give_the_fit_the_companion_was_measured_with():
    settled = GMMConfig(companion_latent_dim=10).for_latent(2)
    assert (settled.seedings, settled.schedules, settled.fit_once) == (("inputs",), (), ("inputs",))
    # Given seedings keep the usual schedules; without a companion nothing changes.
    given = GMMConfig(companion_latent_dim=10, seedings=("nearest", "inputs")).for_latent(2)
    assert (given.seedings, given.schedules, given.fit_once) == (("nearest", "inputs"), SCHEDULES, ("spreading",))
    plain = GMMConfig().for_latent(2)
    assert (plain.seedings, plain.schedules, plain.fit_once) == (("kmeans", "nearest"), SCHEDULES, ("spreading",))
    assert GMMConfig(companion_latent_dim=10).uses_inputs() and not GMMConfig().uses_inputs()


def test_the_companions_single_fit_gives_a_class_more_components_as_its_points_pay_for():
    # Fitted once within a fixed partition, a class may take up to MOST_COMPONENTS_WITH_COMPANION components.
    assert MOST_COMPONENTS_WITH_COMPANION > MOST_COMPONENTS_PER_CLASS
    companion = GMMConfig(companion_latent_dim=10)
    assert companion.for_latent(2).components_per_class == MOST_COMPONENTS_WITH_COMPANION
    assert companion.for_latent(2, n_points=15_000, n_classes=3).components_per_class == MOST_COMPONENTS_WITH_COMPANION
    # 30 points a class pay for 5 components of 6 parameters in 2-D; 3 points for 1
    assert companion.for_latent(2, n_points=300, n_classes=10).components_per_class == 5
    assert companion.for_latent(2, n_points=30, n_classes=10).components_per_class == 1
    # a given number, given seedings, or no companion: the usual rule
    assert GMMConfig(companion_latent_dim=10, components_per_class=3).for_latent(2).components_per_class == 3
    assert GMMConfig(companion_latent_dim=10, seedings=("inputs",)).for_latent(
        2, n_points=15_000, n_classes=3).components_per_class == MOST_COMPONENTS_PER_CLASS
    assert GMMConfig().for_latent(2, n_points=15_000, n_classes=3).components_per_class == MOST_COMPONENTS_PER_CLASS


def test_settings_are_validated():
    with pytest.raises(ConfigError, match=r"companion_latent_dim \(--companion-latent-dim\) must be an integer >= 0, or unset; got -1"):
        GMMConfig(companion_latent_dim=-1)
    with pytest.raises(ConfigError, match=r"seedings \(with --companion-latent-dim\) must be unset, or a list including "
                                          r"'inputs'.*; got \['kmeans', 'nearest'\]"):
        GMMConfig(companion_latent_dim=10, seedings=("kmeans", "nearest"))
    with pytest.raises(ConfigError, match=r"no candidate fit to make: no --schedules and no --fit-once seeding among the "
                                          r"seedings \['kmeans', 'nearest'\]"):
        GMMConfig(schedules=()).for_latent(2)
    from vaegmm.cli import build_parser, configs_from_args

    args = build_parser().parse_args(["train", "--train", "t.npz", "--val", "v.npz", "--companion-latent-dim", "10",
                                      "--schedules", ""])
    gmm = configs_from_args(args)[2]
    assert gmm.companion_latent_dim == 10 and gmm.schedules == ()
    saved = GMMConfig().for_latent(2).to_dict()
    del saved["companion_latent_dim"]  # files written before the option had none
    assert GMMConfig.from_dict(saved).companion_latent_dim == 0


def test_only_an_unsettled_2d_fit_with_the_choice_left_to_vaegmm_calls_for_a_companion():
    unset = GMMConfig()
    assert unset.companion_latent_dim is None
    assert companion_for_unsettled(unset, 0.45, latent_dim=2) == UNSETTLED_COMPANION_LATENT_DIM == 10
    assert companion_for_unsettled(unset, 0.45, latent_dim=1) == UNSETTLED_COMPANION_LATENT_DIM
    assert companion_for_unsettled(unset, UNSETTLED_DISAGREEMENT, latent_dim=2) == 0  # at the threshold: settled
    assert companion_for_unsettled(unset, None, latent_dim=2) == 0  # a single candidate has nothing to disagree with
    assert companion_for_unsettled(unset, 0.45, latent_dim=3) == 0  # measured with 2-D models only
    assert companion_for_unsettled(GMMConfig(companion_latent_dim=0), 0.45, latent_dim=2) == 0  # "none", asked for
    assert companion_for_unsettled(GMMConfig(seedings=("kmeans", "nearest")), 0.45, latent_dim=2) == 0


def test_an_unsettled_fit_is_redone_over_a_companion_and_a_settled_one_is_kept():
    """The two files hold 2-D latent means of VAEs trained with the defaults: the course's 1/4/8 (settled) and
    MNIST's 4/7/9 (unsettled; see test_fewlabel)."""
    import warnings
    from pathlib import Path

    from vaegmm.errors import UnsettledFitWarning

    data = Path(__file__).parent / "data"
    asked = []

    def fit(name: str, config: GMMConfig):
        d = np.load(data / name)
        labelled = Dataset(np.zeros((len(d["labelled_y"]), 2, 2), np.float32), d["labelled_y"], "VAL.npz")
        lift = np.random.default_rng(0).normal(size=(2, 3))  # a stand-in companion latent: the points in 3-D

        def companion(latent_dim: int) -> CompanionMeans:
            asked.append(latent_dim)
            return CompanionMeans(d["train"] @ lift, d["labelled"] @ lift, {"latent_dim": latent_dim})

        plain = FewLabelGMM(replace_companion(config), random_state=0).fit(d["train"], d["labelled"], d["labelled_y"])
        return plain, few_label_fit(d["train"], d["labelled"], labelled, train_images=None, companion=companion,
                                    config=config, seed=0, source="TRAIN.npz")

    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsettledFitWarning)  # neither warns: one is settled, the other remedied
        plain, (kept, summary) = fit("course_latents.npz", GMMConfig())
        assert asked == [] and summary is None and kept.disagreement_ == plain.disagreement_
        plain, (redone, summary) = fit("latents_479_2d.npz", GMMConfig())
    assert asked == [UNSETTLED_COMPANION_LATENT_DIM] and plain.disagreement_ > UNSETTLED_DISAGREEMENT
    assert summary == {"latent_dim": UNSETTLED_COMPANION_LATENT_DIM, "unsettled_disagreement": plain.disagreement_}
    assert redone.config_.companion_latent_dim == UNSETTLED_COMPANION_LATENT_DIM  # what the GMM file records
    assert len(redone.candidates_) == 1 and redone.candidates_[0].seeding == "inputs"
    # "none" keeps the unsettled fit and warns, as before
    with pytest.warns(UnsettledFitWarning, match="unsettled"):
        _, (warned, summary) = fit("latents_479_2d.npz", GMMConfig(companion_latent_dim=0))
    assert summary is None and len(asked) == 1 and warned.disagreement_ == plain.disagreement_


def replace_companion(config: GMMConfig) -> GMMConfig:
    """The config with no companion: the fit a companion may follow."""
    from dataclasses import replace

    return replace(config, companion_latent_dim=0)


def test_the_companion_is_the_models_settings_at_its_own_size(images):
    config = companion_config(MODEL, 4)
    # the term unset (its small-set rule applies at the companion's size), its kernel derived from that size
    assert (config.latent_dim, config.neighbour_weight, config.neighbour_dof, config.teacher_latent_dim) == (4, None, 3.0, 0)
    assert config.hidden_sizes == MODEL.hidden_sizes and config.beta == MODEL.beta
    companion = train_companion(images, model_config=MODEL, train_config=TRAIN, latent_dim=4, device=CPU, progress=False)
    assert companion.model.config.latent_dim == 4 and len(companion.history) == 2
    again = companion_trainer(images, images[:3], model_config=MODEL, train_config=TRAIN, device=CPU, progress=False)(4)
    np.testing.assert_array_equal(again.points, encode_means(companion.model, images))  # seeded: the same VAE
    np.testing.assert_array_equal(again.labelled, encode_means(companion.model, images[:3]))
    assert again.summary["latent_dim"] == 4 and again.summary["epochs"] == 2


def test_a_teacher_with_the_companions_settings_serves_as_the_companion(images, tmp_path, monkeypatch):
    run = train_vae(images, model_config=MODEL, train_config=TRAIN, device=CPU, progress=False)
    # On 96 images a 3-D companion trains with the small-set neighbour term, which a teacher never has.
    assert companion_of(run.teacher_run, model_config=MODEL, latent_dim=3, n_images=len(images)) is None
    model = replace(MODEL, small_set_images=0)
    teacher = train_vae(images, model_config=model, train_config=TRAIN, device=CPU, progress=False).teacher_run
    assert teacher.model.config.latent_dim == 3
    assert companion_of(teacher, model_config=model, latent_dim=3, n_images=len(images)) is teacher
    assert companion_of(teacher, model_config=model, latent_dim=4, n_images=len(images)) is None
    assert companion_of(None, model_config=model, latent_dim=3, n_images=len(images)) is None
    # It is the very VAE that training the companion would give.
    companion = train_companion(images, model_config=model, train_config=TRAIN, latent_dim=3, device=CPU, progress=False)
    for (name, a), b in zip(teacher.model.state_dict().items(), companion.model.state_dict().values()):
        assert torch.equal(a, b), name

    def no_training(*args, **kwargs):
        raise AssertionError("trained a companion that the teacher already is")

    monkeypatch.setattr("vaegmm.companion.train_companion", no_training)
    labels = np.repeat([0, 1], 48)
    val = Dataset(images[[0, 1, 50, 51]], labels[[0, 1, 50, 51]], "val")
    summary = train_and_fit(Dataset(images, None, "train"), val, model_config=model, train_config=TRAIN,
                            gmm_config=GMMConfig(companion_latent_dim=3, components_per_class=1),
                            model_path=tmp_path / "vae.pth", gmm_path=tmp_path / "gmm.pkl", progress=False)
    assert summary["teacher"]["latent_dim"] == 3 and summary["companion"]["latent_dim"] == 3
    assert summary["companion"]["teacher"] and summary["companion"]["seconds"] == 0.0
    assert summary["gmm"]["chosen"]["seeding"] == "inputs"


def test_one_candidate_fitted_once_within_the_spread_partition(blobs):
    X, y = blobs
    labelled = np.concatenate([np.flatnonzero(y == c)[:5] for c in np.unique(y)])
    # The "companion" latent: the points themselves, lifted into three dimensions.
    W = np.concatenate([X, X[:, :1] * 0.5], axis=1)
    fit = FewLabelGMM(GMMConfig(companion_latent_dim=3, components_per_class=2)).fit(
        X, X[labelled], y[labelled], inputs=W, inputs_labelled=W[labelled])
    assert [(c.seeding, c.schedule) for c in fit.candidates_] == [("inputs", "once")]
    assert fit.disagreement_ is None  # nothing to disagree with
    classes = np.unique(y)
    config = fit.config_
    partition = input_spreading(W, W[labelled], y[labelled], classes, n_components=config.input_components,
                                n_neighbors=config.n_neighbors, random_state=0)
    expected = per_class_mixtures(X, X[labelled], y[labelled], classes, partition, n_components=2, config=config,
                                  rng=np.random.default_rng(0), random_state=0)
    np.testing.assert_allclose(fit.gmm_.means_, expected.means_)
    assert np.mean(fit.gmm_.predict(X) == y) > 0.95


def test_train_spreads_over_the_companions_latent_and_records_it(images, tmp_path, monkeypatch):
    seen = {}
    original = fewlabel.FewLabelGMM.fit

    def recording(self, X, X_labelled, y_labelled, *, inputs=None, inputs_labelled=None):
        seen.update(inputs=inputs, inputs_labelled=inputs_labelled)
        return original(self, X, X_labelled, y_labelled, inputs=inputs, inputs_labelled=inputs_labelled)

    monkeypatch.setattr(fewlabel.FewLabelGMM, "fit", recording)
    labels = np.repeat([0, 1], 48)
    val = Dataset(images[[0, 1, 50, 51]], labels[[0, 1, 50, 51]], "val")
    model = VAEConfig(image_shape=(6, 6), hidden_sizes=(16,))
    summary = train_and_fit(Dataset(images, None, "train"), val, model_config=model, train_config=TRAIN,
                            gmm_config=GMMConfig(companion_latent_dim=3, components_per_class=1),
                            model_path=tmp_path / "vae.pth", gmm_path=tmp_path / "gmm.pkl",
                            run_info_path=tmp_path / "run.json", progress=False)
    companion = train_companion(images, model_config=model, train_config=TRAIN, latent_dim=3, device=CPU, progress=False)
    np.testing.assert_allclose(seen["inputs"], encode_means(companion.model, images), atol=1e-6)
    np.testing.assert_allclose(seen["inputs_labelled"], encode_means(companion.model, val.images), atol=1e-6)
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["summary"]["companion"] == summary["companion"] and summary["companion"]["latent_dim"] == 3
    assert info["gmm_config"]["companion_latent_dim"] == 3 and info["gmm_config"]["seedings"] == ["inputs"]
    assert info["summary"]["gmm"]["chosen"]["seeding"] == "inputs"
    assert not (tmp_path / "vae.pth.ckpt").exists()


def test_the_estimator_spreads_over_the_companion_of_the_images_its_vae_trained_on(monkeypatch):
    from vaegmm import VAEGMM

    rng = np.random.default_rng(1)
    X = rng.uniform(0, 1, (120, 6, 6)).astype(np.float32)
    y = np.full(len(X), -1)
    y[[0, 1, 2, 60, 61, 62]] = [0, 0, 0, 1, 1, 1]
    seen = {}
    original = fewlabel.FewLabelGMM.fit

    def recording(self, Z, Z_labelled, y_labelled, *, inputs=None, inputs_labelled=None):
        seen.update(Z=Z, inputs=inputs, inputs_labelled=inputs_labelled)
        return original(self, Z, Z_labelled, y_labelled, inputs=inputs, inputs_labelled=inputs_labelled)

    monkeypatch.setattr(fewlabel.FewLabelGMM, "fit", recording)
    # A share of the unlabelled images is held out of the VAE (and of the companion) to calibrate on.
    model = VAEGMM(vae=VAEConfig(hidden_sizes=(16,)), train=TrainConfig(epochs=2, min_steps=0, batch_size=32),
                   gmm=GMMConfig(companion_latent_dim=3, components_per_class=1),
                   novelty=NoveltyConfig(calibration_share=0.2), random_state=0).fit(X, y)
    assert model.companion_["latent_dim"] == 3
    assert seen["inputs"].shape == (len(seen["Z"]), 3) and seen["inputs_labelled"].shape == (6, 3)
    assert len(seen["Z"]) < len(X) - 6  # the held-out images are in neither
    assert model.predict(X[:4]).shape == (4,)


def test_train_prints_the_companion_and_the_report_names_it(small_course_files, tmp_path, capsys):
    from vaegmm.cli import main

    out = tmp_path / "run"
    assert main(["train", "--train", str(small_course_files["train"]), "--val", str(small_course_files["val"]),
                 "--out-dir", str(out), "--epochs", "2", "--min-steps", "0", "--hidden", "64",
                 "--companion-latent-dim", "4", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"companion: a 4-D VAE trained 2 epochs in [\d.]+ s \(final loss [\d.]+\); the labels were spread "
                     r"over its latent means to seed the mixture", printed), printed
    assert "inputs seeding, once schedule (1 candidate; its borders cut" in printed
    assert re.search(r"it agrees with label spreading over the 4-D companion's latent means on [\d.]+% of them", printed)
    assert main(["classify", str(small_course_files["test"]), "--model", str(out / "vae.pth"), "--gmm",
                 str(out / "gmm_params.pkl"), "--out", str(tmp_path / "preds.csv")]) == 0
    assert main(["report", str(out), "--no-progress"]) == 0
    md = (out / "report.md").read_text()
    assert "The labels were spread over the latent means of a 4-D companion VAE, trained beside it on the same images (2 epochs" in md
    assert "| gmm.companion_latent_dim | 4 |" in md
    assert "it agrees with label spreading over the 4-D companion's latent means on" in md
    assert "never shown a label, not saved), and the GMM was fitted within the classes" in md
    # A teacher of the companion's size and settings serves as the companion; both lines say so.
    taught = tmp_path / "taught"
    assert main(["train", "--train", str(small_course_files["train"]), "--val", str(small_course_files["val"]),
                 "--out-dir", str(taught), "--epochs", "2", "--min-steps", "0", "--hidden", "64",
                 "--neighbour-weight", "0.4", "--teacher-latent-dim", "4", "--companion-latent-dim", "4",
                 "--small-set-images", "0",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert ("companion: the teacher, which has the companion's settings (no second training); the labels were "
            "spread over its latent means") in printed, printed
    assert re.search(r"teacher: a 4-D VAE trained 2 epochs in [\d.]+ s", printed), printed
    assert main(["report", str(taught), "--no-progress"]) == 0
    md = (taught / "report.md").read_text()
    assert ("The labels were spread over the latent means of the 4-D teacher, which has a companion VAE's settings "
            "and so served as the companion (never shown a label, not saved), and the GMM was fitted within") in md


def test_settings_that_leave_no_candidate_fail_before_any_training(images, tmp_path, monkeypatch):
    from vaegmm import VAEGMM, training

    def no_training(*args, **kwargs):
        raise AssertionError("trained before the settings were checked")

    monkeypatch.setattr(training, "train_vae", no_training)
    monkeypatch.setattr("vaegmm.pipeline.train_vae", no_training)
    labels = np.repeat([0, 1], 48)
    config = GMMConfig(schedules=())  # 2-D: the default fit-once seeding (spreading) is not among the seedings
    with pytest.raises(ConfigError, match="no candidate fit to make"):
        train_and_fit(Dataset(images, None, "train"), Dataset(images[[0, 50]], labels[[0, 50]], "val"),
                      model_config=VAEConfig(hidden_sizes=(16,)), train_config=TRAIN, gmm_config=config,
                      model_path=tmp_path / "vae.pth", gmm_path=tmp_path / "gmm.pkl", progress=False)
    y = np.full(len(images), -1)
    y[[0, 50]] = [0, 1]
    with pytest.raises(ConfigError, match="no candidate fit to make"):
        VAEGMM(vae=VAEConfig(hidden_sizes=(16,)), gmm=config).fit(images, y)
    assert not list(tmp_path.iterdir())
