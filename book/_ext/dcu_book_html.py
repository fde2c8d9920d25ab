"""A Sphinx extension for the dcu book's HTML: drop duplicated inline scripts.

Under Sphinx 7.4, sphinx-thebe and sphinx-togglebutton register their inline configuration
scripts twice (once with ``filename=None``, once with ``filename=''``), and the second
``const THEBE_JS_URL = ...`` is a SyntaxError in every page (the browser test in
tests/test_book.py sees it). This keeps the first copy of every script.
"""


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


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=1000)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
