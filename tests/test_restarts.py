"""Training restarts: several VAEs, seeds seed, seed + 1, ..., and the one with the lowest final loss kept."""

import json

import numpy as np
import pytest
import torch

from vaegmm.config import GMMConfig, TrainConfig, VAEConfig
from vaegmm.data import Dataset
from vaegmm.errors import ConfigError
from vaegmm.pipeline import train_and_fit
from vaegmm.training import train_vae

MODEL = VAEConfig(image_shape=(6, 6), hidden_sizes=(16,), latent_dim=2)
TRAIN = TrainConfig(epochs=2, min_steps=0, batch_size=32, seed=3)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 1, (96, 6, 6)).astype(np.float32)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_the_kept_vae_is_the_lowest_final_loss_and_the_same_as_training_its_seed_alone(images):
    kept = train_vae(images, model_config=MODEL, train_config=TrainConfig(**{**TRAIN.to_dict(), "restarts": 3}),
                     device=torch.device("cpu"), progress=False)
    singles = [train_vae(images, model_config=MODEL, train_config=TrainConfig(**{**TRAIN.to_dict(), "seed": TRAIN.seed + i}),
                         device=torch.device("cpu"), progress=False) for i in range(3)]
    losses = [run.history[-1]["loss"] for run in singles]
    assert kept.restart_losses == losses
    assert len(set(losses)) == 3  # the seeds differ, so the choice is a real one
    assert kept.seed == TRAIN.seed + int(np.argmin(losses))
    expected = _weights(singles[int(np.argmin(losses))].model)
    for name, tensor in _weights(kept.model).items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=0)
    def losses_of(history):
        return [(h["epoch"], h["loss"]) for h in history]  # "seconds" differ from run to run

    assert losses_of(kept.history) == losses_of(singles[int(np.argmin(losses))].history)


def test_restarts_are_validated_and_refuse_to_resume(images, tmp_path):
    with pytest.raises(ConfigError, match="restarts"):
        TrainConfig(restarts=0)
    with pytest.raises(ConfigError, match="--restarts 1 to resume"):
        train_vae(images, model_config=MODEL, train_config=TrainConfig(**{**TRAIN.to_dict(), "restarts": 2}),
                  checkpoint_path=tmp_path / "ckpt", resume=True, progress=False)


def test_run_json_and_the_log_record_the_restarts_and_the_kept_run(images, tmp_path):
    labels = np.repeat([0, 1], 48)
    train = Dataset(images, None, "train")
    labelled = Dataset(images[[0, 1, 50, 51]], labels[[0, 1, 50, 51]], "val")
    config = TrainConfig(**{**TRAIN.to_dict(), "restarts": 2})
    summary = train_and_fit(train, labelled, model_config=MODEL, train_config=config,
                            gmm_config=GMMConfig(components_per_class=1), model_path=tmp_path / "vae.pth",
                            gmm_path=tmp_path / "gmm.pkl", log_path=tmp_path / "log.jsonl",
                            run_info_path=tmp_path / "run.json", progress=False)
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["train_config"]["restarts"] == 2
    restarts = info["summary"]["restarts"]
    assert len(restarts["final_losses"]) == 2 and restarts == summary["restarts"]
    kept = TRAIN.seed + int(np.argmin(restarts["final_losses"]))
    assert restarts["kept_seed"] == kept
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert log == info["history"] and log[-1]["loss"] == min(restarts["final_losses"])
    assert not (tmp_path / "vae.pth.ckpt").exists()
    assert torch.load(tmp_path / "vae.pth", weights_only=True)["extra"]["restarts"]["kept_seed"] == kept
