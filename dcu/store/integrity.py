"""Checkpoint integrity: checksums over what a checkpoint says, and whether it agrees with itself.

A checkpoint (:mod:`dcu.store.checkpoint`) says which model it holds (``config``), what made it
(``metadata``: the training config, the step, the scores, the parameter count), its weights
and, for a training run, how to go on (``train_state``). Format 2 stamps all of it:

- :func:`content_checksum`, stored as ``metadata["checkpoint_sha256"]``: SHA-256 over every key
  and value at any depth, each tagged with its kind, dictionaries in sorted key order, tensors
  by dtype, shape and bytes; editing a config field or a score changes it like a flipped byte.
- :func:`tensor_checksum`, stored as ``metadata["tensor_sha256"]``: over the tensors only. Format
  1 files (the shipped checkpoints among them) carry only this one, and are checked by it.

A checksum proves that a file is as it was written, not that what it says is true, so
:func:`disagreement` also compares the model config with the training config the file records
(an edit that re-stamps the checksum is still caught there, and it is all a format 1 file has
for its config).

It imports nothing from dcu. Book: book/07_training.ipynb
"""

from __future__ import annotations

import hashlib

import torch

__all__ = ["CHECKSUM", "checksum_problem", "content_checksum", "disagreement", "stamp",
           "tensor_checksum"]

#: The metadata key of the format 2 checksum (it covers everything but itself).
CHECKSUM = "checkpoint_sha256"


def _tensor_bytes(h, value: torch.Tensor) -> None:
    t = value.detach().cpu().contiguous().reshape(-1)
    h.update(t.view(torch.uint8).numpy() if t.numel() else b"")


def tensor_checksum(payload: dict) -> str:
    """SHA-256 (hex) of every tensor in ``payload`` outside ``metadata``: each one's key path,
    dtype, shape and bytes, in sorted key order (weights, and a training run's optimiser state)."""
    h = hashlib.sha256()

    def walk(prefix, value):
        if isinstance(value, torch.Tensor):
            h.update(f"{prefix}|{value.dtype}|{tuple(value.shape)}|".encode())
            _tensor_bytes(h, value)
        elif isinstance(value, dict):
            for k in sorted(value, key=str):
                walk(f"{prefix}/{k}", value[k])
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f"{prefix}/{i}", v)

    walk("", {k: v for k, v in payload.items() if k != "metadata"})
    return h.hexdigest()


def content_checksum(payload: dict) -> str:
    """SHA-256 (hex) of everything ``payload`` says but ``metadata["checkpoint_sha256"]``: every
    key and value at any depth, each tagged with its kind (so ``1``, ``1.0``, ``True`` and
    ``"1"`` differ), dictionaries in sorted key order, tensors by dtype, shape and bytes."""
    h = hashlib.sha256()

    def walk(value):
        if isinstance(value, torch.Tensor):
            h.update(f"T{value.dtype}{tuple(value.shape)}:".encode())
            _tensor_bytes(h, value)
        elif isinstance(value, dict):
            h.update(f"D{len(value)}:".encode())
            for k in sorted(value, key=repr):
                walk(k)
                walk(value[k])
        elif isinstance(value, (list, tuple)):
            h.update(f"L{len(value)}:".encode())
            for v in value:
                walk(v)
        else:
            kind = next((k for k in (bool, int, float, str) if isinstance(value, k)), type(value))
            text = repr(kind(value) if kind in (int, float, str) else value)
            h.update(f"{kind.__name__}{len(text)}:{text}".encode("utf-8", "backslashreplace"))

    meta = payload.get("metadata", {})
    walk({**payload, "metadata": {k: v for k, v in meta.items() if k != CHECKSUM}})
    return h.hexdigest()


def stamp(payload: dict, version: int) -> dict:
    """``payload`` as format ``version`` with ``metadata["tensor_sha256"]`` and then
    ``metadata["checkpoint_sha256"]`` set (a new dict; the metadata dict is copied)."""
    meta = {k: v for k, v in payload.get("metadata", {}).items() if k != CHECKSUM}
    payload = {**payload, "format_version": version,
               "metadata": {**meta, "tensor_sha256": tensor_checksum(payload)}}
    payload["metadata"][CHECKSUM] = content_checksum(payload)
    return payload


def checksum_problem(payload: dict) -> str | None:
    """Why ``payload``'s checksums refuse it, in words; ``None`` when they hold (format 1: the
    tensor checksum, where the file has one; format 2, or any file carrying a format 2 checksum:
    both)."""
    meta = payload["metadata"]
    stored = meta.get("tensor_sha256")
    if stored is not None and stored != tensor_checksum(payload):
        return ("its tensors do not match the checksum stored with them (the file was damaged "
                "on disk or in transfer)")
    # a format 1 writer never wrote CHECKSUM: a file that has one is checked whatever its header
    # says, so lowering format_version cannot switch the check off
    if (payload["format_version"] >= 2 or CHECKSUM in meta) and \
            meta.get(CHECKSUM) != content_checksum(payload):
        return ("its config, metadata or training state do not match the checksum stored with "
                "them (the file was edited, or damaged)")
    return None


def disagreement(payload: dict) -> str | None:
    """Where ``payload``'s model config disagrees with the training config its metadata records
    (nested under ``model``, or flat as older runs stored it), in words; ``None`` otherwise."""
    trained = payload["metadata"].get("train_config")
    if not isinstance(trained, dict):
        return None
    model = trained["model"] if isinstance(trained.get("model"), dict) else trained
    for key, value in payload["config"].items():
        if key in model and model[key] != value:
            return (f"its config says {key}={value!r} but the training config it records says "
                    f"{key}={model[key]!r} (the file was edited or damaged)")
    return None
