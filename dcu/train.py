"""Training: a config dataclass, a resumable loop, validation, logs, and DDP via ``torchrun``.

``dcu train --arch DCUnet-10 --steps 2000 --out runs/dcunet10`` trains on the shipped corpus;
``dcu train --resume --out runs/dcunet10`` continues an interrupted run exactly where it stopped
(same data order, optimiser, schedule and RNG state), so the result equals an uninterrupted run.
``torchrun --nproc_per_node 4 -m dcu train ...`` runs data-parallel on 4 GPUs (or CPU processes).

Choices the paper leaves open (documented here and in the book): Adam with a linear warm-up and
a cosine decay of the learning rate, 2 s random crops, half of them remixed on the fly with
training noise at 0/5/10/15 dB (``--remix-snrs``), gradient clipping at norm 5, validation by PESQ (wide-band) on
the validation split, keeping the best checkpoint.

Book: book/07_training.ipynb
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from dcu.checkpoint import atomic_torch_save, check_fields, load, make_payload, read_checkpoint
from dcu.engine import optimize, resolve_precision, tune_cpu
from dcu.losses import compute_loss, wsdr_loss
from dcu.runlog import write_log
from dcu.unet import DCUnet, ModelConfig


class TrainingError(RuntimeError):
    """A run that cannot go on (NaN loss, missing data, incompatible resume)."""


#: The model options ``dcu train`` takes flat (``--arch``, ``--mask``, ``--network``,
#: ``--batch-norm``), and :class:`TrainConfig` accepts as keywords: fields of :attr:`TrainConfig.model`.
FLAT_MODEL_OPTIONS = ("arch", "mask", "network", "batch_norm")


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
    "lr": (lambda v: v > 0, "a learning rate > 0"),
    "min_lr": (lambda v: v >= 0, "a learning rate >= 0"),
    "weight_decay": (lambda v: v >= 0, "a number >= 0"),
    "grad_clip": (lambda v: v >= 0, "a norm >= 0 (0: no clipping)"),
    "checkpoint_minutes": (lambda v: v > 0, "minutes > 0"),
    "max_minutes": (lambda v: v >= 0, "minutes >= 0 (0: no limit)"),
    "time_budget_minutes": (lambda v: v >= 0, "minutes >= 0 (0: none)"),
    "valid_reserve_seconds": (lambda v: v >= 0, "seconds >= 0"),
}


#: Besides the model config, what a resumed run must share with the run it continues: these
#: fix the order of the training data, so a resume equals an uninterrupted run.
RESUME_MATCH = ("seed", "batch_size", "data")

#: Fields of a training checkpoint's ``train_state`` and their types, checked on ``--resume``.
TRAIN_STATE_FIELDS = {"optimizer": dict, "step": int, "epoch": int, "batch_in_epoch": int,
                      "best": (int, float), "history": list, "torch_rng": torch.Tensor}


def check_value(name: str, value):
    """``value`` if it is allowed for field ``name`` (see :data:`LIMITS`); ValueError otherwise."""
    test, what = LIMITS.get(name, (lambda v: True, ""))
    finite = not isinstance(value, float) or math.isfinite(value)
    if not (finite and test(value)):
        raise ValueError(f"--{name.replace('_', '-')} {value!r}: must be {what}")
    return value


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``min_lr`` at ``cfg.steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * t))


def _distributed() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) otherwise."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


def _device(cfg: TrainConfig, local_rank: int) -> torch.device:
    if cfg.device == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def parse_snrs(text: str) -> tuple[float, ...]:
    """``"0,5,10,15"`` -> ``(0.0, 5.0, 10.0, 15.0)``, the ``--remix-snrs`` option."""
    try:
        snrs = tuple(float(t) for t in str(text).split(","))
    except ValueError:
        snrs = ()
    if not snrs or not all(math.isfinite(v) for v in snrs):
        raise ValueError(f"--remix-snrs {text!r}: give SNRs in dB separated by commas, e.g. 0,5,10,15")
    return snrs


def make_datasets(cfg: TrainConfig):
    """The training set (crops + on-the-fly remixing) and the validation pairs."""
    from dcu.data import TrainingSet, corpus_dir, list_pairs

    root = None if cfg.data == "shipped" else cfg.data
    noise_files = []
    if cfg.data == "shipped":
        noise_json = corpus_dir() / "splits" / "noise.json"
        names = json.loads(noise_json.read_text())["train"]
        noise_files = [corpus_dir() / "noise" / f"{n}.flac" for n in names]
    train = TrainingSet(list_pairs("train", root), noise_files,
                        segment=int(cfg.segment_seconds * 16000), items_per_file=cfg.items_per_file,
                        remix_prob=cfg.remix_prob, snrs=parse_snrs(cfg.remix_snrs), seed=cfg.seed,
                        progress=False)
    valid = list_pairs("valid", root)
    if cfg.valid_files:
        valid = valid[: cfg.valid_files]
    return train, valid


@torch.no_grad()
def validate(model: DCUnet, pairs, device) -> dict:
    """Mean wSDR loss, SI-SDR, STOI and PESQ of ``model`` on full-length validation pairs."""
    from dcu.audio import load_audio
    from dcu import metrics

    was_training = model.training
    model.eval()
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False  # every file has its own length: don't re-tune each
    rows = []
    for noisy_path, clean_path in pairs:
        noisy = torch.from_numpy(load_audio(noisy_path)).to(device)
        clean = load_audio(clean_path)
        est = model(noisy.unsqueeze(0))[0]
        loss = float(wsdr_loss(noisy, torch.from_numpy(clean).to(device), est))
        e = est.float().cpu().numpy()
        row = {"wsdr": loss, "si_sdr": metrics.si_sdr(clean, e)}
        # a metric's package missing (a bare GPU box): NaN, and the best checkpoint is chosen by
        # SI-SDR (selection_score); metrics.pesq itself returns NaN where PESQ is undefined (no speech)
        try:
            row["stoi"] = metrics.stoi(clean, e)
        except ImportError:
            row["stoi"] = float("nan")
        try:
            row["pesq"] = metrics.pesq(clean, e)
        except ImportError:
            row["pesq"] = float("nan")
        rows.append(row)
    model.train(was_training)
    torch.backends.cudnn.benchmark = benchmark
    return {k: float(np.nanmean([r[k] for r in rows])) if rows else float("nan") for k in
            ("wsdr", "si_sdr", "stoi", "pesq")}


def selection_score(valid: dict) -> float:
    """Higher is better: validation PESQ, or SI-SDR/10 where PESQ is unavailable."""
    p = valid.get("pesq", float("nan"))
    return p if np.isfinite(p) else valid.get("si_sdr", float("-inf")) / 10.0


class Trainer:
    """Holds a run's state; :meth:`run` trains until ``cfg.steps`` (or ``max_minutes``).

    ``on_step``, if given, is called as ``on_step(trainer)`` after every step, once that step's
    validation and checkpoint are written (for progress reports, or tests that stop a run).
    """

    def __init__(self, cfg: TrainConfig, resume: bool = False, progress: bool = True,
                 on_step=None):
        self.cfg, self.progress, self.on_step = cfg, progress, on_step
        self.rank, self.world, self.local_rank = _distributed()
        if self.world > 1 and not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() and cfg.device != "cpu" else "gloo"
            dist.init_process_group(backend)
        self.device = _device(cfg, self.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True  # fixed training shapes: pick the fastest convs
        torch.set_flush_denormal(True)
        self.out = Path(cfg.out)
        self.last_path, self.best_path = self.out / "last.pt", self.out / "best.pt"
        torch.manual_seed(cfg.seed)
        self.precision = resolve_precision(cfg.precision, self.device)
        self.model = optimize(DCUnet(**asdict(cfg.model)), self.precision).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best, self.history = float("-inf"), []
        # time spent on this run, summed over every process that worked on it (resumes too)
        self.clock = {"wall_seconds": 0.0, "cpu_seconds": 0.0}
        self._clock_mark = (time.time(), time.process_time())
        self.running = []  # train losses since the last log row (saved, so a resume logs the same)
        self.previous_stage = None
        if cfg.init and not resume:
            start = load(cfg.init, arch=cfg.model.arch)
            if start.config_dict() != self.model.config_dict():
                raise TrainingError(f"{cfg.init}: its model config {start.config_dict()} differs "
                                    f"from this run's {self.model.config_dict()}")
            self.model.load_state_dict(start.state_dict())
            # keep how the starting weights were made: a fine-tuned checkpoint tells its history
            self.previous_stage = {k: start.metadata[k] for k in
                                   ("train_config", "step", "valid", "previous_stage")
                                   if k in start.metadata}
        if resume:
            self._resume()
        elif self.last_path.exists():
            raise TrainingError(f"{self.last_path}: a run already exists here; pass --resume to "
                                "continue it or choose another --out")
        self.net = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)

    # -- checkpoints -----------------------------------------------------------------------
    def _tick(self) -> dict:
        """Add the time since the last tick to :attr:`clock`; returns it."""
        now = (time.time(), time.process_time())
        self.clock["wall_seconds"] += now[0] - self._clock_mark[0]
        self.clock["cpu_seconds"] += now[1] - self._clock_mark[1]
        self._clock_mark = now
        return self.clock

    def _payload(self, valid=None) -> dict:
        """:func:`dcu.checkpoint.make_payload` with the run's metadata and training state."""
        meta = {"train_config": asdict(self.cfg), "step": self.step, "epoch": self.epoch,
                "valid": valid or (self.history[-1]["valid"] if self.history else {}),
                "precision": self.precision, "clock": dict(self._tick()), "data": self.cfg.data}
        if self.previous_stage:
            meta["previous_stage"] = self.previous_stage
        train_state = {"optimizer": self.opt.state_dict(), "step": self.step, "epoch": self.epoch,
                       "batch_in_epoch": self.batch_in_epoch, "best": self.best,
                       "history": self.history, "torch_rng": torch.get_rng_state(),
                       "running": [float(v) for v in self.running], "clock": dict(self.clock)}
        return make_payload(self.model, meta, train_state)

    def save(self, path: Path | None = None, valid=None) -> None:
        if self.rank == 0:
            atomic_torch_save(self._payload(valid), path or self.last_path)
        self._last_save = time.time()

    def _resume(self) -> None:
        if not self.last_path.exists():
            raise TrainingError(f"{self.last_path}: nothing to resume; start without --resume")
        payload = read_checkpoint(self.last_path)
        if "train_state" not in payload:
            raise TrainingError(f"{self.last_path}: holds a model but no training state (saved by "
                                "dcu.save, not by dcu train), so there is nothing to resume; to "
                                f"start from its weights use --init {self.last_path} with another --out")
        check_fields(self.last_path, payload["metadata"], {"train_config": dict}, "metadata.")
        check_fields(self.last_path, payload["train_state"], TRAIN_STATE_FIELDS, "train_state.")
        saved = payload["metadata"]["train_config"]
        ours = {**self.model.config_dict(), **{k: getattr(self.cfg, k) for k in RESUME_MATCH}}
        theirs = {**payload["config"], **{k: saved.get(k) for k in RESUME_MATCH}}
        for key in ours:
            if theirs.get(key) != ours[key]:
                raise TrainingError(f"{self.last_path}: run was started with {key}={theirs.get(key)!r}, "
                                    f"not {ours[key]!r}; resume with the same settings")
        self.model.load_state_dict(payload["state_dict"])
        self.previous_stage = payload["metadata"].get("previous_stage")
        ts = payload["train_state"]
        self.step, self.epoch, self.batch_in_epoch = ts["step"], ts["epoch"], ts["batch_in_epoch"]
        self.best, self.history = ts["best"], list(ts["history"])
        self.clock = dict(ts.get("clock", self.clock))
        self.running = list(ts.get("running", []))  # losses since the last log row
        try:
            self.opt.load_state_dict(ts["optimizer"])
            torch.set_rng_state(ts["torch_rng"])
        except (ValueError, RuntimeError, KeyError, TypeError) as exc:
            raise TrainingError(f"{self.last_path}: its optimiser or RNG state does not fit this "
                                f"run ({str(exc).splitlines()[0][:120]}); start a new --out") from None

    # -- the loop --------------------------------------------------------------------------
    def _batches(self, dataset):
        """Yield batches from the current position, epoch after epoch, deterministically."""
        cfg = self.cfg
        while True:
            dataset.set_epoch(self.epoch)
            sampler = DistributedSampler(dataset, num_replicas=self.world, rank=self.rank,
                                         shuffle=True, seed=cfg.seed, drop_last=True)
            sampler.set_epoch(self.epoch)
            order = list(sampler)
            per_rank = cfg.batch_size // self.world if self.world > 1 else cfg.batch_size
            n_batches = len(order) // per_rank
            if n_batches == 0:
                raise TrainingError(f"batch size {cfg.batch_size} is larger than the training set "
                                    f"({len(dataset)} items)")
            order = order[self.batch_in_epoch * per_rank: n_batches * per_rank]
            loader = DataLoader(torch.utils.data.Subset(dataset, order), batch_size=per_rank,
                                shuffle=False, num_workers=cfg.workers, drop_last=True,
                                pin_memory=self.device.type == "cuda")
            for noisy, clean in loader:
                self.batch_in_epoch += 1  # counted before use, so a checkpoint never repeats it
                yield noisy, clean
            self.epoch += 1
            self.batch_in_epoch = 0

    def run(self) -> Path:
        """Train from the current step to ``cfg.steps`` (or until ``max_minutes``); returns the
        best checkpoint's path (the last one's where no validation has run)."""
        cfg = self.cfg
        train_set, valid_pairs = make_datasets(cfg)
        self.out.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            (self.out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        self.start = self._last_save = time.time()
        self.bar = tqdm(total=cfg.steps, initial=self.step, desc=f"train {self.model.config.arch}",
                        disable=not self.progress or self.rank != 0, dynamic_ncols=True)
        if cfg.init and self.step == 0 and not self.history:
            # Fine-tuning: score the starting weights first, so best.pt is never worse than them.
            self._validate_and_log(valid_pairs)
        self.net.train()
        batches = self._batches(train_set)
        self._budget_fitted = bool(self.step)
        while self.step < cfg.steps:
            self.train_step(*next(batches))
            self._fit_budget_when_measured()
            timed_out = bool(cfg.max_minutes) and time.time() - self.start > 60 * cfg.max_minutes
            self._validate_or_checkpoint(valid_pairs, force_validation=timed_out)
            if self.on_step is not None:
                self.on_step(self)
            if timed_out:
                break
        self.bar.close()
        return self.best_path if self.best_path.exists() else self.last_path

    def train_step(self, noisy: torch.Tensor, clean: torch.Tensor) -> float:
        """One optimiser step on a batch; stops with :class:`TrainingError` before a NaN or
        infinite loss or gradient reaches the weights. Returns the loss."""
        cfg = self.cfg
        noisy, clean = noisy.to(self.device, non_blocking=True), clean.to(self.device, non_blocking=True)
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.step, cfg)
        est = self.net(noisy)  # the engine runs the U-Net in self.precision; est is float32
        loss = compute_loss(cfg.loss, noisy, clean, est)
        if not torch.isfinite(loss):
            raise TrainingError(f"loss became {loss.item()} at step {self.step}; stopped. The "
                                f"last good checkpoint is {self.last_path}; lower --lr and "
                                "resume with --resume")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        # the norm of all gradients, clipped to grad_clip (an infinite limit only measures it)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip or math.inf)
        if not torch.isfinite(norm):  # stop before the step: NaN must never reach the weights
            raise TrainingError(f"gradients became {norm.item()} at step {self.step} (the loss "
                                f"was finite); stopped before updating. The last good "
                                f"checkpoint is {self.last_path}; lower --lr or --grad-clip "
                                "and resume with --resume")
        self.opt.step()
        self.step += 1
        self.running.append(loss.item())
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{np.mean(self.running[-50:]):.4f}")
        return self.running[-1]

    # -- budget, validation schedule, checkpoints -------------------------------------------
    def _fit_budget_when_measured(self) -> None:
        """With ``time_budget_minutes``: time steps 20-40 (after start-up and kernel tuning),
        then set ``steps`` so the run ends within the budget, keeping a reserve for the four
        validations it plans."""
        cfg = self.cfg
        if not cfg.time_budget_minutes or self._budget_fitted:
            return
        if self.step == 20:
            self._t20 = time.time()
        elif self.step == 40 and hasattr(self, "_t20"):
            per_step = (time.time() - self._t20) / 20
            left = (60 * cfg.time_budget_minutes - (time.time() - self.start)
                    - 4 * cfg.valid_reserve_seconds)
            steps = self.step + max(1, int(0.95 * left / per_step))
            cfg.steps, cfg.valid_every = steps, max(20, steps // 4)
            self.bar.total = steps
            self._budget_fitted = True
            tqdm.write(f"{per_step:.3f} s/step: training {steps} steps to fit "
                       f"{cfg.time_budget_minutes} min, validating every {cfg.valid_every}")

    def _validate_or_checkpoint(self, valid_pairs, force_validation: bool = False) -> None:
        """Validate (which also checkpoints) every ``valid_every`` steps, at the end and when
        forced; otherwise checkpoint every ``checkpoint_every`` steps or ``checkpoint_minutes``."""
        cfg = self.cfg
        if self.step % cfg.valid_every == 0 or self.step >= cfg.steps or force_validation:
            self._validate_and_log(valid_pairs)
        elif (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0) or \
                time.time() - self._last_save > 60 * cfg.checkpoint_minutes:
            self.save()

    def _validate_and_log(self, valid_pairs) -> None:
        """Validate, append a log row, keep ``best.pt`` and write ``last.pt`` and the log."""
        valid = validate(self.model, valid_pairs, self.device) if self.rank == 0 else {}
        running = self.running
        row = {"step": self.step, "epoch": self.epoch, "lr": lr_at(max(0, self.step - 1), self.cfg),
               "train_loss": float(np.mean(running)) if running else float("nan"),
               "minutes": (time.time() - self.start) / 60, **self._tick(), "valid": valid}
        self.running = []  # logged: the checkpoints below start the next interval empty
        self.history.append(row)
        if self.rank == 0:
            score = selection_score(valid)
            if score > self.best:
                self.best = score
                self.save(self.best_path, valid)
            self.save(valid=valid)
            write_log(self.history, self.out)
            tqdm.write(f"step {self.step}: train {row['train_loss']:.4f} | valid wSDR "
                       f"{valid['wsdr']:.4f} PESQ {valid['pesq']:.3f} STOI {valid['stoi']:.3f} "
                       f"SI-SDR {valid['si_sdr']:.2f} dB")


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, on_step=None) -> Path:
    """Train (or resume) a run; returns the path of the best checkpoint. ``on_step``: see
    :class:`Trainer`."""
    trainer = Trainer(cfg, resume=resume, progress=progress, on_step=on_step)
    try:
        return trainer.run()
    finally:
        if trainer.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _option_type(name: str, conv):
    """argparse type: ``conv`` (int, float or str) then :func:`check_value`, one-line errors."""
    def parse(text):
        try:
            return check_value(name, conv(text))
        except ValueError as exc:
            what = LIMITS.get(name, (None, conv.__name__))[1]
            raise argparse.ArgumentTypeError(f"{text!r}: must be {what}") from None

    parse.__name__ = conv.__name__
    return parse


