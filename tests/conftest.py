"""Fixtures shared by several test files (helpers that are plain functions: tests/synthetic.py).

The quick set: ``pytest -m "not slow and not book"``; everything: ``pytest``.
"""

import csv
import shutil

import pytest
import torch

import dcu
from dcu.data import corpus_dir, list_pairs, split_table


@pytest.fixture(scope="session", autouse=True)
def cache_in_tmp(tmp_path_factory):
    """The dcu cache of every test (where p239's noisy mixtures are rebuilt) is a temporary
    folder, never the user's ~/.cache/dcu; a test may point $DCU_CACHE elsewhere itself."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DCU_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(autouse=True)
def denormals_as_before():
    """Training and ``dcu enhance`` flush denormal floats process-wide (a CPU speed setting that
    stays on after them); each test starts with them as a fresh process has them, so no test sees
    another's setting (hypothesis refuses to draw floats while they are flushed)."""
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(False)


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    """A corpus folder with 4 training and 2 validation pairs (links to shipped files)."""
    root = tmp_path_factory.mktemp("corpus")
    for split, n in (("train", 4), ("valid", 2)):
        for side in ("clean", "noisy"):
            (root / split / side).mkdir(parents=True)
        for noisy, clean in list_pairs(split)[:n]:
            (root / split / "noisy" / noisy.name).symlink_to(noisy)
            (root / split / "clean" / clean.name).symlink_to(clean)
    return root


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    """An untrained tiny DCUnet saved with dcu.save (seed 0)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    dcu.save(dcu.DCUnet("tiny"), path)
    return path


@pytest.fixture
def mini_p239(tmp_path, monkeypatch):
    """A data folder ($DCU_DATA) holding two rows of p239_test, the first mixed unscaled and the
    first scaled down (with its restore array): copies of the shipped clean files and tables,
    links to the shipped noise. Returns ``(data_folder, rows)``; $DCU_CACHE is ``tmp_path/cache``."""
    shipped, data = corpus_dir(), tmp_path / "data"
    rows = split_table("p239_test")
    rows = [next(r for r in rows if float(r["peak_scale"]) == 1.0), next(r for r in rows if float(r["peak_scale"]) < 1)]
    (data / "splits").mkdir(parents=True)
    with open(data / "splits" / "p239_test.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    shutil.copy(shipped / "splits" / "p239_restore.npz", data / "splits")
    (data / "corpus" / "p239_test" / "clean").mkdir(parents=True)
    (data / "noise").mkdir()
    for r in rows:
        shutil.copy(shipped / "corpus" / "p239_test" / "clean" / f"{r['name']}.flac",
                    data / "corpus" / "p239_test" / "clean")
        if not (data / "noise" / f"{r['noise']}.flac").exists():
            (data / "noise" / f"{r['noise']}.flac").symlink_to(shipped / "noise" / f"{r['noise']}.flac")
    monkeypatch.setenv("DCU_DATA", str(data))
    monkeypatch.setenv("DCU_CACHE", str(tmp_path / "cache"))
    return data, rows
