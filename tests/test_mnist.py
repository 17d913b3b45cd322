"""MNIST loaders (IDX, Keras npz) and the download path against a local HTTP server."""

import gzip
import hashlib
import http.server
import socket
import threading

import numpy as np
import pytest

from vaegmm.mnist import IDX_FILES, fetch_mnist, load_mnist, load_mnist_arrays, read_idx, select_digits
from vaegmm.errors import DataError


def idx_bytes(array: np.ndarray) -> bytes:
    code = {np.uint8: 0x08}[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()


def fake_mnist(rng, n_train=60, n_test=30):
    return {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": np.tile(np.arange(10, dtype=np.uint8), n_train // 10),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": np.tile(np.arange(10, dtype=np.uint8), n_test // 10),
    }


def write_idx_dir(folder, arrays, *, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in IDX_FILES.items():
        raw = idx_bytes(arrays[key])
        (folder / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(raw, mtime=0) if gz else raw)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    arrays = fake_mnist(np.random.default_rng(0))
    write_idx_dir(tmp_path, arrays, gz=gz)
    loaded = load_mnist_arrays(tmp_path)
    for key in arrays:
        np.testing.assert_array_equal(loaded[key], arrays[key])


def test_keras_npz_and_digit_filter(tmp_path):
    arrays = fake_mnist(np.random.default_rng(1))
    np.savez(tmp_path / "mnist.npz", x_train=arrays["train_images"], y_train=arrays["train_labels"],
             x_test=arrays["test_images"], y_test=arrays["test_labels"])
    splits = load_mnist(tmp_path, digits=(1, 4, 8), labels_per_digit=2, seed=3, download=False)
    assert set(splits.train.labels) == {1, 4, 8} and len(splits.train) == 18
    assert sorted(splits.labelled.labels.tolist()) == [1, 1, 4, 4, 8, 8]
    again = load_mnist(tmp_path, digits=(1, 4, 8), labels_per_digit=2, seed=3, download=False)
    np.testing.assert_array_equal(again.labelled.images, splits.labelled.images)  # the draw is seeded
    assert splits.train.images.max() <= 1.0 and splits.train.images.dtype == np.float32


def test_too_few_images_for_the_labels_asked(tmp_path):
    arrays = fake_mnist(np.random.default_rng(2))
    with pytest.raises(DataError, match="digit 1 has 6 training images; 7 labelled"):
        select_digits(arrays, digits=(1, 4), labels_per_digit=7, seed=0, source="x")


def test_truncated_idx_is_refused(tmp_path):
    raw = idx_bytes(np.zeros((5, 28, 28), np.uint8))
    (tmp_path / "t.idx").write_bytes(raw[:-10])
    with pytest.raises(DataError, match="announces shape"):
        read_idx(tmp_path / "t.idx")
    (tmp_path / "bad.idx").write_bytes(b"hello world")
    with pytest.raises(DataError, match="bad magic"):
        read_idx(tmp_path / "bad.idx")


@pytest.fixture
def server(tmp_path):
    """Serves tmp_path/www on 127.0.0.1 for the duration of a test."""
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _publish(root, arrays):
    checksums = {}
    for key, stem in IDX_FILES.items():
        data = gzip.compress(idx_bytes(arrays[key]), mtime=0)
        (root / f"{stem}.gz").write_bytes(data)
        checksums[f"{stem}.gz"] = hashlib.md5(data).hexdigest()
    return checksums


def test_download_good_files(server, tmp_path):
    root, url = server
    arrays = fake_mnist(np.random.default_rng(4))
    checksums = _publish(root, arrays)
    dest = tmp_path / "cache"
    fetch_mnist(dest, mirrors=(url,), checksums=checksums, progress=False)
    loaded = load_mnist_arrays(dest)
    np.testing.assert_array_equal(loaded["test_images"], arrays["test_images"])
    assert not list(dest.glob("*.tmp")) and not list(dest.glob(".*"))


def test_corrupt_download_is_rejected_and_leaves_nothing(server, tmp_path):
    root, url = server
    checksums = _publish(root, fake_mnist(np.random.default_rng(5)))
    name = "t10k-images-idx3-ubyte.gz"
    (root / name).write_bytes((root / name).read_bytes()[:-7] + b"garbage")
    dest = tmp_path / "cache"
    with pytest.raises(DataError, match=rf"(?s)could not download {name}.*MD5.*does not match"):
        fetch_mnist(dest, mirrors=(url,), checksums=checksums, progress=False)
    assert not (dest / name).exists()
    assert [p.name for p in dest.iterdir() if p.name.startswith(".")] == []


def test_second_mirror_is_used_when_the_first_fails(server, tmp_path):
    root, url = server
    arrays = fake_mnist(np.random.default_rng(6))
    checksums = _publish(root, arrays)
    fetch_mnist(tmp_path / "c", mirrors=(url + "missing/", url), checksums=checksums, progress=False)
    assert load_mnist_arrays(tmp_path / "c") is not None


def test_unreachable_mirror_says_where_to_put_the_files(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dest = tmp_path / "cache"
    with pytest.raises(DataError, match=rf"(?s)Without network access, put the four MNIST IDX files.*into {dest}"):
        fetch_mnist(dest, mirrors=(f"http://127.0.0.1:{port}/",), timeout=2, progress=False)
    with pytest.raises(DataError, match="no MNIST files found"):
        load_mnist(tmp_path / "empty", download=False)


def test_idx_image_files_train_and_classify_like_npz(tmp_path):
    import gzip

    from vaegmm.cli import main

    rng = np.random.default_rng(0)
    labels = np.repeat([2, 5, 9], 40).astype(np.uint8)
    images = rng.integers(0, 256, (120, 9, 11), dtype=np.uint8)  # neither square nor 28x28
    for name, arr in (("train-images-idx3-ubyte.gz", images), ("train-labels-idx1-ubyte.gz", labels)):
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
        with gzip.open(tmp_path / name, "wb") as fh:
            fh.write(header + arr.tobytes())
    np.savez(tmp_path / "val.npz", data=images[::20], labels=labels[::20])
    assert main(["train", "--train", str(tmp_path / "train-images-idx3-ubyte.gz"), "--val", str(tmp_path / "val.npz"),
                 "--out-dir", str(tmp_path / "run"), "--epochs", "1", "--min-steps", "0", "--hidden", "16", "--no-progress"]) == 0
    assert main(["classify", str(tmp_path / "train-images-idx3-ubyte.gz"), "--model", str(tmp_path / "run/vae.pth"),
                 "--gmm", str(tmp_path / "run/gmm_params.pkl"), "--out", str(tmp_path / "p.csv")]) == 0
    predicted = np.loadtxt(tmp_path / "p.csv", skiprows=1, delimiter=",", usecols=0, dtype=int)
    assert len(predicted) == 120 and set(predicted) <= {2, 5, 9}
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    from vaegmm.data import load_images
    from vaegmm.errors import DataError
    with pytest.raises(DataError, match="no labels; expected them in .*train-labels-idx1-ubyte.gz"):
        load_images(tmp_path / "train-images-idx3-ubyte.gz", require_labels=True)
