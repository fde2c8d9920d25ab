"""Folders of files: which audio files a folder holds, and where each one's output goes.

``dcu enhance`` takes files and folders. :func:`scan_folder` lists a folder's audio files and
reports everything it passes over, with the reason; :func:`find_inputs` pairs each input with
its output path; :func:`plan_outputs` checks all the output paths together before any work,
so two inputs never write the same output, no output replaces an input, an ``--out`` never sits
inside a folder being read, and existing files are only replaced when asked.

Each file is isolated: :func:`describe_failure` says in one line, naming it, why it failed.
It imports nothing from dcu but :mod:`dcu.audio` and :mod:`dcu.base`. Book: book/09_your_recordings.ipynb
"""

from __future__ import annotations

import os
from pathlib import Path

from dcu.audio import AUDIO_EXTENSIONS, WRITABLE
from dcu.base.guard import first_line, shown

__all__ = ["SUFFIX", "describe_failure", "find_inputs", "output_path", "plan_outputs",
           "scan_folder", "unused_entries"]

SUFFIX = "_enhanced"


def scan_folder(folder: Path) -> tuple[list[Path], list[str], list[str]]:
    """Audio files under ``folder``, and what was passed over: ``(files, notes, errors)``.

    Every entry is either processed or reported. Notes (the exit status stays 0): files with
    other endings, hidden files and folders, links to folders (not followed), and earlier
    outputs of ``dcu enhance`` (names ending in ``_enhanced``; a name that merely contains it,
    such as ``my_enhanced_take.wav``, is processed). Errors (exit status 1): broken links,
    audio-named entries that are not regular files, folders that cannot be listed.
    """
    files, notes, errors = [], [], []
    other, hidden, earlier = [], [], []

    def unlisted(err):
        errors.append(f"{err.filename}: cannot list this folder ({err.strerror}); its files were skipped")

    for top, dirs, names in os.walk(folder, onerror=unlisted):
        top = Path(top)
        for d in sorted(dirs):
            if d.startswith("."):
                hidden.append(top / d)
            elif (top / d).is_symlink():
                notes.append(f"{top / d}: link to a folder, not followed; pass it as an input")
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (top / d).is_symlink())
        for name in sorted(names):
            f = top / name
            if name.startswith("."):
                hidden.append(f)
            elif f.suffix.lower() not in AUDIO_EXTENSIONS:
                other.append(f)
            elif f.is_symlink() and not f.exists():
                errors.append(f"{f}: broken link, skipped; fix or remove it")
            elif not f.is_file():
                errors.append(f"{f}: not a regular file (a pipe or device?), skipped")
            elif f.stem.endswith(SUFFIX):
                earlier.append(f)
            else:
                files.append(f)
    for what, found in (("hidden entries", hidden), ("files that are not audio "
                        f"({'/'.join(e[1:] for e in AUDIO_EXTENSIONS)})", other),
                        (f"earlier outputs (*{SUFFIX}); name them to enhance them again", earlier)):
        if found:
            listed = ", ".join(p.name for p in found[:3]) + (", ..." if len(found) > 3 else "")
            notes.append(f"{folder}: skipped {len(found)} {what}: {listed}")
    if not files and not errors:
        errors.append(f"{folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder")
    return files, notes, errors


def find_inputs(inputs, out_dir=None, notes=None) -> tuple[list[tuple[Path, Path]], list[str]]:
    """``(input, output)`` path pairs for files and folders, and error lines for bad inputs.

    Outputs are final names (an ending soundfile cannot write becomes ``.wav``). Skipped folder
    entries are appended to ``notes`` when a list is given (see :func:`scan_folder`).
    """
    jobs, errors = [], []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files, found_notes, found_errors = scan_folder(path)
            errors += found_errors
            if notes is not None:
                notes += found_notes
            for f in files:
                rel = f.relative_to(path)
                jobs.append((f, output_path(Path(out_dir) / path.resolve().name / rel)
                             if out_dir else _beside(f)))
        elif path.is_file():
            jobs.append((path, output_path(Path(out_dir) / path.name) if out_dir else _beside(path)))
        elif path.exists():
            errors.append(f"{path}: not a regular file (a pipe or device?); pass an audio file")
        elif path.is_symlink():
            errors.append(f"{path}: broken link; fix it or pass the file it should point to")
        else:
            errors.append(f"{path}: no such file or folder")
    return jobs, errors


