"""dcu.base: run locks that one process holds and that a dead process never blocks, and the data
folder's one owner."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from dcu.base.atomic import claim, release
from dcu.base.paths import data_root

HOLD = ("import sys; from dcu.base.atomic import claim; "
        "assert claim(sys.argv[1]); print('held', flush=True); sys.stdin.read()")


def holder(lock):
    """Another process that holds ``lock`` until its stdin closes (or it is killed)."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_claim_is_exclusive_between_live_processes_and_release_frees_it(tmp_path):
    lock = tmp_path / "run" / "running.lock"
    other = holder(lock)
    try:
        assert not claim(lock)  # a live process holds it
        release(lock)  # not ours: nothing happens
        assert not claim(lock)
    finally:
        other.communicate("")
    assert claim(lock)  # its holder finished: taken
    assert claim(lock)  # already ours
    release(lock)
    again = holder(lock)  # released: another process can take it
    again.communicate("")
    assert claim(lock)
    release(lock)


def test_a_killed_holder_never_blocks_the_lock(tmp_path):
    lock = tmp_path / "running.lock"
    other = holder(lock)
    os.kill(other.pid, signal.SIGKILL)
    other.wait()
    assert claim(lock)
    release(lock)


def test_a_leftover_lock_file_is_taken(tmp_path):
    lock = tmp_path / "running.lock"
    lock.write_text("")  # a file no process holds a lock on
    assert claim(lock)
    release(lock)


def test_the_data_root_is_the_repository_data_folder_or_dcu_data(monkeypatch, tmp_path):
    monkeypatch.delenv("DCU_DATA", raising=False)
    assert data_root() == Path(__file__).resolve().parent.parent / "data"
    assert (data_root() / "checkpoints").is_dir() and (data_root() / "corpus").is_dir()
    monkeypatch.setenv("DCU_DATA", str(tmp_path))
    assert data_root() == tmp_path
    from dcu.data import corpus_dir
    from dcu.store.checkpoint import checkpoint_dir
    assert corpus_dir() == tmp_path and checkpoint_dir() == tmp_path / "checkpoints"


def test_write_json_compact_or_indented_round_trips_and_keeps_the_old_file_on_failure(tmp_path):
    import json

    import pytest

    from dcu.base.atomic import write_json

    data = {"a": [1.5, float("nan"), None], "b": {"c": "d"}}
    compact, indented = write_json(tmp_path / "c.json", data, indent=None), write_json(tmp_path / "i.json", data)
    assert compact.read_text() == '{"a":[1.5,NaN,null],"b":{"c":"d"}}\n'
    assert "\n " in indented.read_text()
    for path in (compact, indented):
        again = json.loads(path.read_text())
        assert again["b"] == data["b"] and again["a"][0] == 1.5 and again["a"][1] != again["a"][1]
    with pytest.raises(TypeError):  # not serialisable: the file there stays as it was
        write_json(compact, {"x": object()}, indent=None)
    assert compact.read_text().startswith('{"a":') and sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "i.json"]
