"""What a training checkpoint holds and how a run resumes from it.

A training checkpoint is :func:`dcu.store.checkpoint.make_payload` (config, weights, metadata with the
run's ``train_config``, step and validation scores) plus a ``train_state``: optimiser, step,
epoch, position in the epoch, best score, log, RNG state, the losses since the last log row and
the time spent. :class:`RunState` writes and restores it for :class:`dcu.training.trainer.TrainingLoop`.

Book: book/07_training.ipynb
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch

from dcu.store.checkpoint import atomic_torch_save, check_fields, make_payload, read_checkpoint

__all__ = ["RESUME_MATCH", "DATA_FIELDS", "TRAIN_STATE_FIELDS", "RunState", "TrainingError", "stages"]


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



class RunState:
    """Checkpointing and resuming of a :class:`dcu.training.trainer.TrainingLoop` (whose attributes it
    reads and restores: ``cfg``, ``model``, ``opt``, ``step``, ``epoch``, ``batch_in_epoch``,
    ``best``, ``history``, ``running``, ``clock``, ``previous_stage``, ``rank``)."""

    def _tick(self) -> dict:
        """Add the time since the last tick to :attr:`clock`; returns it."""
        now = (time.time(), time.process_time())
        self.clock["wall_seconds"] += now[0] - self._clock_mark[0]
        self.clock["cpu_seconds"] += now[1] - self._clock_mark[1]
        self._clock_mark = now
        return self.clock

    def _payload(self, valid=None) -> dict:
        """:func:`dcu.store.checkpoint.make_payload` with the run's metadata and training state."""
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
        ours = {**self.model.config_dict(),
                **{k: getattr(self.cfg, k) for k in RESUME_MATCH + DATA_FIELDS}}
        defaults = type(self.cfg)  # a data field the saved run predates had its default
        theirs = {**payload["config"], **{k: saved.get(k) for k in RESUME_MATCH},
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
        self.running = list(ts.get("running", []))  # losses since the last log row
        try:
            self.opt.load_state_dict(ts["optimizer"])
            torch.set_rng_state(ts["torch_rng"])
        except (ValueError, RuntimeError, KeyError, TypeError) as exc:
            raise TrainingError(f"{self.last_path}: its optimiser or RNG state does not fit this "
                                f"run ({str(exc).splitlines()[0][:120]}); start a new --out") from None


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
