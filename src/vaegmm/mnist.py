"""MNIST in its usual forms: the IDX files (raw or gzipped), Keras's mnist.npz, and a checksummed download."""

from __future__ import annotations

import gzip
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import Dataset, as_images
from .errors import DataError

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (raw or .gz), the format of the original MNIST distribution."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the IDX file ({exc}); it is truncated or not gzip. Delete it and fetch it again.") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number). Delete it and fetch it again.")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header. Delete it and fetch it again.")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: IDX header announces shape {shape} ({expected} bytes) but the file holds "
            f"{len(raw) - header} bytes. Delete it and fetch it again."
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def idx_labels_path(images_path: Path) -> Path:
    """Where the labels of an IDX image file are by MNIST's naming: '...images-idx3...' -> '...labels-idx1...'."""
    return images_path.with_name(images_path.name.replace("images", "labels").replace("idx3", "idx1"))


def load_idx_dataset(path: str | Path, *, require_labels: bool = False) -> Dataset:
    """Grey images from an IDX file (N, H, W), raw or gzipped, with labels from the IDX file beside it when
    there is one (named as MNIST names them, see :func:`idx_labels_path`)."""
    path = Path(path)
    raw = read_idx(path)
    images = as_images(raw, str(path), "images")
    labels_path = idx_labels_path(path)
    labels = None
    if labels_path != path and labels_path.is_file():
        labels = read_idx(labels_path).astype(np.int64)
        if labels.shape != (len(images),):
            raise DataError(f"{labels_path}: holds {labels.shape} labels for the {len(images)} images of {path}; "
                            "expected one label per image.")
    elif require_labels:
        raise DataError(f"{path}: no labels; expected them in {labels_path} (IDX labels beside IDX images, named as "
                        "MNIST names them), or give an .npz file with keys 'data' and 'labels'.")
    return Dataset(images=images, labels=labels, source=str(path), stored_shape=tuple(raw.shape))


