"""A training run: the loop, its checkpoints and resume, the validation schedule and DDP.

:class:`Trainer` holds a run's state (model, optimiser, step, RNG, log, clock) and writes it into
every checkpoint, so that ``--resume`` continues exactly where a run stopped: after a crash,
from the last periodic ``last.pt``; after Ctrl-C, SIGTERM or SIGHUP, from the last whole step,
which the run saves on its way out (an update is never cut in half). A training
checkpoint is :func:`dcu.store.checkpoint.make_payload` (config, weights, metadata with the
run's ``train_config``, step and validation scores) plus a ``train_state``: optimiser, step,
epoch, position in the epoch, best score, log, RNG state, the losses since the last log row and
the time spent, and a manifest of the training data (each file's name, size and fingerprint:
:func:`data_manifest`). The run's configuration and data are :mod:`dcu.training.config`'s, its
validation :func:`dcu.training.validation.validate`. :func:`train` and ``dcu train``
(:func:`train_cli`) run one.

One process per run folder: a run holds the lock file ``OUT/.dcu.lock``
(:func:`dcu.base.atomic.claim`) from its start to its end, so a second ``dcu train`` with the same
``--out`` is refused in one line instead of overwriting its checkpoints. A ``--resume`` on
training data that changed since the checkpoint (a file replaced, added or removed) is refused
too, unless asked for with ``--allow-data-change``.

Book: book/07_training.ipynb
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from dcu.base.atomic import claim, release, write_json
from dcu.base.guard import shown, signals_held
from dcu.engine import flush_denormals, optimize, resolve_precision, tune_cpu
from dcu.losses import compute_loss
from dcu.store.checkpoint import atomic_torch_save, check_fields, load, make_payload, read_checkpoint
from dcu.data import training_sources
from dcu.training.config import TrainConfig, config_from_args, make_datasets
from dcu.training.log import write_log
from dcu.training.validation import validate
from dcu.unet import DCUnet

__all__ = ["DATA_FIELDS", "RESUME_MATCH", "TRAIN_STATE_FIELDS", "Trainer", "TrainingError",
           "data_changes", "data_manifest", "lr_at", "selection_score", "stages", "train", "train_cli"]


class TrainingError(RuntimeError):
    """A run that cannot go on (NaN loss, missing data, incompatible resume)."""


#: Besides the model config, what a resumed run must share with the run it continues: these
#: fix the order of the training data, so a resume equals an uninterrupted run.
RESUME_MATCH = ("seed", "batch_size", "data")

#: Fields that define the training data and the validation, checked on ``--resume`` like the
#: model's; a run saved before a field existed counts as having had its default.
DATA_FIELDS = ("train_pairs", "extra_speech", "source_weights", "speed", "speed_prob", "gain_db", "speech_free_prob",
               "remix_prob", "remix_snrs", "segment_seconds", "items_per_file", "valid_sets", "select_by")

#: Fields of a training checkpoint's ``train_state`` and their types, checked on ``--resume``.
TRAIN_STATE_FIELDS = {"optimizer": dict, "step": int, "epoch": int, "batch_in_epoch": int,
                      "best": (int, float), "history": list, "torch_rng": torch.Tensor}


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


def selection_score(valid: dict) -> float:
    """Higher is better: ``valid["score"]`` where validation gave one (several validation sets,
    see :func:`dcu.training.validation.validate`), else validation PESQ, or SI-SDR/10 where PESQ is
    unavailable."""
    if np.isfinite(valid.get("score", float("nan"))):
        return valid["score"]
    p = valid.get("pesq", float("nan"))
    return p if np.isfinite(p) else valid.get("si_sdr", float("-inf")) / 10.0


class Trainer:
    """Holds a run's state; :meth:`run` trains until ``cfg.steps`` (or ``max_minutes``).

    ``Trainer(cfg, resume=False, progress=True, on_step=None)``: trains on
    :func:`~dcu.training.config.make_datasets`'s data, validated by
    :func:`~dcu.training.validation.validate`. ``on_step``, if given, is called as
    ``on_step(trainer)`` after every step, once that step's validation and checkpoint are
    written (for progress reports, or tests that stop a run).
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
        flush_denormals()
        self.out = Path(cfg.out)
        self.last_path, self.best_path = self.out / "last.pt", self.out / "best.pt"
        self._lock_out()  # one process per --out, until run() ends or close()
        try:
            self._start(resume)
        except BaseException:
            self.close()
            raise

    def _start(self, resume: bool) -> None:
        cfg = self.cfg
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
            # a causal run may start from offline weights, and a 512/128 model from 1024/256
            # weights: the models have the same parameters (no layer's shape depends on the
            # number of frequency bins) and differ only in padding or in the STFT around them
            free = {"causal": None, "n_fft": None, "hop_length": None}
            theirs, ours = start.config_dict(), self.model.config_dict()
            if {**theirs, **free} != {**ours, **free}:
                raise TrainingError(f"{cfg.init}: its model config {theirs} differs "
                                    f"from this run's {ours}")
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
        self._saved_step = self.step  # what last.pt holds (nothing yet, for a new run: step 0)
        self.net = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)

    def datasets(self):
        """``(training set, {split: validation pairs})`` for ``self.cfg``."""
        return make_datasets(self.cfg)

    def score(self, valid_sets: dict) -> dict:
        """Validation scores of ``self.model`` on ``valid_sets``. With the defaults (one set,
        ``--select-by pesq``) the scores are that set's alone, as the shipped runs logged them."""
        if list(valid_sets) == ["valid"] and self.cfg.select_by == "pesq":
            return validate(self.model, valid_sets["valid"], self.device)
        return validate(self.model, valid_sets, self.device, select_by=self.cfg.select_by)

    def data_files(self) -> list:
        """The files the training data is read from, recorded (names, sizes, fingerprints) in
        every checkpoint and checked on ``--resume`` (:func:`data_manifest`)."""
        src = training_sources(self.cfg.data, self.cfg.train_pairs, self.cfg.extra_speech)
        return [f for pair in src["pairs"] for f in pair] + [*src["speech"], *src["noises"]]

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
        best checkpoint's path (the last one's where no validation has run). The ``--out``
        lock is let go at the end, however it ends."""
        try:
            return self._run()
        finally:
            self.close()

    def _run(self) -> Path:
        cfg = self.cfg
        train_set, valid_pairs = self.datasets()
        self.check_data(self.data_files())
        self.out.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            write_json(self.out / "config.json", asdict(cfg), indent=2)
        self.start = self._last_save = time.time()
        self.bar = tqdm(total=cfg.steps, initial=self.step, desc=f"train {self.model.config.arch}",
                        disable=not self.progress or self.rank != 0, dynamic_ncols=True)
        if cfg.init and self.step == 0 and not self.history:
            # Fine-tuning: score the starting weights first, so best.pt is never worse than them.
            self._validate_and_log(valid_pairs)
        self.net.train()
        batches = self._batches(train_set)
        self._budget_fitted = bool(self.step)
        self._mark_step()
        try:
            while self.step < cfg.steps:
                self.train_step(*next(batches))
                self._fit_budget_when_measured()
                timed_out = bool(cfg.max_minutes) and time.time() - self.start > 60 * cfg.max_minutes
                self._validate_or_checkpoint(valid_pairs, force_validation=timed_out)
                if self.on_step is not None:
                    self.on_step(self)
                if timed_out:
                    break
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP: keep the steps since the last save
            self._save_interrupted()
            raise
        finally:
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
        with signals_held():  # an update is applied and counted whole, or not at all
            self.opt.step()
            self.step += 1
            self.running.append(loss.item())
            self._mark_step()
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
        # interrupted in here, the files written so far stand; nothing here moves the run, so the
        # mark of the step's end holds again after it
        at_step, self._at_step = self._at_step, None
        if self.step % cfg.valid_every == 0 or self.step >= cfg.steps or force_validation:
            self._validate_and_log(valid_pairs)
        elif (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0) or \
                time.time() - self._last_save > 60 * cfg.checkpoint_minutes:
            self.save()
        self._at_step = at_step

    def _validate_and_log(self, valid_pairs) -> None:
        """Validate, append a log row, keep ``best.pt`` and write ``last.pt`` and the log."""
        valid = self.score(valid_pairs) if self.rank == 0 else {}
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
                       f"SI-SDR {valid['si_sdr']:.2f} dB" + (
                           f" | score {valid['score']:.4f} ({self.cfg.select_by})"
                           if "score" in valid else ""))

    # -- checkpoints and resume -------------------------------------------------------------
    def _mark_step(self) -> None:
        """Remember where the run stands after its last whole step: what a checkpoint of that
        step holds and the next step changes before its update (the data position, as the next
        batch is drawn; the RNG state; the batch-norm statistics, which its forward pass moves)."""
        buffers = [b.detach().clone() for b in self.model.buffers()]
        self._at_step = (self.step, self.epoch, self.batch_in_epoch, torch.get_rng_state(), buffers)

    def _save_interrupted(self) -> None:
        """On an interruption between steps or within one (the update itself is never cut,
        :meth:`train_step`), write ``last.pt`` as of the last whole step, unless it already
        holds that step; one that lands in a validation or a save leaves the files it wrote."""
        if self._at_step is None or self.rank != 0:
            return
        step, epoch, batch_in_epoch, rng, buffers = self._at_step
        if step == self._saved_step:
            return
        self.epoch, self.batch_in_epoch = epoch, batch_in_epoch  # the batch drawn is not used
        with torch.no_grad():
            for b, kept in zip(self.model.buffers(), buffers, strict=True):
                b.copy_(kept)
        self.save(rng=rng)
        tqdm.write(shown(f"interrupted: step {step} saved to {self.last_path}; rerun with "
                         "--resume to continue"), file=sys.stderr)

    def _tick(self) -> dict:
        """Add the time since the last tick to :attr:`clock`; returns it."""
        now = (time.time(), time.process_time())
        self.clock["wall_seconds"] += now[0] - self._clock_mark[0]
        self.clock["cpu_seconds"] += now[1] - self._clock_mark[1]
        self._clock_mark = now
        return self.clock

    def _payload(self, valid=None, rng=None) -> dict:
        """:func:`dcu.store.checkpoint.make_payload` with the run's metadata and training state."""
        meta = {"train_config": asdict(self.cfg), "step": self.step, "epoch": self.epoch,
                "valid": valid or (self.history[-1]["valid"] if self.history else {}),
                "precision": self.precision, "clock": dict(self._tick()), "data": self.cfg.data}
        if self.previous_stage:
            meta["previous_stage"] = self.previous_stage
        train_state = {"optimizer": self.opt.state_dict(), "step": self.step, "epoch": self.epoch,
                       "batch_in_epoch": self.batch_in_epoch, "best": self.best,
                       "history": self.history,
                       "torch_rng": torch.get_rng_state() if rng is None else rng,
                       "running": [float(v) for v in self.running], "clock": dict(self.clock)}
        if getattr(self, "manifest", None) is not None:
            train_state["data_manifest"] = self.manifest
        return make_payload(self.model, meta, train_state)

    def save(self, path: Path | None = None, valid=None, rng=None) -> None:
        if self.rank == 0:
            atomic_torch_save(self._payload(valid, rng), path or self.last_path)
            if path is None or path == self.last_path:
                self._saved_step = self.step
        self._last_save = time.time()

    def _lock_out(self) -> None:
        """Hold ``--out``'s lock (rank 0) for this run's life; refuse in one line if it is taken."""
        self._lock = None
        if self.rank != 0:
            return
        lock = self.out / ".dcu.lock"
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise TrainingError(f"{shown(self.out)}: exists and is not a folder; choose another "
                                "--out") from None
        if not claim(lock):
            raise TrainingError(f"{shown(self.out)}: another dcu train is running in this folder "
                                f"(it holds {lock.name}); wait for it to end or choose another --out")
        self._lock = lock

    def close(self) -> None:
        """Let go of ``--out``'s lock (:meth:`run` does at its end; so does the process's)."""
        if getattr(self, "_lock", None) is not None:
            release(self._lock)
            self._lock = None

    def check_data(self, files) -> None:
        """Record the manifest of ``files`` for the checkpoints, and on a resume compare it with
        the one the checkpoint holds (a checkpoint written before manifests has none)."""
        self.manifest = data_manifest(files)
        saved = getattr(self, "saved_manifest", None)
        changes = data_changes(saved, self.manifest) if saved else None
        if changes and not self.cfg.allow_data_change:
            raise TrainingError(f"{shown(self.last_path)}: the training data changed since this "
                                f"run was saved ({changes}); resume on the data it trained on, or "
                                "pass --allow-data-change to go on with these files")
        if changes and self.rank == 0:
            tqdm.write(shown(f"going on with changed training data ({changes})"))

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
        ours = {**self.model.config_dict(),
                **{k: getattr(self.cfg, k) for k in RESUME_MATCH + DATA_FIELDS}}
        defaults = type(self.cfg)  # a data field the saved run predates had its default
        model_defaults = asdict(type(self.model.config)())  # so had a model field (e.g. causal)
        theirs = {**model_defaults, **payload["config"], **{k: saved.get(k) for k in RESUME_MATCH},
                  **{k: saved.get(k, getattr(defaults, k)) for k in DATA_FIELDS}}
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
        self.saved_manifest = ts.get("data_manifest")  # checked against the data in check_data
        self.running = list(ts.get("running", []))  # losses since the last log row
        try:
            self.opt.load_state_dict(ts["optimizer"])
            torch.set_rng_state(ts["torch_rng"])
        except (ValueError, RuntimeError, KeyError, TypeError) as exc:
            raise TrainingError(f"{self.last_path}: its optimiser or RNG state does not fit this "
                                f"run ({str(exc).splitlines()[0][:120]}); start a new --out") from None


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, on_step=None) -> Path:
    """Train (or resume) a run; returns the path of the best checkpoint. ``on_step``: see
    :class:`Trainer`."""
    trainer = Trainer(cfg, resume=resume, progress=progress, on_step=on_step)
    try:
        return trainer.run()
    finally:
        if trainer.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def train_cli(argv: list[str]) -> int:
    cfg, resume = config_from_args(argv)
    if cfg.device == "cpu" or not torch.cuda.is_available():
        tune_cpu()  # flush denormals, keep freed memory: ~20% faster steps on CPU
    try:
        best = train(cfg, resume=resume)
    except (TrainingError, FileNotFoundError, ValueError) as exc:
        print(shown(f"dcu train: error: {exc}"), file=sys.stderr)
        return 1
    print(f"best checkpoint: {best}")
    return 0


