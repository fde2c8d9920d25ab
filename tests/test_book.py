"""The book: committed notebooks are clean, chapters import rather than define code, and the built
HTML works in a real browser.

Every exercise has a worked solution in a hidden code cell tagged ``solution``, which the build
executes; every citation names an entry of ``book/references.bib`` and every entry is cited.

The last group builds the whole book (``jupyter-book build . --all -W``: every chapter executes,
a warning fails) into ``_build/html`` (where a reader opens it afterwards) and opens every page
in headless Chromium (Debian's ``chromium``), driven over the Chrome DevTools Protocol, to check
that every image loads, every audio player has a source the browser can decode, every equation
is typeset by the MathJax the book serves itself, nothing is requested from off the machine, no
page scrolls sideways at a desktop or a phone width, figures are not shrunk below legibility, and
the page logs no errors.

Environment: ``DCU_SKIP_BOOK=1`` skips the build and the browser checks (CI never sets it);
``DCU_BOOK_HTML=<dir>`` checks an already built ``_build/html`` instead of building again.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
CHAPTERS = [p for p in NOTEBOOKS if p.name[:2].isdigit()]  # numbered chapters; appendices are not
CHROMIUM = os.environ.get("DCU_CHROMIUM", "/usr/bin/chromium")


def _toc_pages() -> list[str]:
    """Pages of ``_toc.yml`` in reading order, as paths without suffix (``book/01_...``)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for entry in toc.get("chapters", []):
        pages.append(entry["file"])
    for part in toc.get("parts", []):
        pages += [entry["file"] for entry in part["chapters"]]
    return pages


PAGES = _toc_pages()


def _code_cells(path: Path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


# --- the committed notebooks ----------------------------------------------------------------

def test_toc_lists_every_chapter_and_only_existing_ones():
    listed = {p for p in PAGES}
    on_disk = {f"book/{p.stem}" for p in [*NOTEBOOKS, *BOOK.glob("*.md")]}
    assert on_disk - listed == set(), f"notebooks missing from _toc.yml: {sorted(on_disk - listed)}"
    assert listed - on_disk == set(), f"_toc.yml lists missing files: {sorted(listed - on_disk)}"
    chapters = [p for p in PAGES if Path(p).name[:2].isdigit()]
    assert chapters == sorted(chapters), "chapters in _toc.yml are not in numbered order"
    assert PAGES[-2:] == ["book/glossary", "book/references"], "glossary and references come last"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", (
        f"{path.name}: kernel must be 'python3'")
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: code cells {dirty} carry outputs or execution counts; "
                       f"run: jupyter nbconvert --clear-output --inplace book/{path.name}")


FLAGS_ONLY = re.compile(r"(?:(?:[A-Z][A-Z0-9_]*\s*=\s*[^\n]+|#[^\n]*)\n*)+")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_prints_versions(path):
    # A cell of reader flags (``RETRAIN = False``) may come first; the next one prints versions.
    cells = [c for c in _code_cells(path) if not FLAGS_ONLY.fullmatch(c.source.strip())]
    assert cells, f"{path.name} has no code cell"
    src = cells[0].source
    assert "print" in src or "dcu.versions(" in src, f"{path.name}: first code cell prints nothing"
    if "dcu.versions(" not in src:
        wanted = {"python": r"\bsys\.version\b|platform\.python_version\(\)",
                  "torch": r"\btorch\.__version__", "numpy": r"\b(np|numpy)\.__version__",
                  "dcu": r"\bdcu\.__version__"}
        missing = [name for name, pattern in wanted.items() if not re.search(pattern, src)]
        assert not missing, f"{path.name}: first code cell does not print the {missing} version"


