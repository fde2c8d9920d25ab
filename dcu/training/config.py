"""A training run's configuration: :class:`TrainConfig` (``dcu train``'s options) and its data.

``dcu train --arch DCUnet-10 --steps 2000 --out runs/dcunet10`` trains on the shipped corpus;
``dcu train --resume --out runs/dcunet10`` continues an interrupted run exactly where it stopped
(same data order, optimiser, schedule and RNG state), so the result equals an uninterrupted run;
it refuses training files that changed since the checkpoint unless given
``--allow-data-change``. One run at a time may use an ``--out`` folder (a lock file there).
``torchrun --nproc_per_node 4 -m dcu train ...`` runs data-parallel on 4 GPUs (or CPU processes).

Choices the paper leaves open (documented here and in the book): Adam with a linear warm-up and
a cosine decay of the learning rate, 2 s random crops, half of them remixed on the fly with
training noise at 0/5/10/15 dB (``--remix-snrs``), gradient clipping at norm 5, validation by PESQ (wide-band) on
the validation split, keeping the best checkpoint. The training set, its augmentations
(:mod:`dcu.augment`) and the validation sets are options too (``--train-pairs``, ``--extra-speech``,
``--speed``, ``--gain-db``, ``--speech-free-prob``, ``--valid-sets``, ``--select-by``); their
defaults give the runs the shipped models came from, and ``dcu/scripts/train_general.sh``
shows the set that generalizes.

The run itself (loop, checkpoints, resume, DDP) is :mod:`dcu.training.trainer`; validation
:mod:`dcu.training.validation`; the log :mod:`dcu.training.log`.

Book: book/07_training.ipynb
"""

from __future__ import annotations

import argparse
import functools
import math
from dataclasses import dataclass, field, fields, replace

from dcu.augment import GAIN_LIMITS, SPEED_LIMITS, parse_range
from dcu.data import TrainingSet, training_sources, validation_sets
from dcu.stft import SAMPLE_RATE
from dcu.unet import ModelConfig

__all__ = ["FLAT_MODEL_OPTIONS", "LIMITS", "TrainConfig", "check_value", "config_from_args",
           "make_datasets", "parse_snrs"]

#: The model options ``dcu train`` takes flat (``--arch``, ``--mask``, ``--network``,
#: ``--batch-norm``, ``--causal``, ``--n-fft``, ``--hop-length``), and :class:`TrainConfig`
#: accepts as keywords: fields of :attr:`TrainConfig.model`.
FLAT_MODEL_OPTIONS = ("arch", "mask", "network", "batch_norm", "causal", "n_fft", "hop_length")


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved in every checkpoint it writes.

    The network is :attr:`model`, a :class:`~dcu.unet.ModelConfig` (the config every checkpoint
    stores to rebuild its model); the rest is how it is trained. ``TrainConfig(arch="tiny",
    mask="UBD")`` sets fields of :attr:`model`, as ``dcu train --arch tiny --mask UBD`` does.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: str = "wSDR"
    data: str = "shipped"  # "shipped", "voicebank" (after `dcu data download`) or a folder
    segment_seconds: float = 2.0
    items_per_file: int = 4
    remix_prob: float = 0.5
    remix_snrs: str = "0,5,10,15"  # dB, comma-separated: SNRs of the remixed items (the paper's)
    train_pairs: str = "first_400"  # shipped: "first_400" (what the shipped models saw) or "all" (data/README.md step 4)
    extra_speech: str = ""  # clean speech mixed on the fly: "", "p239" (shipped p239_train) or a folder
    source_weights: str = ""  # "pairs=1,p239=1,librispeech=1": share of items per source; "" = per file
    speed: str = ""  # "lo,hi": speed-perturb items by a factor in [lo, hi] (e.g. 0.9,1.1); "" = off
    speed_prob: float = 0.5  # share of items sped up when --speed is set
    gain_db: str = ""  # "lo,hi": random gain in dB on noisy and clean together (e.g. -10,6); "" = off
    speech_free_prob: float = 0.0  # share of noise-only items with a silent target
    valid_sets: str = "valid"  # validation splits, comma-separated (e.g. valid,p239_valid)
    select_by: str = "pesq"  # best.pt by "pesq" (mean PESQ) or "pesq_stoi" (see validation_score)
    batch_size: int = 8
    steps: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup_steps: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    seed: int = 0
    valid_every: int = 250
    valid_files: int = 0  # 0 = the whole validation split
    checkpoint_every: int = 0  # steps; 0 = only by time and at validation
    checkpoint_minutes: float = 5.0
    workers: int = 0
    device: str = "auto"
    precision: str = "auto"  # the engine's: auto (bf16 where the device runs it natively), fp32, bf16
    max_minutes: float = 0.0  # stop (with a checkpoint) after this long; 0 = no limit
    time_budget_minutes: float = 0.0  # >0: at step 40, fit `steps` (and the LR schedule) to it
    valid_reserve_seconds: float = 15.0  # time kept for each validation when fitting a budget
    out: str = "runs/dcunet"
    init: str = ""  # fine-tune: start from this checkpoint's weights (path or shipped name)
    allow_data_change: bool = False  # --resume even if the training files changed since the checkpoint

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = ModelConfig(**self.model)
        for name in LIMITS:
            check_value(name, getattr(self, name))

    @classmethod
    def from_dict(cls, saved: dict) -> "TrainConfig":
        """The config stored in a checkpoint or ``config.json``: nested (``{"model": {...}}``) or
        the flat form of runs written before the model config was nested (``{"arch": ...}``);
        keys this version does not know (``extra``) are dropped."""
        known = {f.name for f in fields(cls)} | set(FLAT_MODEL_OPTIONS)
        return cls(**{k: v for k, v in saved.items() if k in known})


