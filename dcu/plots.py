"""Figures and players the book shows again and again: spectrograms, curves, audio.

Book: every chapter (first used in book/01_introduction.ipynb); ``dcu plot-log`` draws a
training run's curves (book/07_training.ipynb).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from dcu.audio import as_numpy
from dcu.base.atomic import atomic_write
from dcu.base.guard import shown
from dcu.results import resolved_sign
from dcu.stft import HOP_LENGTH, SAMPLE_RATE, compute_stft
from dcu.training.log import read_log  # noqa: F401  (the book reads logs from here)

def plot_spectrogram(wav, ax=None, sample_rate: int = SAMPLE_RATE, title: str | None = None,
                     vmin: float = -80.0, colorbar: bool = False):
    """Log-magnitude spectrogram (dB re. the maximum) of a ``(time,)`` waveform on ``ax``.

    Uses the paper's STFT (1024-sample Hann window, hop 256). Returns the image.
    """
    import matplotlib.pyplot as plt  # matplotlib only where a figure is drawn (start-up time)

    ax = ax or plt.gca()
    spec = compute_stft(torch.as_tensor(as_numpy(wav), dtype=torch.float32)).abs().numpy()
    db = 20 * np.log10(spec / (spec.max() + 1e-12) + 1e-12)
    frames = db.shape[-1]
    extent = [0, frames * HOP_LENGTH / sample_rate, 0, sample_rate / 2000]
    im = ax.imshow(db, origin="lower", aspect="auto", extent=extent, vmin=vmin, vmax=0,
                   cmap="magma")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (kHz)")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label="dB")
    return im


def plot_spectrograms(named: dict, sample_rate: int = SAMPLE_RATE, ncols: int | None = None,
                      height: float = 2.2, width: float | None = None, colorbar: bool = True):
    """A row (or grid) of spectrograms, one per ``{title: waveform}`` entry. Returns the figure.

    ``width`` (inches) defaults to what fits the book's text column (at most 7.5 in, three
    panels a row unless ``ncols`` says otherwise), so labels stay legible at 100 % zoom; every
    panel shares one colour scale (dB re. each clip's own peak) and one colour bar.
    """
    import matplotlib.pyplot as plt

    n = len(named)
    if n == 0:
        raise ValueError("plot_spectrograms: no waveforms given; pass {title: waveform, ...}")
    ncols = ncols or min(n, 3)
    nrows = -(-n // ncols)
    width = width or min(7.5, 2.6 * ncols + 0.9)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height * nrows), squeeze=False,
                             sharey=True, layout="constrained")
    for ax, (title, wav) in zip(axes.flat, named.items()):
        im = plot_spectrogram(wav, ax, sample_rate)
        ax.set_title(title, fontsize=9)
    for ax in axes.flat:  # time labels on the last row, frequency on the first column
        if not ax.get_subplotspec().is_last_row():
            ax.set_xlabel("")
        if not ax.get_subplotspec().is_first_col():
            ax.set_ylabel("")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if colorbar:
        fig.colorbar(im, ax=axes, label="dB re. peak", shrink=min(1.0, 0.5 + 0.25 * nrows),
                     aspect=max(10, 8 * nrows))
    return fig


def audio(wav, sample_rate: int = SAMPLE_RATE):
    """An IPython audio player for a waveform (peak-normalised, as a browser would play it)."""
    from IPython.display import Audio

    return Audio(as_numpy(wav).astype(np.float32), rate=sample_rate, normalize=True)


def audio_grid(named: dict, sample_rate: int = SAMPLE_RATE, title: str | None = None):
    """Labelled audio players, ``{label: waveform}``, in a row that wraps onto the next line
    when the page is narrow (an HTML table of players would scroll sideways instead).

    Returns an ``IPython.display.HTML`` object; the labels are HTML-escaped.
    """
    import html

    from IPython.display import HTML

    items = "".join(
        "<figure style='margin:0;min-width:0'>"
        f"<figcaption style='font-size:0.9em'>{html.escape(str(label))}</figcaption>"
        f"{audio(wav, sample_rate)._repr_html_()}</figure>"
        for label, wav in named.items())
    heading = f"<p style='margin:0.4em 0 0.2em;font-weight:600'>{html.escape(title)}</p>" \
        if title else ""
    return HTML(f"<div class='dcu-audio-grid'>{heading}<div style='display:flex;"
                f"flex-wrap:wrap;gap:0.4em 1.2em;align-items:flex-end'>{items}</div></div>")


def plot_log(logs: dict, metrics=("train_loss", "valid_wsdr", "valid_si_sdr", "valid_stoi"),
             x: str = "step", styles: dict | None = None, titles: dict | None = None):
    """Training curves of one or more runs, ``{label: rows}``, one panel per metric.

    ``x`` is a column of the logs (``"step"``, ``"minutes"``...) or ``"cpu_hours"``, the logs'
    ``cpu_seconds`` in hours: the compute a curve cost, which compares runs made on machines of
    different load where wall-clock time does not. ``titles`` maps a metric to its panel's title
    (default: the metric's name). ``styles`` maps a label to matplotlib line options (e.g.
    ``{"color": "C0", "ls": "--"}``) to show groups of runs, such as one colour per network and
    one line style per seed. With more than four runs the legend goes below the panels instead
    of over the first one."""
    import matplotlib.pyplot as plt

    styles, titles = styles or {}, titles or {}
    wanted = metrics
    metrics = [m for m in metrics if any(m in r for rows in logs.values() for r in rows)]
    if not metrics:
        raise ValueError(f"plot_log: none of {', '.join(wanted)} is in the logs of "
                         f"{len(logs)} run(s); pass metrics= that the logs record")
    if x == "cpu_hours":
        column, scale, xlabel = "cpu_seconds", 1 / 3600, "CPU hours"
    else:
        column, scale, xlabel = x, 1, x
    # two panels a row, so four curves fit the book's text column with legible labels
    ncols = min(2, len(metrics))
    nrows = -(-len(metrics) // ncols)
    below = len(logs) > 4
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.75 * ncols, 2.7 * nrows + 0.5 * below),
                             squeeze=False, layout="constrained")
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    for ax, metric in zip(axes.flat, metrics):
        for label, rows in logs.items():
            pts = [(r[column] * scale, r[metric]) for r in rows
                   if metric in r and column in r and np.isfinite(r[metric])]
            if pts:
                ax.plot(*zip(*pts), **{"marker": "o", "ms": 3, **styles.get(label, {})}, label=label)
        ax.set_xlabel(xlabel)
        ax.set_title(titles.get(metric, metric.replace("_", " ")))
        ax.grid(alpha=0.3)
    if below:
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), fontsize=8)
    else:
        axes[0][0].legend(fontsize=8)
    return fig


# the panels of a many-voices run (dcu/scripts/train_voices.sh): what it is selected by, and why
VOICES_PANELS = {"valid_voices_valid_pesq": "unseen voices: PESQ",
                 "valid_voices_valid_stoi": "unseen voices: STOI",
                 "valid_valid_pesq": "VoiceBank validation: PESQ",
                 "valid_score": "selection score (three sets)"}


def plot_differences(diffs: dict, metrics=("pesq", "stoi", "si_sdr"), title: str = ""):
    """Paired differences with their 95 % intervals, ``{label: summary}`` (the output of
    :func:`dcu.results.paired` or :func:`dcu.results.summarize`), one panel per metric, one row
    per label (top to bottom in the dict's order), with the line of no difference at 0.

    An interval that crosses the line is a difference the data cannot resolve."""
    import matplotlib.pyplot as plt

    labels = list(diffs)
    size = (2.6 * len(metrics) + 1.6, 1.3 + 0.35 * len(labels))
    fig, axes = plt.subplots(1, len(metrics), figsize=size, sharey=True, squeeze=False,
                             layout="constrained")
    y = np.arange(len(labels))[::-1]
    for ax, metric in zip(axes[0], metrics):
        mean = np.array([diffs[k][metric]["mean"] for k in labels], dtype=float)
        ci = np.array([diffs[k][metric]["ci95"] for k in labels], dtype=float)
        resolved = np.array([resolved_sign(diffs[k][metric]) != 0 for k in labels], dtype=bool)
        for keep, colour in ((resolved, "C0"), (~resolved, "0.55")):
            ax.errorbar(mean[keep], y[keep], xerr=ci[keep], fmt="o", ms=4, capsize=3, color=colour)
        ax.axvline(0, color="k", lw=0.8)
        name = {"si_sdr": "SI-SDR (dB)", "ssnr": "SSNR (dB)"}.get(metric, metric.upper().replace("_", " "))
        ax.set_title(f"Δ {name}", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.xaxis.set_major_locator(plt.MaxNLocator(4))
    axes[0][0].set_yticks(y, labels, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_log_cli(argv: list[str]) -> int:
    """``dcu plot-log RUN_OR_LOG... [--out PNG]``: draw training curves to a PNG."""
    import argparse

    import matplotlib

    matplotlib.use("Agg")
    p = argparse.ArgumentParser(prog="dcu plot-log", description=plot_log_cli.__doc__)
    p.add_argument("runs", nargs="+", help="run folders or log.json/log.csv files")
    p.add_argument("--out", default="training_curves.png", help="PNG to write")
    args = p.parse_args(argv)
    try:
        logs = {Path(r).stem if Path(r).is_file() else Path(r).name: read_log(r) for r in args.runs}
    except (FileNotFoundError, json.JSONDecodeError, ValueError) as exc:
        print(shown(f"dcu plot-log: error: {exc}"), file=sys.stderr)
        return 1
    out = Path(args.out)
    if out.exists() and (out.suffix.lower() != ".png" or not out.is_file()):  # a pipe would block
        print(shown(f"dcu plot-log: error: {out} exists and is not a PNG file; choose another --out"),
              file=sys.stderr)
        return 1
    figure = plot_log(logs)
    atomic_write(out, lambda tmp: figure.savefig(tmp, dpi=120, format="png"))
    print(f"wrote {out}")
    return 0
