"""dcu: phase-aware speech enhancement with deep complex U-Net (Choi et al., ICLR 2019).

The package mirrors the book: one module per idea.

- :mod:`dcu.stft`        STFT front end with the paper's settings (book chapter 2)
- :mod:`dcu.complex_nn`  complex convolution, batch norm and activation (chapter 3)
- :mod:`dcu.masks`       UBD, BDSS and BDT masks (chapter 4)
- :mod:`dcu.losses`      weighted-SDR, SDR and spectral MSE losses (chapter 5)
- :mod:`dcu.architectures`, :mod:`dcu.unet`  the DCUnet family (chapter 6)
- :mod:`dcu.engine`      the same network made fast from outside: stacked and Gauss
  convolutions, fused batch norm, folding, bfloat16 (chapters 3 and 6)
- :mod:`dcu.store.checkpoint`  :func:`save` and :func:`load`, the one owner of the saved format
- :mod:`dcu.audio`, :mod:`dcu.data`, :mod:`dcu.download`  audio I/O, mixing, datasets, the
  full VoiceBank+DEMAND download
- :mod:`dcu.metrics`, :mod:`dcu.composite`, :mod:`dcu.baselines`, :mod:`dcu.jobs.evaluate`
  (+ :mod:`dcu.results`)  evaluation (chapter 8)
- :mod:`dcu.training.config` (+ :mod:`dcu.training.trainer`, :mod:`dcu.training.trainstate`, :mod:`dcu.training.log`)  training
  (chapter 7); :mod:`dcu.ablation`  the mask x loss and complex vs real experiments (chapter 7)
- :mod:`dcu.jobs.enhance` (+ :mod:`dcu.jobs.folders`), :mod:`dcu.jobs.demo`, :mod:`dcu.jobs.speed` (+ :mod:`dcu.jobs.measure`),
  :mod:`dcu.jobs.export`  enhancement, the demo, speed, ONNX export
- :mod:`dcu.plots`  the book's figures; :mod:`dcu.cli`  the ``dcu`` command

Dependencies point one way (tests/test_layout.py): signal -> layers -> model -> engine -> store
-> data/metrics -> jobs -> CLI.
"""

from dcu.version import __version__
from dcu.unet import DCUnet
from dcu.store.checkpoint import save, load

__all__ = ["DCUnet", "save", "load", "__version__"]
