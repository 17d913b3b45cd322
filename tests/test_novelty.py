"""The novelty score: its numerics, its calibration, and its columns in `vaegmm classify` (never in vae.py)."""

import csv
import json

import numpy as np
import pytest

from vaegmm.cli import course_main, main
from vaegmm.errors import ModelFileError
from vaegmm.config import NoveltyConfig, TrainConfig, VAEConfig
from vaegmm.errors import ConfigError
from vaegmm.model import VAE, encode_statistics
from vaegmm.data import not_among
from vaegmm.novelty import (
    MIN_CALIBRATION_IMAGES,
    STATISTICS,
    NoveltyDetector,
    calibration_split,
    held_out_flag_check,
    novelty_statistics,
)


def _ordinary(rng, n):
    """Statistics (n, 3) of ordinary images: dissimilarities around 0.1 and 0.3, a latent_nll around 3."""
    return np.stack([rng.normal(0.1, 0.02, n), rng.normal(0.3, 0.05, n), rng.normal(3.0, 1.0, n)], axis=1)


def test_score_sums_the_one_sided_standard_scores_and_the_threshold_flags_the_asked_share():
    rng = np.random.default_rng(0)
    stats = _ordinary(rng, 5000)
    detector = NoveltyDetector().fit(stats, flag_rate=0.05)
    by_hand = np.maximum((stats - stats.mean(0)) / stats.std(0), 0).sum(axis=1)
    np.testing.assert_allclose(detector.score(stats), by_hand)
    assert detector.flag(stats).mean() == pytest.approx(0.05, abs=0.001)
    assert detector.flag(_ordinary(rng, 20000)).mean() == pytest.approx(0.05, abs=0.01)  # the rate holds on new data
    assert detector.score(np.array([[0.0, 0.0, -9.0]]))[0] == 0.0  # only the unusual side counts
    # Each statistic a little unusual: no one of them alone is flagged, the three together are.
    a_little = stats.mean(0) + 1.5 * stats.std(0)
    assert detector.flag(a_little[None]).all()
    assert not detector.flag(np.where(np.eye(3, dtype=bool), a_little, stats.mean(0))).any()


def test_held_out_images_set_the_threshold_and_the_training_images_the_scales():
    """A VAE fits its own images better than new ones: calibrated on those, the asked share holds for new images."""
    rng = np.random.default_rng(2)
    fitted, new = _ordinary(rng, 5000) * [0.5, 0.5, 1.0], _ordinary(rng, 5000)  # training images reconstruct better
    naive = NoveltyDetector().fit(fitted, flag_rate=0.01)
    assert naive.flag(new).mean() > 0.1  # many times the asked 1%
    detector = NoveltyDetector().fit(fitted, flag_rate=0.01, held_out=new[:1000])
    np.testing.assert_array_equal(detector.std_, naive.std_)  # the same score, only another threshold
    assert detector.flag(new[1000:]).mean() == pytest.approx(0.01, abs=0.005)


def test_each_statistic_alone_can_flag():
    detector = NoveltyDetector().fit(_ordinary(np.random.default_rng(1), 5000), flag_rate=0.01)
    typical = np.array([0.1, 0.3, 3.0])
    assert not detector.flag(typical[None]).any()
    assert detector.flag((typical + [0.1, 0.0, 0.0])[None]).all()  # unlike its reconstruction
    assert detector.flag((typical + [0.0, 0.25, 0.0])[None]).all()  # its edges unlike the reconstruction's
    assert detector.flag((typical + [0.0, 0.0, 8.0])[None]).all()  # an improbable latent mean


def test_statistics_from_the_encoder_pass():
    class Flat:  # a stand-in GMM with log-density -|mu|^2
        def score_samples(self, mu):
            return -(mu ** 2).sum(axis=1)

    encoded = {"mu": np.array([[0.0, 0.0], [1.0, 2.0]]), "recon_corr": np.array([1.0, 0.25]), "edge_corr": np.array([0.5, -0.5])}
    s = novelty_statistics(encoded, Flat())
    assert s.shape == (2, len(STATISTICS))
    np.testing.assert_allclose(s[:, STATISTICS.index("recon_dissimilarity")], [0.0, 0.75])  # 1 - correlation
    np.testing.assert_allclose(s[:, STATISTICS.index("edge_dissimilarity")], [0.5, 1.5])
    np.testing.assert_allclose(s[:, STATISTICS.index("latent_nll")], [0.0, 5.0])  # -log p(mu)


