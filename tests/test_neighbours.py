"""The neighbour-embedding term: t-SNE's affinities, its KL loss, and what it does to a trained latent."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from vaegmm.config import ConfigError, TrainConfig, VAEConfig
from vaegmm.model import encode_means
from vaegmm.neighbours import conditional_affinities, neighbour_affinities, neighbour_embedding_loss
from vaegmm.training import train_vae


@pytest.mark.parametrize("perplexity", [2.0, 3.0, 10.0])
def test_each_row_has_the_asked_perplexity_and_p_is_a_symmetric_distribution(perplexity):
    x = torch.as_tensor(np.random.default_rng(0).uniform(0, 1, (40, 16)), dtype=torch.float64)
    rows = conditional_affinities(x, perplexity=perplexity)
    entropy = -(rows * torch.log(rows.clamp_min(1e-300))).sum(dim=1)  # nats
    np.testing.assert_allclose(torch.exp(entropy).numpy(), perplexity, rtol=1e-6)
    assert torch.all(rows.diagonal() == 0) and torch.allclose(rows.sum(dim=1), torch.ones(40, dtype=torch.float64))
    p = neighbour_affinities(x, perplexity=perplexity)
    assert torch.allclose(p, p.T) and float(p.sum()) == pytest.approx(1.0)
    # The nearest image gets the largest share of each row.
    d = torch.cdist(x, x).fill_diagonal_(float("inf"))
    assert torch.equal(rows.argmax(dim=1), d.argmin(dim=1))


def test_perplexity_is_capped_by_the_batch_and_a_single_image_is_refused():
    x = torch.as_tensor(np.random.default_rng(1).uniform(0, 1, (4, 9)), dtype=torch.float64)
    rows = conditional_affinities(x, perplexity=30.0)  # only 3 other images: at most 3 neighbours
    entropy = -(rows * torch.log(rows.clamp_min(1e-300))).sum(dim=1)
    np.testing.assert_allclose(torch.exp(entropy).numpy(), 3.0, rtol=1e-4)
    with pytest.raises(ValueError, match="at least 2 images"):
        conditional_affinities(x[:1], perplexity=3.0)


def test_loss_matches_a_direct_computation_and_prefers_an_embedding_that_keeps_neighbours():
    rng = np.random.default_rng(2)
    p = neighbour_affinities(torch.as_tensor(rng.uniform(0, 1, (12, 5))), perplexity=3.0).numpy()
    z = rng.normal(0, 1, (12, 2))
    kernel = np.array([[0.0 if i == j else 1 / (1 + np.sum((z[i] - z[j]) ** 2)) for j in range(12)] for i in range(12)])
    q = kernel / kernel.sum()
    expected = sum(p[i, j] * np.log(p[i, j] / q[i, j]) for i in range(12) for j in range(12) if i != j)
    got = neighbour_embedding_loss(torch.as_tensor(p), torch.as_tensor(z))
    assert float(got) == pytest.approx(expected, rel=1e-10)
    # Two well-separated groups in pixel space: the embedding that keeps them apart costs less.
    x = torch.as_tensor(np.r_[rng.normal(0, 0.1, (10, 5)), rng.normal(5, 0.1, (10, 5))])
    p = neighbour_affinities(x, perplexity=3.0)
    kept = torch.as_tensor(np.r_[rng.normal(0, 0.5, (10, 2)), rng.normal(8, 0.5, (10, 2))])
    mixed = kept[torch.as_tensor(rng.permutation(20))]
    assert neighbour_embedding_loss(p, kept) < neighbour_embedding_loss(p, mixed)


@pytest.mark.parametrize("dof", [1.0, 3.0, 9.0])
def test_the_latent_kernel_is_a_student_t_of_the_asked_degrees_of_freedom(dof):
    from scipy import stats

    rng = np.random.default_rng(3)
    p = neighbour_affinities(torch.as_tensor(rng.uniform(0, 1, (9, 4))), perplexity=3.0).numpy()
    z = rng.normal(0, 1, (9, 10))
    # As in parametric t-SNE, Q is proportional to the (one-dimensional) Student-t density of each pair's distance.
    density = np.array([[0.0 if i == j else stats.t(df=dof).pdf(np.linalg.norm(z[i] - z[j])) for j in range(9)]
                        for i in range(9)])
    q = density / density.sum()
    expected = sum(p[i, j] * np.log(p[i, j] / q[i, j]) for i in range(9) for j in range(9) if i != j)
    got = neighbour_embedding_loss(torch.as_tensor(p), torch.as_tensor(z), dof=dof)
    assert float(got) == pytest.approx(expected, rel=1e-9)


def test_settings_are_validated():
    with pytest.raises(ConfigError, match="perplexity"):
        VAEConfig(perplexity=1.0)
    with pytest.raises(ConfigError, match="neighbour_weight"):
        VAEConfig(neighbour_weight=-0.1)
    with pytest.raises(ConfigError, match="neighbour_dof must be a finite number > 0; got 0"):
        VAEConfig(neighbour_dof=0)
    with pytest.raises(ConfigError, match="small_set_images"):
        VAEConfig(small_set_images=-1)
    with pytest.raises(ConfigError, match="small_set_neighbour_weight"):
        VAEConfig(small_set_neighbour_weight=float("nan"))


def test_the_term_is_off_in_2d_and_on_for_small_sets_above_2d_unless_set():
    # 2-D: off at every size, so the course's model is unchanged
    assert VAEConfig().neighbour_weight_for(100) == 0.0 and VAEConfig().neighbour_weight_for(18_000) == 0.0
    z10 = VAEConfig(latent_dim=10)
    assert z10.neighbour_weight_for(1_999) == 0.03 and z10.neighbour_weight_for(2_000) == 0.0
    assert VAEConfig(latent_dim=3, small_set_images=500, small_set_neighbour_weight=0.1).neighbour_weight_for(499) == 0.1
    # an explicit weight, 0 included, is never overridden
    assert VAEConfig(latent_dim=10, neighbour_weight=0).neighbour_weight_for(100) == 0.0
    assert VAEConfig(neighbour_weight=0.4).neighbour_weight_for(100_000) == 0.4
    settled = z10.for_training_set(1_000)
    assert settled.neighbour_weight == 0.03 and VAEConfig.from_dict(settled.to_dict()) == settled


def test_a_small_set_trains_with_the_settled_term_and_the_model_records_it(capsys):
    images = np.random.default_rng(0).random((40, 6, 6)).astype(np.float32)
    config = VAEConfig(image_shape=(6, 6), hidden_sizes=(8,), latent_dim=3, small_set_images=50)
    result = train_vae(images, model_config=config, train_config=TrainConfig(epochs=1, min_steps=0),
                       device=torch.device("cpu"), progress=True)
    assert result.model.config.neighbour_weight == 0.03
    assert "40 images are fewer than --small-set-images 50" in capsys.readouterr().err
    large = train_vae(images, model_config=replace(config, small_set_images=40), train_config=TrainConfig(epochs=1, min_steps=0),
                      device=torch.device("cpu"), progress=True)
    assert large.model.config.neighbour_weight == 0.0 and "small-set-images" not in capsys.readouterr().err


def test_the_kernels_degrees_of_freedom_follow_the_latent_size_unless_set():
    from vaegmm.cli import build_parser, configs_from_args

    assert VAEConfig().neighbour_dof == 1.0 and VAEConfig(latent_dim=10).neighbour_dof == 9.0
    assert VAEConfig(latent_dim=1).neighbour_dof == 1.0 and VAEConfig(latent_dim=10, neighbour_dof=3).neighbour_dof == 3.0
    # Saved resolved, so a model file rebuilds the same loss; a file from before the setting had t-SNE's 1.
    saved = VAEConfig(latent_dim=10).to_dict()
    assert VAEConfig.from_dict(saved).neighbour_dof == 9.0
    del saved["neighbour_dof"]
    assert VAEConfig.from_dict(saved).neighbour_dof == 1.0
    parser = build_parser()
    train = ["train", "--train", "t.npz", "--val", "v.npz"]
    for extra, dof in ((["--latent-dim", "10"], 9.0), (["--latent-dim", "10", "--neighbour-dof", "2.5"], 2.5), ([], 1.0)):
        assert configs_from_args(parser.parse_args(train + extra))[0].neighbour_dof == dof


def _neighbours_kept(x: np.ndarray, z: np.ndarray, k: int) -> float:
    """Share of each image's k nearest pixel-space neighbours among its k nearest latent ones."""
    def knn(a):
        d = ((a[:, None] - a[None]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        return np.argsort(d, axis=1)[:, :k]
    px, lz = knn(x.reshape(len(x), -1)), knn(z)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(px, lz)]))


def test_training_with_the_term_keeps_more_pixel_neighbours_in_the_latent():
    # Blobs at random places on a 10x10 canvas: a two-parameter family the 2-D latent can lay out.
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:10, 0:10]
    centres = rng.uniform(2, 8, (400, 2))
    images = np.exp(-((yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2) / 4).astype(np.float32)
    kept = {}
    for weight in (0.0, 0.4):
        result = train_vae(images, model_config=VAEConfig(image_shape=(10, 10), hidden_sizes=(64,), neighbour_weight=weight),
                           train_config=TrainConfig(epochs=30, min_steps=0, batch_size=64), device=torch.device("cpu"),
                           progress=False)
        kept[weight] = _neighbours_kept(images, encode_means(result.model, images), k=5)
    assert kept[0.4] > kept[0.0] + 0.05, kept