def _find_idx(data_dir: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (data_dir / name).is_file():
            return data_dir / name
    return None


def load_mnist_arrays(data_dir: str | Path) -> dict[str, np.ndarray] | None:
    """Return raw MNIST arrays from ``data_dir`` (IDX files preferred, then mnist.npz), or None."""
    data_dir = Path(data_dir)
    found = {key: _find_idx(data_dir, stem) for key, stem in IDX_FILES.items()}
    if all(found.values()):
        arrays = {key: read_idx(p) for key, p in found.items()}  # type: ignore[arg-type]
    elif (data_dir / "mnist.npz").is_file():
        keras = data_dir / "mnist.npz"
        try:
            with np.load(keras, allow_pickle=False) as archive:
                missing = {"x_train", "y_train", "x_test", "y_test"} - set(archive.files)
                if missing:
                    raise DataError(
                        f"{keras}: a Keras MNIST file needs keys x_train, y_train, x_test, y_test; "
                        f"missing {sorted(missing)}. Replace it with the original mnist.npz."
                    )
                arrays = {
                    "train_images": archive["x_train"], "train_labels": archive["y_train"],
                    "test_images": archive["x_test"], "test_labels": archive["y_test"],
                }
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise DataError(f"{keras}: not a readable .npz archive ({exc}). Replace it with the original mnist.npz.") from exc
    else:
        return None
    for split in ("train", "test"):
        n_img, n_lab = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_img != n_lab:
            raise DataError(f"{data_dir}: MNIST {split} split has {n_img} images but {n_lab} labels. Fetch the files again.")
    return arrays


@dataclass(frozen=True)
class MnistSplits:
    """MNIST restricted to some digits: unlabelled training images, a few labelled ones, a test set."""

    train: Dataset
    labelled: Dataset
    test: Dataset


def select_digits(
    arrays: dict[str, np.ndarray],
    *,
    digits: tuple[int, ...],
    labels_per_digit: int,
    seed: int,
    source: str,
) -> MnistSplits:
    """Filter ``digits`` and draw ``labels_per_digit`` labelled training images of each (seeded)."""
    rng = np.random.default_rng(seed)
    out = {}
    for split in ("train", "test"):
        labels = np.asarray(arrays[f"{split}_labels"]).astype(np.int64)
        keep = np.isin(labels, digits)
        images = as_images(np.asarray(arrays[f"{split}_images"])[keep], f"{source} ({split})", "images")
        out[split] = Dataset(images=images, labels=labels[keep], source=f"{source} ({split})")
    picked = []
    for digit in digits:
        candidates = np.flatnonzero(out["train"].labels == digit)
        if len(candidates) < labels_per_digit:
            raise DataError(
                f"{source}: digit {digit} has {len(candidates)} training images; {labels_per_digit} "
                "labelled ones were asked for. Ask for fewer labels or other digits."
            )
        picked.append(rng.choice(candidates, size=labels_per_digit, replace=False))
    idx = np.concatenate(picked)
    labelled = Dataset(images=out["train"].images[idx], labels=out["train"].labels[idx], source=f"{source} (labelled draw, seed {seed})")
    return MnistSplits(train=out["train"], labelled=labelled, test=out["test"])


# --- finding and downloading MNIST ---------------------------------------------------------

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
DOWNLOAD_CHUNK = 1 << 16


def default_data_dir(data_dir: str | Path | None = None) -> Path:
    """``data_dir`` if given, else ``$VAEGMM_DATA``, else the user cache (``$XDG_CACHE_HOME/vaegmm/mnist``)."""
    import os

    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("VAEGMM_DATA"):
        return Path(os.environ["VAEGMM_DATA"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "vaegmm" / "mnist"


def _md5(path: Path) -> str:
    import hashlib

    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(DOWNLOAD_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(url: str, dest: Path, *, md5: str, timeout: float, progress: bool) -> None:
    """Stream ``url`` into ``dest`` atomically; the file appears only once complete and verified."""
    import urllib.request

    from tqdm.auto import tqdm

    from .storage import atomic_output

    with atomic_output(dest) as tmp:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                for chunk in iter(lambda: response.read(DOWNLOAD_CHUNK), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
        found = _md5(tmp)
        if found != md5:
            raise DataError(f"MD5 {found} does not match the expected {md5}; the download is corrupt")


def fetch_mnist(
    data_dir: str | Path,
    *,
    mirrors: tuple[str, ...] = MNIST_MIRRORS,
    checksums: dict[str, str] = MNIST_MD5,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download the four MNIST IDX files into ``data_dir`` (skipping verified ones), trying each mirror."""
    import urllib.error

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, md5 in checksums.items():
        dest = data_dir / name
        if dest.is_file() and _md5(dest) == md5:
            continue
        failures = []
        for mirror in mirrors:
            try:
                download_file(mirror + name, dest, md5=md5, timeout=timeout, progress=progress)
                break
            except (urllib.error.URLError, OSError, DataError) as exc:
                failures.append(f"{mirror + name}: {getattr(exc, 'reason', exc)}")
        else:
            raise DataError(
                f"could not download {name} into {data_dir}:\n  " + "\n  ".join(failures) + "\n"
                f"Without network access, put the four MNIST IDX files ({', '.join(checksums)}) or Keras's "
                f"mnist.npz into {data_dir}, or point --data-dir / VAEGMM_DATA at a folder holding them."
            )
    return data_dir


def load_mnist(
    data_dir: str | Path | None = None,
    *,
    digits: tuple[int, ...] = (1, 4, 8),
    labels_per_digit: int = 5,
    seed: int = 0,
    download: bool = True,
    progress: bool = True,
) -> MnistSplits:
    """MNIST restricted to ``digits``, with ``labels_per_digit`` labelled training images drawn (seeded)."""
    # Checked before any file is read or downloaded: the classifier needs two classes or more.
    if sorted(set(digits) - set(range(10))) or len(set(digits)) < 2 or len(set(digits)) != len(digits):
        raise DataError(f"digits must be two or more different digits among 0-9; got {list(digits)}.")
    folder = default_data_dir(data_dir)
    arrays = load_mnist_arrays(folder) if folder.is_dir() else None
    if arrays is None:
        if not download:
            raise DataError(
                f"{folder}: no MNIST files found (the four IDX files, .gz or raw, or mnist.npz). Put them there "
                "or allow the download."
            )
        fetch_mnist(folder, progress=progress)
        arrays = load_mnist_arrays(folder)
    return select_digits(arrays, digits=tuple(digits), labels_per_digit=labels_per_digit, seed=seed, source=str(folder))