def test_reconstruction_correlation_matches_numpy_and_is_zero_for_constant_images():
    import torch

    torch.manual_seed(0)
    model = VAE(VAEConfig(image_shape=(28, 28), hidden_sizes=(8,), latent_dim=2))
    rng = np.random.default_rng(0)
    # 100/255 over 784 pixels: the float32 mean rounds, leaving the centred image a few ulps from zero.
    constant = [np.zeros((1, 28, 28)), np.full((1, 28, 28), 0.5), np.full((1, 28, 28), 100 / 255)]
    images = np.concatenate([rng.uniform(0, 1, (5, 28, 28)), *constant]).astype(np.float32)
    encoded = encode_statistics(model, images)
    with torch.no_grad():
        recon = model.decode(model.encode(torch.as_tensor(images.reshape(8, -1)))[0]).reshape(8, -1).double().numpy()
    expected = [np.corrcoef(images[i].ravel(), recon[i])[0, 1] for i in range(5)]
    np.testing.assert_allclose(encoded["recon_corr"][:5], expected, rtol=1e-5)
    assert (encoded["recon_corr"][5:] == 0.0).all()

    def edges(image):  # differences of horizontal, then of vertical neighbours
        return np.r_[np.diff(image, axis=1).ravel(), np.diff(image, axis=0).ravel()]

    recon = recon.reshape(8, 28, 28)
    expected = [np.corrcoef(edges(images[i]), edges(recon[i]))[0, 1] for i in range(5)]
    np.testing.assert_allclose(encoded["edge_corr"][:5], expected, rtol=1e-4)
    assert (encoded["edge_corr"][5:] == 0.0).all()  # a constant image has no edges


def test_edge_correlation_in_blocks_covers_every_image_in_order(monkeypatch):
    import torch

    import vaegmm.similarity as similarity

    images, recon = torch.rand(10, 5, 7), torch.rand(10, 5, 7)
    whole = similarity.edge_correlation(images, recon)
    monkeypatch.setattr(similarity, "EDGE_BLOCK_BYTES", 3 * 4 * (5 * 6 + 4 * 7))  # three images a block: 3, 3, 3, 1
    np.testing.assert_allclose(similarity.edge_correlation(images, recon).numpy(), whole.numpy(), rtol=1e-6)
    assert len(whole) == 10


def test_edge_correlation_is_0_where_an_images_edges_are_all_equal():
    import torch

    import vaegmm.similarity as similarity

    torch.manual_seed(0)
    h, w = 28, 20
    ramp = torch.arange(h)[:, None] * 0.013 + torch.arange(w)[None, :] * 0.013  # every neighbour step 0.013, up to rounding
    images = torch.stack([ramp, torch.full((h, w), 0.4), torch.rand(h, w)]).float()  # (3, H, W)
    recon = torch.rand(3, h, w)
    corr = similarity.edge_correlation(images, recon)
    assert corr[0] == 0.0 and corr[1] == 0.0  # undefined: no spread of edges to correlate
    flat = lambda im: np.r_[np.diff(im, axis=1).ravel(), np.diff(im, axis=0).ravel()]  # noqa: E731
    expected = np.corrcoef(flat(images[2].double().numpy()), flat(recon[2].double().numpy()))[0, 1]
    assert corr[2] == pytest.approx(expected, abs=1e-6)  # two random images: a correlation near 0
    # the ramp's edges really are one value up to rounding, so the centred sums are noise the check must catch
    edges = flat(images[0].numpy())
    assert np.ptp(edges) < 1e-6 < np.ptp(flat(images[2].numpy()))


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1)])
def test_edge_correlation_of_images_with_few_or_no_edges(shape):
    import torch

    torch.manual_seed(0)
    model = VAE(VAEConfig(image_shape=shape, hidden_sizes=(4,), latent_dim=2))
    images = np.random.default_rng(0).uniform(0, 1, (3, *shape)).astype(np.float32)
    encoded = encode_statistics(model, images)
    assert encoded["edge_corr"].shape == (3,) and np.isfinite(encoded["edge_corr"]).all()
    if shape == (1, 1):
        assert (encoded["edge_corr"] == 0.0).all()


