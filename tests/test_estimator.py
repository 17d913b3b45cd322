"""vaegmm.VAEGMM: scikit-learn's conventions, the same files and results as the CLI, the same clear errors."""

import numpy as np
import pytest

from vaegmm import VAEGMM, TrainConfig, VAEConfig
from vaegmm.cli import main
from vaegmm.errors import DataError

SMALL = dict(vae=VAEConfig(hidden_sizes=(64,)), train=TrainConfig(epochs=3, min_steps=0), device="cpu")


@pytest.fixture(scope="module")
def fitted(course_arrays):
    X, y, _, _ = course_arrays
    return VAEGMM(**SMALL).fit(X, y)


def test_parameters_follow_scikit_learns_protocol():
    sklearn_base = pytest.importorskip("sklearn.base")
    est = VAEGMM(**SMALL)
    assert est.get_params()["vae"] == SMALL["vae"] and not hasattr(est, "model_")  # __init__ only stores
    twin = sklearn_base.clone(est)
    assert twin.get_params() == est.get_params() and twin is not est
    est.set_params(random_state=3)
    assert est.random_state == 3
    with pytest.raises(ValueError, match="unknown parameters \\['alpha'\\]"):
        est.set_params(alpha=1)


def test_checks_from_scikit_learn_that_apply_to_an_image_model():
    checks = pytest.importorskip("sklearn.utils.estimator_checks")
    est = VAEGMM(**SMALL)
    for check in (checks.check_no_attributes_set_in_init, checks.check_get_params_invariance,
                  checks.check_set_params, checks.check_parameters_default_constructible):
        check("VAEGMM", est)


@pytest.mark.slow
def test_fit_predict_and_the_other_methods(fitted, course_arrays):
    X, _, X_test, y_test = course_arrays
    assert fitted.classes_.tolist() == [1, 4, 8]
    proba = fitted.predict_proba(X_test)
    assert proba.shape == (len(X_test), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert fitted.score(X_test, y_test) > 0.5
    Z = fitted.transform(X_test[:7])
    assert Z.shape == (7, 2)
    assert fitted.inverse_transform(Z).shape == (7, 28, 28)
    np.testing.assert_allclose(fitted.reconstruct(X_test[:7]), fitted.inverse_transform(Z), atol=1e-6)
    images, classes = fitted.sample(12, class_=4, random_state=0)
    assert images.shape == (12, 28, 28) and set(classes) == {4}
    typical = fitted.score_samples(X_test[:50])
    noise = fitted.score_samples(np.random.default_rng(0).uniform(0, 1, (50, 28, 28)))
    assert typical.mean() > noise.mean()


@pytest.mark.slow
def test_clone_and_fit_reproduce_a_fit_bit_for_bit(fitted, course_arrays):
    sklearn_base = pytest.importorskip("sklearn.base")
    X, y, X_test, _ = course_arrays
    again = sklearn_base.clone(fitted).fit(X, y)
    for name, tensor in fitted.model_.state_dict().items():
        assert np.array_equal(tensor.numpy(), again.model_.state_dict()[name].numpy()), name
    np.testing.assert_array_equal(fitted.gmm_.means_, again.gmm_.means_)
    np.testing.assert_array_equal(fitted.predict_proba(X_test), again.predict_proba(X_test))


@pytest.mark.slow
def test_cli_and_api_give_the_same_model_and_files_load_both_ways(course_arrays, small_course_files, tmp_path):
    X, y, X_test, _ = course_arrays
    np.savez(tmp_path / "val.npz", data=X[y != -1], labels=y[y != -1])
    np.savez(tmp_path / "train.npz", data=X[y == -1])
    assert main(["train", "--train", str(tmp_path / "train.npz"), "--val", str(tmp_path / "val.npz"), "--out-dir",
                 str(tmp_path / "cli"), "--hidden", "64", "--epochs", "3", "--min-steps", "0", "--device", "cpu", "--no-progress"]) == 0
    loaded = VAEGMM.load(tmp_path / "cli", device="cpu")
    assert main(["classify", str(small_course_files["test"]), "--model", str(tmp_path / "cli/vae.pth"), "--gmm",
                 str(tmp_path / "cli/gmm_params.pkl"), "--out", str(tmp_path / "p.csv")]) == 0
    cli_predictions = np.loadtxt(tmp_path / "p.csv", skiprows=1, delimiter=",", usecols=0, dtype=int)
    np.testing.assert_array_equal(loaded.predict(X_test), cli_predictions)
    # the API trained on all images with -1 for the unlabelled ones sees the labelled ones in training too,
    # so compare it with a CLI run on the same images: save, then classify with the CLI
    api = VAEGMM(**SMALL).fit(X, y)
    api.save(tmp_path / "api")
    assert main(["classify", str(small_course_files["test"]), "--model", str(tmp_path / "api/vae.pth"), "--gmm",
                 str(tmp_path / "api/gmm_params.pkl"), "--out", str(tmp_path / "q.csv")]) == 0
    np.testing.assert_array_equal(api.predict(X_test),
                                  np.loadtxt(tmp_path / "q.csv", skiprows=1, delimiter=",", usecols=0, dtype=int))


@pytest.mark.slow
def test_bad_inputs_give_the_clis_clear_errors(fitted):
    with pytest.raises(DataError, match="NaN or infinite"):
        fitted.predict(np.full((2, 28, 28), np.nan))
    with pytest.raises(DataError, match="images are 27x27, but the model this VAEGMM was trained on 28x28"):
        fitted.predict(np.zeros((2, 27, 27)))
    with pytest.raises(DataError, match=r"labels hold 1 class \(\[3\]\); expected at least 2 classes"):
        VAEGMM(**SMALL).fit(np.zeros((10, 8, 8)), np.array([3] * 2 + [-1] * 8))
    with pytest.raises(DataError, match="labels hold no class; expected at least 2 classes"):
        VAEGMM(**SMALL).fit(np.zeros((10, 8, 8)), np.full(10, -1))
    with pytest.raises(DataError, match="one label per image"):
        VAEGMM(**SMALL).fit(np.zeros((10, 8, 8)), np.zeros(3, int))
    with pytest.raises(ValueError, match="n_components"):
        VAEGMM(**SMALL).fit(np.zeros((10, 8, 8)))
    with pytest.raises(RuntimeError, match="not fitted"):
        VAEGMM().predict(np.zeros((1, 8, 8)))


@pytest.mark.slow
def test_fit_without_labels_gives_an_unsupervised_mixture():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 0.1, (300, 8, 8))
    X[:150, :4] += 0.8
    est = VAEGMM(**SMALL, n_components=2).fit(X)
    assert est.classes_.tolist() == [0, 1]
    assert est.predict(X).shape == (300,)


