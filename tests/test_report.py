"""`vaegmm report` / `vaegmm plot` on a small trained run, and the measured latent analysis."""

import json
import re

import numpy as np
import pytest

from vaegmm.analysis import bhattacharyya, explain, latent_analysis
from vaegmm.artefacts import load_gmm_for, load_model_for
from vaegmm.candidates import UNSETTLED_DISAGREEMENT
from vaegmm.cli import main
from vaegmm.data import load_npz
from vaegmm.evaluation import evaluate
from vaegmm.figures import FIGURES

from .conftest import few_label, make_blobs


@pytest.fixture(scope="module")
def run_dir(small_course_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "--train", str(small_course_files["train"]), "--val", str(small_course_files["val"]),
                 "--test", str(small_course_files["test"]), "--out-dir", str(out), "--epochs", "6", "--min-steps", "0", "--hidden", "128",
                 "--no-progress"])
    assert code == 0
    return out


@pytest.mark.slow
def test_report_has_every_section_and_figure(run_dir, small_course_files, capsys):
    test_file = small_course_files["test"]
    assert main(["report", str(run_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "score" in out and "report.html" in out
    for name in FIGURES.values():
        png = run_dir / "figures" / name
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    md = (run_dir / "report.md").read_text()
    sections = ["## Figures", "## The latent space, measured", "## Every metric", "## Appendix: configuration and environment"]
    positions = [md.index(section) for section in sections]
    assert positions == sorted(positions)  # headline first, configuration last
    assert md.index("**score ") < positions[0]
    for key in ("SSIM", "1 − MSE", "test ELBO", "accuracy", "f1_macro", "f1_micro", "score", "parameters", "env.torch",
                "training time", "train.seed", "gmm.max_fit_points", "gmm.n_neighbors", "novelty.flag_rate",
                "novelty.calibration_share", "| images the VAE trained on | 1,200 of 1,200 |",
                "| novelty threshold calibrated on | 1200 training images |"):
        assert key in md, key
    assert "| gmm.reg_covar | 1e-06 |" in md  # printed by magnitude, not as 0.0000
    for digit in (1, 4, 8):
        assert f"**Class {digit}**" in md
    assert "Bhattacharyya distance" in md and "inside its 1σ ellipse" in md
    # How unsettled the fit was: the usual fit's disagreement is in the appendix, unless it was unsettled in this 2-D
    # latent and a companion seeded the single fit that replaced it; the report then says why (no warning left).
    summary = json.loads((run_dir / "run.json").read_text())["summary"]
    disagreement, companion = summary["gmm"]["disagreement"], summary["companion"]
    assert "**Warning:** The few-label fit is unsettled" not in md
    if companion is None:
        assert disagreement <= UNSETTLED_DISAGREEMENT
        assert f"| other GMM candidates' disagreement | a median {disagreement:.1%} " in md
    else:  # 1,200 images of 1/4/8 give a 2-D fit whose candidates disagree (about 25% on the benchmark's)
        assert disagreement is None and companion["unsettled_disagreement"] > UNSETTLED_DISAGREEMENT
        assert (f"The fit without a companion was unsettled (its candidates put a median "
                f"{companion['unsettled_disagreement']:.1%} of the training images in another class), so the labels "
                f"were spread over the latent means of a 10-D companion VAE") in md
        assert "the GMM was fitted within the classes that spreading gave the training images" in md
    # and how many components a class got: as many as its points pay for, 8 at most in the companion's single fit
    k = summary["gmm"]["components_per_class"]
    assert k == (4 if companion is None else 8)
    assert f"| GMM candidate kept | {k} components per class, " in md
    page = (run_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(FIGURES)  # self-contained
    assert not re.search(r'src="(?!data:)', page)
    # The report's figures are the ones evaluate() gives for the run's model, GMM and test file.
    reported = json.loads((run_dir / "evaluation.json").read_text())["evaluation"]
    model = load_model_for(run_dir / "vae.pth")
    expected = evaluate(model, load_gmm_for(run_dir / "gmm_params.pkl", model, "vae.pth"), load_npz(test_file))
    assert reported["classification"] == expected["classification"]
    assert reported["ssim"] == pytest.approx(expected["ssim"])
    assert f"**score {expected['classification']['score']:.4f}**" in md
    assert reported["classification"]["score"] > 0.6  # 0.72 for this 6-epoch model on 1,200 images; guessing gives 0.33


def _listing(folder):
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_plot_writes_only_figures(run_dir, capsys):
    (run_dir / "figures" / FIGURES["manifold"]).unlink()
    before = _listing(run_dir)
    assert main(["plot", str(run_dir), "--no-progress"]) == 0
    after = _listing(run_dir)
    changed = {p for p in after if before.get(p) != after[p]}
    assert changed == {p.relative_to(run_dir) for p in (run_dir / "figures").iterdir()}  # every figure, nothing else
    assert (run_dir / "figures" / FIGURES["manifold"]).is_file()


def test_report_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 1
    assert "run.json" in capsys.readouterr().err


def test_report_refuses_a_test_file_of_another_image_size(run_dir, tmp_path, capsys):
    np.savez(tmp_path / "small.npz", data=np.zeros((4, 8, 8), np.uint8), labels=np.array([1, 4, 8, 1]))
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    assert main(["report", str(run_dir), "--test", str(tmp_path / "small.npz"), "--no-progress"]) == 1
    assert "small.npz: images are 8x8, but the model" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()} == before  # nothing rewritten


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
    gmm = few_label(X, X[lab], y[lab]).gmm_
    analysis = latent_analysis(gmm, X, confusion=np.diag([4000, 4000, 4000]))
    blob, _, circle = analysis["classes"]
    assert blob["inside_1sigma"] == pytest.approx(0.393, abs=0.03)
    assert blob["inside_2sigma"] == pytest.approx(0.865, abs=0.03)
    assert blob["principal_std"] == pytest.approx([2.0, 0.5], rel=0.05)
    assert abs(blob["major_axis_angle_deg"]) < 3
    assert circle["inside_1sigma"] < 0.2  # the ring's points avoid its centre
    text = " ".join(explain(analysis))
    assert "close to Gaussian" in text and "flatter than a Gaussian" in text and "No test image was confused" in text


def test_analysis_above_two_dimensions_measures_shells_that_hold_half_and_nine_tenths_of_a_gaussian():
    # In 10-D a Gaussian holds 0.02% inside its 1σ ellipsoid, so 1σ/2σ shares would call any cluster Gaussian;
    # the shells holding 50% and 90% of the mass tell a Gaussian from points on a sphere.
    from vaegmm.gmm import GaussianMixture

    rng = np.random.default_rng(0)
    dim = 10
    blob = rng.normal(size=(4000, dim)) * np.linspace(0.5, 2.0, dim)  # axes of different lengths
    sphere = rng.normal(size=(4000, dim))
    sphere = 4 * sphere / np.linalg.norm(sphere, axis=1, keepdims=True) + 50  # far away: its own class
    Z = np.concatenate([blob, sphere])
    means = np.stack([blob.mean(0), sphere.mean(0)])
    covs = np.stack([np.cov(blob.T), np.cov(sphere.T)])
    gmm = GaussianMixture.from_parameters(np.array([0.5, 0.5]), means, covs, np.array([0, 1]))
    analysis = latent_analysis(gmm, Z, confusion=np.array([[3999, 1], [0, 4000]]))
    assert [s["expected"] for s in analysis["shells"]] == [0.5, 0.9]
    gaussian, ring = analysis["classes"]
    assert gaussian["inside_shells"] == pytest.approx([0.5, 0.9], abs=0.03)
    assert gaussian["inside_1sigma"] < 0.01  # what the 1σ share would have compared
    assert gaussian["major_axis_dimension"] == dim and gaussian["major_axis_cosine"] > 0.95
    assert ring["inside_shells"][0] < 0.2 and ring["inside_shells"][1] > 0.99  # every point at one radius
    first, second = explain(analysis)[:2]
    assert "inside its 50%-mass ellipsoid" in first and "close to Gaussian" in first
    assert f"mostly along latent dimension {dim}" in first and "°" not in first
    assert "close to Gaussian" not in second
    assert "1 test image of 0 was taken for 1" in " ".join(explain(analysis))


def test_explanation_of_many_classes_names_the_closest_pairs_and_empty_components():
    from vaegmm.analysis import EXPLAINED_PAIRS
    from vaegmm.gmm import GaussianMixture

    n_classes = 12
    means = np.array([[3.0 * k, 0.0] for k in range(n_classes)] + [[100.0, 100.0]])  # the last component: no points near
    gmm = GaussianMixture.from_parameters(np.full(n_classes + 1, 1 / (n_classes + 1)), means,
                                          np.stack([np.eye(2)] * (n_classes + 1)), np.array(list(range(n_classes)) + [0]))
    rng = np.random.default_rng(0)
    Z = np.concatenate([rng.normal(m, 1.0, size=(200, 2)) for m in means[:n_classes]])
    analysis = latent_analysis(gmm, Z)
    assert len(analysis["pairs"]) == n_classes * (n_classes - 1) // 2
    text = explain(analysis)
    named = [s for s in text if s.startswith("Classes ")]
    assert len(named) == EXPLAINED_PAIRS
    rest = n_classes * (n_classes - 1) // 2 - EXPLAINED_PAIRS
    assert any(s.startswith(f"The other {rest} pairs lie further apart") for s in text)
    assert "no training image in it" in " ".join(text) and "nan" not in " ".join(text)
    assert analysis["classes"][0]["components"][1]["inside_1sigma"] is None  # JSON-safe, not NaN


def test_latent_plane_is_the_identity_in_2d_and_the_leading_principal_axes_above():
    from vaegmm.figures import LatentPlane

    rng = np.random.default_rng(0)
    Z2 = rng.normal(size=(500, 2))
    plane = LatentPlane.for_latents(Z2)
    np.testing.assert_array_equal(plane.project(Z2), Z2)
    # 5-D latents spread mostly along two known directions
    basis = np.linalg.qr(rng.normal(size=(5, 5)))[0]
    Z5 = (rng.normal(size=(2000, 5)) * [5.0, 3.0, 0.3, 0.2, 0.1]) @ basis.T
    plane = LatentPlane.for_latents(Z5)
    np.testing.assert_allclose(np.abs(plane.axes.T @ basis[:, :2]), np.eye(2), atol=0.02)
    P = rng.normal(size=(10, 2))
    np.testing.assert_allclose(plane.project(plane.lift(P)), P, atol=1e-12)
    cov = np.cov(Z5.T)
    np.testing.assert_allclose(plane.project_covariance(cov), np.cov(plane.project(Z5).T), rtol=1e-10, atol=1e-12)


def test_spread_grid_is_the_courses_grid_for_prior_latents_and_reaches_latents_spread_wider():
    from scipy.stats import norm

    from vaegmm.figures import MANIFOLD_QUANTILES, spread_grid

    rng = np.random.default_rng(0)
    course = norm.ppf(np.linspace(*MANIFOLD_QUANTILES, 20))
    np.testing.assert_allclose(spread_grid(rng.normal(size=200_000)), course, atol=0.02)
    # Latent means spread over ±6 (a neighbour term): the course's grid ends at ±1.64, this one covers the same
    # quantiles of the latent means themselves.
    wide = rng.normal(loc=1.0, scale=3.5, size=200_000)
    grid = spread_grid(wide)
    np.testing.assert_allclose(grid[[0, -1]], np.quantile(wide, MANIFOLD_QUANTILES), rtol=0.02)
    assert grid[0] < course[0] * 2.5 and grid[-1] > course[-1] * 2.5


def test_class_colours_are_distinct_for_any_labels_and_keep_the_digits_colours():
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    from vaegmm.plots import class_colours

    # Digits keep their own tab10 colour whatever other digits a run holds, so runs of different digits agree.
    assert class_colours([1, 4, 8])[4] == class_colours([3, 4, 9])[4] == to_hex(colormaps["tab10"](4))
    # Labels that agree modulo 10 (once all drawn alike) and large class sets get one colour each.
    for classes in ([-3, 7, 17, 27], list(range(0, 150, 10)), list(range(30))):
        colours = class_colours(classes)
        assert sorted(colours) == sorted(classes) and len(set(colours.values())) == len(classes)


def test_runs_split_a_1d_decision_map_into_its_regions():
    from vaegmm.plots import _runs

    assert _runs(np.array([0, 0, 1, 1, 1, 0, 2])) == [(0, 2), (2, 5), (5, 6), (6, 7)]
    assert _runs(np.array([3, 3, 3])) == [(0, 3)]


@pytest.mark.slow
def test_report_of_a_run_calibrated_on_held_out_images(small_course_files, tmp_path, capsys, monkeypatch):
    """The report says what set the threshold, and its histogram splits the held-out images from the VAE's."""
    import vaegmm.plots

    out = tmp_path / "run"
    assert main(["train", "--train", str(small_course_files["train"]), "--val", str(small_course_files["val"]),
                 "--test", str(small_course_files["test"]), "--out-dir", str(out), "--epochs", "2", "--min-steps", "0",
                 "--hidden", "64", "--calibration-share", "0.2", "--no-progress"]) == 0
    drawn = {}
    original = vaegmm.plots.score_histogram
    monkeypatch.setattr(vaegmm.plots, "score_histogram",
                        lambda train, test, threshold, path, **kw: drawn.update(train=train, held=kw["held_out_scores"])
                        or original(train, test, threshold, path, **kw))
    assert main(["report", str(out), "--no-progress"]) == 0
    assert len(drawn["train"]) == 960 and len(drawn["held"]) == 240
    md = (out / "report.md").read_text()
    assert "of 240 training images held out of the VAE's training, on which it was calibrated" in md
    assert "| images the VAE trained on | 960 of 1,200 |" in md and "| novelty.calibration_share | 0.2000 |" in md
