"""Image sets: the course's NPZ files, and the checks every image array passes before use.

Every loader returns images as float32 arrays of shape (N, H, W) with values in [0, 1]
and labels as int64 arrays of shape (N,), and raises :class:`DataError` naming the file,
what was expected, what was found and how to fix it. MNIST's own formats are in :mod:`vaegmm.mnist`.
"""

from __future__ import annotations

import math
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError, DataWarning

MAX_PIXEL_UINT8 = 255.0
# Images whose brightest pixel is at most this, read on the 0-255 scale, are probably on another one
# (scikit-learn's 8x8 digits are 0-16): they load, with a warning.
DIM_IMAGES_MAX = MAX_PIXEL_UINT8 / 4
UNLABELLED = -1  # scikit-learn's mark for an unlabelled sample (LabelSpreading, SelfTrainingClassifier)


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


def as_images(raw: np.ndarray, source: str, key: str) -> np.ndarray:
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
                "(e.g. 784 = 28x28). Save the images as (N, H, W) instead; a single image is (1, H, W), image[None]."
            )
        raw = raw.reshape(len(raw), side, side)
    if raw.ndim == 4 and 1 in (raw.shape[1], raw.shape[3]):
        # One grey channel, as Keras (N, H, W, 1) or PyTorch (N, 1, H, W) store it: still grey images.
        raw = raw[..., 0] if raw.shape[3] == 1 else raw[:, 0]
    if raw.ndim != 3:
        raise DataError(
            f"{source}: '{key}' has shape {raw.shape}; expected grey images as (N, H, W), (N, H*W), or with "
            "one channel axis (N, H, W, 1) or (N, 1, H, W). Convert colour images to grey before saving."
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
    # Anything beyond 1 is a 0-255 intensity; within [0, 1] the pixels are already scaled, whatever the dtype,
    # so binarised images saved as uint8 0/1 stay black and white instead of turning almost blank (1/255).
    if high > 1.0:
        if high <= DIM_IMAGES_MAX:
            warnings.warn(
                f"{source}: '{key}' has pixel values in [{low:g}, {high:g}], read on the 0-255 scale, so no pixel is "
                f"brighter than {high / MAX_PIXEL_UINT8:.0%}. If the images use another scale (scikit-learn's 8x8 "
                "digits are 0-16), rescale them to 0-255 or 0-1 first.", DataWarning, stacklevel=2)
        images = images / MAX_PIXEL_UINT8
    return np.ascontiguousarray(images, dtype=np.float32)


def _as_labels(raw: np.ndarray, source: str, key: str, n_images: int) -> np.ndarray:
    if raw.dtype.kind == "f":  # whole-number floats (as numpy writes labels that passed through a float array) are read
        bad = np.flatnonzero(~(np.isfinite(raw) & (raw == np.round(raw))).ravel())
        if len(bad):
            raise DataError(
                f"{source}: '{key}' ({raw.dtype}) holds {len(bad)} value(s) that are not whole numbers (NaN, infinite or "
                f"fractional; the first at index {bad[0]}: {float(raw.ravel()[bad[0]])}); expected integer class labels. Give "
                "every image a whole-number label, or leave out the images that have none."
            )
    elif raw.dtype.kind not in "iu":
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
        # Our own handle: np.load leaves its file open when a truncated archive fails to parse.
        with open(path, "rb") as fh:
            archive = np.load(fh, allow_pickle=False)
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
    images = as_images(raw_images, source, "data")
    labels = None if raw_labels is None else _as_labels(raw_labels, source, "labels", len(images))
    if require_labels and labels is None:
        raise DataError(
            f"{source}: no 'labels' key; this file must hold the labelled images (keys 'data' and "
            "'labels'). Add the labels with np.savez(path, data=images, labels=labels)."
        )
    return Dataset(images=images, labels=labels, source=source, stored_shape=tuple(raw_images.shape))


def is_idx_file(path: str | Path) -> bool:
    """True for an IDX file (MNIST's own format), raw or gzipped: it starts with two zero bytes."""
    import gzip

    path = Path(path)
    if not path.is_file() or path.stat().st_size < 4:
        return False
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] == b"\x1f\x8b":  # gzip
        try:
            with gzip.open(path, "rb") as fh:
                head = fh.read(4)
        except OSError:
            return False
    return len(head) == 4 and head[0] == 0 and head[1] == 0 and head[3] == 3  # three axes: (N, H, W)


def load_images(path: str | Path, *, require_labels: bool = False) -> Dataset:
    """Images from an .npz file (see :func:`load_npz`) or an IDX image file (see :func:`vaegmm.mnist.load_idx_dataset`)."""
    if is_idx_file(path):
        from .mnist import load_idx_dataset

        return load_idx_dataset(path, require_labels=require_labels)
    return load_npz(path, require_labels=require_labels)


def check_labelled_set(dataset: Dataset, *, min_classes: int = 2) -> np.ndarray:
    """Return the sorted classes of a labelled set, refusing sets EM cannot be seeded from."""
    if dataset.labels is None:
        raise DataError(f"{dataset.source}: has no labels; the GMM needs labelled images to seed its components.")
    classes = np.unique(dataset.labels)
    if len(classes) < min_classes:
        held = "no class" if len(classes) == 0 else f"{len(classes)} class{'es' if len(classes) > 1 else ''} ({classes.tolist()})"
        raise DataError(
            f"{dataset.source}: labels hold {held}; expected at least "
            f"{min_classes} classes with labelled images each. Add labelled images of the other classes."
        )
    return classes


def not_among(images: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """True for each image (N, H, W) that is no exact copy of an image in ``seen`` (M, H, W): (N,) bool.

    Compares a hash of each image's bytes, so memory stays at one small digest per image."""
    import hashlib

    def digests(batch: np.ndarray) -> list[bytes]:
        return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in np.ascontiguousarray(batch)]

    known = set(digests(seen))
    return np.array([d not in known for d in digests(images)], dtype=bool)


def check_same_image_shape(dataset: Dataset, expected: tuple[int, ...], *, model_source: str) -> None:
    if tuple(dataset.image_shape) != tuple(expected):
        raise DataError(
            f"{dataset.source}: images are {dataset.image_shape[0]}x{dataset.image_shape[1]}, but the model "
            f"{model_source} was trained on {expected[0]}x{expected[1]} images. Resize the images or train "
            "a model on images of this size."
        )