def config_from_args(argv: list[str]) -> tuple[TrainConfig, bool]:
    """Build a :class:`TrainConfig` from ``--field value`` options: every field is one, and
    :data:`FLAT_MODEL_OPTIONS` stand for the fields of its ``model``."""
    p = argparse.ArgumentParser(prog="dcu train", description="Train a DCUnet (see dcu.train).")
    for name, default in [(n, getattr(ModelConfig, n)) for n in FLAT_MODEL_OPTIONS] + \
            [(f.name, getattr(TrainConfig, f.name)) for f in fields(TrainConfig) if f.name != "model"]:
        if isinstance(default, bool):
            p.add_argument(f"--{name.replace('_', '-')}", action=argparse.BooleanOptionalAction,
                           default=default)
            continue
        conv = type(default) if isinstance(default, (int, float)) else str
        p.add_argument(f"--{name.replace('_', '-')}", type=_option_type(name, conv),
                       default=default, help=f"default: {default}")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    args = vars(p.parse_args(argv))
    resume = args.pop("resume")
    return TrainConfig(**args), resume


def train_cli(argv: list[str]) -> int:
    cfg, resume = config_from_args(argv)
    if cfg.device == "cpu" or not torch.cuda.is_available():
        tune_cpu()  # flush denormals, keep freed memory: ~20% faster steps on CPU
    try:
        best = train(cfg, resume=resume)
    except (TrainingError, FileNotFoundError, ValueError) as exc:
        print(f"dcu train: error: {exc}", file=sys.stderr)
        return 1
    print(f"best checkpoint: {best}")
    return 0
