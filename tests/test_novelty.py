"""The novelty score: its numerics, its calibration, and its columns in `vaegmm classify` (never in vae.py)."""

import csv

import numpy as np
import pytest

from vaegmm.cli import course_main, main
from vaegmm.errors import ModelFileError
from vaegmm.novelty import FEATURES, NoveltyDetector, novelty_features


def _ordinary(rng, n):
    """Features (n, 3) of ordinary images: log_recon rises with log_ink (slope 1.5), latent_nll independent."""
    log_ink = rng.normal(-2.0, 0.3, n)
    return np.stack([2.0 + 1.5 * log_ink + rng.normal(0, 0.1, n), log_ink, rng.normal(3.0, 1.0, n)], axis=1)


def test_score_is_the_largest_one_sided_standard_score_and_the_threshold_flags_the_asked_share():
    rng = np.random.default_rng(0)
    features = _ordinary(rng, 5000)
    detector = NoveltyDetector().fit(features, flag_rate=0.05)
    np.testing.assert_allclose(detector.ink_coef_, [2.0, 1.5], atol=0.02)  # the training images' line
    log_recon, log_ink, latent_nll = features.T
    adjusted = log_recon - detector.ink_coef_[0] - detector.ink_coef_[1] * log_ink
    stats = np.stack([log_recon, adjusted, latent_nll], axis=1)
    by_hand = np.maximum((stats - stats.mean(0)) / stats.std(0), 0).max(axis=1)
    np.testing.assert_allclose(detector.score(features), by_hand)
    assert detector.flag(features).mean() == pytest.approx(0.05, abs=0.001)
    assert detector.flag(_ordinary(rng, 20000)).mean() == pytest.approx(0.05, abs=0.01)  # the rate holds on new data
    assert detector.score(np.array([[-9.0, -2.0, -9.0]]))[0] == 0.0  # only the unusual side counts


def test_each_statistic_alone_can_flag_and_little_ink_with_an_ordinary_error_is_novel():
    detector = NoveltyDetector().fit(_ordinary(np.random.default_rng(1), 5000), flag_rate=0.01)
    typical = np.array([2.0 + 1.5 * -2.0, -2.0, 3.0])
    assert not detector.flag(typical[None]).any()
    assert detector.flag((typical + [3.0, 0.0, 0.0])[None]).all()  # a high error
    assert detector.flag((typical + [0.0, 0.0, 8.0])[None]).all()  # an improbable latent mean
    # A blank-like image: its error is ordinary for the set, but far too high for the nil ink it holds.
    blank = np.array([typical[0], -6.0, 3.0])
    scores = detector.standard_scores(blank[None])[0]
    assert scores[0] == pytest.approx(0.0, abs=0.5) and scores[1] > 10 and detector.flag(blank[None]).all()


def test_features_from_statistics():
    class Flat:  # a stand-in GMM with log-density -|mu|^2
        def score_samples(self, mu):
            return -(mu ** 2).sum(axis=1)

    stats = {"mu": np.array([[0.0, 0.0], [1.0, 2.0]]), "logvar": np.zeros((2, 2)), "recon_bce": np.array([np.e, 1.0]),
             "ink": np.array([0.5, 0.0]), "n_pixels": 4}
    f = novelty_features(stats, Flat())
    assert f.shape == (2, len(FEATURES))
    np.testing.assert_allclose(f[:, 0], [1.0, 0.0], atol=1e-9)  # log reconstruction error
    np.testing.assert_allclose(f[:, 1], np.log([0.75, 0.25]))  # log ink, floored at one lit pixel's share
    np.testing.assert_allclose(f[:, 2], [0.0, 5.0])  # -log p(mu)


def test_round_trip_and_refusals():
    detector = NoveltyDetector().fit(_ordinary(np.random.default_rng(1), 100), flag_rate=0.01)
    back = NoveltyDetector.from_dict(detector.to_dict(), source="g.pkl")
    assert back.threshold_ == detector.threshold_ and np.array_equal(back.std_, detector.std_)
    assert np.array_equal(back.ink_coef_, detector.ink_coef_)
    state = detector.to_dict()
    state["mean"] = [0.0] * 2
    with pytest.raises(ModelFileError, match="g.pkl: its novelty calibration has the wrong shape"):
        NoveltyDetector.from_dict(state, source="g.pkl")
    state = detector.to_dict()
    state["threshold"] = float("nan")
    with pytest.raises(ModelFileError, match="NaN"):
        NoveltyDetector.from_dict(state, source="g.pkl")
    state = detector.to_dict()
    state["version"] = 1  # a file calibrated before the ink adjustment
    with pytest.raises(ModelFileError, match="of another version; re-create the file with the 'train' command"):
        NoveltyDetector.from_dict(state, source="g.pkl")


@pytest.mark.slow
def test_classify_writes_novelty_columns_and_the_course_command_does_not(small_course_files, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert main(["train", "--train", str(small_course_files["train"]), "--val", str(small_course_files["val"]),
                 "--out-dir", str(run), "--epochs", "6", "--min-steps", "0", "--hidden", "128", "--no-progress", "--flag-rate", "0.05"]) == 0
    info = capsys.readouterr().out
    assert "novelty threshold" in info and "5.0% of the 1200 training images" in info
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
