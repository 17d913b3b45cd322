"""Loaders: the course NPZ format and what they refuse."""

import warnings

import numpy as np
import pytest

from vaegmm.data import load_npz
from vaegmm.errors import DataError


def _save(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_uint8_and_float_and_flat_forms_agree(tmp_path):
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    a = load_npz(_save(tmp_path / "a.npz", data=u8, labels=np.arange(5)))
    b = load_npz(_save(tmp_path / "b.npz", data=u8.astype(np.float32) / 255))
    c = load_npz(_save(tmp_path / "c.npz", data=u8.reshape(5, 784)))
    d = load_npz(_save(tmp_path / "d.npz", data=u8.astype(np.float64)))  # floats in 0-255
    for ds in (a, b, c, d):
        assert ds.images.dtype == np.float32 and ds.images.shape == (5, 28, 28)
        np.testing.assert_allclose(ds.images, u8 / 255, atol=1e-6)
    assert a.labels.tolist() == [0, 1, 2, 3, 4] and b.labels is None
    assert c.stored_shape == (5, 784)


def test_one_channel_axis_first_or_last_loads_as_grey_images(tmp_path):
    u8 = np.random.default_rng(0).integers(0, 256, size=(4, 9, 7), dtype=np.uint8)
    for name, stored in (("last.npz", u8[..., None]), ("first.npz", u8[:, None])):
        ds = load_npz(_save(tmp_path / name, data=stored))
        assert ds.image_shape == (9, 7) and ds.stored_shape == stored.shape
        np.testing.assert_allclose(ds.images, u8 / 255, atol=1e-6)


def test_binarised_images_stay_black_and_white_whatever_the_dtype(tmp_path):
    binary = np.random.default_rng(0).random((4, 6, 6)) > 0.5
    for name, stored in (("u8.npz", binary.astype(np.uint8)), ("bool.npz", binary), ("i64.npz", binary.astype(np.int64))):
        ds = load_npz(_save(tmp_path / name, data=stored))
        np.testing.assert_array_equal(ds.images, binary.astype(np.float32))  # not 1/255


def test_image_size_comes_from_the_data(tmp_path):
    ds = load_npz(_save(tmp_path / "s.npz", data=np.zeros((3, 16, 12), np.uint8)))
    assert ds.image_shape == (16, 12)


@pytest.mark.parametrize(
    "data, pattern",
    [
        (np.zeros((2, 3, 28, 28), np.uint8), r"shape \(2, 3, 28, 28\).*Convert colour images to grey"),
        (np.zeros((2, 28, 28, 3), np.uint8), r"shape \(2, 28, 28, 3\).*Convert colour images to grey"),
        (np.zeros((4,), np.uint8), r"shape \(4,\)"),
        (np.zeros((0, 28, 28), np.uint8), "empty"),
        (np.zeros((2, 27 * 28), np.uint8), "square pixel count"),
        (np.zeros((28, 27), np.uint8), r"a single image is \(1, H, W\), image\[None\]"),
        (np.full((2, 28, 28), np.nan), "NaN or infinite"),
        (np.full((2, 28, 28), np.inf), "NaN or infinite"),
        (np.full((2, 28, 28), -1.0), r"\[-1, -1\].*0-255"),
        (np.full((2, 28, 28), 300.0), r"0-255"),
        (np.zeros((2, 28, 28), np.complex64), "dtype complex64"),
    ],
)
def test_bad_images_are_refused_with_the_file_named(tmp_path, data, pattern):
    path = _save(tmp_path / "bad.npz", data=data)
    with pytest.raises(DataError, match=pattern) as info:
        load_npz(path)
    assert "bad.npz" in str(info.value)


def test_missing_empty_truncated_and_foreign_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_npz(tmp_path / "nope.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty \(0 bytes\)"):
        load_npz(tmp_path / "empty.npz")
    good = _save(tmp_path / "good.npz", data=np.zeros((50, 28, 28), np.uint8))
    (tmp_path / "trunc.npz").write_bytes(good.read_bytes()[:500])
    with pytest.raises(DataError, match=r"trunc\.npz: not a readable \.npz"):
        load_npz(tmp_path / "trunc.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(DataError, match=r"text\.npz: not an \.npz archive"):
        load_npz(tmp_path / "text.npz")
    np.save(tmp_path / "single.npy", np.zeros((3, 28, 28), np.uint8))  # np.save, renamed: one array, no keys
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    with pytest.raises(DataError, match=r"single\.npz: holds a single \.npy array, not an \.npz archive"):
        load_npz(tmp_path / "single.npz")


def test_missing_data_key_lists_the_keys_found(tmp_path):
    path = _save(tmp_path / "k.npz", images=np.zeros((2, 28, 28)), y=np.zeros(2))
    with pytest.raises(DataError, match=r"no 'data' key; found \['images', 'y'\]"):
        load_npz(path)


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, data=np.array([np.zeros((28, 28)), None], dtype=object))
    with pytest.raises(DataError, match="dtype object"):
        load_npz(path)


def test_labels_must_match_and_exist_when_required(tmp_path):
    with pytest.raises(DataError, match=r"one label per image"):
        load_npz(_save(tmp_path / "l.npz", data=np.zeros((3, 28, 28), np.uint8), labels=np.zeros(2, int)))
    with pytest.raises(DataError, match="no 'labels' key"):
        load_npz(_save(tmp_path / "n.npz", data=np.zeros((3, 28, 28), np.uint8)), require_labels=True)
    with pytest.raises(DataError, match="integer class labels"):
        load_npz(_save(tmp_path / "f.npz", data=np.zeros((3, 28, 28), np.uint8), labels=np.array([0.5, 1, 2])))
    # A NaN label is named with where it is, not blamed on the float dtype, which whole numbers may have.
    with pytest.raises(DataError, match=r"1 value\(s\) that are not whole numbers .*index 2: nan"):
        load_npz(_save(tmp_path / "nan.npz", data=np.zeros((3, 28, 28), np.uint8), labels=np.array([4.0, 7.0, np.nan])))
    whole = load_npz(_save(tmp_path / "w.npz", data=np.zeros((3, 28, 28), np.uint8), labels=np.array([4.0, 7.0, -3.0])))
    assert whole.labels.dtype == np.int64 and whole.labels.tolist() == [4, 7, -3]


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays, array_shapes  # noqa: E402


@settings(max_examples=80, deadline=None)
@given(raw=arrays(
    dtype=st.sampled_from([np.uint8, np.int16, np.float32, np.float64]),
    shape=array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=9),
))
def test_loader_either_returns_valid_images_or_a_data_error(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("h") / "x.npz"
    np.savez(path, data=raw)
    try:
        ds = load_npz(path)
    except DataError as exc:
        assert "x.npz" in str(exc)
        return
    assert ds.images.dtype == np.float32 and ds.images.ndim == 3 and len(ds.images) > 0
    assert ds.images.min() >= 0 and ds.images.max() <= 1


def test_images_on_another_scale_load_with_a_warning(tmp_path):
    """scikit-learn's 8x8 digits (0-16) read on the 0-255 scale would be near black: say so, and still load."""
    from vaegmm.errors import DataWarning

    path = _save(tmp_path / "d16.npz", data=np.arange(16 * 8 * 8).reshape(16, 8, 8) % 17)
    with pytest.warns(DataWarning, match=r"d16.npz: 'data' has pixel values in \[0, 16\].*brighter than 6%.*0-16"):
        images = load_npz(path).images
    assert images.max() == pytest.approx(16 / 255)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # ordinary 0-255 and 0-1 images: no warning
        load_npz(_save(tmp_path / "u8.npz", data=np.full((2, 8, 8), 255, np.uint8)))
        load_npz(_save(tmp_path / "f.npz", data=np.full((2, 8, 8), 0.2)))


def test_the_command_line_shows_a_data_warning_as_one_line(tmp_path, capsys):
    from vaegmm.cli import main

    path = _save(tmp_path / "d16.npz", data=np.arange(16 * 8 * 8).reshape(16, 8, 8) % 17)
    main(["reconstruct", str(path), "--model", str(tmp_path / "missing.pth"), "--out", str(tmp_path / "r.npz")])
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("warning: ") and "d16.npz: 'data' has pixel values in [0, 16]" in err[0]
    assert err[1].startswith("error: ") and "missing.pth" in err[1]
