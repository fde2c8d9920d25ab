"""Writing files safely: every file dcu writes (audio, checkpoints, results, ONNX) goes through
:func:`atomic_path`, so a reader never sees half a file and a crash never leaves a broken one.

The data are written to a hidden temporary file beside the target (``.NAME.XXXX.tmp``), given
the permissions any program's new file gets (``0666`` minus the umask; ``mkstemp`` alone would
leave ``0600``), then renamed into place in one step. With ``overwrite=False`` an existing target
is never replaced, even one that appears while we write. Temporaries left by a killed process are
removed by :func:`remove_stale_temporaries`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

__all__ = ["atomic_path", "write_json_atomic", "remove_stale_temporaries", "new_file_mode"]


def new_file_mode() -> int:
    """The permission bits a new file gets here: ``0o666`` minus the process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True):
    """Yield a temporary path to write to; on success it becomes ``path``.

    Raises ``FileExistsError`` (before or after writing) when ``overwrite`` is False and ``path``
    exists. On any error the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists; choose a new name (dcu never overwrites it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, new_file_mode())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if path appeared meanwhile: never replace it
            except FileExistsError:
                raise FileExistsError(f"{path} appeared while writing; not replaced") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_json_atomic(path: str | os.PathLike, data, overwrite: bool = True) -> Path:
    """Write ``data`` as indented JSON to ``path`` through :func:`atomic_path`."""
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(json.dumps(data, indent=1))
    return Path(path)


def remove_stale_temporaries(path: str | os.PathLike, older_than_seconds: float = 3600) -> int:
    """Remove temporaries of ``path`` (``.NAME.*.tmp`` beside it) left by a killed writer more
    than ``older_than_seconds`` ago; returns how many were removed."""
    path = Path(path)
    removed = 0
    now = time.time()
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > older_than_seconds:
                tmp.unlink()
                removed += 1
    return removed
