"""dcu.base.atomic: run locks that one process holds, that a dead process's leftovers never block."""

import os
import subprocess
import sys

from dcu.base.atomic import claim, release


def test_claim_is_exclusive_between_live_processes_and_release_frees_it(tmp_path):
    lock = tmp_path / "run" / "running.pid"
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        lock.parent.mkdir()
        lock.write_text(str(other.pid))  # a live process holds it
        assert not claim(lock) and lock.read_text() == str(other.pid)
        release(lock)  # not ours: left alone
        assert lock.read_text() == str(other.pid)
    finally:
        other.communicate(b"")
    assert claim(lock) and lock.read_text() == str(os.getpid())  # its holder is gone: taken over
    assert claim(lock)  # already ours
    release(lock)
    assert not lock.exists()
    assert claim(lock)


def test_a_half_written_lock_is_taken_over(tmp_path):
    lock = tmp_path / "running.pid"
    lock.write_text("")  # a process killed between creating and writing it
    assert claim(lock) and lock.read_text() == str(os.getpid())
