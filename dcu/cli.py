"""The ``dcu`` command line: a thin face over the package's job modules.

    dcu demo                      enhance a shipped noisy recording, print PESQ/STOI before/after
    dcu enhance INPUT... [--model NAME_OR_PATH] [--out DIR] [--dnsmos] [--stream]
    dcu stream - --model CAUSAL    live: raw 16-bit 16 kHz mono PCM from stdin to stdout
    dcu evaluate --clean DIR --noisy DIR (--model M | --baseline B | --enhanced DIR) [--json F] [--csv F]
    dcu train [--arch DCUnet-20 ...] [--resume]
    dcu plot-log RUN_DIR_OR_LOG [--out PNG]
    dcu data download voicebank | dcu data info
    dcu bench [--arch ...] [--json F]
    dcu export --onnx OUT.onnx [--model NAME_OR_PATH]
    dcu ablation [--grid paper] [--out JSON] [--runs DIR]
    dcu checkpoint info FILE | dcu checkpoint strip IN OUT [--half]
    dcu checkpoint interpolate START END OUT --alpha A [--half]

Each subcommand lives in the job module that owns the idea (named in :data:`COMMANDS`) and
parses its own options.

Conventions: results go to standard output, errors (one line each, naming the file and the
fix) to standard error; names are shown escaped (:func:`dcu.base.guard.shown`), so a name with a
newline or bytes that are not UTF-8 never breaks a line. Exit status (the same for every
command, README "Limits and exit codes"): 0 on success, 1 when a file, an input or an output
failed or was refused, 2 for bad options, 128 + the signal when stopped (130 Ctrl-C, 143
SIGTERM, 129 SIGHUP: each unwinds as Ctrl-C does, so no temporary file is left), 141 (silently)
when the reader of the output quits, as ``| head`` does. An unexpected exception is reported in
one line as well; set ``DCU_DEBUG=1`` to see its traceback.

Book: book/09_your_recordings.ipynb (the commands a reader runs on their own files)
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys

from dcu.base.guard import interrupt_status, shown, signals_as_interrupts
from dcu.version import __version__

# Each command is one job module's ``*_cli(argv)``, imported when that command runs (so
# ``dcu --help`` does not load scipy, soundfile and every job's dependencies).
COMMANDS = {  # name: (module in dcu, its entry point, help)
    "demo": ("jobs.demo", "demo_cli", "enhance a shipped noisy recording and print metrics"),
    "enhance": ("jobs.enhance", "enhance_cli", "enhance audio files or folders"),
    "stream": ("jobs.live", "stream_cli", "enhance live audio, raw PCM from stdin to stdout"),
    "evaluate": ("jobs.evaluate", "evaluate_cli", "metrics of a model or baseline on paired folders"),
    "train": ("training.trainer", "train_cli", "train a DCUnet (resumable, torchrun-ready)"),
    "plot-log": ("plots", "plot_log_cli", "plot a training run's curves"),
    "data": ("jobs.corpora", "data_cli", "download the full corpus, or describe the shipped one"),
    "bench": ("jobs.speed", "bench_cli", "speed and memory of each architecture"),
    "export": ("jobs.export", "export_cli", "export a model to ONNX"),
    "ablation": ("ablation", "ablation_cli", "rerun the paper's ablations (a resumable grid of runs)"),
    "checkpoint": ("store.command", "checkpoint_cli", "describe a checkpoint, strip its training state, or interpolate two"),
}


def _usage() -> str:
    lines = ["usage: dcu COMMAND [options]   (dcu COMMAND --help for each)", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"dcu {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"dcu: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module, entry, _ = COMMANDS[name]
    for stream in (sys.stdout, sys.stderr):  # a name the OS gave as bytes never fails a print
        with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):
            stream.reconfigure(errors="backslashreplace")
    try:
        with signals_as_interrupts():
            return int(getattr(importlib.import_module(f"dcu.{module}"), entry)(rest) or 0)
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or SIGHUP: cleaned up on the way out
        print(f"dcu: interrupted{f' ({exc})' if str(exc) else ''}", file=sys.stderr)
        return interrupt_status(exc)
    except BrokenPipeError:  # the reader went away (`dcu checkpoint info F | head`): not an error
        try:  # point stdout at /dev/null so that flushing it at exit cannot fail a second time
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):  # stdout is no file (a test's)
            pass
        return 141  # 128 + SIGPIPE, as a shell reports a pipe reader that quit
    except Exception as exc:  # a bug or an unforeseen failure: still one line, not a traceback
        if os.environ.get("DCU_DEBUG"):
            raise
        text = str(exc).splitlines()[0] if str(exc).strip() else ""
        print(shown(f"dcu {name}: error: {type(exc).__name__}{': ' + text if text else ''} "
                    "(set DCU_DEBUG=1 to see the traceback)"), file=sys.stderr)
        return 1

