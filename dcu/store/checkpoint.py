"""Saving and loading models: weights, the full config and metadata in one safe file.

A checkpoint is a ``torch.save`` dictionary of plain data only (tensors, strings, numbers,
lists and dicts)::

    {"format": "dcu-checkpoint", "format_version": 2,
     "config": {...ModelConfig...}, "state_dict": {...}, "metadata": {...}}

:func:`load` reads it with ``torch.load(..., weights_only=True)``, which refuses to unpickle
arbitrary objects, so a checkpoint from a stranger cannot run code. Files are written atomically
(:mod:`dcu.base.atomic`: a temporary file in the same folder, then ``os.replace``, with the umask's
permissions), so an interrupted save never leaves a half-written checkpoint under the final name,
and a killed save's temporary file is removed by the next save.

Integrity (format 2): ``metadata["checkpoint_sha256"]`` is the SHA-256 of everything else the
file says (:func:`content_checksum`: header, config, metadata, weights and a run's training
state, in a canonical order), so an edited config or score is refused like a flipped byte. What
the file says must also agree with itself: its model config with the training config it records
(``metadata["train_config"]``), its parameter count with its metadata's. Format 1 files (the
shipped ones among them) carry ``metadata["tensor_sha256"]`` over the tensors only
(:func:`tensor_checksum`); they are checked by that rule and for that agreement, and files older
than any checksum by the agreement alone; ``dcu checkpoint strip`` re-stamps one as format 2.
The fields and their types are checked too: a file with dcu's header but not its fields gets a
one-line error naming it. An empty file, a folder or a special file (a named pipe, a device, a
socket) is refused before anything is read (:func:`dcu.base.guard.open_regular`: never a hang). The
shipped ``data/checkpoints/*.pt`` store float16 weights (``strip(..., half=True)``, half the
size), which :func:`load` casts back to float32.

Book: book/07_training.ipynb
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from dcu.architectures import get_architecture
from dcu.base.atomic import atomic_write
from dcu.base.guard import first_line, open_regular, shown, special_file
from dcu.base.paths import data_root
from dcu.store.integrity import CHECKSUM, checksum_problem, content_checksum, disagreement, \
    stamp, tensor_checksum  # noqa: F401 (CHECKSUM, content_checksum: public here)
from dcu.unet import DCUnet, ModelConfig
from dcu.version import __version__

FORMAT = "dcu-checkpoint"
FORMAT_VERSION = 2  # 2: checkpoint_sha256 covers everything; 1: tensor_sha256, tensors only

#: Models shipped in ``data/checkpoints`` and loadable by name.
SHIPPED = {"dcunet10": "dcunet10.pt", "dcunet16": "dcunet16.pt", "dcunet20": "dcunet20.pt"}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used, with a message naming the file and the fix."""


def checkpoint_dir() -> Path:
    """Folder of the shipped checkpoints: ``checkpoints`` in :func:`dcu.base.paths.data_root`."""
    return data_root() / "checkpoints"


def resolve(path_or_name: str | os.PathLike) -> Path:
    """A shipped model name (``"dcunet20"``) or a path -> the checkpoint's path."""
    key = str(path_or_name)
    norm = key.lower().replace("-", "").replace("_", "")
    if norm in SHIPPED and not Path(key).exists():
        path = checkpoint_dir() / SHIPPED[norm]
        if not path.exists():
            raise CheckpointError(f"{shown(path)}: shipped model {key!r} is missing; "
                                  "train it with `dcu train` or check out the repository's data/")
        return path
    path = Path(key).expanduser()
    if not path.exists():
        raise CheckpointError(f"{shown(key)}: no such checkpoint file or shipped model name; "
                              f"shipped names are {', '.join(SHIPPED)}")
    return path


