"""The ``dcu checkpoint`` command: read what a checkpoint holds (``info``), strip its training state
for shipping (``strip``), mix it with the weights it started from (``interpolate``).

:func:`interpolate` writes the weight-space mix ``(1 - alpha) * start + alpha * end`` of two
checkpoints of one model: for a fine-tune, a point between the weights it began from and its
result often keeps most of what the fine-tune learnt and most of what it forgot (Wortsman et
al., 2022, "WiSE-FT"). The file format itself (save, load, strip, checksums) is
:mod:`dcu.store.checkpoint`'s.

Book: book/07_training.ipynb
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from dcu.base.guard import shown
from dcu.store.checkpoint import (FORMAT, FORMAT_VERSION, CheckpointError, halved, plain,
                                  read_checkpoint, resolve, save_new, strip, tensor_checksum,
                                  with_checksum)


def interpolate(start: str | os.PathLike, end: str | os.PathLike, alpha: float,
                dst: str | os.PathLike, *, half: bool = False, **metadata) -> Path:
    """Write the weight-space interpolation ``(1 - alpha) * start + alpha * end`` of two
    checkpoints of the same model to ``dst`` (weights only, atomically, never overwriting).

    ``start`` is typically the weights a fine-tune began from and ``end`` its result; a point in
    between often keeps most of what the fine-tune learnt and most of what it forgot ("WiSE-FT",
    Wortsman et al., 2022). Every floating-point tensor is interpolated, batch-norm running
    statistics included (a convex combination of two covariance matrices is still one); integer
    tensors (batch counters) come from ``end``. The config and metadata are ``end``'s, with
    ``metadata["interpolation"]`` recording ``alpha`` and both sources (the file as named, its
    tensor checksum and kept step); ``end``'s validation scores move there too, as they are not
    this model's (pass the mix's own as ``valid=...``: ``metadata`` is added, as in
    :func:`dcu.save`).
    ``alpha=0`` gives ``start``'s weights, ``alpha=1`` ``end``'s. Returns ``dst``.
    """
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise CheckpointError(f"alpha={alpha}: must lie in [0, 1] (0 = {start}, 1 = {end})")
    dst = Path(dst)
    if dst.exists():
        raise CheckpointError(f"{shown(dst)}: already exists; choose another name or delete it first")
    a_path, b_path = resolve(start), resolve(end)
    a, b = read_checkpoint(a_path), read_checkpoint(b_path)
    if a["config"] != b["config"]:
        diff = sorted(k for k in set(a["config"]) | set(b["config"])
                      if a["config"].get(k) != b["config"].get(k))
        raise CheckpointError(f"{b_path}: not the same model as {a_path} (config differs in "
                              f"{', '.join(diff)}); interpolate two checkpoints of one architecture")
    if set(a["state_dict"]) != set(b["state_dict"]):
        raise CheckpointError(f"{b_path}: holds other weights than {a_path}; interpolate two "
                              "checkpoints of one architecture")
    state = {}
    for k, vb in b["state_dict"].items():
        va = a["state_dict"][k]
        if va.shape != vb.shape:
            raise CheckpointError(f"{b_path}: weight {k!r} has shape {tuple(vb.shape)}, "
                                  f"{tuple(va.shape)} in {a_path}; the files hold different models")
        state[k] = torch.lerp(va.float(), vb.float(), alpha) if vb.is_floating_point() else vb
    meta = dict(b["metadata"])
    meta.pop("tensor_sha256", None)
    end_valid = meta.pop("valid", {})
    # the files as they were named (a shipped name, a run's relative path), not this machine's paths
    meta["interpolation"] = {
        "alpha": alpha,
        "start": {"file": str(start), "tensor_sha256": tensor_checksum(a),
                  "step": a["metadata"].get("step")},
        "end": {"file": str(end), "tensor_sha256": tensor_checksum(b),
                "step": b["metadata"].get("step"), "valid": end_valid}}
    meta.update(metadata)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": b["config"],
               "state_dict": halved(state) if half else state, "metadata": plain(meta)}
    save_new(with_checksum(payload), dst)
    return dst


def describe(path_or_name: str | os.PathLike) -> str:
    """What a checkpoint holds, in a few lines: config, step, validation scores, metadata."""
    path = resolve(path_or_name)
    payload = read_checkpoint(path)
    meta = payload["metadata"]
    lines = [f"{shown(path)}: dcu checkpoint (format {payload['format_version']})",
             "config: " + ", ".join(f"{k}={v}" for k, v in payload["config"].items()),
             f"step: {meta.get('step', '-')}",
             "validation: " + (", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in meta.get("valid", {}).items()) or "-"),
             f"training state: {'yes (resumable)' if 'train_state' in payload else 'no'}"]
    order = sorted(meta, key=lambda k: k in ("train_config", "previous_stage"))  # those two last
    lines += [f"{k}: {meta[k]}" for k in order if k not in ("step", "valid")]
    return "\n".join(lines)


def checkpoint_cli(argv: list[str]) -> int:
    """``dcu checkpoint info FILE`` | ``dcu checkpoint strip IN OUT [--half]`` |
    ``dcu checkpoint interpolate START END OUT --alpha A [--half]``."""
    p = argparse.ArgumentParser(prog="dcu checkpoint", description="Inspect or ship checkpoints.")
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("info", help="print config, step, validation and metadata").add_argument("file")
    s = sub.add_parser("strip", help="weights-only copy without the training state (never overwrites)")
    s.add_argument("src", metavar="IN")
    s.add_argument("dst", metavar="OUT")
    s.add_argument("--half", action="store_true", help="store the weights as float16 (half the size)")
    m = sub.add_parser("interpolate", help="(1 - alpha) * START + alpha * END, weights only "
                       "(never overwrites)")
    m.add_argument("start", metavar="START", help="e.g. the weights a fine-tune started from")
    m.add_argument("end", metavar="END", help="e.g. the fine-tune's best.pt")
    m.add_argument("dst", metavar="OUT")
    m.add_argument("--alpha", type=float, required=True, help="0 = START, 1 = END")
    m.add_argument("--half", action="store_true", help="store the weights as float16 (half the size)")
    args = p.parse_args(argv)
    try:
        if args.action == "info":
            print(describe(args.file))
        elif args.action == "strip":
            print(f"wrote {strip(args.src, args.dst, half=args.half)}")
        else:
            print(f"wrote {interpolate(args.start, args.end, args.alpha, args.dst, half=args.half)}")
    except CheckpointError as exc:
        print(shown(f"dcu checkpoint: error: {exc}"), file=sys.stderr)
        return 1
    return 0