def test_round_trip_and_refusals():
    rng = np.random.default_rng(1)
    detector = NoveltyDetector().fit(_ordinary(rng, 100), flag_rate=0.01, held_out=_ordinary(rng, 40))
    back = NoveltyDetector.from_dict(detector.to_dict(), source="g.pkl")
    assert back.threshold_ == detector.threshold_ and np.array_equal(back.std_, detector.std_)
    assert np.array_equal(back.mean_, detector.mean_)
    assert back.held_out_ and back.calibrated_on == "40 training images held out of the VAE's training"
    older = {k: v for k, v in detector.to_dict().items() if k != "held_out"}  # written before held-out calibration
    assert NoveltyDetector.from_dict(older, source="g.pkl").calibrated_on == "40 training images"
    state = detector.to_dict()
    state["mean"] = [0.0] * 2
    with pytest.raises(ModelFileError, match="g.pkl: its novelty calibration has the wrong shape"):
        NoveltyDetector.from_dict(state, source="g.pkl")
    state = detector.to_dict()
    state["threshold"] = float("nan")
    with pytest.raises(ModelFileError, match="NaN"):
        NoveltyDetector.from_dict(state, source="g.pkl")
    state = detector.to_dict()
    state["version"] = 3  # a file calibrated on other statistics (two, their larger score)
    with pytest.raises(ModelFileError, match="of another version; re-create the file with the 'train' command"):
        NoveltyDetector.from_dict(state, source="g.pkl")


