"""Every bad input gives one clear error naming the file, a non-zero exit, no traceback, no output left."""

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vaegmm.cli import course_main, main

REPO = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "1", "--min-steps", "0", "--hidden", "32", "--no-progress"]


def _images(n=60, side=28, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, side, side), dtype=np.uint8)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    labels = np.repeat([1, 4, 8], 20)
    np.savez(d / "train.npz", data=_images(), labels=labels)
    np.savez(d / "val.npz", data=_images(15, seed=1), labels=np.repeat([1, 4, 8], 5))
    np.savez(d / "test.npz", data=_images(12, seed=2), labels=np.repeat([1, 4, 8], 4))
    assert main(["train", "--train", str(d / "train.npz"), "--val", str(d / "val.npz"), "--out-dir", str(d / "run"), *TINY]) == 0
    assert main(["train", "--train", str(d / "train.npz"), "--val", str(d / "val.npz"), "--out-dir", str(d / "run3"),
                 "--latent-dim", "3", *TINY]) == 0
    return d


def bad_npz(d: Path, name: str, **arrays) -> Path:
    path = d / name
    np.savez(path, **arrays)
    return path


def _expect_error(capsys, code, *fragments):
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith("error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _truncated(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[:400])
    return path


# (case name, builder of the input file) for images given to test_classifier
IMAGE_CASES = {
    "missing file": (lambda d: d / "nothing.npz", ["no such file"]),
    "zero-byte": (lambda d: _write(d / "zero.npz", b""), ["empty (0 bytes)"]),
    "truncated": (lambda d: _truncated(bad_npz(d, "trunc.npz", data=_images(20))), ["not a readable .npz"]),
    "not npz": (lambda d: _write(d / "text.npz", b"id,label\n1,4\n"), ["not an .npz archive"]),
    "no data key": (lambda d: bad_npz(d, "keys.npz", x=_images(3)), ["no 'data' key; found ['x']"]),
    "27x27": (lambda d: bad_npz(d, "small.npz", data=_images(3, side=27)), ["27x27", "trained on 28x28"]),
    "channels": (lambda d: bad_npz(d, "chan.npz", data=np.zeros((3, 3, 28, 28), np.uint8)), ["(3, 3, 28, 28)"]),
    "1-D": (lambda d: bad_npz(d, "flat.npz", data=np.zeros(5, np.uint8)), ["shape (5,)"]),
    "empty array": (lambda d: bad_npz(d, "emptyarr.npz", data=np.zeros((0, 28, 28), np.uint8)), ["is empty"]),
    "object dtype": (lambda d: bad_npz(d, "obj.npz", data=np.array([None, 1], dtype=object)), ["dtype object"]),
    "complex dtype": (lambda d: bad_npz(d, "cplx.npz", data=np.zeros((2, 28, 28), np.complex128)), ["complex128"]),
    "NaN": (lambda d: bad_npz(d, "nan.npz", data=np.full((2, 28, 28), np.nan)), ["NaN or infinite"]),
    "inf": (lambda d: bad_npz(d, "inf.npz", data=np.full((2, 28, 28), -np.inf)), ["NaN or infinite"]),
    "below 0": (lambda d: bad_npz(d, "neg.npz", data=np.full((2, 28, 28), -0.5)), ["expected 0-255"]),
    "above 255": (lambda d: bad_npz(d, "big.npz", data=np.full((2, 28, 28), 256.0)), ["expected 0-255"]),
}


@pytest.mark.parametrize("case", list(IMAGE_CASES))
def test_bad_images_for_the_classifier(case, files, capsys, tmp_path, monkeypatch):
    build, fragments = IMAGE_CASES[case]
    path = build(tmp_path)
    monkeypatch.chdir(tmp_path)
    code = course_main([str(path), "test_classifier", str(files / "run/vae.pth"), str(files / "run/gmm_params.pkl")])
    _expect_error(capsys, code, Path(path).name, *fragments)
    assert not (tmp_path / "vae.csv").exists()


@pytest.mark.parametrize("case", ["NaN", "27x27", "no data key"])
def test_bad_images_for_reconstruction(case, files, capsys, tmp_path, monkeypatch):
    build, fragments = IMAGE_CASES[case]
    path = build(tmp_path)
    monkeypatch.chdir(tmp_path)
    code = course_main([str(path), "test_reconstruction", str(files / "run/vae.pth")])
    _expect_error(capsys, code, Path(path).name, *fragments)
    assert not (tmp_path / "vae_reconstructed.npz").exists()


VAL_CASES = {
    "labels missing": (dict(data=_images(6)), ["no 'labels' key"]),
    "one class only": (dict(data=_images(6), labels=np.full(6, 4)), ["1 class", "at least 2"]),
    "label count mismatch": (dict(data=_images(6), labels=np.array([1, 4, 8])), ["one label per image"]),
    "float labels": (dict(data=_images(3), labels=np.array([1.5, 4, 8])), ["integer class labels"]),
    "val of another size": (dict(data=_images(6, side=20), labels=np.repeat([1, 4], 3)), ["20x20", "28x28"]),
}


@pytest.mark.parametrize("case", list(VAL_CASES))
def test_bad_validation_sets_fail_before_training(case, files, capsys, tmp_path, monkeypatch):
    arrays, fragments = VAL_CASES[case]
    val = bad_npz(tmp_path, "val.npz", **arrays)
    monkeypatch.chdir(tmp_path)
    code = course_main([str(files / "train.npz"), str(val), "train", "vae.pth", "gmm_params.pkl"])
    _expect_error(capsys, code, "val.npz", *fragments)
    assert not (tmp_path / "vae.pth").exists() and not (tmp_path / "gmm_params.pkl").exists()


def test_a_requested_digit_without_labelled_image(files, capsys, tmp_path):
    code = main(["train", "--train", str(files / "train.npz"), "--val", str(files / "val.npz"), "--out-dir", str(tmp_path / "o"),
                 "--digits", "1,4,7", *TINY])
    _expect_error(capsys, code, "val.npz", "no labelled image of class(es) [7]")
    assert not (tmp_path / "o" / "vae.pth").exists()


def test_a_class_labelled_minus_one_is_trained_with_a_note(files, capsys, tmp_path):
    """-1 means "unlabelled" to scikit-learn and to VAEGMM.fit; in a labelled file it is a class, and train says so."""
    val = bad_npz(tmp_path, "val.npz", data=_images(15, seed=1), labels=np.repeat([1, 4, -1], 5))
    assert main(["train", "--train", str(files / "train.npz"), "--val", str(val), "--out-dir", str(tmp_path), *TINY]) == 0
    err = capsys.readouterr().err
    assert "note: " in err and "5 images are labelled -1, which is trained as a class of its own here" in err
    assert main(["train", "--train", str(files / "train.npz"), "--val", str(files / "val.npz"), "--out-dir", str(tmp_path),
                 *TINY]) == 0
    assert "note:" not in capsys.readouterr().err


@pytest.mark.parametrize("option, fragment", [
    (["--warmup", "1.5"], "warmup_fraction (--warmup) must be in [0, 1); got 1.5"),
    (["--epochs", "0", "--min-steps", "0"], "epochs must be >= 1; got 0"),
    (["--beta", "-1"], "beta must be a finite number >= 0; got -1.0"),
    (["--components-per-class", "0"], "components_per_class (--components-per-class) must be an integer >= 1"),
    (["--hidden", "8000,4000"], "give 76,592,788 parameters, over the 20,000,000 limit"),
    (["--latent-dim", "0"], "latent_dim (--latent-dim) must be >= 1"),
    (["--lr", "nan"], "lr must be a finite number > 0"),
    (["--gmm-max-iter", "0"], "max_iter (--gmm-max-iter) must be >= 1"),
    (["--seedings", "kmeans,spectral"],
     "seedings must be a non-empty list without repeats from ['kmeans', 'nearest', 'spreading', 'inputs']"),
    (["--choose-by", "inputs"], "seedings (with --choose-by inputs) must be a list including 'inputs'"),
    (["--input-components", "0"], "input_components must be >= 1"),
    (["--flag-rate", "0"], "flag_rate (--flag-rate) must be in (0, 1)"),
    (["--max-class-shift", "2"], "max_class_shift must be in [0, 1]"),
])
def test_out_of_range_training_option_is_a_usage_error_before_any_work(option, fragment, files, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--train", str(files / "train.npz"), "--val", str(files / "val.npz"),
              "--out-dir", str(tmp_path / "o"), *option])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("value, fragment", [("0", "expected at least 1; got 0"), ("two", "expected a whole number")])