@pytest.mark.slow
def test_fit_hands_the_unlabelled_images_to_the_inputs_seeding(course_arrays):
    from vaegmm import GMMConfig

    X, y, X_test, y_test = course_arrays
    est = VAEGMM(**SMALL, gmm=GMMConfig(seedings=("nearest", "inputs"), choose_by="inputs")).fit(X, y)
    assert {c.seeding for c in est.fit_.candidates_} == {"nearest", "inputs"}
    assert all(0 < c.input_agreement <= 1 for c in est.fit_.candidates_)
    assert est.predict(X_test).shape == y_test.shape


@pytest.mark.slow
def test_fit_holds_unlabelled_images_out_to_calibrate_the_novelty_threshold(course_arrays):
    from vaegmm import NoveltyConfig

    X, y, X_test, _ = course_arrays
    est = VAEGMM(**SMALL, novelty=NoveltyConfig(calibration_share=0.2)).fit(X, y)
    n_unlabelled = int((y == -1).sum())
    assert est.novelty_.held_out_ and est.novelty_.n_calibration_ == round(0.2 * n_unlabelled)
    assert est.classes_.tolist() == [1, 4, 8] and est.predict(X_test).shape == (len(X_test),)
    # SMALL trains 3 epochs with no --min-steps: by default nothing is held out and every image calibrates.
    assert VAEGMM(**SMALL).fit(X, y).novelty_.n_calibration_ == len(X)


def test_save_records_the_components_the_fit_settled(tmp_path):
    from sklearn.datasets import load_digits

    from vaegmm.storage import load_plain_pickle

    digits = load_digits()
    keep = digits.target < 3
    X, y_true = digits.images[keep][:300] / 16, digits.target[keep][:300]
    y = np.full(len(X), -1)
    for c in range(3):
        y[np.flatnonzero(y_true == c)[:5]] = c
    # about 100 points a class in a 10-D latent pay for one 66-parameter Gaussian each, not the most (4)
    api = VAEGMM(vae=VAEConfig(hidden_sizes=(16,), latent_dim=10), train=TrainConfig(epochs=1, min_steps=0),
                 device="cpu").fit(X, y)
    assert api.fit_.config_.components_per_class == 1 and len(api.gmm_.means_) == 3
    state = load_plain_pickle(api.save(tmp_path / "api") / "gmm_params.pkl")
    assert state["config"]["components_per_class"] == 1
