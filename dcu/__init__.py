"""dcu: phase-aware speech enhancement with deep complex U-Net (Choi et al., ICLR 2019).

The package mirrors the book: one module per idea.

- :mod:`dcu.stft`        STFT front end with the paper's settings (book chapter 2)
- :mod:`dcu.complex_nn`  complex convolution, batch norm and activation (chapter 3)
- :mod:`dcu.masks`       UBD, BDSS and BDT masks (chapter 4)
- :mod:`dcu.losses`      weighted-SDR, SDR and spectral MSE losses (chapter 5)
- :mod:`dcu.architectures`, :mod:`dcu.unet`  the DCUnet family (chapter 6)
- :mod:`dcu.checkpoint`  :func:`save` and :func:`load`
- :mod:`dcu.audio`, :mod:`dcu.data`  audio I/O, mixing and datasets
- :mod:`dcu.metrics`, :mod:`dcu.baselines`, :mod:`dcu.evaluate`  evaluation (chapter 8)
- :mod:`dcu.train`, :mod:`dcu.enhance`, :mod:`dcu.bench`  training, enhancement, speed
"""

__version__ = "0.1.0"

from dcu.unet import DCUnet  # noqa: E402
from dcu.checkpoint import save, load  # noqa: E402

__all__ = ["DCUnet", "save", "load", "__version__"]
