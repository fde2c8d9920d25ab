"""The DCUnet family as data: the architecture table of the paper's appendix.

Every layer is ``(in_channels, out_channels, kernel, stride)`` with kernel and stride given as
``(frequency, time)``; padding is ``kernel // 2`` in each direction (so a stride-2 layer maps
``2n + 1`` bins or frames to ``n + 1``). Channel counts are *complex* channels. Decoders mirror
the encoders in reverse order; every decoder after the first takes its predecessor's output
concatenated with the matching encoder's output (the skip connection), so its input has twice
the channels; the last decoder outputs one complex channel, the mask.

``tiny`` is not from the paper: a 4-layer net with a few thousand parameters for tests and
quick runs in the book.

Book: book/06_architectures.ipynb
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Layer = tuple[int, int, tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class Architecture:
    """One DCUnet size: its encoder and decoder layers (see the module docstring)."""

    name: str
    encoders: tuple[Layer, ...]
    decoders: tuple[Layer, ...]

    @property
    def depth(self) -> int:
        """Number of convolutional layers (encoders + decoders), the "10/16/20" of the name."""
        return len(self.encoders) + len(self.decoders)

    @property
    def freq_multiple(self) -> int:
        """Product of the frequency strides: ``(bins - 1)`` must be divisible by it."""
        return math.prod(stride[0] for *_, stride in self.encoders)

    @property
    def frame_multiple(self) -> int:
        """Product of the time strides: ``(frames - 1)`` must be divisible by it."""
        return math.prod(stride[1] for *_, stride in self.encoders)

    def feature_sizes(self, bins: int, frames: int) -> list[tuple[int, int]]:
        """(bins, frames) of the input and of each encoder's output, for a ``(bins, frames)``
        spectrogram on the frame grid: ``n -> (n - 1) // stride + 1`` per axis (padding
        ``kernel // 2``). Decoders restore them in reverse order."""
        sizes = [(bins, frames)]
        for *_, stride in self.encoders:
            sizes.append(tuple((n - 1) // s + 1 for n, s in zip(sizes[-1], stride)))
        return sizes


def _mirror(encoders, decoder_out=None, last_in=None) -> tuple[Layer, ...]:
    """Decoders that mirror ``encoders`` (used to write the table compactly, checked by tests)."""
    decoders, prev_out = [], None
    n = len(encoders)
    for i, (cin, cout, kernel, stride) in enumerate(reversed(encoders)):
        d_in = cout if i == 0 else prev_out + cout
        d_out = 1 if i == n - 1 else (decoder_out or cin)
        decoders.append((d_in, d_out, kernel, stride))
        prev_out = d_out
    return tuple(decoders)


def _arch(name, encoders, decoder_out=None) -> Architecture:
    encoders = tuple(encoders)
    return Architecture(name, encoders, _mirror(encoders, decoder_out))


_K75, _K53 = (7, 5), (5, 3)

ARCHITECTURES: dict[str, Architecture] = {
    "tiny": _arch("tiny", [
        (1, 8, _K53, (2, 2)), (8, 8, _K53, (2, 2)),
    ]),
    # the book's ablation network at laptop scale: DCUnet-10 with half the channels and one
    # encoder fewer, about a fifth of its parameters (chapter 7's live cell)
    "small": _arch("small", [
        (1, 16, _K75, (2, 2)), (16, 32, _K75, (2, 2)), (32, 32, _K53, (2, 2)),
        (32, 32, _K53, (2, 1)),
    ]),
    "DCUnet-10": _arch("DCUnet-10", [
        (1, 32, _K75, (2, 2)), (32, 64, _K75, (2, 2)), (64, 64, _K53, (2, 2)),
        (64, 64, _K53, (2, 2)), (64, 64, _K53, (2, 1)),
    ]),
    "DCUnet-16": _arch("DCUnet-16", [
        (1, 32, _K75, (2, 2)), (32, 32, _K75, (2, 1)), (32, 64, _K75, (2, 2)),
        (64, 64, _K53, (2, 1)), (64, 64, _K53, (2, 2)), (64, 64, _K53, (2, 1)),
        (64, 64, _K53, (2, 2)), (64, 64, _K53, (2, 1)),
    ]),
    "DCUnet-20": _arch("DCUnet-20", [
        (1, 32, (7, 1), (1, 1)), (32, 32, (1, 7), (1, 1)), (32, 64, _K75, (2, 2)),
        (64, 64, _K75, (2, 1)), (64, 64, _K53, (2, 2)), (64, 64, _K53, (2, 1)),
        (64, 64, _K53, (2, 2)), (64, 64, _K53, (2, 1)), (64, 64, _K53, (2, 2)),
        (64, 90, _K53, (2, 1)),
    ]),
    "Large-DCUnet-20": _arch("Large-DCUnet-20", [
        (1, 45, (7, 1), (1, 1)), (45, 45, (1, 7), (1, 1)), (45, 90, _K75, (2, 2)),
        (90, 90, _K75, (2, 1)), (90, 90, _K53, (2, 2)), (90, 90, _K53, (2, 1)),
        (90, 90, _K53, (2, 2)), (90, 90, _K53, (2, 1)), (90, 90, _K53, (2, 2)),
        (90, 128, _K53, (2, 1)),
    ], decoder_out=90),
}

# Short names accepted anywhere an architecture name is (``DCUnet(arch="20")``).
ALIASES = {"10": "DCUnet-10", "16": "DCUnet-16", "20": "DCUnet-20", "large": "Large-DCUnet-20"}


def get_architecture(name: str | Architecture) -> Architecture:
    """Look an architecture up by name (case-insensitive; ``"dcunet20"`` works too)."""
    if isinstance(name, Architecture):
        return name
    key = str(name)
    norm = {k.lower().replace("-", "").replace("_", ""): k for k in ARCHITECTURES}
    alias = ALIASES.get(key.lower())
    found = alias or norm.get(key.lower().replace("-", "").replace("_", ""))
    if found is None:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[found]
