"""Evaluate an enhancer on paired folders: the paper's table with 95 % confidence intervals.

    dcu evaluate (--clean DIR --noisy DIR | --split NAME) (--model NAME_OR_PATH
                 | --baseline noisy|wiener|noisereduce | --enhanced DIR) [--json FILE] [--csv FILE] [--jobs N]

Files are paired by name (without extension); ``--split`` takes a split of the shipped corpus
(:func:`dcu.data.list_pairs`, which rebuilds p239's noisy side into the cache if needed).
Metrics (:data:`dcu.metrics.METRICS`) are computed in worker processes with a progress bar;
the summary gives, per metric, the mean, the half-width of its 95 % confidence interval
(Student t) and the number of files with a defined value (:mod:`dcu.results`). The result
files (a JSON summary with per-file rows, a CSV) are written atomically and only ever replace a
file that ``dcu evaluate`` wrote itself (:func:`plan_result_files` checks that before any
scoring); undefined values are JSON ``null`` and empty CSV cells.

Book: book/08_evaluation.ipynb.
"""

from __future__ import annotations

import argparse
import csv
import functools
import inspect
import json
import math
import multiprocessing
import os
import sys
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np

from dcu.audio import load_audio
from dcu.base.atomic import atomic_write
from dcu.base.guard import first_line, quiet_worker, shown, sigint_blocked, special_file
from dcu.baselines import BASELINES
from dcu.data import PairedFolder, corpus_dir, list_pairs
from dcu.engine import PRECISIONS, optimize
from dcu.jobs.enhance import enhance_recording
from dcu.jobs.folders import unused_entries
from dcu.metrics import METRICS, compute_all
from dcu.results import finite, format_table, group_by, summarize
from dcu.stft import SAMPLE_RATE
from dcu.store.checkpoint import load

__all__ = ["TOOL", "evaluate_pairs", "evaluate_cli", "plan_result_files", "write_results_csv",
           "write_results_json"]

TOOL = "dcu evaluate"


def _score_file(name, clean_path, other_path, enhance, est, sample_rate):
    """Metrics of one file: (row, warning messages).  Runs in a worker process."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            clean = load_audio(clean_path, sample_rate)
            if est is None:
                est = load_audio(other_path, sample_rate)
                if enhance is not None:
                    est = enhance(est, sample_rate)
            est = np.asarray(est, dtype=np.float64).reshape(-1)
            if est.size != clean.size:
                raise ValueError(
                    f"{other_path} has {est.size} samples but {clean_path} has {clean.size}; "
                    "an enhanced file must keep the length of its input"
                )
            row = {"name": name, **compute_all(clean, est, sample_rate)}
        return row, [str(w.message) for w in caught]
    except Exception as err:  # re-raised in the parent, naming the file
        raise ValueError(f"{name}: {_why(err)}") from None


def _why(err: BaseException) -> str:
    """One line saying what went wrong (the type too, unless it is a plain ValueError)."""
    text = first_line(err)
    return text if isinstance(err, ValueError) or text == type(err).__name__ else \
        f"{type(err).__name__}: {text}"


def _raise(err):
    raise err


def _worker():
    """Initializer of the metric workers: Ctrl-C is the parent's to handle (no traceback from
    each worker), and one BLAS thread each."""
    quiet_worker()
    _one_blas_thread()


def _one_blas_thread():
    """Limit BLAS to one thread: on short vectors its thread wake-ups cost more than the work
    (a 3 s dot product goes from 5 us to 15 ms on a loaded machine)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only a speed-up
        return None
    return threadpool_limits(1)


def _in_workers(enhance) -> bool:
    """Plain module-level functions are sent to the workers; other callables (a model's
    :func:`~dcu.jobs.enhance.enhance_recording` partial, lambdas, closures) run in the calling process."""
    return enhance is None or (inspect.isfunction(enhance) and "<" not in enhance.__qualname__)


