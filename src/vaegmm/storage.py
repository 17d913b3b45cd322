"""Safe file handling: atomic outputs and a pickle format that can hold data but never code.

Every output is written to a temporary file in the destination folder and renamed into
place, so a crash or Ctrl-C leaves either the previous file or the complete new one.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import ModelFileError, OutputError

_PLAIN_SCALARS = (str, int, float, bool, type(None))


def check_output_path(path: str | os.PathLike) -> Path:
    """Fail early (before minutes of training) if ``path`` cannot be written."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder, expected a file name to write. Give a file path instead.")
    if not folder.is_dir():
        raise OutputError(
            f"{path}: the folder {folder} does not exist. Create it first (mkdir -p {folder}) "
            "or choose another output path."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(
            f"{path}: the folder {folder} is not writable. Choose a writable folder or fix its permissions."
        )
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = check_output_path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    except OSError as exc:
        raise OutputError(f"{path}: cannot create a file in {path.parent}: {exc.strerror}.") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def _check_plain(obj: Any, where: str = "root") -> None:
    if isinstance(obj, _PLAIN_SCALARS):
        return
    if isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            _check_plain(item, f"{where}[{i}]")
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise TypeError(f"plain data needs string keys; {where} has key {key!r}")
            _check_plain(value, f"{where}[{key!r}]")
        return
    raise TypeError(f"plain data holds only str/int/float/bool/None/list/dict; {where} is {type(obj).__name__}")


def save_plain_pickle(obj: Any, path: str | os.PathLike) -> None:
    """Pickle ``obj`` made only of builtin scalars, lists and dicts (arrays as nested lists)."""
    _check_plain(obj)
    atomic_write_bytes(path, pickle.dumps(obj, protocol=4))


class _PlainUnpickler(pickle.Unpickler):
    """Builtin containers and scalars have their own opcodes; anything needing a global is code."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load '{module}.{name}': only plain data is allowed")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing persistent ids: only plain data is allowed")


# torch.save writes a zip archive; a plain pickle never starts with these bytes.
ZIP_MAGIC = b"PK\x03\x04"


def plain_format(raw: bytes) -> str | None:
    """The ``format`` entry of a plain-data pickle of a dict (as vaegmm's own files hold), or None when
    ``raw`` is anything else. Loads with the plain unpickler, so nothing in ``raw`` is run; lets a loader
    given another vaegmm file than it reads say which one it was given."""
    if raw.startswith(ZIP_MAGIC):
        return None
    try:
        state = _PlainUnpickler(io.BytesIO(raw)).load()
    except Exception:  # not a plain pickle: nothing to name
        return None
    return state.get("format") if isinstance(state, dict) and isinstance(state.get("format"), str) else None


def load_plain_pickle(path: str | os.PathLike, *, what: str = "GMM parameter file") -> Any:
    """Load a pickle that may contain only plain data; never imports or calls anything from it."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such {what}. Check the path, or create it with the 'train' command.")
    raw = path.read_bytes()
    if not raw:
        raise ModelFileError(f"{path}: the {what} is empty (0 bytes). Re-create it with the 'train' command.")
    if raw.startswith(ZIP_MAGIC):  # e.g. the model file given where the GMM file belongs (arguments swapped)
        raise ModelFileError(
            f"{path}: is a zip archive, as torch.save writes (a model file such as vae.pth is one), not a {what}. "
            "Give the file that 'train' wrote beside the model (gmm_params.pkl); the course's commands take the "
            "model file first and the GMM file second."
        )
    try:
        return _PlainUnpickler(io.BytesIO(raw)).load()
    except pickle.UnpicklingError as exc:
        raise ModelFileError(
            f"{path}: not a valid {what}: {exc}. The file may be foreign or crafted; vaegmm never runs "
            "code from a file. Re-create it with the 'train' command."
        ) from exc
    except Exception as exc:  # truncated or not a pickle at all: many exception types are possible
        raise ModelFileError(
            f"{path}: cannot read the {what} ({type(exc).__name__}: {exc}); it is corrupt or not a "
            "vaegmm file. Re-create it with the 'train' command."
        ) from exc