def _accept_flat_model_options(init):
    """``TrainConfig(arch=..., mask=..., network=..., batch_norm=...)`` sets those fields of
    ``model`` (the keywords every run was written with before the model config was nested)."""
    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        flat = {k: kwargs.pop(k) for k in FLAT_MODEL_OPTIONS if k in kwargs}
        if flat:
            model = kwargs.get("model") or ModelConfig()
            model = ModelConfig(**model) if isinstance(model, dict) else model
            kwargs["model"] = replace(model, **flat)
        init(self, *args, **kwargs)

    return wrapper


TrainConfig.__init__ = _accept_flat_model_options(TrainConfig.__init__)


#: What each number of :class:`TrainConfig` may be (checked on construction and by ``dcu
#: train``'s options, so a zero batch size or validation interval fails in one line, not in a
#: ZeroDivisionError): ``{field: (test, description)}``. Floats must also be finite.
LIMITS = {
    "steps": (lambda v: v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "valid_every": (lambda v: v >= 1, "an integer >= 1"),
    "items_per_file": (lambda v: v >= 1, "an integer >= 1"),
    "warmup_steps": (lambda v: v >= 0, "an integer >= 0"),
    "checkpoint_every": (lambda v: v >= 0, "an integer >= 0 (0: by time and at validation)"),
    "valid_files": (lambda v: v >= 0, "an integer >= 0 (0: all)"),
    "workers": (lambda v: v >= 0, "an integer >= 0"),
    "segment_seconds": (lambda v: 0.1 <= v <= 60, "seconds from 0.1 to 60"),
    "remix_prob": (lambda v: 0 <= v <= 1, "a probability from 0 to 1"),
    "speed_prob": (lambda v: 0 <= v <= 1, "a probability from 0 to 1"),
    "speech_free_prob": (lambda v: 0 <= v <= 1, "a probability from 0 to 1"),
    "train_pairs": (lambda v: v in ("first_400", "all"), "'first_400' or 'all'"),
    "select_by": (lambda v: v in ("pesq", "pesq_stoi"), "'pesq' or 'pesq_stoi'"),
    "source_weights": (lambda v: _weights_parse(v), "'source=weight,...' with weights >= 0 "
                                                    "(e.g. pairs=1,p239=1,librispeech=1) or ''"),
    "speed": (lambda v: _parses(v, "speed"), "'low,high' within 0.8..1.25 (e.g. 0.9,1.1) or ''"),
    "gain_db": (lambda v: _parses(v, "gain_db"), "'low,high' in dB within -40..20 (e.g. -10,6) or ''"),
    "lr": (lambda v: v > 0, "a learning rate > 0"),
    "min_lr": (lambda v: v >= 0, "a learning rate >= 0"),
    "weight_decay": (lambda v: v >= 0, "a number >= 0"),
    "grad_clip": (lambda v: v >= 0, "a norm >= 0 (0: no clipping)"),
    "checkpoint_minutes": (lambda v: v > 0, "minutes > 0"),
    "max_minutes": (lambda v: v >= 0, "minutes >= 0 (0: no limit)"),
    "time_budget_minutes": (lambda v: v >= 0, "minutes >= 0 (0: none)"),
    "valid_reserve_seconds": (lambda v: v >= 0, "seconds >= 0"),
}


def _parses(text: str, name: str) -> bool:
    """Whether ``text`` is a valid ``--speed`` / ``--gain-db`` range (see :mod:`dcu.augment`)."""
    try:
        parse_range(text, name, SPEED_LIMITS if name == "speed" else GAIN_LIMITS)
        return True
    except ValueError:
        return False


def parse_weights(text: str) -> dict:
    """``"pairs=1,librispeech=2"`` -> ``{"pairs": 1.0, "librispeech": 2.0}`` (``--source-weights``)."""
    out = {}
    for part in [t.strip() for t in str(text).split(",") if t.strip()]:
        name, sep, value = part.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not sep or not name.strip() or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"--source-weights {text!r}: give source=weight pairs, weights >= 0, "
                             "e.g. pairs=1,p239=1,librispeech=1")
        out[name.strip()] = weight
    return out


