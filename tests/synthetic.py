"""Deterministic test models and signals shared by tests/test_unet.py and tests/test_enhance.py."""

import math

import torch

from dcu import DCUnet
from dcu.architectures import Architecture


def make(arch="tiny", seed=0, **kwargs):
    torch.manual_seed(seed)
    return DCUnet(arch, **kwargs)


def speechlike(n, batch=None, seed=0):
    """A harmonic tone with noise: deterministic test audio at 16 kHz, float32."""
    gen = torch.Generator().manual_seed(seed)
    shape = (n,) if batch is None else (batch, n)
    t = torch.arange(n) / 16000
    tone = 0.3 * torch.sin(2 * math.pi * 220 * t) + 0.1 * torch.sin(2 * math.pi * 660 * t)
    return tone + 0.05 * torch.randn(shape, generator=gen)


def randomise_norms(model, seed=1):
    """Give every batch norm non-trivial affine parameters and running statistics."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".norm." in name:
                p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    model.train()
    with torch.no_grad():
        model(speechlike(4000, batch=2, seed=seed).to(next(model.parameters()).dtype))
    return model


# DCUnet-20's layer kinds (7x1 and 1x7 stride-1 layers, then (2, 2) and (2, 1) strides) with
# few channels: the paper-size model is too slow for a double-precision reference on 2 cores.
MINI20 = Architecture(
    "mini-20",
    encoders=((1, 4, (7, 1), (1, 1)), (4, 4, (1, 7), (1, 1)), (4, 8, (7, 5), (2, 2)),
              (8, 6, (5, 3), (2, 1))),
    decoders=((6, 8, (5, 3), (2, 1)), (16, 4, (7, 5), (2, 2)), (8, 4, (1, 7), (1, 1)),
              (8, 1, (7, 1), (1, 1))))
