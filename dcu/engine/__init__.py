"""The engine: the same DCUnet, computed fast, in float32 or bfloat16.

:mod:`dcu.complex_nn` and :mod:`dcu.unet` are the reference: they compute what the paper writes,
op by op, on complex tensors. The engine makes a built model fast from the outside, the way
``torch.ao.quantization.fuse_modules`` or ``ipex.optimize`` do, without changing its parameters::

    model = dcu.DCUnet("DCUnet-20")
    dcu.engine.optimize(model, precision="auto")   # in place; returns the model
    dcu.engine.reference(model)                    # back to the reference code

:func:`optimize` switches each module to its fast subclass (:mod:`dcu.engine.layers`): the network
runs on stacked real tensors, complex convolutions as one real convolution or with Gauss's trick
(:mod:`dcu.engine.kernels`), the complex batch norm as one fused autograd function, the batch norm
folded into the convolution at inference, channels-last at inference, and the convolutions in
bfloat16 where the hardware runs it natively (:mod:`dcu.engine.precision`). The state dict is the
reference's, so checkpoints load into either, and ``tests/test_engine.py`` checks that outputs and
gradients agree with the reference. ``dcu.load`` returns the reference model (the store knows
nothing of speed); ``dcu train``, ``dcu enhance``, ``dcu evaluate``, ``dcu bench`` and ``dcu
export`` pass it through :func:`optimize`.

Book: book/03_complex_layers.ipynb, book/06_architectures.ipynb
"""

from __future__ import annotations

from torch import nn

from dcu.engine.cpu import flush_denormals, tune_cpu
from dcu.engine.layers import FAST_CLASSES
from dcu.engine.precision import PRECISIONS, autocast, bf16_native, resolve_precision

__all__ = ["optimize", "reference", "is_optimized", "autocast", "bf16_native",
           "resolve_precision", "tune_cpu", "flush_denormals", "PRECISIONS"]

_REFERENCE_CLASSES = {fast: ref for ref, fast in FAST_CLASSES.items()}


def optimize(model: nn.Module, precision: str = "fp32") -> nn.Module:
    """Make ``model`` (a :class:`dcu.DCUnet`, or any module holding dcu layers) fast, in place.

    ``precision``: ``"fp32"``, ``"bf16"`` or ``"auto"`` (bf16 where the model's device runs it
    natively; resolved when the model runs, so moving it to another device re-decides). Calling
    it again changes only the precision. Returns ``model``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    for module in model.modules():
        fast = FAST_CLASSES.get(type(module))
        if fast is not None:
            module.__class__ = fast
        if hasattr(type(module), "precision"):
            module.precision = precision
    return model


def reference(model: nn.Module) -> nn.Module:
    """Switch ``model`` back to the reference code (float32, complex tensors), in place."""
    for module in model.modules():
        ref = _REFERENCE_CLASSES.get(type(module))
        if ref is not None:
            module.__class__ = ref
            module.__dict__.pop("_fold_cache", None)
            module.__dict__.pop("precision", None)
    return model


def is_optimized(model: nn.Module) -> bool:
    """Does ``model`` run on the engine (any of its modules switched by :func:`optimize`)?"""
    return any(type(m) in _REFERENCE_CLASSES for m in model.modules())