def plain(value):
    """Metadata must be plain data so weights_only loading accepts it."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    for kind in (str, int, float):  # plain types, also for subclasses such as torch's TorchVersion
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return str(value)


def with_checksum(payload: dict) -> dict:
    """``payload`` in the current format, stamped: ``metadata["tensor_sha256"]`` and then
    ``metadata["checkpoint_sha256"]`` over everything (:func:`dcu.store.integrity.stamp`)."""
    return stamp(payload, FORMAT_VERSION)


def atomic_torch_save(obj, path: str | os.PathLike, *, overwrite: bool = True) -> None:
    """``torch.save`` to a temporary file next to ``path``, then rename it into place (with
    ``overwrite=False``, only if no file has that name by then: ``FileExistsError``)."""
    def write(tmp):
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    atomic_write(path, write, overwrite=overwrite)


def check_fields(path, mapping, fields: dict, where: str = "") -> None:
    """Raise :class:`CheckpointError` naming ``path`` unless ``mapping`` holds each of ``fields``
    (``{name: type or tuple of types}``) with the right type."""
    for name, kind in fields.items():
        if not isinstance(mapping, dict) or name not in mapping:
            raise CheckpointError(f"{shown(path)}: dcu checkpoint without its '{where}{name}' field "
                                  "(damaged, or not written by dcu); re-save or re-train it")
        if not isinstance(mapping[name], kind) or (kind is int and isinstance(mapping[name], bool)):
            raise CheckpointError(f"{shown(path)}: field '{where}{name}' holds a "
                                  f"{type(mapping[name]).__name__}, not what dcu writes; "
                                  "the file is damaged or was edited")


def halved(state: dict) -> dict:
    """``state`` with its floating-point tensors as float16 (how the shipped files store them)."""
    return {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}


def make_payload(model: DCUnet, metadata: dict | None = None, train_state: dict | None = None,
                 *, half: bool = False) -> dict:
    """The one dictionary dcu writes for ``model``: header, config, weights and metadata, plus a
    training run's ``train_state`` when given (what ``--resume`` needs), with the checksum.

    ``metadata`` is added to what every checkpoint records (dcu, torch and Python versions, the
    parameter count) and made plain data. ``half=True`` stores floating-point weights as
    float16. :func:`save` writes it; :class:`dcu.training.Trainer` extends it with its state.
    """
    if not isinstance(model, DCUnet):
        raise TypeError(f"dcu.save expects a dcu.DCUnet, got {type(model).__name__}")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    meta = {"dcu_version": __version__, "torch_version": torch.__version__, "python_version":
            platform.python_version(), "num_parameters": model.num_parameters(), **(metadata or {})}
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": model.config_dict(),
               "state_dict": halved(state) if half else state, "metadata": plain(meta)}
    if train_state is not None:
        payload["train_state"] = train_state
    return with_checksum(payload)


def save(model: DCUnet, path: str | os.PathLike, *, half: bool = False, **metadata) -> Path:
    """Write ``model`` with its config and ``metadata`` (data, steps, metrics...) to ``path``.

    ``half=True`` stores floating-point weights as float16 (half the size; :func:`load` casts
    them back to float32). Returns the path written.
    """
    atomic_torch_save(make_payload(model, metadata, half=half), path)
    return Path(path)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint's dictionary safely, with clear errors for unusable files.

    Refuses empty and special files before reading, then checks the header, the fields and
    their types, the checksum (format 2: over everything; format 1: the tensors') and that the
    config agrees with the training config it records; raises :class:`CheckpointError` with a
    one-line message naming ``path`` otherwise.
    """
    path = Path(path)
    name = shown(path)
    if not path.exists():
        raise CheckpointError(f"{name}: no such checkpoint file")
    if special_file(path) or path.is_dir():
        kind = special_file(path) or "a folder"
        raise CheckpointError(f"{name}: is {kind}, not a checkpoint file; pass a .pt file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{name}: is empty (0 bytes), not a checkpoint; re-download or "
                              "re-train it")
    try:
        with open_regular(path, CheckpointError) as f:
            payload = torch.load(f, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as exc:  # truncated zip, random bytes, or a pickle with code in it
        kind = "unsafe or unsupported objects" if "weights_only" in str(exc) or \
            "Unsupported" in str(exc) else "a truncated or corrupt file"
        raise CheckpointError(f"{name}: cannot read checkpoint ({kind}: "
                              f"{shown(first_line(exc))[:120]}); re-download or re-train it") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{name}: not a dcu checkpoint (no '{FORMAT}' header); "
                              "save models with dcu.save")
    check_fields(path, payload, {"format_version": int})
    if payload["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{name}: written by a newer dcu (format "
                              f"{payload['format_version']}); upgrade dcu")
    check_fields(path, payload, {"config": dict, "state_dict": dict, "metadata": dict})
    bad = [k for k, v in payload["state_dict"].items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{name}: weight {bad[0]!r} is not a tensor; the file is damaged "
                              "or was edited")
    problem = checksum_problem(payload) or disagreement(payload)
    if problem:
        raise CheckpointError(f"{name}: {problem}; re-download or re-train it")
    return payload


