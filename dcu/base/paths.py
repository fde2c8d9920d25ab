"""Where dcu's data lives: the one owner of the data root.

Book: book/01_introduction.ipynb (the shipped corpus and checkpoints in ``data/``)
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_root"]


def data_root() -> Path:
    """The data folder (shipped corpus, noise, splits, checkpoints, results): ``$DCU_DATA`` if
    set, else the repository's ``data/``."""
    env = os.environ.get("DCU_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent.parent / "data"
