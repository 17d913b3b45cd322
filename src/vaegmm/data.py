"""Loading images: the course's NPZ files and MNIST in its IDX and Keras forms.

Every loader returns images as float32 arrays of shape (N, H, W) with values in [0, 1]
and labels as int64 arrays of shape (N,), and raises :class:`DataError` naming the file,
what was expected, what was found and how to fix it.
"""

from __future__ import annotations

import gzip
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError

MAX_PIXEL_UINT8 = 255.0


@dataclass(frozen=True)
class Dataset:
    """Images (N, H, W) float32 in [0, 1] and optional labels (N,) int64."""

    images: np.ndarray
    labels: np.ndarray | None
    source: str
    stored_shape: tuple[int, ...] | None = None  # the array's shape in the file, e.g. (N, 784)

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.images)


def _as_images(raw: np.ndarray, source: str, key: str) -> np.ndarray:
    """Validate an image array and return it as float32 (N, H, W) in [0, 1]."""
    if raw.dtype == object or raw.dtype.kind not in "uifb":
        raise DataError(
            f"{source}: '{key}' has dtype {raw.dtype}; expected uint8 (0-255) or float (0-1) pixels. "
            "Convert the images to a numeric array, e.g. np.asarray(images, dtype=np.uint8)."
        )
    if raw.ndim == 2:
        side = math.isqrt(raw.shape[1])
        if side * side != raw.shape[1] or raw.shape[1] == 0:
            raise DataError(
                f"{source}: '{key}' has shape {raw.shape}; flat images need a square pixel count "
                "(e.g. 784 = 28x28). Save the images as (N, H, W) instead."
            )
        raw = raw.reshape(len(raw), side, side)
    if raw.ndim != 3:
        raise DataError(
            f"{source}: '{key}' has shape {raw.shape}; expected grey images as (N, H, W) or (N, H*W). "
            "Drop colour/channel axes (e.g. images[:, 0]) before saving."
        )
    if raw.shape[0] == 0 or raw.shape[1] == 0 or raw.shape[2] == 0:
        raise DataError(f"{source}: '{key}' is empty (shape {raw.shape}); expected at least one image.")
    images = raw.astype(np.float64, copy=False)
    if not np.isfinite(images).all():
        bad = int((~np.isfinite(images)).sum())
        raise DataError(
            f"{source}: '{key}' contains {bad} NaN or infinite pixel values; expected finite pixels. "
            "Clean or drop those images."
        )
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > MAX_PIXEL_UINT8:
        raise DataError(
            f"{source}: '{key}' has pixel values in [{low:g}, {high:g}]; expected 0-255 (uint8) or "
            "0-1 (float). Rescale the images into one of those ranges."
        )
    # Integers, or floats beyond 1, are 0-255 intensities; floats within [0, 1] are already scaled.
    if raw.dtype.kind in "ui" or high > 1.0:
        images = images / MAX_PIXEL_UINT8
    return np.ascontiguousarray(images, dtype=np.float32)


def _as_labels(raw: np.ndarray, source: str, key: str, n_images: int) -> np.ndarray:
    if raw.dtype.kind not in "iu" and not (raw.dtype.kind == "f" and np.all(np.isfinite(raw)) and np.all(raw == np.round(raw))):
        raise DataError(
            f"{source}: '{key}' has dtype {raw.dtype}; expected integer class labels. "
            "Save the labels as integers, e.g. labels.astype(np.int64)."
        )
    labels = np.asarray(raw).reshape(-1) if raw.ndim == 2 and 1 in raw.shape else np.asarray(raw)
    if labels.ndim != 1 or len(labels) != n_images:
        raise DataError(
            f"{source}: '{key}' has shape {raw.shape} but there are {n_images} images; expected one "
            "label per image, shape (N,)."
        )
    return labels.astype(np.int64)


