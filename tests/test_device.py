"""Devices: a GPU is taken when present, refused clearly when asked for and absent, and a model trained on
a GPU loads and classifies the same on a machine without one (the course trains on one box, grades on another).

The tests marked ``needs_gpu`` are skipped on CPU-only machines (CI); they ran on a lent H200 (README)."""

import csv

import numpy as np
import pytest
import torch

from vaegmm import VAEGMM, TrainConfig, VAEConfig
from vaegmm.cli import main
from vaegmm.errors import ConfigError
from vaegmm.training import pick_device

from .conftest import run_course

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


def test_auto_takes_a_gpu_only_when_one_is_present():
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu") == torch.device("cpu")


def test_an_unknown_device_name_is_refused():
    with pytest.raises(ConfigError, match="'gpu0' is not a device torch knows; use auto, cpu, cuda"):
        pick_device("gpu0")


def test_a_gpu_asked_for_but_absent_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ConfigError, match="asked for a GPU, but torch sees 0 CUDA device.*--device cpu"):
        pick_device("cuda")
    assert pick_device("auto") == torch.device("cpu")


def test_the_cli_refuses_a_gpu_index_beyond_those_present(small_course_files, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--train", str(small_course_files["train"]), "--val", str(small_course_files["val"]),
              "--out-dir", str(out), "--epochs", "1", "--min-steps", "0", "--device", "cuda:99", "--no-progress"])
    assert exit_.value.code == 2
    assert "--device 'cuda:99' asked for a GPU" in capsys.readouterr().err
    assert not out.exists()


@needs_gpu
@pytest.mark.slow
def test_a_model_fitted_on_a_gpu_gives_the_same_answers_on_the_cpu(course_arrays, tmp_path):
    X, y, X_test, _ = course_arrays
    gpu = VAEGMM(vae=VAEConfig(hidden_sizes=(64,)), train=TrainConfig(epochs=3, min_steps=0), device="cuda").fit(X, y)
    assert next(gpu.model_.parameters()).device.type == "cuda"
    gpu.save(tmp_path / "model")
    cpu = VAEGMM.load(tmp_path / "model", device="cpu")
    assert next(cpu.model_.parameters()).device.type == "cpu"
    # float32 on two kinds of hardware: the same to rounding, not to the bit.
    np.testing.assert_allclose(cpu.transform(X_test), gpu.transform(X_test), atol=1e-4)
    np.testing.assert_allclose(cpu.predict_proba(X_test), gpu.predict_proba(X_test), atol=1e-3)


@needs_gpu
@pytest.mark.slow
def test_the_course_trains_on_a_gpu_and_grades_on_a_cpu(small_course_files, tmp_path):
    def course(*args, hide_gpu=False):
        result = run_course(args, tmp_path, {"CUDA_VISIBLE_DEVICES": ""} if hide_gpu else None)
        assert result.returncode == 0, result.stderr
        return result

    trained = course(small_course_files["train"], small_course_files["val"], "train", "vae.pth", "gmm_params.pkl")
    assert " s on cuda" in trained.stdout
    answers = {}
    for hide_gpu in (False, True):
        course(small_course_files["test"], "test_classifier", "vae.pth", "gmm_params.pkl", hide_gpu=hide_gpu)
        with open(tmp_path / "vae.csv", newline="") as f:
            answers[hide_gpu] = [row["Predicted_Label"] for row in csv.DictReader(f)]
    assert len(answers[True]) == 300
    # Images on a decision boundary may fall either way under float32 rounding; allow one in a hundred.
    assert np.mean(np.array(answers[True]) != np.array(answers[False])) <= 0.01