def _weights_parse(text: str) -> bool:
    try:
        parse_weights(text)
        return True
    except ValueError:
        return False


def check_value(name: str, value):
    """``value`` if it is allowed for field ``name`` (see :data:`LIMITS`); ValueError otherwise."""
    test, what = LIMITS.get(name, (lambda v: True, ""))
    finite = not isinstance(value, float) or math.isfinite(value)
    if not (finite and test(value)):
        raise ValueError(f"--{name.replace('_', '-')} {value!r}: must be {what}")
    return value


def parse_snrs(text: str) -> tuple[float, ...]:
    """``"0,5,10,15"`` -> ``(0.0, 5.0, 10.0, 15.0)``, the ``--remix-snrs`` option."""
    try:
        snrs = tuple(float(t) for t in str(text).split(","))
    except ValueError:
        snrs = ()
    if not snrs or not all(math.isfinite(v) for v in snrs):
        raise ValueError(f"--remix-snrs {text!r}: give SNRs in dB separated by commas, e.g. 0,5,10,15")
    return snrs


def make_datasets(cfg: TrainConfig) -> tuple[TrainingSet, dict]:
    """The training set (crops + on-the-fly mixing + augmentation) and the validation sets
    ``{split: pairs}`` (``--valid-sets``), each a list of ``(noisy, clean)`` paths."""
    src = training_sources(cfg.data, cfg.train_pairs, cfg.extra_speech)
    weights = parse_weights(cfg.source_weights)
    train = TrainingSet(src["pairs"], src["noises"],
                        segment=int(cfg.segment_seconds * SAMPLE_RATE), items_per_file=cfg.items_per_file,
                        remix_prob=cfg.remix_prob, snrs=parse_snrs(cfg.remix_snrs), seed=cfg.seed,
                        progress=False, extra_speech=src["speech_sources"] if weights else src["speech"],
                        source_weights=weights or None, speech_free_prob=cfg.speech_free_prob,
                        gain_db=parse_range(cfg.gain_db, "gain-db", GAIN_LIMITS),
                        speed=parse_range(cfg.speed, "speed", SPEED_LIMITS), speed_prob=cfg.speed_prob)
    return train, validation_sets(cfg.data, cfg.valid_sets, cfg.valid_files)


def _option_type(name: str, conv):
    """argparse type: ``conv`` (int, float or str) then :func:`check_value`, one-line errors."""
    def parse(text):
        try:
            return check_value(name, conv(text))
        except ValueError:
            what = LIMITS.get(name, (None, conv.__name__))[1]
            raise argparse.ArgumentTypeError(f"{text!r}: must be {what}") from None

    parse.__name__ = conv.__name__
    return parse


