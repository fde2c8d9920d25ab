"""A training run's log: one row per validation, written by :mod:`dcu.training.config`, read by
:mod:`dcu.plots`, :mod:`dcu.ablation` and the book.

A row is ``{"step", "epoch", "lr", "train_loss", "minutes", "wall_seconds", "cpu_seconds",
"valid_wsdr", "valid_si_sdr", "valid_stoi", "valid_pesq"}``: the trainer's history with its
``valid`` scores flattened to ``valid_<metric>``. ``log.json`` holds the rows, ``log.csv`` the
same as a table.

Book: book/07_training.ipynb
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from dcu.base.atomic import atomic_write, write_json
from dcu.base.guard import shown, special_file

__all__ = ["log_rows", "write_log", "read_log"]


def log_rows(history: list[dict]) -> list[dict]:
    """The trainer's history (rows with a nested ``valid`` dict) as flat log rows."""
    return [{**{k: v for k, v in h.items() if k != "valid"},
             **{f"valid_{k}": v for k, v in h["valid"].items()}} for h in history]


def write_log(history: list[dict], out) -> None:
    """``log.json`` and ``log.csv`` (one row per validation) in the run folder ``out``."""
    out = Path(out)
    rows = log_rows(history)
    write_json(out / "log.json", rows)
    if rows:
        table = io.StringIO(newline="")
        names = list(dict.fromkeys(k for r in rows for k in r))  # every column any row has
        w = csv.DictWriter(table, fieldnames=names)
        w.writeheader()
        w.writerows(rows)
        atomic_write(out / "log.csv", lambda tmp: tmp.write_text(table.getvalue(), newline=""))


def read_log(path) -> list[dict]:
    """Rows of a training log: a run folder (its ``log.json``) or a ``log.json``/``.csv`` file."""
    path = Path(path)
    if path.is_dir():
        path = path / "log.json"
    if not path.exists():
        raise FileNotFoundError(f"{shown(path)}: no training log here; give a run folder or its log.json")
    if special_file(path):
        raise ValueError(f"{shown(path)}: is {special_file(path)}, not a training log; give a file")
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return json.loads(path.read_text())
