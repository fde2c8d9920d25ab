"""Test-only runner: ``dcu train`` with a hook on each step, for tests that need a real process.

    python tests/train_with_hook.py kill-at STEP  [dcu train options]   # SIGKILL after STEP
    python tests/train_with_hook.py dump-state    [dcu train options]   # each rank's weights at the end
    python tests/train_with_hook.py term-in-loss STEP   [dcu train options]   # SIGTERM in step STEP's loss
    python tests/train_with_hook.py term-in-update STEP [dcu train options]   # ... in its optimiser update

It passes :class:`dcu.training.Trainer`'s public ``on_step`` callback to the ordinary ``dcu train``
command line, so production code holds no test switches. ``dump-state`` writes
``OUT/rank<N>.pt`` (run it under ``torchrun`` to compare the data-parallel replicas).
"""

import functools
import os
import signal
import sys

import torch

import dcu.training.trainer
from dcu.cli import main


def kill_at(step: int):
    def on_step(trainer):
        if trainer.step == step:  # a hard kill: no clean-up, no final checkpoint
            os.kill(os.getpid(), signal.SIGKILL)
    return on_step


def term_in(owner, name: str, step: int):
    """SIGTERM this process from within the ``step``-th call (1-based) of ``owner.name``, before
    the real call: the loss of a step (its batch drawn, the update not yet made), or its update."""
    real, calls = getattr(owner, name), {"n": 0}

    @functools.wraps(real)
    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == step:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)
    setattr(owner, name, wrapped)


def dump_state(trainer):
    if trainer.step >= trainer.cfg.steps:
        torch.save(trainer.model.state_dict(), trainer.out / f"rank{trainer.rank}.pt")


if __name__ == "__main__":
    action, rest = sys.argv[1], sys.argv[2:]
    if action == "kill-at":
        hook, rest = kill_at(int(rest[0])), rest[1:]
    elif action == "dump-state":
        hook = dump_state
    elif action in ("term-in-loss", "term-in-update"):
        owner, name = ((dcu.training.trainer, "compute_loss") if action == "term-in-loss"
                       else (torch.optim.Adam, "step"))
        term_in(owner, name, int(rest[0]))
        hook, rest = None, rest[1:]
    else:
        sys.exit(f"usage: {sys.argv[0]} kill-at STEP | dump-state | term-in-loss STEP | "
                 "term-in-update STEP [dcu train options]")
    dcu.training.trainer.train = functools.partial(dcu.training.trainer.train, on_step=hook)
    sys.exit(main(["train", *rest]))