def evaluate_pairs(pairs, enhance=None, jobs: int = 2, progress: bool = True,
                   sample_rate: int = SAMPLE_RATE, errors: list | None = None):
    """Score every pair; return ``(summary, rows)``.

    Args:
        pairs: iterable of ``(name, clean_path, path)`` where ``path`` is the signal to score
            (``enhance is None``) or the noisy input to enhance first.
        enhance: ``None`` or a callable ``enhance(noisy, sample_rate) -> enhanced`` mapping a
            (time,) float32 array to one of the same length (e.g. :func:`dcu.baselines.wiener`
            or ``functools.partial(dcu.jobs.enhance.enhance_recording, model)``).
        jobs: worker processes for the metrics (1 computes everything in this process).
        progress: show a tqdm progress bar.
        sample_rate: files are read (and resampled if needed) at this rate.
        errors: ``None`` raises on the first file that fails; a list isolates each file: a
            failure (any exception: unreadable, wrong length, out of memory...) appends one line
            ``"name: reason"`` to it, that file gets no row, and the others are still scored.

    Returns:
        ``summary``: ``{metric: {"mean", "ci95", "n"}}`` (see :func:`summarize`);
        ``rows``: one dict per scored file, ``{"name", <metric>: value, ...}``, in input order.

    Raises:
        ValueError: a file cannot be read or scored (when ``errors`` is None); the message
        names it.
    """
    from tqdm.auto import tqdm

    pairs = [(str(n), str(c), str(p)) for n, c, p in pairs]
    rows: list = [None] * len(pairs)
    bar = tqdm(total=len(pairs), desc="evaluate", unit="file", disable=not progress)

    def collect(i, get):
        try:
            row, messages = get()
        except Exception as err:  # one file's failure, whatever it is, stays with that file
            if errors is None:
                raise
            text = _why(err)
            errors.append(text if text.startswith(f"{pairs[i][0]}: ") else f"{pairs[i][0]}: {text}")
            bar.update(1)
            return
        rows[i] = row
        for msg in messages:
            warnings.warn(f"{row['name']}: {msg}", RuntimeWarning, stacklevel=3)
        bar.update(1)

    def enhanced_here(name, path):
        try:
            return np.asarray(enhance(load_audio(path, sample_rate), sample_rate))
        except Exception as err:
            raise ValueError(f"{name}: {_why(err)}") from err

    remote = _in_workers(enhance)
    if jobs <= 1:
        limits = _one_blas_thread()
        try:
            for i, (name, clean, path) in enumerate(pairs):
                collect(i, lambda: _score_file(name, clean, path, enhance, None, sample_rate))
        finally:
            if limits is not None:
                limits.restore_original_limits()
    else:
        ctx = multiprocessing.get_context("fork" if "fork" in
                                          multiprocessing.get_all_start_methods() else None)
        pool = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker)
        try:
            pending: dict = {}
            for i, (name, clean, path) in enumerate(pairs):
                if remote:
                    with sigint_blocked():  # the first submit forks the workers
                        fut = pool.submit(_score_file, name, clean, path, enhance, None, sample_rate)
                else:  # enhance here (a model keeps its own threads), score in the workers
                    try:
                        est = enhanced_here(name, path)
                    except Exception as err:
                        collect(i, lambda: _raise(err))
                        continue
                    with sigint_blocked():
                        fut = pool.submit(_score_file, name, clean, path, None, est, sample_rate)
                pending[fut] = i
                if len(pending) >= 4 * jobs:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        collect(pending.pop(fut), fut.result)
            for fut in list(pending):
                collect(pending.pop(fut), fut.result)
        except BaseException:  # Ctrl-C, a signal or a failure: stop the workers now, not later
            _stop(pool)
            bar.close()
            raise
        pool.shutdown()
    bar.close()
    rows = [r for r in rows if r is not None]
    return summarize(rows), rows


