"""The VAE, its loss and its file format."""

import math

import pytest
import torch

from vaegmm.errors import ModelFileError
from vaegmm.model import VAE, TrainConfig, VAEConfig, build_model, count_parameters, load_model, save_model, vae_loss


def test_loss_matches_a_hand_computation():
    x = torch.tensor([[1.0, 0.0, 0.5]])
    logits = torch.tensor([[0.0, math.log(3.0), 2.0]])  # p = 0.5, 0.75, sigmoid(2)
    mu = torch.tensor([[1.0, -2.0]])
    logvar = torch.tensor([[0.0, math.log(0.25)]])
    p3 = 1 / (1 + math.exp(-2.0))
    bce = -(math.log(0.5) + math.log(1 - 0.75) + 0.5 * math.log(p3) + 0.5 * math.log(1 - p3))
    # KL(N(μ, σ²) || N(0, 1)) = ½ (σ² + μ² - 1 - log σ²) per dimension
    kl = 0.5 * (1 + 1 - 1 - 0) + 0.5 * (0.25 + 4 - 1 - math.log(0.25))
    loss, recon, kld = vae_loss(logits, x, mu, logvar, beta=2.0, recon_loss="bce")
    assert recon.item() == pytest.approx(bce, rel=1e-6)
    assert kld.item() == pytest.approx(kl, rel=1e-6)
    assert loss.item() == pytest.approx(bce + 2.0 * kl, rel=1e-6)
    _, mse, _ = vae_loss(logits, x, mu, logvar, beta=1.0, recon_loss="mse")
    assert mse.item() == pytest.approx((0.5 - 1) ** 2 + 0.75**2 + (p3 - 0.5) ** 2, rel=1e-6)


def test_loss_is_a_per_image_mean_over_the_batch():
    torch.manual_seed(0)
    x = torch.rand(4, 6)
    logits, mu, logvar = torch.randn(4, 6), torch.randn(4, 2), torch.randn(4, 2)
    whole = vae_loss(logits, x, mu, logvar, beta=1.0, recon_loss="bce")[0]
    parts = [vae_loss(logits[i:i + 1], x[i:i + 1], mu[i:i + 1], logvar[i:i + 1], beta=1.0, recon_loss="bce")[0] for i in range(4)]
    assert whole.item() == pytest.approx(sum(p.item() for p in parts) / 4, rel=1e-6)


def test_shapes_and_ranges():
    config = VAEConfig(image_shape=(7, 5), hidden_sizes=(16, 8), latent_dim=3)
    model = VAE(config)
    x = torch.rand(4, 7, 5)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (4, 3)
    out = model.decode(model.reparameterize(mu, logvar))
    assert out.shape == (4, 7, 5)
    assert float(out.detach().min()) >= 0 and float(out.detach().max()) <= 1


def test_parameter_count_limit():
    assert count_parameters(build_model(VAEConfig())) < 20_000_000
    with pytest.raises(ValueError, match="over the 20,000,000 limit"):
        VAEConfig(hidden_sizes=(8000, 4000))


def test_config_validation():
    with pytest.raises(ValueError, match="recon_loss"):
        VAEConfig(recon_loss="l1")
    with pytest.raises(ValueError, match="latent_dim"):
        VAEConfig(latent_dim=0)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")


def test_cosine_schedule_ends_at_the_final_ratio():
    tc = TrainConfig(lr=1e-3, lr_schedule="cosine", final_lr_ratio=0.1, warmup_fraction=0)
    assert tc.lr_at(0, 100) == pytest.approx(1e-3)
    assert tc.lr_at(99, 100) == pytest.approx(1e-4)
    assert TrainConfig(lr=1e-3, lr_schedule="constant", warmup_fraction=0).lr_at(50, 100) == 1e-3


def test_warmup_ramps_linearly_then_follows_the_schedule():
    tc = TrainConfig(lr=1e-3, lr_schedule="constant", warmup_fraction=0.1)
    assert [tc.lr_at(s, 100) for s in (0, 4, 9, 50)] == pytest.approx([1e-4, 5e-4, 1e-3, 1e-3])
    cosine = TrainConfig(lr=1e-3, warmup_fraction=0.1)
    plain = TrainConfig(lr=1e-3, warmup_fraction=0)
    assert cosine.lr_at(0, 100) == pytest.approx(plain.lr_at(0, 100) / 10)
    assert cosine.lr_at(60, 100) == pytest.approx(plain.lr_at(60, 100))
    with pytest.raises(ValueError, match="warmup_fraction"):
        TrainConfig(warmup_fraction=1.0)


def test_small_training_sets_get_more_epochs_up_to_min_steps():
    tc = TrainConfig(epochs=20, batch_size=100, min_steps=1000)
    assert tc.epochs_for(18_000) == 20  # 180 steps an epoch: 20 epochs are already 3,600 steps
    assert tc.epochs_for(1_000) == 100  # 10 steps an epoch
    assert tc.epochs_for(1_001) == 91  # 11 steps an epoch; rounding up, never below min_steps
    assert TrainConfig(epochs=3, min_steps=0).epochs_for(10) == 3
    with pytest.raises(ValueError, match="min_steps"):
        TrainConfig(min_steps=-1)


def test_save_load_round_trip_rebuilds_without_flags(tmp_path):
    config = VAEConfig(image_shape=(6, 6), hidden_sizes=(10,), latent_dim=3, recon_loss="mse", beta=0.5)
    model = VAE(config)
    save_model(model, tmp_path / "vae.pth", train_config=TrainConfig(epochs=2, min_steps=0))
    payload = torch.load(tmp_path / "vae.pth", weights_only=True)  # the file needs no code to load
    assert payload["config"]["hidden_sizes"] == [10]
    back, _ = load_model(tmp_path / "vae.pth")
    assert back.config == config
    x = torch.rand(2, 6, 6)
    torch.testing.assert_close(back.encode(x)[0], model.encode(x)[0])


def test_foreign_and_corrupt_model_files(tmp_path):
    plain = tmp_path / "plain.pth"
    torch.save(VAE(VAEConfig(hidden_sizes=(8,))).state_dict(), plain)
    with pytest.raises(ModelFileError, match=r"plain\.pth: not a vaegmm model file"):
        load_model(plain)
    good = tmp_path / "vae.pth"
    save_model(VAE(VAEConfig(hidden_sizes=(8,))), good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ModelFileError, match=r"truncated\.pth: not a readable vaegmm model file"):
        load_model(truncated)
    text = tmp_path / "notes.pth"
    text.write_text("these are my notes\n")
    with pytest.raises(ModelFileError, match=r"notes\.pth"):
        load_model(text)
