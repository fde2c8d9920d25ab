"""A Sphinx extension for the dcu book's HTML: drop duplicated inline scripts, add the book's CSS.

Under Sphinx 7.4, sphinx-thebe and sphinx-togglebutton register their inline configuration
scripts twice (once with ``filename=None``, once with ``filename=''``), and the second
``const THEBE_JS_URL = ...`` is a SyntaxError in every page (the browser test in
tests/test_book.py sees it). This keeps the first copy of every script.
"""

from pathlib import Path


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        key = (getattr(script, "filename", script) or None,
               tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


STATIC = Path(__file__).resolve().parent / "static"


def _add_static(app):
    app.config.html_static_path.append(str(STATIC))


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=1000)
    # dcu_book.css: wide tables scroll in their own box, so no page scrolls sideways on a phone
    app.connect("builder-inited", _add_static)
    app.add_css_file("dcu_book.css")
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