def _stop(pool) -> None:
    """Cancel what has not started and end the workers without waiting for their files."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        proc.terminate()
    for proc in processes:
        proc.join(timeout=5)
    # let the pool's manager thread finish closing its wake-up pipe now: left running, it races
    # the interpreter's exit hook, which writes to that pipe ("OSError: Bad file descriptor",
    # printed as a traceback after the one-line message)
    if manager is not None:
        manager.join(timeout=5)


def _jobs(text: str) -> int:
    """``--jobs``: an integer from 1 to 256."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of processes from 1 to 256")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=TOOL, description="Score a model, a baseline or enhanced files against clean "
        "references (PESQ wb, CSIG, CBAK, COVL, SSNR, STOI, ESTOI, SI-SDR).")
    p.add_argument("--clean", metavar="DIR", help="clean reference files")
    p.add_argument("--noisy", metavar="DIR", help="noisy files, same names")
    p.add_argument("--split", metavar="NAME", help="instead of --clean/--noisy: a split of the shipped "
                   "corpus (test, valid, unseen, p239_valid, p239_test...)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--model", metavar="NAME_OR_PATH", help="checkpoint path or shipped name")
    how.add_argument("--baseline", choices=["noisy", "wiener", "noisereduce"])
    how.add_argument("--enhanced", metavar="DIR", help="already-enhanced files, same names")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="with --model: auto (bfloat16 where the CPU runs it natively), fp32, bf16")
    p.add_argument("--json", metavar="FILE", help="write means, CIs and per-file rows")
    p.add_argument("--csv", metavar="FILE", help="write per-file rows")
    p.add_argument("--jobs", type=_jobs, default=min(2, os.cpu_count() or 1), metavar="N",
                   help="worker processes (default: %(default)s)")
    p.add_argument("--group-by", metavar="COLUMN", help="also print a table per value of "
                   "COLUMN of --table (e.g. snr_bin)")
    p.add_argument("--table", metavar="CSV", help="file list with a 'name' column "
                   "(default: data/splits/test.csv, or the --split's)")
    return p