_CHUNK = 1 << 20


def _fingerprint(path: Path, size: int) -> str:
    """SHA-256 (16 hex digits) of a file's bytes, or for a file over 2 MiB of its first and
    last MiB: cheap enough for every start, and a replaced file changes it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= 2 * _CHUNK:
            h.update(f.read())
        else:
            h.update(f.read(_CHUNK))
            f.seek(size - _CHUNK)
            h.update(f.read(_CHUNK))
    return h.hexdigest()[:16]


def data_manifest(files) -> dict:
    """``{"root": the folder the files share, "files": [[name relative to it, size in bytes,
    fingerprint], ...]}``, sorted by name: what a run's training data is, so that a resume can
    tell whether it is still the same (the root may move; names, sizes and contents may not)."""
    paths = sorted({os.path.abspath(f) for f in files})
    if not paths:
        return {"root": "", "files": []}
    root = os.path.commonpath([os.path.dirname(p) for p in paths])
    rows = []
    for p in paths:
        size = os.stat(p).st_size
        rows.append([os.path.relpath(p, root), size, _fingerprint(Path(p), size)])
    return {"root": root, "files": rows}


def data_changes(before: dict, now: dict) -> str | None:
    """How the files of manifest ``now`` differ from ``before``'s, in words (``"1 changed, 2
    added, e.g. noisy/x.wav"``); ``None`` when they are the same."""
    old = {name: tuple(rest) for name, *rest in before.get("files", [])}
    new = {name: tuple(rest) for name, *rest in now.get("files", [])}
    found = {"changed": sorted(n for n in old.keys() & new.keys() if old[n] != new[n]),
             "added": sorted(new.keys() - old.keys()), "removed": sorted(old.keys() - new.keys())}
    if not any(found.values()):
        return None
    first = next(names[0] for names in found.values() if names)
    return ", ".join(f"{len(v)} {k}" for k, v in found.items() if v) + f", e.g. {shown(first)}"


def stages(metadata: dict) -> list[dict]:
    """The training stages behind a checkpoint, oldest first, from its metadata (a model's
    ``.metadata`` or a checkpoint's ``"metadata"``): one dict per stage with the step that was
    kept (``step``), that stage's ``train_config`` and ``valid`` scores, where recorded. A
    fine-tune (``dcu train --init``) keeps the stage it started from under ``previous_stage``,
    and that one its own, so a checkpoint fine-tuned twice has three stages. A stage whose
    weights were mixed with the ones it started from (``dcu checkpoint interpolate``) also has
    ``alpha``, the share of its own weights in the mix."""
    chain, meta = [], metadata
    while meta:
        stage = {"step": meta.get("step"), "train_config": meta.get("train_config", {}),
                 "valid": meta.get("valid", {})}
        if "interpolation" in meta:
            stage["alpha"] = meta["interpolation"]["alpha"]
        chain.append(stage)
        meta = meta.get("previous_stage")
    return chain[::-1]
