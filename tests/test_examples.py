"""The example scripts run as a user runs them, on a model saved by the estimator."""

import subprocess
import sys
from pathlib import Path

import pytest

from .test_estimator import SMALL

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def saved(course_arrays, tmp_path_factory):
    from vaegmm import VAEGMM

    X, y, _, _ = course_arrays
    folder = tmp_path_factory.mktemp("example") / "run"
    VAEGMM(**SMALL).fit(X, y).save(folder)
    return folder


def _run(script: str, *args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_generate_per_class_writes_one_row_per_class(saved, tmp_path):
    result = _run("generate_per_class.py", saved, tmp_path / "samples.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "samples.png").stat().st_size > 0 and "wrote" in result.stdout


def test_explore_latent_space_draws_the_map_and_a_path(saved, small_course_files, tmp_path):
    result = _run("explore_latent_space.py", saved, small_course_files["test"], tmp_path / "latent.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "latent.png").stat().st_size > 0


def test_few_label_classification_prints_what_the_readme_shows(tmp_path):
    """The README quotes this script's output; it trains the default model on MNIST's 1/4/8 (about 35 s)."""
    mnist = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist" / "mnist.npz"
    if not mnist.is_file():
        pytest.skip(f"{mnist} is not available")
    result = _run("few_label_classification.py", mnist, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # The README quotes 0.9870 and 5 of 5; another CPU may round the training differently, so the check is
    # the README's claim, not its last digit.
    assert lines[0].startswith("score on 3091 test images: ") and float(lines[0].rsplit(" ", 1)[1]) >= 0.98
    assert lines[1].startswith("first predictions: [") and "true: [" in lines[1]
    assert lines[2] == "noise images flagged as no known class: 5 of 5"
    assert (tmp_path / "runs" / "api_example" / "vae.pth").is_file()
