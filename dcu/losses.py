"""Training objectives: weighted-SDR (the paper's), plain SDR, and spectral MSE.

All losses take waveforms ``(batch, time)`` (or ``(time,)``) and return the batch mean, a scalar.

The weighted-SDR loss (Choi et al. 2019, sec. 4). With noisy ``x``, clean ``y``, estimate
``y_hat``, true noise ``z = x - y`` and estimated noise ``z_hat = x - y_hat``::

    loss_SDR(a, a_hat) = -<a, a_hat> / (||a|| ||a_hat||)
    alpha = ||y||^2 / (||y||^2 + ||z||^2)
    loss_wSDR = alpha * loss_SDR(y, y_hat) + (1 - alpha) * loss_SDR(z, z_hat)

It lies in ``[-1, 1]`` and equals ``-1`` for a perfect estimate. Each SDR term is a negative
cosine, so it ignores the scale of either argument; the whole loss does not change when noisy,
clean and estimate are scaled together, so it has no preferred loudness. The noise term punishes
an estimate that leaves noise behind, which plain SDR barely sees.

Book: book/05_wsdr_loss.ipynb
"""

from __future__ import annotations

import torch

from dcu.stft import compute_stft

EPS = 1e-8


def _batched(*xs: torch.Tensor) -> list[torch.Tensor]:
    shape = xs[0].shape
    for x in xs:
        if x.shape != shape:
            raise ValueError(f"loss inputs must have the same shape, got {[tuple(t.shape) for t in xs]}")
    if xs[0].dim() not in (1, 2):
        raise ValueError(f"losses take waveforms (batch, time) or (time,), got shape {tuple(shape)}")
    return [x.reshape(-1, shape[-1]) for x in xs]


def negative_cosine(a: torch.Tensor, a_hat: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Per-item ``-<a, a_hat> / (||a|| ||a_hat||)`` for ``(batch, time)`` inputs -> ``(batch,)``."""
    dot = (a * a_hat).sum(-1)
    return -dot / (a.norm(dim=-1) * a_hat.norm(dim=-1) + eps)


def sdr_loss(clean: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """Plain SDR loss ``loss_SDR(y, y_hat)``, averaged over the batch."""
    y, y_hat = _batched(clean, estimate)
    return negative_cosine(y, y_hat).mean()


def wsdr_loss(noisy: torch.Tensor, clean: torch.Tensor, estimate: torch.Tensor,
              eps: float = EPS) -> torch.Tensor:
    """The paper's weighted-SDR loss (see the module docstring), averaged over the batch."""
    x, y, y_hat = _batched(noisy, clean, estimate)
    z, z_hat = x - y, x - y_hat
    y_energy, z_energy = (y * y).sum(-1), (z * z).sum(-1)
    alpha = y_energy / (y_energy + z_energy + eps)
    loss = alpha * negative_cosine(y, y_hat, eps) + (1 - alpha) * negative_cosine(z, z_hat, eps)
    return loss.mean()


def spectral_mse(clean: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """Mean squared error between complex STFTs, ``mean |Y_hat - Y|^2``."""
    y, y_hat = _batched(clean, estimate)
    return (compute_stft(y_hat) - compute_stft(y)).abs().pow(2).mean()


LOSSES = {"wSDR": wsdr_loss, "SDR": sdr_loss, "MSE": spectral_mse}


def compute_loss(name: str, noisy: torch.Tensor, clean: torch.Tensor,
                 estimate: torch.Tensor) -> torch.Tensor:
    """Dispatch by name (``"wSDR"``, ``"SDR"`` or ``"MSE"``)."""
    if name == "wSDR":
        return wsdr_loss(noisy, clean, estimate)
    if name in LOSSES:
        return LOSSES[name](clean, estimate)
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