def evaluate_cli(argv: list[str]) -> int:
    """``dcu evaluate``: parse ``argv``, evaluate, print the table; return an exit code.

    Exit status, as every dcu command: 0 when every file was scored; 1 when anything failed or
    was refused (each failure is one line on standard error naming the file; the others are
    still scored and the table covers them); 2 for bad options; 130 on Ctrl-C.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.clean or args.noisy) if args.split else not (args.clean and args.noisy):
        parser.error("give --clean DIR and --noisy DIR, or --split NAME (not both)")
    failed: list = []
    try:
        if args.split:  # the shipped split's folders (its noisy side may be in the cache)
            found = list_pairs(args.split)
            args.noisy, args.clean = found[0][0].parent, found[0][1].parent
        folders = [args.clean, args.noisy, args.enhanced]
        problem = plan_result_files({"json": args.json, "csv": args.csv}, folders)
        if problem:
            raise ValueError(problem)
        found = found if args.split else PairedFolder(args.clean, args.noisy).pairs
        pairs = [(c.stem, c, n) for n, c in found]
        for folder in filter(None, folders):
            note = unused_entries(folder)
            if note:
                print(shown(f"{TOOL}: note: {note}"), file=sys.stderr)
        enhance, method = None, f"baseline {args.baseline}"
        if args.enhanced:
            other = {c.stem: e for e, c in PairedFolder(args.clean, args.enhanced).pairs}
            pairs, method = [(k, c, other[k]) for k, c, _ in pairs], f"enhanced {args.enhanced}"
        elif args.model:
            model = optimize(load(args.model), args.precision)
            method = f"model {args.model}"
            enhance = functools.partial(enhance_recording, model)  # runs here, not in workers
        elif args.baseline != "noisy":
            enhance = BASELINES[args.baseline]
        summary, rows = evaluate_pairs(pairs, enhance, jobs=args.jobs, errors=failed)
        for line in failed:
            print(shown(f"{TOOL}: error: {line}"), file=sys.stderr)
        scored = f"{len(rows)} files" if not failed else f"{len(rows)} of {len(pairs)} files"
        print(format_table(summary, shown(f"{method}: {scored} in {args.clean}")))
        if args.group_by:
            table = args.table or corpus_dir() / "splits" / f"{args.split or 'test'}.csv"
            for g, s in group_by(rows, table, args.group_by).items():
                print("\n" + format_table(s, f"{args.group_by} = {g}"))
        meta = {"method": method, "clean": str(args.clean), "noisy": str(args.noisy),
                "n_files": len(rows), "sample_rate": SAMPLE_RATE, "failed": failed}
        for path, write in ((args.json, lambda: write_results_json(args.json, summary, rows, meta)),
                            (args.csv, lambda: write_results_csv(args.csv, rows))):
            if path:  # only ever its own earlier results are replaced (plan_result_files), and it says so
                replaced = Path(path).exists()
                write()
                print(shown(f"{TOOL}: {'replaced its earlier results in' if replaced else 'wrote'} "
                            f"{path}"), file=sys.stderr)
    except Exception as err:  # one line, never a traceback (per-file failures are above)
        print(shown(f"{TOOL}: error: {first_line(err)}"), file=sys.stderr)
        return 1
    return 1 if failed else 0


# -- the result files --------------------------------------------------------------------
def _ours(path: Path, kind: str) -> bool:
    """True when an existing file is empty or was written by dcu evaluate (a named pipe, device
    or socket is not, and is never opened)."""
    if special_file(path):
        return False
    if path.stat().st_size == 0:
        return True
    try:
        if kind == "json":
            return json.loads(path.read_text()).get("meta", {}).get("tool") == TOOL
        with open(path, newline="") as fh:
            return next(csv.reader(fh), []) == ["name", *METRICS]
    except (ValueError, AttributeError, UnicodeDecodeError):
        return False


def _write_atomic(path, text: str, kind: str) -> None:
    path = Path(path)
    if path.exists() and not _ours(path, kind):
        raise FileExistsError(f"{path}: exists and was not written by {TOOL}; "
                              "choose another file name or delete it first")
    # a file name the OS gave as bytes that are not UTF-8 is written back as those bytes
    atomic_write(path, lambda tmp: tmp.write_text(text, newline="", errors="surrogateescape"))


def plan_result_files(outputs: dict, inputs) -> str | None:
    """Why the result files ``{"json": path or None, "csv": ...}`` cannot be written, in one
    line, before any scoring; ``None`` when they can. Refused: both options naming one file, a
    file inside a folder being read (``inputs``), a folder, an existing file that
    :data:`TOOL` did not write (it only ever replaces its own results)."""
    given = {kind: Path(p) for kind, p in outputs.items() if p}
    if len(given) == 2 and given["json"].resolve() == given["csv"].resolve():
        return f"--json and --csv name the same file {given['json']}; give two names"
    for kind, path in given.items():
        where = path.resolve()
        for folder in inputs:
            if folder and Path(folder).resolve() in where.parents:
                return (f"--{kind} {path} lies inside the input folder {folder}; "
                        "write results outside the folders being read")
        if path.is_dir():
            return f"--{kind} {path} is a folder; name a file"
        if path.exists() and not _ours(path, kind):
            return (f"{path}: exists and was not written by {TOOL}; choose another file name "
                    "or delete it first")
    return None


def write_results_json(path, summary: dict, rows, meta: dict | None = None) -> None:
    """JSON whose top level maps each metric to its mean, plus ``ci95``, ``n``, ``files`` (the
    per-file rows) and ``meta``.  Undefined values are ``null``.  Written atomically."""
    doc = {m: s["mean"] for m, s in summary.items()}
    doc["ci95"] = {m: s["ci95"] for m, s in summary.items()}
    doc["n"] = {m: s["n"] for m, s in summary.items()}
    doc["files"] = list(rows)
    doc["meta"] = {"tool": TOOL, **(meta or {})}
    _write_atomic(path, json.dumps(finite(doc), indent=1) + "\n", "json")


def write_results_csv(path, rows) -> None:
    """Per-file rows as CSV (columns ``name`` and the metrics; empty cell = undefined)."""
    lines = [",".join(["name", *METRICS])]
    for r in rows:
        cells = ["" if not math.isfinite(r[m]) else repr(float(r[m])) for m in METRICS]
        lines.append(",".join([r["name"], *cells]))
    _write_atomic(path, "\n".join(lines) + "\n", "csv")
