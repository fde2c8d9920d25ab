"""Numeric precision of the engine: float32, or bfloat16 mixed precision where it runs natively.

``"bf16"`` runs the convolutions under ``torch.autocast(dtype=torch.bfloat16)``: their inputs and
weights are rounded to bfloat16 (8 bits of mantissa) and they accumulate in float32. What is
numerically delicate stays float32: the complex batch norm's statistics and whitening (the 2x2
inverse square root), the masks' tanh and magnitudes, the loss, the STFT and its inverse, and
every stored weight (checkpoints are float32 whatever the precision).

``"auto"`` picks bfloat16 where the device executes it natively and float32 elsewhere: CPUs with
AVX512-BF16 or AMX (oneDNN's bf16 kernels), CUDA GPUs that support bf16 (Ampere and later).
Elsewhere bfloat16 would be emulated and slower than float32.

Book: book/06_architectures.ipynb (section on speed)
"""

from __future__ import annotations

import contextlib
import functools

import torch

PRECISIONS = ("auto", "fp32", "bf16")


@functools.lru_cache(maxsize=None)
def _cpu_bf16_native() -> bool:
    mkldnn = getattr(torch.ops, "mkldnn", None)
    try:
        return bool(torch.backends.mkldnn.is_available() and mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # an older or stripped-down build: assume not
        return False


def bf16_native(device: torch.device | str = "cpu") -> bool:
    """Does ``device`` run bfloat16 convolutions natively (checked at run time)?"""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return _cpu_bf16_native()
    return False


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """``"auto"`` -> ``"bf16"`` or ``"fp32"`` for ``device``; ``"fp32"``/``"bf16"`` as given."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if bf16_native(device) else "fp32"
    return precision


def autocast(precision: str, device: torch.device | str = "cpu"):
    """A context running the convolutions in ``precision`` on ``device`` (resolved first)."""
    device = torch.device(device)
    if resolve_precision(precision, device) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