# A chapter may use lambdas for plotting, but never defines functions or classes: reusable code
# lives in the package (chapters import dcu; they never define reusable code).
DEFINITION = re.compile(r"^[ \t]*(?:async[ \t]+def|def|class)[ \t]+\w+", re.M)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_cell_has_a_unique_id(path):
    # nbformat 4.5 requires cell ids; a cell added without one is a warning today, an error later
    cells = json.loads(path.read_text())["cells"]
    missing = [i for i, c in enumerate(cells) if not c.get("id")]
    assert not missing, f"{path.name}: cells {missing} have no id"
    ids = [c["id"] for c in cells]
    assert len(set(ids)) == len(ids), f"{path.name}: repeated cell ids"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_imports_instead_of_defining_code(path):
    found = [(i, m.group(0).strip()) for i, c in enumerate(_code_cells(path))
             for m in DEFINITION.finditer(c.source)]
    assert not found, (f"{path.name} defines code in code cells {found}; move it into the dcu "
                       "package and import it (show it with inspect.getsource if it is taught)")
    assert any(re.search(r"^\s*(import dcu|from dcu[ .])", c.source, re.M)
               for c in _code_cells(path)), f"{path.name} never imports dcu"


def test_definition_check_catches_defs_and_allows_lambdas():
    assert DEFINITION.search("x = 1\n    def f(a):\n        return a\n")
    assert DEFINITION.search("class Thing:\n    pass\n")
    assert not DEFINITION.search("f = lambda a: a + 1\nprint('def x')\nundefined = 2\n")


# --- exercises, solutions, citations ----------------------------------------------------------

EXERCISE = re.compile(r"^(\d+)\. ", re.M)
SOLUTION_HEAD = re.compile(r"\A# Solution to exercise (\d+)\b")
HIDDEN = {"hide-cell", "hide-input", "dropdown"}


def _exercise_numbers(nb) -> list[int]:
    """Numbers of the items of the chapter's ``## Exercises`` list."""
    cells = [c for c in nb.cells if c.cell_type == "markdown" and "## Exercises" in c.source]
    assert len(cells) == 1, "a chapter has exactly one '## Exercises' section"
    return [int(n) for n in EXERCISE.findall(cells[0].source.split("## Exercises", 1)[1])]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_exercise_has_a_hidden_executed_solution(path):
    nb = nbformat.read(path, as_version=4)
    exercises = _exercise_numbers(nb)
    assert exercises == list(range(1, len(exercises) + 1)) and len(exercises) >= 4, (
        f"{path.name}: exercises numbered {exercises}")
    solutions = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
    assert all(c.cell_type == "code" for c in solutions), (
        f"{path.name}: a 'solution' cell must be code, so that the build runs it")
    numbers = [int(m.group(1)) if (m := SOLUTION_HEAD.match(c.source)) else None for c in solutions]
    assert numbers == exercises, (f"{path.name}: solutions {numbers} for exercises {exercises}; "
                                  "each starts with '# Solution to exercise N'")
    shown = [n for n, c in zip(numbers, solutions) if not HIDDEN & set(c.metadata["tags"])]
    assert not shown, f"{path.name}: solutions {shown} are not hidden (tag them hide-cell)"
    last = max(i for i, c in enumerate(nb.cells) if "solution" in c.metadata.get("tags", []))
    assert last == len(nb.cells) - 1, f"{path.name}: the solutions close the chapter"


def test_exercise_and_solution_checks_catch_a_gap():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("## Exercises\n\n1. one\n2. two\n")])
    assert _exercise_numbers(nb) == [1, 2]
    assert SOLUTION_HEAD.match("# Solution to exercise 12: x").group(1) == "12"
    assert not SOLUTION_HEAD.match("x = 1\n# Solution to exercise 1")


CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")


def _bib_keys() -> set[str]:
    return set(re.findall(r"^@\w+\{([^,\s]+),", (BOOK / "references.bib").read_text(), re.M))


def test_citations_and_bibliography_match():
    cited = {}
    for path in [*NOTEBOOKS, *BOOK.glob("*.md")]:
        text = (path.read_text() if path.suffix == ".md" else
                "\n".join(c.source for c in nbformat.read(path, as_version=4).cells
                          if c.cell_type == "markdown"))
        for keys in CITE.findall(text):
            for key in keys.split(","):
                cited.setdefault(key.strip(), set()).add(path.name)
    keys = _bib_keys()
    unknown = {k: sorted(v) for k, v in cited.items() if k not in keys}
    assert not unknown, f"cited but not in book/references.bib: {unknown}"
    unused = sorted(keys - set(cited))
    assert not unused, f"in references.bib but never cited: {unused}"
    assert "choi2019phase" in cited and len(cited) >= 20
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["bibtex_bibfiles"] == ["book/references.bib"]
    assert "{bibliography}" in (BOOK / "references.md").read_text()


