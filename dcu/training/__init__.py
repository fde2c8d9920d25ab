"""Training: one run's configuration, its loop with checkpoints and resume, validation and log.

- :mod:`dcu.training.config`      :class:`TrainConfig` (``dcu train``'s options) and the run's data
- :mod:`dcu.training.trainer`     :class:`Trainer` (loop, checkpoints, resume, DDP), :func:`train`
- :mod:`dcu.training.validation`  :func:`validate`: wSDR, SI-SDR, STOI and PESQ on held-out pairs
- :mod:`dcu.training.log`         a run's log, one row per validation

Book: book/07_training.ipynb
"""

from dcu.training.config import TrainConfig, make_datasets
from dcu.training.log import read_log
from dcu.training.trainer import Trainer, TrainingError, stages, train
from dcu.training.validation import validate

__all__ = ["TrainConfig", "Trainer", "TrainingError", "make_datasets", "read_log", "stages", "train",
           "validate"]
