"""The paper's three complex masks (Choi et al. 2019, sec. 3.2).

The network outputs a complex tensor ``O``; a mask function turns it into the ratio mask ``M``
that multiplies the noisy spectrogram: ``Y_hat = M * X``.

- ``UBD`` (unbounded): ``M = O``.
- ``BDSS`` (bounded sigmoid, rectangular): ``M = sigmoid(Re O) + i sigmoid(Im O)``; it lies in
  the unit square, so it can never rotate the phase by more than 90 degrees nor flip signs.
- ``BDT`` (bounded tanh, polar; the paper's proposal): ``M = tanh(|O|) * O / |O|``; magnitude in
  ``[0, 1)`` and any phase.

Book: book/04_masks.ipynb
"""

from __future__ import annotations

import torch

MASKS = ("UBD", "BDSS", "BDT")


def compute_mask(output: torch.Tensor, kind: str = "BDT", eps: float = 1e-8) -> torch.Tensor:
    """Bound the network output ``O`` (any shape, complex) into a mask of the given kind."""
    if not output.is_complex():
        raise TypeError(f"compute_mask expects a complex tensor, got {output.dtype}")
    re, im = compute_mask_parts(output.real, output.imag, kind, eps)
    return torch.complex(re, im)


def compute_mask_parts(re: torch.Tensor, im: torch.Tensor, kind: str = "BDT",
                       eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`compute_mask` on the real and imaginary parts held as two real tensors.

    The network uses this form internally (real arithmetic is faster than complex on CPUs).
    """
    if kind == "UBD":
        return re, im
    if kind == "BDSS":
        return torch.sigmoid(re), torch.sigmoid(im)
    if kind == "BDT":
        # tanh(|O|) * O / |O|; eps keeps the division finite where |O| ~ 0 (the mask is ~0 there).
        mag = torch.sqrt(re * re + im * im + eps * eps)
        scale = torch.tanh(mag) / mag
        return re * scale, im * scale
    raise ValueError(f"unknown mask {kind!r}; choose one of {', '.join(MASKS)}")


def apply_mask(noisy_spec: torch.Tensor, output: torch.Tensor, kind: str = "BDT") -> torch.Tensor:
    """``Y_hat = compute_mask(O) * X`` for complex spectrograms of the same shape."""
    return compute_mask(output, kind) * noisy_spec
