"""`vaegmm report` / `vaegmm plot` on a small trained run, and the measured latent analysis."""

import json
import re

import numpy as np
import pytest

from vaegmm.cli import main
from vaegmm.gmm import GaussianMixture
from vaegmm.report import FIGURES, bhattacharyya, explain, latent_analysis

from .conftest import make_blobs


@pytest.fixture(scope="module")
def run_dir(small_course_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "--train", str(small_course_files["train"]), "--val", str(small_course_files["val"]),
                 "--test", str(small_course_files["test"]), "--out-dir", str(out), "--epochs", "2", "--hidden", "64",
                 "--no-progress"])
    assert code == 0
    return out


def test_report_has_every_section_and_figure(run_dir, capsys):
    assert main(["report", str(run_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "score" in out and "report.html" in out
    for name in FIGURES.values():
        png = run_dir / "figures" / name
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    md = (run_dir / "report.md").read_text()
    for section in ("## Configuration and environment", "## Metrics on", "## Figures", "## The latent space, measured"):
        assert section in md
    for key in ("SSIM", "1 − MSE", "test ELBO", "accuracy", "f1_macro", "f1_micro", "score", "parameters", "env.torch",
                "training time", "train.seed"):
        assert key in md, key
    for digit in (1, 4, 8):
        assert f"**Digit {digit}**" in md
    assert "Bhattacharyya distance" in md and "inside its 1σ ellipse" in md
    page = (run_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(FIGURES)  # self-contained
    assert not re.search(r'src="(?!data:)', page)
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert 0 <= evaluation["evaluation"]["classification"]["score"] <= 1


def test_plot_writes_only_figures(run_dir, capsys, tmp_path):
    (run_dir / "figures" / FIGURES["manifold"]).unlink()
    assert main(["plot", str(run_dir), "--no-progress"]) == 0
    assert (run_dir / "figures" / FIGURES["manifold"]).is_file()


def test_report_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 1
    assert "run.json" in capsys.readouterr().err


def test_bhattacharyya_matches_its_closed_form():
    m1, m2 = np.array([0.0, 0.0]), np.array([3.0, 0.0])
    assert bhattacharyya(m1, np.eye(2), m2, np.eye(2)) == pytest.approx(9 / 8)
    # different covariances add the log-determinant term
    c2 = np.eye(2) * 4
    expected = 9 / 8 / 2.5 + 0.5 * np.log(2.5**2 / np.sqrt(1 * 16))
    assert bhattacharyya(m1, np.eye(2), m2, c2) == pytest.approx(expected)


def test_analysis_measures_gaussian_and_non_gaussian_clusters():
    rng = np.random.default_rng(0)
    X, y = make_blobs(rng, [[-6, 0], [6, 0]], [np.diag([4.0, 0.25]), np.eye(2)], [4000, 4000])
    ring = rng.normal(size=(4000, 2))
    ring = 8 * ring / np.linalg.norm(ring, axis=1, keepdims=True) + [0, 25]  # a circle: not Gaussian at all
    X, y = np.concatenate([X, ring]), np.concatenate([y, np.full(4000, 2)])
    lab = np.concatenate([np.flatnonzero(y == k)[:5] for k in range(3)])
    gmm = GaussianMixture().fit_seeded(X, X[lab], y[lab])
    analysis = latent_analysis(gmm, X, confusion=np.diag([4000, 4000, 4000]))
    blob, _, circle = analysis["digits"]
    assert blob["inside_1sigma"] == pytest.approx(0.393, abs=0.03)
    assert blob["inside_2sigma"] == pytest.approx(0.865, abs=0.03)
    assert blob["principal_std"] == pytest.approx([2.0, 0.5], rel=0.05)
    assert abs(blob["major_axis_angle_deg"]) < 3
    assert circle["inside_1sigma"] < 0.2  # the ring's points avoid its centre
    text = " ".join(explain(analysis))
    assert "close to Gaussian" in text and "flatter than a Gaussian" in text and "No test image was confused" in text