def plan_outputs(jobs, inputs, out_dir=None, overwrite: bool = False) -> str | None:
    """Why the planned outputs cannot all be written, in one line; ``None`` when they can.

    Refused whatever ``overwrite`` says: two inputs with the same output (``a/x.wav`` and
    ``b/x.wav`` into one ``--out``, or ``x.mp3`` and ``x.wav``), an output that is an input,
    an ``--out`` inside a folder being read, an output that is a folder. Refused unless
    ``overwrite``: outputs that exist.
    """
    problems = []
    if out_dir is not None:
        out = Path(out_dir).resolve()
        for item in inputs:
            folder = Path(item).resolve()
            if Path(item).is_dir() and (out == folder or folder in out.parents):
                problems.append(f"--out {out_dir} is inside the input folder {item}, so a later "
                                "run would enhance these outputs again; choose an --out outside it")
    sources = {src.resolve() for src, _ in jobs}
    by_output: dict = {}
    for src, dst in jobs:
        by_output.setdefault(dst.resolve(), []).append(src)
    clashes = [(d, s) for d, s in by_output.items() if len(s) > 1]
    if clashes:
        d, s = clashes[0]
        problems.append(f"{len(clashes)} output(s) would be written by two inputs, e.g. {d} by "
                        f"{' and '.join(map(str, s))}; rename one or enhance them in separate calls")
    over_inputs = [d for d in by_output if d in sources]
    if over_inputs:
        problems.append(f"{len(over_inputs)} output(s) would overwrite an input, e.g. "
                        f"{over_inputs[0]}; choose another --out")
    folders = [d for d in by_output if d.is_dir()]
    if folders:
        problems.append(f"{len(folders)} output(s) are existing folders, e.g. {folders[0]}")
    exist = [d for d in by_output if d.is_file() and d not in sources]
    if exist and not overwrite:
        listed = ", ".join(map(str, exist[:3])) + (", ..." if len(exist) > 3 else "")
        problems.append(f"{len(exist)} output(s) already exist ({listed}); delete them, choose "
                        "another --out, or pass --overwrite")
    return "nothing was enhanced: " + "; ".join(problems) if problems else None


def unused_entries(folder) -> str | None:
    """A note naming what ``folder`` holds besides the audio files it is scored on (sub-folders,
    other files, hidden ones), or ``None``."""
    skipped = sorted(p.name for p in Path(folder).iterdir() if p.name.startswith(".") or
                     not p.is_file() or p.suffix.lower() not in AUDIO_EXTENSIONS)
    if not skipped:
        return None
    shown = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
    return (f"{folder}: skipped {len(skipped)} entries that are not {'/'.join(AUDIO_EXTENSIONS)} "
            f"files at its top level (sub-folders are not read): {shown}")


def describe_failure(src, exc: BaseException) -> str:
    """One line naming ``src`` and why enhancing it failed."""
    if isinstance(exc, MemoryError):
        reason = "out of memory; try a smaller --chunk-seconds or free memory"
    elif isinstance(exc, OSError) and exc.strerror:
        reason = f"{exc.strerror}" + (f" ({exc.filename})" if exc.filename else "")
    else:
        text = first_line(exc) if str(exc).strip() else ""
        reason = text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}".rstrip(": ")
    return reason if reason.startswith((str(src), shown(src))) else f"{shown(src)}: {reason}"


def _beside(path: Path) -> Path:
    ext = path.suffix if path.suffix.lower() in WRITABLE else ".wav"
    return path.with_name(f"{path.stem}{SUFFIX}{ext}")


def output_path(out: Path) -> Path:
    """Keep the input's name; an ending :func:`dcu.audio.save_audio` cannot write becomes .wav."""
    return out if out.suffix.lower() in WRITABLE else out.with_suffix(".wav")