GLUE_ROLE = re.compile(r"\{glue(?::[a-z]+)?\}`([^`]+)`")


def _glued_keys(path: Path) -> list[re.Pattern]:
    """Patterns of the keys a notebook's code cells ``glue``: a literal key exactly, an f-string
    key with each formatted part standing for any text."""
    import ast

    patterns = []
    for cell in _code_cells(path):
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "glue" and node.args:
                key = node.args[0]
                if isinstance(key, ast.Constant):
                    patterns.append(re.compile(re.escape(key.value)))
                elif isinstance(key, ast.JoinedStr):
                    patterns.append(re.compile("".join(
                        re.escape(v.value) if isinstance(v, ast.Constant) else ".+" for v in key.values)))
    return patterns


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_glued_number_in_the_prose_is_glued_by_a_cell(path):
    # A number the prose quotes from a cell is pasted from it ({glue:text}`key`), so the two cannot
    # disagree; a key no cell glues would be a warning, and the build fails on warnings.
    patterns = _glued_keys(path)
    cited = {m.split(":")[0] for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"
             for m in GLUE_ROLE.findall(c.source)}
    missing = sorted(k for k in cited if "::" not in k and not any(p.fullmatch(k) for p in patterns))
    assert not missing, f"{path.name}: the prose pastes {missing}, which no code cell glues"


def test_glue_check_reads_literal_and_formatted_keys(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        'glue("a_key", 1.0, display=False)\nfor m in ms:\n    glue(f"b_{m}_x", 2, display=False)')])
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    patterns = _glued_keys(path)
    assert any(p.fullmatch("a_key") for p in patterns) and any(p.fullmatch("b_pesq_x") for p in patterns)
    assert not any(p.fullmatch("c_key") for p in patterns)
    assert GLUE_ROLE.findall("gain {glue:text}`a_key:.2f` and {glue}`b`") == ["a_key:.2f", "b"]


WIDGET_CHAPTERS = ("02", "03", "04", "05", "06", "07", "08")
AUDIO_CHAPTERS = ("03", "06", "07")


@pytest.mark.parametrize("path", [p for p in CHAPTERS if p.name[:2] in WIDGET_CHAPTERS], ids=lambda p: p.name)
def test_chapter_has_a_live_widget_with_a_static_state(path):
    # A widget responds only with a kernel; the built page shows what the same cell printed or
    # drew for its default state, so every widget cell also displays something outside it.
    cells = [c.source for c in _code_cells(path) if "widgets." in c.source]
    assert cells, f"{path.name} has no ipywidgets widget"
    static = [src for src in cells if re.search(r"\b(display|print)\(", src)]
    assert static, f"{path.name}: no widget cell displays its default state outside the widget"


@pytest.mark.parametrize("path", [p for p in CHAPTERS if p.name[:2] in AUDIO_CHAPTERS], ids=lambda p: p.name)
def test_chapter_has_something_to_listen_to(path):
    assert any(re.search(r"\baudio(_grid)?\(|\bAudio\(", c.source) for c in _code_cells(path)), (
        f"{path.name} plays no audio")


# --- build the book and open it in Chromium --------------------------------------------------

skip_book = pytest.mark.skipif(os.environ.get("DCU_SKIP_BOOK") == "1",
                               reason="DCU_SKIP_BOOK=1 (CI always builds the book)")


