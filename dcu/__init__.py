"""dcu: phase-aware speech enhancement with deep complex U-Net (Choi et al., ICLR 2019).

The package mirrors the book. At the top, one module per idea a chapter teaches:

- :mod:`dcu.stft`        STFT front end with the paper's settings (book chapter 2)
- :mod:`dcu.complex_nn`  complex convolution, batch norm and activation (chapter 3)
- :mod:`dcu.masks`       UBD, BDSS and BDT masks (chapter 4)
- :mod:`dcu.losses`      weighted-SDR, SDR and spectral MSE losses (chapter 5)
- :mod:`dcu.architectures`, :mod:`dcu.unet`  the DCUnet family (chapter 6)
- :mod:`dcu.audio`, :mod:`dcu.level`  audio in and out, the input level (chapters 1 and 9)
- :mod:`dcu.data` (+ :mod:`dcu.corpus`, :mod:`dcu.mixing`, :mod:`dcu.augment`,
  :mod:`dcu.download`)  the corpora, SNR mixing, augmentation, the training set (chapters 1, 7)
- :mod:`dcu.metrics`, :mod:`dcu.composite`, :mod:`dcu.baselines`, :mod:`dcu.results`
  evaluation measures, classical enhancers, summaries (chapter 8)
- :mod:`dcu.ablation`  the mask x loss and complex vs real experiments (chapter 7);
  :mod:`dcu.plots`  the book's figures

The machinery, in sub-packages named for what they do:

- :mod:`dcu.engine`    the same network made fast from outside: stacked and Gauss convolutions,
  fused batch norm, folding, bfloat16, CPU tuning (chapters 3 and 6)
- :mod:`dcu.store`     :func:`save` and :func:`load` (the reference model), the one owner of the
  saved format, and the ``dcu checkpoint`` command
- :mod:`dcu.training`  a training run: config, loop, resume, validation, log (chapter 7)
- :mod:`dcu.jobs`      the commands that run a model on files: enhance, evaluate, demo, export,
  speed (``dcu bench``), ``dcu data``
- :mod:`dcu.base`      atomic writes, locks, the data folder; :mod:`dcu.cli`  the ``dcu`` command;
  :mod:`dcu.scripts`  the maintainers' drivers

Which part may import which is written in README.md ("How the package is organised") and held
by tests/test_layout.py.
"""

from dcu.version import __version__
from dcu.unet import DCUnet
from dcu.store.checkpoint import save, load
from dcu import engine  # dcu.engine.optimize(dcu.load(...)): the loaded model, made fast

__all__ = ["DCUnet", "save", "load", "engine", "__version__"]
