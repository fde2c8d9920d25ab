"""Guards at dcu's doors: names shown safely, special files refused, and signals.

What every command promises (README, "What dcu promises") rests on a few small rules, kept here
so that each door applies the same one:

- **Names.** A file name is whatever bytes the OS holds; Python gives a name that is not UTF-8
  with surrogate escapes, and dcu passes names to C libraries as those bytes
  (:func:`os.fsencode`). :func:`shown` writes any name (or message) as one printable line: a byte
  that is not UTF-8 as ``\\xe9``, a newline as ``\\n``, so an error about ``new<newline>line.wav``
  stays one line and prints on any terminal.
- **Special files.** Opening a named pipe blocks until someone writes to it, and a device or
  socket is no file to read: :func:`special_file` says what a path is from ``stat`` alone, before
  any open, and :func:`open_regular` opens without blocking and checks the open file itself.
- **Locks** are :mod:`dcu.base.atomic`'s (:func:`~dcu.base.atomic.claim`, :func:`~dcu.base.atomic.locked`).
- **Signals.** :func:`signals_as_interrupts` turns SIGTERM and SIGHUP into :class:`Interrupted`,
  a :class:`KeyboardInterrupt`, so they unwind exactly as Ctrl-C does (temporary files removed,
  exit status 128 + the signal); :func:`signals_held` holds them back while a few statements
  must run whole (a training step's update and its count), and :func:`quiet_worker` is the
  initializer of worker processes, which leave interruptions to their parent.

It imports nothing from dcu. Book: book/09_your_recordings.ipynb
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import threading

__all__ = ["Interrupted", "first_line", "interrupt_status", "open_regular", "quiet_worker", "shown",
           "sigint_blocked", "signals_as_interrupts", "signals_held", "special_file"]

_KINDS = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def shown(name) -> str:
    """``name`` (a path, text or bytes) as one printable line: bytes that are not UTF-8 as
    ``\\xNN``, control characters such as a newline as ``\\n``, ``\\t``, ``\\x1b``."""
    if isinstance(name, bytes):
        name = name.decode("utf-8", "surrogateescape")
    text = os.fspath(name) if isinstance(name, os.PathLike) else str(name)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c) - 0xDC00:02x}"
                   if 0xDC80 <= ord(c) <= 0xDCFF else repr(c)[1:-1] for c in text)


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message, or its type's name when it has none
    (``IndexError()``, ``EOFError()``)."""
    found = [line for line in str(exc).splitlines() if line.strip()]
    return found[0].strip() if found else type(exc).__name__


def special_file(path) -> str | None:
    """What ``path`` is when it exists but is neither a regular file nor a folder (``"a named
    pipe (FIFO)"``, ``"a socket"``, ``"a character device"``...; links are followed), from
    ``stat`` alone; ``None`` otherwise (missing paths included)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def open_regular(path, error=OSError):
    """Open ``path`` for reading in binary, refusing anything but a regular file without
    blocking (a FIFO is opened non-blocking, then refused): ``error(message)`` is raised with
    a one-line message naming the file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise error(f"{shown(path)}: is a folder, not a file") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{shown(path)}: is {_KINDS.get(stat.S_IFMT(mode), 'not a regular file')}, "
                        "not a file dcu can read; pass a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, as Ctrl-C raises KeyboardInterrupt."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def _interrupt(signum, frame):
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # one clean unwinding, not two
        signal.signal(s, signal.SIG_IGN)
    raise Interrupted(signum) if signum != signal.SIGINT else KeyboardInterrupt()


@contextlib.contextmanager
def signals_as_interrupts():
    """Within the block, SIGTERM and SIGHUP (and SIGINT) raise an exception where the program
    is, so ``finally`` clauses and temporary-file clean-up run; a second signal during that
    unwinding is ignored. Outside the main thread it does nothing. Handlers are restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {s: signal.getsignal(s) for s in wanted}
    try:
        for s in wanted:
            if before[s] is not signal.SIG_IGN:  # `nohup` and background jobs keep ignoring
                signal.signal(s, _interrupt)
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def interrupt_status(exc: KeyboardInterrupt) -> int:
    """The exit status of a command stopped by ``exc``: 128 + the signal (130 for Ctrl-C)."""
    return 128 + getattr(exc, "signum", signal.SIGINT)


def quiet_worker() -> None:
    """Initializer of worker processes: Ctrl-C (sent to the whole process group) is the
    parent's to handle, which stops them; SIGTERM and SIGHUP end a worker silently."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextlib.contextmanager
def sigint_blocked():
    """Hold back Ctrl-C in this thread while worker processes are forked (they inherit the
    mask, and :func:`quiet_worker` ignores, then unblocks it); it is delivered after the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


_HELD = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def signals_held():
    """Hold back Ctrl-C, SIGTERM and SIGHUP for the block: the statements in it run whole, and
    a signal that came meanwhile is raised again, to the handler it was meant for, as the block
    ends. (Handlers are swapped rather than the signals masked: a mask is per thread, and the
    kernel hands a process's signal to any thread that does not mask it, torch's included.)
    Outside the main thread it does nothing (signals are the main thread's)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.getsignal(s) for s in _HELD}
    came = []
    try:
        for s in _HELD:
            if before[s] is not signal.SIG_IGN:  # an ignored signal stays ignored
                signal.signal(s, lambda signum, frame: came.append(signum))
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        for s in dict.fromkeys(came):
            signal.raise_signal(s)