@pytest.mark.slow
def test_classify_writes_novelty_columns_and_the_course_command_does_not(small_course_files, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert main(["train", "--train", str(small_course_files["train"]), "--val", str(small_course_files["val"]),
                 "--out-dir", str(run), "--epochs", "6", "--min-steps", "0", "--hidden", "128", "--no-progress", "--flag-rate", "0.05"]) == 0
    info = capsys.readouterr().out
    assert "novelty threshold" in info and "5.0% of 1200 training images" in info  # --min-steps 0: no held-out share
    # The course's 15 labelled images are not among its training images: the threshold is checked on them.
    assert "novelty on the 15 labelled images the VAE was not trained on: " in info
    rng = np.random.default_rng(0)
    with np.load(small_course_files["test"]) as f:
        digits = f["data"][:100]
    mixed = np.concatenate([digits, rng.integers(0, 256, (50, 28, 28), dtype=np.uint8), np.zeros((20, 28, 28), np.uint8)])
    np.savez(tmp_path / "mixed.npz", data=mixed)
    assert main(["classify", str(tmp_path / "mixed.npz"), "--model", str(run / "vae.pth"), "--gmm",
                 str(run / "gmm_params.pkl"), "--out", str(tmp_path / "p.csv")]) == 0
    printed = capsys.readouterr().out
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert list(rows[0]) == ["Predicted_Label", "Probability", "Novelty_Score", "Novel"]
    novel = np.array([int(r["Novel"]) for r in rows])
    assert novel[100:].all()  # noise and blank squares are all flagged
    assert novel[:100].mean() < 0.2
    assert f"novelty: {novel.sum()} of 170 images" in printed
    assert all(0 < float(r["Probability"]) <= 1 for r in rows)
    monkeypatch.chdir(tmp_path)
    assert course_main([str(tmp_path / "mixed.npz"), "test_classifier", str(run / "vae.pth"), str(run / "gmm_params.pkl")]) == 0
    assert (tmp_path / "vae.csv").read_text().splitlines()[0] == "Predicted_Label"
    assert len((tmp_path / "vae.csv").read_text().splitlines()) == 171


def test_held_out_check_counts_flags_and_gives_the_binomial_tail():
    threshold = 1.0
    none = held_out_flag_check(np.zeros(25), threshold=threshold, flag_rate=0.01)
    assert none == {"n": 25, "flagged": 0, "expected": 0.25, "p_value": 1.0}
    three = held_out_flag_check(np.r_[np.full(3, 2.0), np.zeros(22)], threshold=threshold, flag_rate=0.01)
    # P(at least 3 of 25 flagged at a 1% rate), summed by hand
    from math import comb
    by_hand = 1 - sum(comb(25, i) * 0.01 ** i * 0.99 ** (25 - i) for i in range(3))
    assert three["flagged"] == 3 and three["p_value"] == pytest.approx(by_hand) and three["p_value"] < 0.01
    assert held_out_flag_check(np.array([]), threshold=threshold, flag_rate=0.01)["p_value"] == 1.0


def test_not_among_finds_exact_copies_only():
    rng = np.random.default_rng(0)
    seen = rng.random((50, 6, 5)).astype(np.float32)
    new = rng.random((3, 6, 5)).astype(np.float32)
    nudged = seen[:1].copy()
    nudged[0, 0, 0] += 1e-3
    images = np.concatenate([seen[[4, 9]], new, nudged])
    assert not_among(images, seen).tolist() == [False, False, True, True, True, True]


def test_calibration_split_is_a_seeded_share_or_nothing_when_too_few():
    fit, held = calibration_split(1000, share=0.1, seed=0)
    assert len(held) == 100 and len(fit) == 900 and not set(fit) & set(held) and set(fit) | set(held) == set(range(1000))
    assert np.array_equal(held, calibration_split(1000, share=0.1, seed=0)[1])  # the same images on every run
    assert not np.array_equal(held, calibration_split(1000, share=0.1, seed=1)[1])
    for n, share in ((1000, 0.0), (10 * MIN_CALIBRATION_IMAGES - 10, 0.1)):  # none asked, or too few for a quantile
        fit, held = calibration_split(n, share=share, seed=0)
        assert len(held) == 0 and np.array_equal(fit, np.arange(n))


def test_the_share_is_held_out_by_default_where_min_steps_raises_the_epochs_or_the_latent_is_above_2d():
    train = TrainConfig()  # 20 epochs of batches of 128, at least 2,400 steps
    assert NoveltyConfig().share_for(18_420, train, latent_dim=2) == 0.0  # the course's set: 2,880 steps in 20 epochs
    assert NoveltyConfig().share_for(6_000, train, latent_dim=2) == 0.1  # 47 steps an epoch: 52 epochs
    assert NoveltyConfig().share_for(6_000, TrainConfig(min_steps=0), latent_dim=2) == 0.0
    assert NoveltyConfig().share_for(18_420, train, latent_dim=3) == 0.1  # a larger latent: whatever the set's size
    assert NoveltyConfig().share_for(60_000, train, latent_dim=10) == 0.1
    assert NoveltyConfig(calibration_share=0.2).share_for(18_420, train, latent_dim=10) == 0.2
    assert NoveltyConfig(calibration_share=0).share_for(600, train, latent_dim=10) == 0.0
    with pytest.raises(ConfigError, match=r"calibration_share \(--calibration-share\) must be in \[0, 0.5\]; got 0.7"):
        NoveltyConfig(calibration_share=0.7)


@pytest.mark.parametrize("latent_dim, calibrated_on", [(2, "240 training images"),
                                                        (3, "24 training images held out of the VAE's training")])
def test_train_holds_a_tenth_out_above_2d_even_where_the_epochs_do_not_grow(latent_dim, calibrated_on, tmp_path,
                                                                             capsys):
    from vaegmm.cli import main

    rng = np.random.default_rng(0)
    labels = np.repeat([1, 4, 8], 80)
    np.savez(tmp_path / "train.npz", data=rng.integers(0, 256, (240, 12, 12), dtype=np.uint8), labels=labels)
    np.savez(tmp_path / "val.npz", data=rng.integers(0, 256, (9, 12, 12), dtype=np.uint8), labels=np.repeat([1, 4, 8], 3))
    run = tmp_path / "run"
    # --min-steps 0: the epochs never grow, so only the latent size decides
    assert main(["train", "--train", str(tmp_path / "train.npz"), "--val", str(tmp_path / "val.npz"), "--out-dir",
                 str(run), "--latent-dim", str(latent_dim), "--epochs", "1", "--min-steps", "0", "--hidden", "16",
                 "--no-progress"]) == 0
    record = json.loads((run / "run.json").read_text())
    assert record["summary"]["novelty"]["calibrated_on"] == calibrated_on
    assert f"of {calibrated_on}" in capsys.readouterr().out
