"""The novelty score: its numerics, its calibration, and its columns in `vaegmm classify` (never in vae.py)."""

import csv

import numpy as np
import pytest

from vaegmm.cli import course_main, main
from vaegmm.errors import ModelFileError
from vaegmm.novelty import FEATURES, NoveltyDetector, novelty_features


def test_score_is_the_largest_one_sided_standard_score_and_the_threshold_flags_the_asked_share():
    rng = np.random.default_rng(0)
    features = rng.normal([1.0, -2.0], [0.5, 3.0], size=(5000, 2))
    detector = NoveltyDetector().fit(features, flag_rate=0.05)
    mean, std = features.mean(0), features.std(0)
    x = np.array([[1.0 + 2 * std[0], -2.0 + 0.5 * std[1]], [1.0 - 9 * std[0], -2.0 - 9 * std[1]]])
    np.testing.assert_allclose(detector.score(x), [(x[0, 0] - mean[0]) / std[0], 0.0])  # only the unusual side counts
    assert detector.flag(features).mean() == pytest.approx(0.05, abs=0.001)
    fresh = rng.normal([1.0, -2.0], [0.5, 3.0], size=(20000, 2))
    assert detector.flag(fresh).mean() == pytest.approx(0.05, abs=0.01)  # the rate holds on new ordinary data
    assert detector.flag(mean[None] + [0, 10 * std[1]]).all()  # either statistic alone can flag


def test_features_from_statistics():
    class Flat:  # a stand-in GMM with log-density -|mu|^2
        def score_samples(self, mu):
            return -(mu ** 2).sum(axis=1)

    stats = {"mu": np.array([[0.0, 0.0], [1.0, 2.0]]), "logvar": np.zeros((2, 2)), "recon_bce": np.array([np.e, 1.0])}
    f = novelty_features(stats, Flat())
    assert f.shape == (2, len(FEATURES))
    np.testing.assert_allclose(f[:, 0], [1.0, 0.0], atol=1e-9)  # log reconstruction error
    np.testing.assert_allclose(f[:, 1], [0.0, 5.0])  # -log p(mu)


def test_round_trip_and_refusals():
    detector = NoveltyDetector().fit(np.random.default_rng(1).normal(size=(100, 2)), flag_rate=0.01)
    back = NoveltyDetector.from_dict(detector.to_dict(), source="g.pkl")
    assert back.threshold_ == detector.threshold_ and np.array_equal(back.std_, detector.std_)
    state = detector.to_dict()
    state["mean"] = [0.0] * 3
    with pytest.raises(ModelFileError, match="g.pkl: its novelty calibration has the wrong shape"):
        NoveltyDetector.from_dict(state, source="g.pkl")
    state = detector.to_dict()
    state["threshold"] = float("nan")
    with pytest.raises(ModelFileError, match="NaN"):
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
