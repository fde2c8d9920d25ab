"""Saving and loading models: weights, the full config and metadata in one safe file.

A checkpoint is a ``torch.save`` dictionary of plain data only (tensors, strings, numbers,
lists and dicts)::

    {"format": "dcu-checkpoint", "format_version": 1,
     "config": {...ModelConfig...}, "state_dict": {...}, "metadata": {...}}

:func:`load` reads it with ``torch.load(..., weights_only=True)``, which refuses to unpickle
arbitrary objects, so a checkpoint from a stranger cannot run code. Files are written atomically
(a temporary file in the same folder, then ``os.replace``), so an interrupted save never leaves a
half-written checkpoint under the final name.

Book: book/07_training.ipynb
"""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path

import torch

import dcu
from dcu.engine import optimize
from dcu.unet import DCUnet, ModelConfig

FORMAT = "dcu-checkpoint"
FORMAT_VERSION = 1

#: Models shipped in ``data/checkpoints`` and loadable by name.
SHIPPED = {"dcunet10": "dcunet10.pt", "dcunet16": "dcunet16.pt", "dcunet20": "dcunet20.pt"}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used, with a message naming the file and the fix."""


def checkpoint_dir() -> Path:
    """Folder of the shipped checkpoints: ``$DCU_DATA/checkpoints`` or the repo's data/checkpoints."""
    root = os.environ.get("DCU_DATA")
    base = Path(root) if root else Path(__file__).resolve().parent.parent / "data"
    return base / "checkpoints"


def resolve(path_or_name: str | os.PathLike) -> Path:
    """A shipped model name (``"dcunet20"``) or a path -> the checkpoint's path."""
    key = str(path_or_name)
    norm = key.lower().replace("-", "").replace("_", "")
    if norm in SHIPPED and not Path(key).exists():
        path = checkpoint_dir() / SHIPPED[norm]
        if not path.exists():
            raise CheckpointError(f"{path}: shipped model {key!r} is missing; "
                                  "train it with `dcu train` or check out the repository's data/")
        return path
    path = Path(key).expanduser()
    if not path.exists():
        raise CheckpointError(f"{key}: no such checkpoint file or shipped model name; "
                              f"shipped names are {', '.join(SHIPPED)}")
    return path


def _plain(value):
    """Metadata must be plain data so weights_only loading accepts it."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)  # plain str, also for subclasses such as torch's TorchVersion
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return str(value)


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file next to ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(model: DCUnet, path: str | os.PathLike, *, half: bool = False, **metadata) -> Path:
    """Write ``model`` with its config and ``metadata`` (data, steps, metrics...) to ``path``.

    ``half=True`` stores floating-point weights as float16 (half the size; :func:`load` casts
    them back to float32). Returns the path written.
    """
    if not isinstance(model, DCUnet):
        raise TypeError(f"dcu.save expects a dcu.DCUnet, got {type(model).__name__}")
    state = {k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
             for k, v in model.state_dict().items()}
    meta = {"dcu_version": dcu.__version__, "torch_version": torch.__version__,
            "python_version": platform.python_version(), "num_parameters": model.num_parameters()}
    meta.update(metadata)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": model.config_dict(),
               "state_dict": state, "metadata": _plain(meta)}
    atomic_torch_save(payload, path)
    return Path(path)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint's dictionary safely, with clear errors for unusable files."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except Exception as exc:  # truncated zip, random bytes, or a pickle with code in it
        kind = "unsafe or unsupported objects" if "weights_only" in str(exc) or \
            "Unsupported" in str(exc) else "a truncated or corrupt file"
        raise CheckpointError(f"{path}: cannot read checkpoint ({kind}: "
                              f"{str(exc).splitlines()[0][:120]}); re-download or re-train it") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a dcu checkpoint (no '{FORMAT}' header); "
                              "save models with dcu.save")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer dcu (format "
                              f"{payload['format_version']}); upgrade dcu")
    return payload


def load(path_or_name: str | os.PathLike, arch: str | None = None,
         map_location: str | torch.device = "cpu", *, engine: bool = True,
         precision: str = "fp32") -> DCUnet:
    """Rebuild the model stored in a checkpoint (a path or a shipped name such as ``"dcunet20"``).

    ``arch``, if given, must match the checkpoint's architecture. Returns the model in eval mode
    with ``model.metadata`` holding the checkpoint's metadata, on the fast engine in
    ``precision`` (:func:`dcu.engine.optimize`), or as the reference code with ``engine=False``.
    """
    path = resolve(path_or_name)
    payload = read_checkpoint(path)
    try:
        config = ModelConfig(**payload["config"])
    except TypeError as exc:
        raise CheckpointError(f"{path}: checkpoint config is not understood ({exc})") from None
    if arch is not None:
        from dcu.architectures import get_architecture
        want = get_architecture(arch).name
        if want != config.arch:
            raise CheckpointError(f"{path}: checkpoint holds a {config.arch}, not the requested "
                                  f"{want}; load it without arch= or pick the right file")
    model = DCUnet(**vars(config))
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in payload["state_dict"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not match a {config.arch} ({first[:160]}); "
                              "the file is damaged or was edited") from None
    model.metadata = payload.get("metadata", {})
    if engine:
        optimize(model, precision)
    return model.to(map_location).eval()