def test_demo_needs_at_least_one_label_per_digit(value, fragment, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--labels-per-digit", value, "--out-dir", str(tmp_path / "o")])
    assert exit_.value.code == 2
    assert f"argument --labels-per-digit: {fragment}" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("digits", ["7", "3,3", "3,12"])
def test_demo_needs_two_different_digits_before_reading_any_data(digits, capsys, tmp_path):
    # The data folder does not exist: the digits are refused before it would be read or downloaded.
    code = main(["demo", "--digits", digits, "--data-dir", str(tmp_path / "no-mnist"), "--out-dir", str(tmp_path / "o")])
    assert code == 1
    err = capsys.readouterr().err
    assert "digits must be two or more different digits among 0-9; got [" in err and "Traceback" not in err
    assert not (tmp_path / "no-mnist").exists()


def test_report_names_a_recorded_data_file_that_is_gone(files, capsys, tmp_path):
    train = tmp_path / "moved.npz"
    train.write_bytes((files / "train.npz").read_bytes())
    out = tmp_path / "run"
    assert main(["train", "--train", str(train), "--val", str(files / "val.npz"), "--out-dir", str(out), *TINY]) == 0
    train.unlink()
    assert main(["report", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"{train}: the training file that run.json records for this run is no longer there" in err


@pytest.mark.parametrize("share, remedy", [("0", "calibrate on images the VAE does not train on (--calibration-share 0.1)"),
                                           ("0.1", "hold out more images to calibrate on (--calibration-share)")])
def test_train_warns_when_new_ordinary_images_are_flagged_too_often(share, remedy, small_course_files, capsys, tmp_path):
    """Labelled noise images stand in for new images that the threshold flags far more often than asked."""
    np.savez(tmp_path / "val.npz", data=_images(20), labels=np.repeat([1, 4], 10))  # nothing like the digits trained on
    assert main(["train", "--train", str(small_course_files["train"]), "--val", str(tmp_path / "val.npz"), "--out-dir",
                 str(tmp_path), "--calibration-share", share, *TINY]) == 0
    captured = capsys.readouterr()
    assert re.search(r"novelty on the 20 labelled images the VAE was not trained on: \d+ flagged \(0.20 expected", captured.out)
    assert "warning: that is more than a 1.0% rate plausibly flags" in captured.err and remedy in captured.err


def test_gmm_file_of_an_older_novelty_format_classifies_for_the_course_and_is_refused_for_novelty(files, capsys, tmp_path,
                                                                                                  monkeypatch):
    import pickle

    state = pickle.loads((files / "run/gmm_params.pkl").read_bytes())
    state["novelty"]["version"] = 3  # the larger of two statistics, before the edge dissimilarity
    old = tmp_path / "old_gmm.pkl"
    old.write_bytes(pickle.dumps(state, protocol=4))
    monkeypatch.chdir(tmp_path)
    assert course_main([str(files / "test.npz"), "test_classifier", str(files / "run/vae.pth"), str(old)]) == 0
    assert (tmp_path / "vae.csv").read_text().splitlines()[0] == "Predicted_Label"
    capsys.readouterr()
    code = main(["classify", str(files / "test.npz"), "--model", str(files / "run/vae.pth"), "--gmm", str(old),
                 "--out", str(tmp_path / "p.csv")])
    _expect_error(capsys, code, "old_gmm.pkl", "of another version", "re-create the file with the 'train' command")
    assert not (tmp_path / "p.csv").exists()


def test_gmm_of_another_latent_size(files, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = course_main([str(files / "test.npz"), "test_classifier", str(files / "run/vae.pth"), str(files / "run3/gmm_params.pkl")])
    _expect_error(capsys, code, "gmm_params.pkl", "3-D components", "2-D latent space")


def test_gmm_of_another_model_with_the_same_latent_size(files, capsys, tmp_path, monkeypatch):
    other = tmp_path / "other"
    assert main(["train", "--train", str(files / "train.npz"), "--val", str(files / "val.npz"), "--out-dir", str(other),
                 "--seed", "1", *TINY]) == 0
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    code = course_main([str(files / "test.npz"), "test_classifier", str(files / "run/vae.pth"), str(other / "gmm_params.pkl")])
    _expect_error(capsys, code, "another model's latent space")


MODEL_CASES = {
    "other architecture": (lambda p: torch.save({"fc1.weight": torch.zeros(3, 3)}, p), ["not a vaegmm model file"]),
    "mismatched weights": (None, ["do not match its recorded architecture"]),
    "corrupt": (lambda p: p.write_bytes(b"PK\x03\x04" + os.urandom(300)), ["not a readable vaegmm model file", "truncated or corrupt"]),
    "text renamed": (lambda p: p.write_text("not a model\n"), ["not a readable vaegmm model file", "not a PyTorch file"]),
    "missing": (lambda p: None, ["no such model file"]),
}


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_bad_model_files(case, files, capsys, tmp_path, monkeypatch):
    build, fragments = MODEL_CASES[case]
    path = tmp_path / "vae.pth"
    if build is None:  # a vaegmm file whose config claims another architecture than its weights
        payload = torch.load(files / "run/vae.pth", weights_only=True)
        payload["config"]["hidden_sizes"] = [64]
        torch.save(payload, path)
    else:
        build(path)
    monkeypatch.chdir(tmp_path)
    code = course_main([str(files / "test.npz"), "test_reconstruction", str(path)])
    _expect_error(capsys, code, "vae.pth", *fragments)
    assert not (tmp_path / "vae_reconstructed.npz").exists()


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def test_gmm_pickle_that_would_run_code(files, capsys, tmp_path, monkeypatch):
    marker = str(tmp_path / "was_run")
    evil = tmp_path / "gmm_params.pkl"
    evil.write_bytes(pickle.dumps(_RunsCode(marker)))
    monkeypatch.chdir(tmp_path)
    code = course_main([str(files / "test.npz"), "test_classifier", str(files / "run/vae.pth"), str(evil)])
    _expect_error(capsys, code, "gmm_params.pkl", "refusing to load 'os.makedirs'")
    assert not os.path.exists(marker) and not (tmp_path / "vae.csv").exists()


def test_model_file_that_would_run_code(files, capsys, tmp_path, monkeypatch):
    marker = str(tmp_path / "was_run")
    evil = tmp_path / "vae.pth"
    torch.save({"format": "vaegmm.vae", "payload": _RunsCode(marker)}, evil)
    monkeypatch.chdir(tmp_path)
    code = course_main([str(files / "test.npz"), "test_reconstruction", str(evil)])
    err = _expect_error(capsys, code, "vae.pth", "holds a Python object, os.makedirs", "never runs code")
    # torch's own message advises weights_only=False, which would run it: that advice must not reach the user
    assert "weights_only` set to `False" not in err and "\x1b[" not in err
    assert not os.path.exists(marker) and not (tmp_path / "vae_reconstructed.npz").exists()


def test_model_and_gmm_files_swapped(files, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, gmm = str(files / "run/vae.pth"), str(files / "run/gmm_params.pkl")
    code = course_main([str(files / "test.npz"), "test_classifier", gmm, model])
    _expect_error(capsys, code, "gmm_params.pkl: is a vaegmm GMM parameter file", "model file first")
    code = course_main([str(files / "test.npz"), "test_classifier", model, model])
    _expect_error(capsys, code, "vae.pth: is a zip archive", "not a GMM parameter file", "gmm_params.pkl")
    assert not (tmp_path / "vae.csv").exists()


@pytest.mark.parametrize("case", ["truncated", "foreign dict", "empty"])
def test_corrupt_or_foreign_gmm_files(case, files, capsys, tmp_path):
    path = tmp_path / "gmm_params.pkl"
    good = (files / "run/gmm_params.pkl").read_bytes()
    path.write_bytes({"truncated": good[: len(good) // 2], "foreign dict": pickle.dumps({"weights": [1.0]}), "empty": b""}[case])
    code = main(["classify", str(files / "test.npz"), "--model", str(files / "run/vae.pth"), "--gmm", str(path),
                 "--out", str(tmp_path / "p.csv")])
    _expect_error(capsys, code, "gmm_params.pkl")
    assert not (tmp_path / "p.csv").exists()


def test_output_in_a_missing_folder(files, capsys, tmp_path):
    code = main(["classify", str(files / "test.npz"), "--model", str(files / "run/vae.pth"), "--gmm",
                 str(files / "run/gmm_params.pkl"), "--out", str(tmp_path / "nope" / "p.csv")])
    _expect_error(capsys, code, "p.csv", "does not exist", "mkdir -p")


def test_training_outputs_checked_before_training(files, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = course_main([str(files / "train.npz"), str(files / "val.npz"), "train", "vae.pth", "missing/gmm_params.pkl"])
    _expect_error(capsys, code, "gmm_params.pkl", "does not exist")
    assert not (tmp_path / "vae.pth").exists()


def test_output_in_a_read_only_folder(files, capsys, tmp_path):
    if os.geteuid() == 0:  # root writes into chmod-555 folders; /proc refuses new files even to root
        target = Path("/proc/vaegmm_out.csv")
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        target = ro / "vaegmm_out.csv"
    code = main(["classify", str(files / "test.npz"), "--model", str(files / "run/vae.pth"), "--gmm",
                 str(files / "run/gmm_params.pkl"), "--out", str(target)])
    _expect_error(capsys, code, "vaegmm_out.csv")
    assert not target.exists()


def test_previous_output_survives_a_failed_run(files, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vae.csv").write_text("Predicted_Label\n1\n")
    nan = bad_npz(tmp_path, "nan.npz", data=np.full((2, 28, 28), np.nan))
    course_main([str(nan), "test_classifier", str(files / "run/vae.pth"), str(files / "run/gmm_params.pkl")])
    assert (tmp_path / "vae.csv").read_text() == "Predicted_Label\n1\n"


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["missing.npz", "test_reconstruction", "vae.pth"], ["classify", "missing.npz"]])
def test_real_process_exit_code_and_no_traceback(argv, tmp_path):
    cmd = [sys.executable, str(REPO / "vae.py")] if argv[1] == "test_reconstruction" else [sys.executable, "-m", "vaegmm.cli"]
    result = subprocess.run(cmd + argv, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1
    assert "missing.npz" in result.stderr and "Traceback" not in result.stderr


def test_an_input_that_is_a_folder(files, capsys, tmp_path, monkeypatch):
    (tmp_path / "images.npz").mkdir()
    monkeypatch.chdir(tmp_path)
    code = course_main([str(tmp_path / "images.npz"), "test_classifier", str(files / "run/vae.pth"), str(files / "run/gmm_params.pkl")])
    _expect_error(capsys, code, "images.npz", "is a folder")


def test_an_output_that_is_a_folder(files, capsys, tmp_path):
    (tmp_path / "p.csv").mkdir()
    code = main(["classify", str(files / "test.npz"), "--model", str(files / "run/vae.pth"), "--gmm",
                 str(files / "run/gmm_params.pkl"), "--out", str(tmp_path / "p.csv")])
    _expect_error(capsys, code, "p.csv", "is a folder")


def test_diverging_training_says_to_lower_the_learning_rate(files, capsys, tmp_path):
    code = main(["train", "--train", str(files / "train.npz"), "--val", str(files / "val.npz"), "--out-dir",
                 str(tmp_path / "o"), "--lr", "1e30", "--warmup", "0", *TINY])
    _expect_error(capsys, code, "training diverged", "lower the learning rate (--lr)")
    assert not (tmp_path / "o" / "vae.pth").exists()
