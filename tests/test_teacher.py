"""A teacher VAE: the neighbour-embedding term takes its affinities from a larger latent instead of the pixels."""

import json
import re

import numpy as np
import pytest
import torch

from vaegmm import training
from vaegmm.config import GMMConfig, TrainConfig, VAEConfig
from vaegmm.data import Dataset
from vaegmm.errors import ConfigError
from vaegmm.model import encode_means
from vaegmm.pipeline import train_and_fit
from vaegmm.training import teacher_checkpoint_path, train_teacher, train_vae

STUDENT = VAEConfig(image_shape=(6, 6), hidden_sizes=(16,), latent_dim=2, neighbour_weight=0.4, teacher_latent_dim=3)
TRAIN = TrainConfig(epochs=2, min_steps=0, batch_size=32, seed=5)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 1, (96, 6, 6)).astype(np.float32)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_weights(a, b) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_the_affinities_are_computed_from_the_teachers_latent_means(images, monkeypatch):
    teacher = train_teacher(images, model_config=STUDENT, train_config=TRAIN, device=CPU, progress=False)
    seen = []
    original = training.neighbour_affinities

    def recording(x, *, perplexity):
        seen.append(x.detach().clone())
        return original(x, perplexity=perplexity)

    monkeypatch.setattr(training, "neighbour_affinities", recording)
    train_vae(images, model_config=STUDENT, train_config=TRAIN, device=CPU, progress=False, teacher=teacher)
    assert len(seen) == 2 * 3  # every batch of both epochs
    encoded = torch.as_tensor(encode_means(teacher.model, images), dtype=torch.float32)  # (N, 3)
    for batch in seen:
        assert batch.shape[1] == 3
        # each row is the teacher's latent mean of one of the training images
        assert float(torch.cdist(batch, encoded, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values.max()) < 1e-5


def test_a_teacher_is_trained_when_none_is_given_and_changes_the_model(images):
    alone = train_vae(images, model_config=STUDENT, train_config=TRAIN, device=CPU, progress=False)
    teacher = train_teacher(images, model_config=STUDENT, train_config=TRAIN, device=CPU, progress=False)
    given = train_vae(images, model_config=STUDENT, train_config=TRAIN, device=CPU, progress=False, teacher=teacher)
    assert _same_weights(_weights(alone.model), _weights(given.model))
    assert alone.teacher == {"latent_dim": 3, "seconds": pytest.approx(alone.teacher["seconds"]), "epochs": 2,
                             "final_loss": teacher.history[-1]["loss"]}
    pixels = train_vae(images, model_config=VAEConfig(**{**STUDENT.to_dict(), "teacher_latent_dim": 0}),
                       train_config=TRAIN, device=CPU, progress=False)
    assert pixels.teacher is None
    assert not _same_weights(_weights(alone.model), _weights(pixels.model))


def test_the_teachers_settings_are_the_models_without_the_term():
    config = training.teacher_config(STUDENT)
    assert (config.latent_dim, config.neighbour_weight, config.teacher_latent_dim) == (3, 0.0, 0)
    assert config.neighbour_dof == 2.0  # derived from the teacher's own latent size, not copied from the student's
    assert config.hidden_sizes == STUDENT.hidden_sizes and config.beta == STUDENT.beta


def test_settings_are_validated_and_old_files_had_no_teacher():
    with pytest.raises(ConfigError, match=r"teacher_latent_dim \(--teacher-latent-dim\) must be 0 unless --neighbour-weight"):
        VAEConfig(teacher_latent_dim=10)
    with pytest.raises(ConfigError, match="an integer >= 0; got -1"):
        VAEConfig(neighbour_weight=0.4, teacher_latent_dim=-1)
    with pytest.raises(ConfigError, match="an integer >= 0; got 2.5"):
        VAEConfig(neighbour_weight=0.4, teacher_latent_dim=2.5)
    assert VAEConfig().teacher_latent_dim == 0  # off unless asked: the course's model is unchanged
    saved = STUDENT.to_dict()
    del saved["teacher_latent_dim"]
    assert VAEConfig.from_dict(saved).teacher_latent_dim == 0

    from vaegmm.cli import build_parser, configs_from_args

    args = build_parser().parse_args(["train", "--train", "t.npz", "--val", "v.npz", "--neighbour-weight", "0.4",
                                      "--teacher-latent-dim", "10"])
    assert configs_from_args(args)[0].teacher_latent_dim == 10


def test_restarts_share_one_teacher(images, monkeypatch):
    calls = []
    original = training.train_teacher

    def counting(*args, **kwargs):
        calls.append(kwargs["train_config"].seed)
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "train_teacher", counting)
    result = train_vae(images, model_config=STUDENT, train_config=TrainConfig(**{**TRAIN.to_dict(), "restarts": 3}),
                       device=CPU, progress=False)
    assert calls == [TRAIN.seed] and len(result.restart_losses) == 3 and result.teacher["latent_dim"] == 3


def test_a_resumed_run_reuses_its_teacher_and_the_pipeline_leaves_no_checkpoint(images, tmp_path):
    checkpoint = tmp_path / "vae.pth.ckpt"
    first = train_vae(images, model_config=STUDENT, train_config=TRAIN, device=CPU, progress=False,
                      checkpoint_path=checkpoint)
    assert checkpoint.is_file() and teacher_checkpoint_path(checkpoint).is_file()
    again = train_vae(images, model_config=STUDENT, train_config=TRAIN, device=CPU, progress=False,
                      checkpoint_path=checkpoint, resume=True)
    assert again.history == first.history and again.teacher["final_loss"] == first.teacher["final_loss"]

    labels = np.repeat([0, 1], 48)
    summary = train_and_fit(Dataset(images, None, "train"), Dataset(images[[0, 1, 50, 51]], labels[[0, 1, 50, 51]], "val"),
                            model_config=STUDENT, train_config=TRAIN, gmm_config=GMMConfig(components_per_class=1),
                            model_path=tmp_path / "vae.pth", gmm_path=tmp_path / "gmm.pkl",
                            run_info_path=tmp_path / "run.json", progress=False)
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["model_config"]["teacher_latent_dim"] == 3
    assert info["summary"]["teacher"] == summary["teacher"] and summary["teacher"]["epochs"] == 2
    assert not checkpoint.exists() and not teacher_checkpoint_path(checkpoint).exists()


def test_train_prints_the_teacher_and_the_report_names_it(small_course_files, tmp_path, capsys):
    from vaegmm.cli import main

    out = tmp_path / "run"
    assert main(["train", "--train", str(small_course_files["train"]), "--val", str(small_course_files["val"]),
                 "--out-dir", str(out), "--epochs", "2", "--min-steps", "0", "--hidden", "64", "--neighbour-weight", "0.4",
                 "--teacher-latent-dim", "4", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"teacher: a 4-D VAE trained 2 epochs in [\d.]+ s \(final loss [\d.]+\); its latent means gave "
                     r"the neighbour term its affinities", printed), printed
    assert not list(out.glob("*.ckpt*"))
    assert main(["report", str(out), "--no-progress"]) == 0
    md = (out / "report.md").read_text()
    assert "in the latent space of a 4-D teacher VAE, trained first on the same images (2 epochs" in md
    assert "| model.teacher_latent_dim | 4 |" in md
