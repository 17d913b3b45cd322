"""Whole runs beyond the course's: `vaegmm demo`, `--digits`, other latent sizes, and the ELBO against a direct estimate."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from vaegmm.artefacts import load_model_for
from vaegmm.cli import main
from vaegmm.config import VAEConfig
from vaegmm.model import VAE, elbo_per_image
from vaegmm.storage import load_plain_pickle

TINY = ["--epochs", "2", "--min-steps", "0", "--hidden", "64", "--no-progress"]


def _mnist_dir() -> Path:
    for candidate in (os.environ.get("VAEGMM_DATA"), Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"):
        if candidate and (Path(candidate) / "mnist.npz").is_file():
            return Path(candidate)
    pytest.skip("MNIST is not available; set VAEGMM_DATA")


def test_elbo_per_image_matches_a_direct_monte_carlo_estimate():
    # ELBO = E_q[log p(x|z) + log p(z) - log q(z|x)], estimated here from its definition with densities
    # from torch.distributions; elbo_per_image uses the closed-form KL instead.
    torch.manual_seed(0)
    model = VAE(VAEConfig(image_shape=(6, 6), hidden_sizes=(16,), latent_dim=3)).eval()
    x = torch.rand(4, 6, 6).round()
    with torch.no_grad():
        mu, logvar = model.encode(x)
        q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
        z = q.sample((20000,))  # (S, B, latent)
        logits = model.decode_logits(z.reshape(-1, 3)).reshape(20000, 4, 36)
        log_px = torch.distributions.Bernoulli(logits=logits).log_prob(x.reshape(1, 4, 36)).sum(-1)
        log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
        direct = (log_px + log_pz - q.log_prob(z).sum(-1)).mean().item()
    ours = elbo_per_image(model, x.numpy(), n_samples=2000)
    assert ours == pytest.approx(direct, abs=0.05)


@pytest.mark.slow
def test_demo_on_other_digits_writes_a_full_run(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--data-dir", str(_mnist_dir()), "--digits", "3,5", "--labels-per-digit", "3",
                 "--out-dir", str(out), "--epochs", "4", "--min-steps", "0", "--hidden", "256", "--no-progress",
                 "--neighbour-weight", "0.4"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "training images of digits [3, 5], 6 labelled, 1902 test" in printed
    assert "score" in printed and "report.html" in printed
    info = json.loads((out / "run.json").read_text())
    assert info["data"]["digits"] == [3, 5] and info["n_labelled"] == 6
    assert set(info["gmm_config"]) >= {"components_per_class", "max_fit_points", "label_slack"}
    # The loss's settings travel with the model, so every command rebuilds it as trained.
    assert info["model_config"]["neighbour_weight"] == 0.4 and load_model_for(out / "vae.pth").config.neighbour_weight == 0.4
    state = load_plain_pickle(out / "gmm_params.pkl")
    assert sorted(set(state["component_classes"])) == [3, 5]
    assert state["config"] == info["gmm_config"] and state["fit"]["chosen"] == info["summary"]["gmm"]["chosen"]
    evaluation = json.loads((out / "evaluation.json").read_text())["evaluation"]
    assert evaluation["n_test"] == 1902  # MNIST's test 3s (1,010) and 5s (892)
    assert evaluation["classification"]["score"] > 0.6


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(0)
    # Three classes of 10x12 images (not square, not 28x28): a bar at a class-specific row, plus noise.
    def images(labels):
        x = rng.uniform(0, 0.2, (len(labels), 10, 12))
        for i, c in enumerate(labels):
            x[i, 2 + 3 * c: 4 + 3 * c] = 1.0
        return x.astype(np.float32)
    train_y = np.repeat([0, 1, 2], 200)
    np.savez(d / "train.npz", data=images(train_y), labels=train_y + 7)
    np.savez(d / "val.npz", data=images(np.repeat([0, 1, 2], 2)), labels=np.repeat([7, 8, 9], 2))
    np.savez(d / "test.npz", data=images(np.repeat([0, 1, 2], 10)), labels=np.repeat([7, 8, 9], 10))
    return d


@pytest.mark.slow
def test_train_with_digits_models_only_those_classes(files, tmp_path, capsys):
    out = tmp_path / "two"
    assert main(["train", "--train", str(files / "train.npz"), "--val", str(files / "val.npz"), "--out-dir", str(out),
                 "--digits", "7,9", *TINY]) == 0
    state = load_plain_pickle(out / "gmm_params.pkl")
    assert sorted(set(state["component_classes"])) == [7, 9]
    assert main(["classify", str(files / "test.npz"), "--model", str(out / "vae.pth"), "--gmm", str(out / "gmm_params.pkl"),
                 "--out", str(tmp_path / "p.csv")]) == 0
    predicted = np.loadtxt(tmp_path / "p.csv", skiprows=1, delimiter=",", usecols=0, dtype=int)
    assert len(predicted) == 30 and set(predicted) <= {7, 9}


@pytest.mark.slow
def test_train_can_seed_and_choose_by_spreading_over_the_images(files, tmp_path, capsys):
    out = tmp_path / "inputs"
    assert main(["train", "--train", str(files / "train.npz"), "--val", str(files / "val.npz"), "--out-dir", str(out),
                 "--seedings", "kmeans,nearest,inputs", "--choose-by", "inputs", "--input-components", "8", *TINY]) == 0
    assert "agrees with label spreading over the images on" in capsys.readouterr().out
    info = json.loads((out / "run.json").read_text())
    assert info["gmm_config"]["choose_by"] == "inputs" and info["gmm_config"]["input_components"] == 8
    candidates = info["summary"]["gmm"]["candidates"]
    assert {c["seeding"] for c in candidates} == {"kmeans", "nearest", "inputs"}
    best = max(c["input_agreement"] for c in candidates)
    assert info["summary"]["gmm"]["chosen"]["input_agreement"] == best
    state = load_plain_pickle(out / "gmm_params.pkl")
    assert state["config"]["choose_by"] == "inputs"  # the GMM file records how it was chosen


@pytest.mark.slow
@pytest.mark.parametrize("latent_dim", [1, 3])
def test_other_latent_sizes_train_classify_and_report(files, tmp_path, capsys, latent_dim):
    out = tmp_path / f"z{latent_dim}"
    assert main(["train", "--train", str(files / "train.npz"), "--val", str(files / "val.npz"), "--test",
                 str(files / "test.npz"), "--out-dir", str(out), "--latent-dim", str(latent_dim), "--epochs", "8", "--min-steps", "0",
                 "--no-progress"]) == 0
    # 600 training images: above 2-D the small-set rule adds the neighbour term, and says so; 1-D stays as asked
    weight = 0.03 if latent_dim > 2 else 0.0
    assert ("neighbour term: 0.03 per pixel" in capsys.readouterr().out) == (latent_dim > 2)
    info = json.loads((out / "run.json").read_text())
    assert info["model_config"]["neighbour_weight"] == weight
    # the GMM's unset seedings and slack follow the latent size too, recorded as used
    seedings, slack = (["nearest", "spreading"], 2) if latent_dim > 2 else (["kmeans", "nearest"], 1)
    assert (info["gmm_config"]["seedings"], info["gmm_config"]["label_slack"]) == (seedings, slack)
    assert load_plain_pickle(out / "gmm_params.pkl")["config"]["seedings"] == seedings
    assert load_model_for(out / "vae.pth").config.neighbour_weight == weight
    assert main(["classify", str(files / "test.npz"), "--model", str(out / "vae.pth"), "--gmm", str(out / "gmm_params.pkl"),
                 "--out", str(tmp_path / "p.csv")]) == 0
    assert "score" in capsys.readouterr().out
    assert main(["report", str(out), "--no-progress"]) == 0
    md = (out / "report.md").read_text()
    figures = {p.name for p in (out / "figures").glob("*.png")}
    assert {"generated_manifold.png", "latent_space.png", "gmm_ellipses.png"} <= figures
    if latent_dim == 1:
        # No plane to draw or explore: the figures run along the one axis and the explanation speaks of intervals.
        assert "one dimension, so there is no plane to explore" in md and "<canvas" not in (out / "report.html").read_text()
        assert "inside its 1σ interval" in md and "principal axes" not in md and "ellipse" not in md.split("## The latent")[1]
    else:
        assert "3 dimensions; the scatter, ellipse and grid figures show the plane of the two leading principal axes" in md
        assert "along latent dimension 3" in md  # the measurements name every dimension they measured
        # Three axes read as a list, and the region whose share is measured is three-dimensional.
        assert re.search(r"standard deviations \d\.\d\d, \d\.\d\d and \d\.\d\d,", md)
        assert "inside its 50%-mass ellipsoid" in md and "1σ ellipse " not in md.split("## The latent")[1]
