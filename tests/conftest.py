"""Fixtures shared by several test files (helpers that are plain functions: tests/synthetic.py).

The quick set: ``pytest -m "not slow and not book"``; everything: ``pytest``.
"""

import pytest
import torch

import dcu
from dcu.data import list_pairs


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