#: ``dcu train --help``: what every option means, with its unit and format (the default is
#: appended). One entry per field of :class:`TrainConfig` and per :data:`FLAT_MODEL_OPTIONS`.
OPTION_HELP = {
    "arch": "network size, a row of dcu.architectures: DCUnet-10, DCUnet-16, DCUnet-20, "
            "Large-DCUnet-20, small or tiny",
    "mask": "mask bounding the network's complex output: BDT (bounded tanh, the paper's), "
            "BDSS (bounded sigmoid) or UBD (unbounded)",
    "network": "complex (the paper's) or real (the real-valued twin of the same size)",
    "causal": "no look-ahead along time: output frame t sees input frames up to t only, so the "
              "model can stream (dcu stream); latency one STFT window",
    "n_fft": "STFT window and FFT length in samples at 16 kHz (1024: 64 ms, the paper's; 512: 32 ms)",
    "hop_length": "STFT hop in samples (256, the paper's; 128 with --n-fft 512)",
    "batch_norm": "complex (whitening of real and imaginary parts, the paper's) or naive "
                  "(a real batch norm on each part)",
    "loss": "training loss: wSDR (weighted SDR, the paper's), SDR or MSE (spectral)",
    "data": "training data: shipped (data/corpus), voicebank (after `dcu data download "
            "voicebank`) or a folder holding clean/ and noisy/ subfolders",
    "segment_seconds": "length of each random training crop, in seconds",
    "items_per_file": "training items drawn from each file per epoch (an integer)",
    "remix_prob": "share of items (0 to 1) whose clean crop is remixed with another noise",
    "remix_snrs": "SNRs in dB of the remixed items, comma-separated (e.g. 0,5,10,15)",
    "train_pairs": "shipped training pairs: first_400 (what the shipped models first saw) or all",
    "extra_speech": "clean speech mixed with noise on the fly, comma-separated: p239 (shipped), "
                    "librispeech (after `dcu data download librispeech`), a folder, or empty for none",
    "source_weights": "share of items per training source, e.g. pairs=1,p239=1; empty: in "
                      "proportion to the files",
    "speed": "speed perturbation: lo,hi factors (e.g. 0.9,1.1); empty: off",
    "speed_prob": "share of items (0 to 1) speed-perturbed when --speed is set",
    "gain_db": "random gain in dB applied to noisy and clean together: lo,hi (e.g. -10,6); "
               "empty: off",
    "speech_free_prob": "share of items (0 to 1) that are noise only, with a silent target",
    "valid_sets": "validation splits, comma-separated (e.g. valid,p239_valid)",
    "select_by": "what picks best.pt: pesq (mean wide-band PESQ) or pesq_stoi "
                 "(((PESQ - 1) / 3.5 + STOI) / 2)",
    "batch_size": "training items per step (an integer; split across processes under torchrun)",
    "steps": "optimiser steps to train for (an integer)",
    "lr": "peak learning rate of Adam, reached after the warm-up",
    "min_lr": "learning rate at the end of the cosine decay",
    "warmup_steps": "steps of linear learning-rate warm-up (an integer)",
    "weight_decay": "Adam's L2 weight decay (0: none)",
    "grad_clip": "maximum norm of all gradients together (0: no clipping)",
    "seed": "random seed of weights, crops, noises and augmentations (an integer)",
    "valid_every": "validate (and checkpoint) every this many steps (an integer)",
    "valid_files": "validation files per split (an integer; 0: all of them)",
    "checkpoint_every": "also write last.pt every this many steps (an integer; 0: only by time "
                        "and at validation)",
    "checkpoint_minutes": "write last.pt at least this often, in minutes of wall-clock time",
    "workers": "data-loading worker processes (an integer; 0: load in the training process)",
    "device": "auto (cuda if available, else cpu), cpu, cuda or cuda:N",
    "precision": "the engine's arithmetic: auto (bf16 where the device runs it natively), fp32 "
                 "or bf16",
    "max_minutes": "stop (with a checkpoint) after this many minutes of wall-clock time; 0: no "
                   "limit",
    "time_budget_minutes": "fit --steps and the learning-rate schedule to this many minutes, "
                           "measured at step 40; 0: off",
    "valid_reserve_seconds": "seconds kept for each validation when fitting a time budget",
    "out": "run folder: log.json, last.pt and best.pt are written there (a path)",
    "allow_data_change": "with --resume: go on although the training files differ from those the "
                         "checkpoint records",
    "init": "fine-tune: start from this checkpoint's weights (a path, or a shipped name such as "
            "dcunet20); empty: random weights. A --causal run may start from an offline "
            "model's weights (same parameters, no look-ahead from the first step)",
}


def config_from_args(argv: list[str]) -> tuple[TrainConfig, bool]:
    """Build a :class:`TrainConfig` from ``--field value`` options: every field is one, and
    :data:`FLAT_MODEL_OPTIONS` stand for the fields of its ``model``."""
    p = argparse.ArgumentParser(prog="dcu train", description="Train a DCUnet (see dcu.training).")
    for name, default in [(n, getattr(ModelConfig, n)) for n in FLAT_MODEL_OPTIONS] + \
            [(f.name, getattr(TrainConfig, f.name)) for f in fields(TrainConfig) if f.name != "model"]:
        if isinstance(default, bool):
            p.add_argument(f"--{name.replace('_', '-')}", action=argparse.BooleanOptionalAction,
                           default=default, help=f"{OPTION_HELP.get(name, '')} (default: {default})")
            continue
        conv = type(default) if isinstance(default, (int, float)) else str
        p.add_argument(f"--{name.replace('_', '-')}", type=_option_type(name, conv),
                       default=default, help=f"{OPTION_HELP.get(name, '')} (default: {default!r})")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --out exactly where it stopped (same "
                        "settings required)")
    args = vars(p.parse_args(argv))
    resume = args.pop("resume")
    return TrainConfig(**args), resume