def load(path_or_name: str | os.PathLike, arch: str | None = None,
         map_location: str | torch.device = "cpu") -> DCUnet:
    """Rebuild the model stored in a checkpoint (a path or a shipped name such as ``"dcunet20"``).

    ``arch``, if given, must match the checkpoint's architecture. Returns the reference model
    (:class:`dcu.DCUnet`, the code the book teaches) in eval mode, with ``model.metadata`` holding
    the checkpoint's metadata. To run it fast, pass it to :func:`dcu.engine.optimize` (as ``dcu
    enhance``, ``dcu evaluate`` and the other commands do): the weights are the same.
    """
    path = resolve(path_or_name)
    payload, name = read_checkpoint(path), shown(path)
    try:
        config = ModelConfig(**payload["config"])
    except TypeError as exc:
        raise CheckpointError(f"{name}: checkpoint config is not understood ({exc})") from None
    if arch is not None:
        want = get_architecture(arch).name
        if want != config.arch:
            raise CheckpointError(f"{name}: checkpoint holds a {config.arch}, not the requested "
                                  f"{want}; load it without arch= or pick the right file")
    try:
        model = DCUnet(**vars(config))
    except Exception as exc:  # a config field of the wrong kind or value
        raise CheckpointError(f"{name}: checkpoint config is not understood "
                              f"({first_line(exc)[:160]})") from None
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in payload["state_dict"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{name}: weights do not match a {config.arch} ({first_line(exc)[:160]}); "
                              "the file is damaged or was edited") from None
    count = payload["metadata"].get("num_parameters")
    if isinstance(count, int) and count != model.num_parameters():
        raise CheckpointError(f"{name}: its metadata says {count} parameters, but its config builds "
                              f"{model.num_parameters()} (the file was edited or damaged); "
                              "re-download or re-train it")
    model.metadata = payload.get("metadata", {})
    return model.to(map_location).eval()


def strip(src: str | os.PathLike, dst: str | os.PathLike, *, half: bool = False) -> Path:
    """Write a weights-only copy of the checkpoint ``src`` (a run's ``best.pt``) to ``dst``: config,
    weights and metadata without the training state, with a fresh checksum, atomically; float16
    weights with ``half=True`` (as the shipped ones). ``dst`` is never overwritten. Returns it."""
    src, dst = resolve(src), Path(dst)
    payload = read_checkpoint(src)
    payload.pop("train_state", None)
    if half:
        payload["state_dict"] = halved(payload["state_dict"])
    save_new(with_checksum(payload), dst)
    return dst


def save_new(payload: dict, dst: Path) -> None:
    """Write ``payload`` to ``dst`` atomically, refusing (one line) a name that is taken, even
    by a file that appears while it is written."""
    try:
        if dst.exists():
            raise FileExistsError
        atomic_torch_save(payload, dst, overwrite=False)
    except FileExistsError:
        raise CheckpointError(f"{shown(dst)}: already exists; choose another name or delete it "
                              "first") from None