@pytest.fixture(scope="module")
def html_dir() -> Path:
    """The built HTML: ``$DCU_BOOK_HTML`` if set, else a fresh ``jupyter-book build --all -W``
    into the repository's ``_build/html`` (git-ignored), which the reader opens afterwards."""
    given = os.environ.get("DCU_BOOK_HTML")
    if given:
        path = Path(given)
        assert (path / "index.html").exists(), f"DCU_BOOK_HTML={given} holds no built book"
        return path
    # the jupyter-book of the Python running the tests (a venv's, even when it is not activated)
    beside = Path(sys.executable).with_name("jupyter-book")
    exe = str(beside) if beside.exists() else shutil.which("jupyter-book")
    assert exe, 'jupyter-book is not installed; run: pip install -e ".[book,test]"'
    start = time.perf_counter()
    proc = subprocess.run([exe, "build", str(ROOT), "--all", "-W", "--keep-going",
                           "--path-output", str(ROOT)],
                          capture_output=True, text=True, timeout=1800)
    took = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    print(f"book built in {took:.0f} s")
    assert proc.returncode == 0, f"jupyter-book build failed ({took:.0f} s):\n{log[-6000:]}"
    return ROOT / "_build" / "html"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(html_dir):
    """Serve the built HTML on 127.0.0.1 from a thread; yields its base URL."""
    handler = functools.partial(_Quiet, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class _DevTools:
    """A minimal Chrome DevTools Protocol client (one websocket, flattened sessions)."""

    def __init__(self, ws_url: str):
        import websocket  # the ``websocket-client`` package (test extra)

        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.handlers = []  # called with every event: handler(message)

    def post(self, method, params=None, session=None) -> int:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        return self.next_id

    def call(self, method, params=None, session=None, timeout=60.0) -> dict:
        wanted = self.post(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._receive(deadline, f"{method}")
            if msg.get("id") == wanted:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def wait_for(self, event, session, timeout=60.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            msg = self._receive(deadline, event)
            if msg.get("method") == event and msg.get("sessionId") == session:
                return msg

    def _receive(self, deadline, what) -> dict:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"Chromium did not answer {what} in time")
        self.ws.settimeout(left)
        msg = json.loads(self.ws.recv())
        if "method" in msg:
            for handler in self.handlers:
                handler(msg)
        return msg

    def close(self):
        self.ws.close()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium started by the test, with a fresh profile; yields a DevTools client."""
    if not Path(CHROMIUM).exists() and CHROMIUM == "/usr/bin/chromium" and os.geteuid() == 0 \
            and shutil.which("apt-get"):
        # The README's test command sets everything up on a fresh Debian machine, Chromium too.
        subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                       "chromium", shell=True, check=False, timeout=1200)
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: the book test needs Debian's Chromium; "
                    "run: apt-get install -y chromium (or set DCU_CHROMIUM to a Chromium binary)")
    profile = tempfile.mkdtemp(prefix="dcu-chromium-")
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--no-default-browser-check", "--mute-audio",
         "--autoplay-policy=no-user-gesture-required",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    port_file = Path(profile) / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            err = proc.stderr.read()[-2000:]
            shutil.rmtree(profile, ignore_errors=True)
            pytest.fail(f"{CHROMIUM} did not start its DevTools endpoint:\n{err}")
        time.sleep(0.1)
    port, path = port_file.read_text().split("\n")[:2]
    tools = _DevTools(f"ws://127.0.0.1:{port}{path}")
    try:
        yield tools
    finally:
        tools.close()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


# Runs in the page after it loaded: every <img> must decode to a non-empty bitmap; every
# <audio> must name a source of an audio MIME type the browser can play, reach finite
# metadata (duration) and decode to samples with the Web Audio API (no output device needed).
PAGE_CHECK = r"""
(async () => {
  const settle = (p, ms) => Promise.race([p, new Promise(r => setTimeout(() => r('timeout'), ms))]);
  // Equations: MathJax (served from the book's _static) must have typeset every .math element,
  // and no TeX delimiter may be left in the text a reader sees (code blocks excepted).
  let mathjax = 'absent';
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    try { mathjax = String(await settle(MathJax.startup.promise.then(() => 'ok'), 60000)); }
    catch (e) { mathjax = String(e); }
  }
  const mathNodes = [...document.querySelectorAll('.math')];
  const untypeset = mathNodes.filter(el => !el.querySelector('mjx-container'))
    .map(el => el.textContent.slice(0, 80));
  const rawTex = [];
  const walker = document.createTreeWalker(document.querySelector('main') || document.body,
                                           NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement.closest('pre, code, script, style, textarea, mjx-container')) continue;
    if (/\\\(|\\\[|\$\$/.test(node.textContent)) rawTex.push(node.textContent.trim().slice(0, 80));
  }
  const math = {mathjax, elements: mathNodes.length,
                typeset: document.querySelectorAll('mjx-container').length, untypeset, rawTex};
  const images = [];
  for (const img of document.querySelectorAll('img')) {
    img.loading = 'eager';
    let note = 'ok';
    try { await settle(img.decode(), 15000); } catch (e) { note = String(e); }
    images.push({src: img.currentSrc.slice(0, 120), width: img.naturalWidth,
                 shown: img.getBoundingClientRect().width, note});
  }
  const audios = [];
  for (const el of document.querySelectorAll('audio')) {
    const srcs = [el.getAttribute('src'), ...[...el.querySelectorAll('source')].map(s => s.src)]
      .filter(Boolean);
    const types = [...el.querySelectorAll('source')].map(s => s.type).filter(Boolean);
    const src = el.currentSrc || srcs[0] || '';
    const mime = types[0] || (src.match(/^data:([^;,]+)/) || [])[1] || '';
    const entry = {src: src.slice(0, 60), mime, canPlay: mime ? el.canPlayType(mime) : ''};
    el.preload = 'auto';
    const meta = new Promise(resolve => {
      if (el.readyState >= 1) return resolve('ok');
      el.addEventListener('loadedmetadata', () => resolve('ok'), {once: true});
      el.addEventListener('error', () => resolve('error ' + (el.error && el.error.code)), {once: true});
    });
    if (el.readyState < 1) el.load();
    entry.meta = await settle(meta, 15000);
    entry.duration = el.duration;
    try {
      const bytes = await (await fetch(src)).arrayBuffer();
      const ctx = new OfflineAudioContext(1, 1, 16000);
      const buf = await ctx.decodeAudioData(bytes);
      entry.decoded = buf.length;
    } catch (e) { entry.decoded = 0; entry.decodeError = String(e); }
    audios.push(entry);
  }
  return JSON.stringify({images, audios, math, title: document.title});
})()
"""

# Runs after the page settled, at each viewport width: does the page scroll sideways, and which
# elements stick out past the viewport (for the error message)?
OVERFLOW_CHECK = r"""
(() => {
  const root = document.documentElement, width = root.clientWidth;
  const clipped = el => {  // inside a box that scrolls or clips sideways by itself?
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement)
      if (getComputedStyle(a).overflowX !== 'visible') return true;
    return false;
  };
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.right > width + 1 && out.length < 5 && !clipped(el))
      out.push(`${el.tagName.toLowerCase()}.${[...el.classList].join('.')} ` +
               `right=${Math.round(box.right)}`);
  }
  return JSON.stringify({scrollWidth: root.scrollWidth, clientWidth: width, sticking_out: out});
})()
"""

# Viewport widths at which no page may scroll horizontally: a desktop and a phone.
WIDTHS = {"desktop": 1280, "phone": 400}
# A figure may be shown smaller than it was drawn, but not so small that its labels (10 pt at the
# inline backend's 100 dpi) become unreadable: at least this share of its natural width at 1280 px.
MIN_FIGURE_SCALE = 0.7


def _is_local(url: str, base: str) -> bool:
    return url.startswith(base) or url.startswith("data:") or url.startswith("blob:") \
        or url.startswith("about:")


@skip_book
@pytest.mark.book
@pytest.mark.timeout(3000)
@pytest.mark.parametrize("page", PAGES, ids=lambda p: Path(p).name)
def test_built_page_works_in_chromium(page, site, browser):
    """Images load, audio players decode, equations are typeset, nothing is requested from off
    the machine (such requests are blocked, and fail the test), the page does not scroll sideways,
    figures stay legible, and the page logs no errors."""
    url = urllib.parse.urljoin(site, f"{page}.html")
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget",
                           {"targetId": target, "flatten": True})["sessionId"]
    errors, blocked = [], []

    def on_event(msg):
        if msg.get("sessionId") != session:
            return
        method, params = msg["method"], msg.get("params", {})
        if method == "Fetch.requestPaused":
            req_url = params["request"]["url"]
            if _is_local(req_url, site):
                browser.post("Fetch.continueRequest", {"requestId": params["requestId"]}, session)
            else:
                blocked.append(req_url)
                browser.post("Fetch.failRequest", {"requestId": params["requestId"],
                                                   "errorReason": "BlockedByClient"}, session)
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            errors.append(f"uncaught exception: {text}")
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            errors.append(f"console.{params['type']}: {args}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            # The browser asks for /favicon.ico by itself when a page names no icon.
            if not (entry.get("url") in blocked or entry.get("url", "").endswith("/favicon.ico")):
                errors.append(f"log ({entry.get('source')}): {entry['text']} {entry.get('url', '')}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            if params.get("blockedReason") is None and params.get("errorText") != \
                    "net::ERR_BLOCKED_BY_CLIENT":
                errors.append(f"failed to load: {params.get('errorText')}")

    browser.handlers.append(on_event)
    try:
        for domain in ("Runtime", "Log", "Network", "Page"):
            browser.call(f"{domain}.enable", session=session)
        browser.call("Fetch.enable", {"patterns": [{"urlPattern": "*"}]}, session=session)
        metrics = lambda width: {  # noqa: E731
            "width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}
        browser.call("Emulation.setDeviceMetricsOverride", metrics(WIDTHS["desktop"]), session)
        browser.call("Page.navigate", {"url": url}, session=session)
        browser.wait_for("Page.loadEventFired", session, timeout=120)
        result = browser.call("Runtime.evaluate", {"expression": PAGE_CHECK, "awaitPromise": True,
                                                   "returnByValue": True}, session, timeout=300)
        assert "exceptionDetails" not in result, f"{url}: page check failed: {result}"
        report = json.loads(result["result"]["value"])
        overflow = {}
        for label, width in WIDTHS.items():
            browser.call("Emulation.setDeviceMetricsOverride", metrics(width), session)
            time.sleep(0.5)  # let the layout settle at the new width
            out = browser.call("Runtime.evaluate", {"expression": OVERFLOW_CHECK,
                                                    "returnByValue": True}, session)
            overflow[label] = json.loads(out["result"]["value"])
        time.sleep(0.5)  # let late console messages arrive
        browser.call("Runtime.evaluate", {"expression": "1"}, session)
    finally:
        browser.handlers.remove(on_event)
        browser.call("Target.closeTarget", {"targetId": target})

    assert report["title"] and "404" not in report["title"], f"{url}: page missing"
    bad_images = [i for i in report["images"] if not i["width"] > 0]
    assert not bad_images, f"{page}: images that did not load: {bad_images}"
    bad_audio = [a for a in report["audios"]
                 if not (a["mime"].startswith("audio/") and a["canPlay"] in ("maybe", "probably")
                         and a["meta"] == "ok" and isinstance(a["duration"], (int, float))
                         and 0 < a["duration"] < 3600 and a["decoded"] > 0)]
    assert not bad_audio, f"{page}: audio players without a playable source: {bad_audio}"
    assert not blocked, f"{page}: requests off the machine (the book must work offline): {blocked}"
    math = report["math"]
    assert not math["untypeset"] and not math["rawTex"], (
        f"{page}: equations left as raw TeX (MathJax: {math['mathjax']}): "
        f"{math['untypeset'][:3] or math['rawTex'][:3]}")
    if math["elements"]:
        assert math["mathjax"] == "ok" and math["typeset"] >= math["elements"], (
            f"{page}: {math['elements']} equations, {math['typeset']} typeset ({math['mathjax']})")
    sideways = {k: v for k, v in overflow.items() if v["scrollWidth"] > v["clientWidth"]}
    assert not sideways, f"{page}: the page scrolls horizontally: {sideways}"
    squeezed = [(i["src"][-40:], round(i["shown"] / i["width"], 2)) for i in report["images"]
                if i["width"] >= 300 and i["shown"] < MIN_FIGURE_SCALE * i["width"]]
    assert not squeezed, (f"{page}: figures shown at less than {MIN_FIGURE_SCALE:.0%} of their "
                          f"drawn width (labels unreadable; narrow them or tag the cell "
                          f"full-width): {squeezed}")
    assert not errors, f"{page}: the page logged errors:\n" + "\n".join(errors)
    if Path(page).name[:2].isdigit():
        assert report["images"], f"{page}: a chapter without a single figure"


@skip_book
@pytest.mark.book
@pytest.mark.timeout(3000)
def test_built_book_has_every_chapter(html_dir):
    for page in PAGES:
        html = (html_dir / f"{page}.html")
        assert html.exists(), f"{html} was not built"
        text = html.read_text(encoding="utf-8")
        assert "Traceback (most recent call last)" not in text, f"{page}: a traceback in the page"
