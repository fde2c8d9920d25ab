"""Writing files safely: atomically, with ordinary permissions, and no litter from a kill.

Every file dcu writes (enhanced audio, checkpoints, evaluation tables) goes through
:func:`atomic_write`: the data is written to a hidden temporary file in the destination's folder,
flushed to disk, given the permissions any other program's output would get, then renamed over
the destination in one step. A reader therefore sees either the old file or the complete new
one, never half a file.

- **Permissions.** ``tempfile.mkstemp`` creates files readable by their owner only (0600); the
  rename would keep that. The temporary file is set to ``0666 & ~umask`` (usually 0644), or to
  the mode of the file being replaced, as a shell redirection would.
- **Names claimed, not taken.** ``overwrite=False`` links the complete file to its name, which
  fails if the name exists by then, so of two processes writing one new name exactly one wins
  and the other is told, instead of one result silently replacing the other.
- **Stale temporaries.** The temporary file's name carries the writer's process id
  (``.NAME.dcu-PID-XXXX.tmp``). A writer killed with ``kill -9`` cannot remove it, so each write
  first removes temporaries of the same destination whose process no longer runs (on this
  machine: on a folder shared between machines a live writer elsewhere looks dead; dcu does not
  write one destination from two machines at once).

- **One worker per job.** :func:`claim` takes an operating-system lock on a lock file
  (``filelock``), so of two processes racing for it exactly one gets it, and a killed worker's
  lock goes with it; :func:`release` drops it. :func:`locked` holds one for a ``with`` block,
  waiting for it (a read-modify-write of a file that several processes update).

It imports nothing from dcu. Book: book/07_training.ipynb (checkpoints)
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from filelock import FileLock, Timeout

__all__ = ["atomic_write", "write_json", "clean_stale_temporaries", "default_mode", "claim",
           "locked", "release"]


def default_mode() -> int:
    """``0o666`` less the process's umask: the mode a new file gets from ``open(path, "w")``."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def clean_stale_temporaries(path) -> list[Path]:
    """Remove temporary files that a killed writer of ``path`` left behind; returns them."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for tmp in path.parent.glob(f".{path.name}.dcu-*.tmp"):
        pid = tmp.name[len(path.name) + 6:].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass
    return removed


def atomic_write(path, write, overwrite: bool = True) -> Path:
    """Call ``write(tmp_path)`` to fill a temporary file, then rename it to ``path``.

    ``write`` receives a :class:`pathlib.Path` in ``path``'s folder and must write the complete
    file there (and close it). On any error or interrupt the temporary file is removed and the
    old ``path``, if any, is untouched. Missing folders are created. Returns ``path``.

    With ``overwrite=False`` the name is claimed atomically: the complete file is hard-linked to
    ``path``, which fails if any file has that name by then (another process may have written it
    since the caller looked), and ``FileExistsError`` is raised with nothing replaced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.dcu-{os.getpid()}-", suffix=".tmp",
                               dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        try:
            mode = path.stat().st_mode & 0o7777 if path.is_file() else default_mode()
        except OSError:
            mode = default_mode()
        os.chmod(tmp, mode)
        if overwrite:
            os.replace(tmp, path)
        else:
            _claim_name(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    return path


def _claim_name(tmp: Path, path: Path) -> None:
    """Give the complete file ``tmp`` the name ``path`` unless that name is taken."""
    try:
        os.link(tmp, path)  # atomic, and never replaces: EEXIST if the name is taken
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "already exists", str(path)) from None
    except OSError:  # a file system without hard links: create the name exclusively, then fill it
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.replace(tmp, path)
        return
    tmp.unlink()


def write_json(path, data, indent: int | None = 1, overwrite: bool = True) -> Path:
    """``data`` as JSON in ``path``, through :func:`atomic_write` (``overwrite=False``: a new
    file only, ``FileExistsError`` otherwise). ``indent=None`` writes it compactly, on one line
    without spaces: for files that code reads, such as the per-file results shipped in ``data/``."""
    import json

    separators = (",", ":") if indent is None else None
    text = json.dumps(data, indent=indent, separators=separators) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text), overwrite)


#: The run locks this process holds (:func:`claim`), by resolved path.
_HELD: dict = {}


def claim(lock) -> bool:
    """Take the lock file ``lock`` for this process without waiting (``filelock``): True if
    taken (or already ours), False while another process holds it. The operating system drops
    the lock when its process ends, however it ends, so a killed worker never blocks its job."""
    lock = Path(lock)
    key = str(lock.resolve())
    if key in _HELD:
        return True
    lock.parent.mkdir(parents=True, exist_ok=True)
    held = FileLock(lock, thread_local=False)
    try:
        held.acquire(blocking=False)
    except Timeout:
        return False
    _HELD[key] = held
    return True


@contextlib.contextmanager
def locked(lock, timeout: float = 600.0):
    """Hold the lock file ``lock`` for a ``with`` block, waiting up to ``timeout`` seconds while
    another process holds it (``filelock``; for short read-modify-write sections such as adding
    a run to a shared grid file)."""
    with FileLock(lock, timeout=timeout, thread_local=False):
        yield


def release(lock) -> None:
    """Let go of ``lock`` if this process holds it (see :func:`claim`)."""
    held = _HELD.pop(str(Path(lock).resolve()), None)
    if held is not None:
        held.release()