def load_npz(path: str | Path, *, require_labels: bool = False) -> Dataset:
    """Read a course NPZ file: key ``data`` (N, H, W) or (N, H*W), optional ``labels`` (N,)."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise DataError(f"{source}: no such file. Check the path (it is read relative to the current folder).")
    if path.is_dir():
        raise DataError(f"{source}: is a folder; expected an .npz file.")
    if path.stat().st_size == 0:
        raise DataError(f"{source}: the file is empty (0 bytes); expected an .npz archive. Re-create or re-copy it.")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if not (magic.startswith(b"PK") or magic.startswith(b"\x93NUMPY")):
        raise DataError(
            f"{source}: not an .npz archive (it starts with {magic!r}); expected a file written by np.savez. "
            "Convert the images with np.savez(path, data=images, labels=labels)."
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise DataError(
                    f"{source}: holds a single .npy array, not an .npz archive; expected keys 'data' "
                    "(and 'labels'). Save with np.savez(path, data=images, labels=labels)."
                )
            keys = list(archive.files)
            if "data" not in keys:
                raise DataError(
                    f"{source}: no 'data' key; found {keys or 'no keys'}. Save the images under 'data', "
                    "e.g. np.savez(path, data=images, labels=labels)."
                )
            raw_images = archive["data"]
            raw_labels = archive["labels"] if "labels" in keys else None
    except DataError:
        raise
    except ValueError as exc:
        if "object arrays" in str(exc).lower():
            raise DataError(
                f"{source}: an array holds Python objects (dtype object); expected numeric arrays. "
                "Save numeric arrays (uint8 images, int64 labels)."
            ) from exc
        raise DataError(f"{source}: not a readable .npz archive ({exc}). Re-create the file with np.savez.") from exc
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(
            f"{source}: not a readable .npz archive ({type(exc).__name__}: {exc}); the file is truncated "
            "or of another format. Re-create it with np.savez(path, data=images, labels=labels)."
        ) from exc
    images = _as_images(raw_images, source, "data")
    labels = None if raw_labels is None else _as_labels(raw_labels, source, "labels", len(images))
    if require_labels and labels is None:
        raise DataError(
            f"{source}: no 'labels' key; this file must hold the labelled images (keys 'data' and "
            "'labels'). Add the labels with np.savez(path, data=images, labels=labels)."
        )
    return Dataset(images=images, labels=labels, source=source, stored_shape=tuple(raw_images.shape))


def check_labelled_set(dataset: Dataset, *, min_classes: int = 2) -> np.ndarray:
    """Return the sorted classes of a labelled set, refusing sets EM cannot be seeded from."""
    if dataset.labels is None:
        raise DataError(f"{dataset.source}: has no labels; the GMM needs labelled images to seed its components.")
    classes = np.unique(dataset.labels)
    if len(classes) < min_classes:
        raise DataError(
            f"{dataset.source}: labels hold {len(classes)} class ({classes.tolist()}); expected at least "
            f"{min_classes} classes with labelled images each. Add labelled images of the other digits."
        )
    return classes


def check_same_image_shape(dataset: Dataset, expected: tuple[int, ...], *, model_source: str) -> None:
    if tuple(dataset.image_shape) != tuple(expected):
        raise DataError(
            f"{dataset.source}: images are {dataset.image_shape[0]}x{dataset.image_shape[1]}, but the model "
            f"{model_source} was trained on {expected[0]}x{expected[1]} images. Resize the images or train "
            "a model on images of this size."
        )


# --- MNIST in its usual forms -------------------------------------------------------------

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
        images = _as_images(np.asarray(arrays[f"{split}_images"])[keep], f"{source} ({split})", "images")
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
    bad = sorted(set(digits) - set(range(10)))
    if bad or not digits:
        raise DataError(f"digits must be among 0-9; got {list(digits)}.")
    return select_digits(arrays, digits=tuple(digits), labels_per_digit=labels_per_digit, seed=seed, source=str(folder))
