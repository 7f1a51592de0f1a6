"""``jaxnet tour``: run every chapter experiment quickly and gather them on one self-contained HTML page.

Each experiment of :mod:`jaxnet.chapter` writes its figures and returns its numbers and the
chapter's claims it checked (:func:`jaxnet.chapter._common.claim`). The page shows, per
experiment and in chapter order, the section, the figures (inlined as base64 PNG, so the
file stands alone), the numbers and whether each claim held; a summary table of every claim
comes first. An experiment that raises is shown with its error instead of failing the tour.
"""

from __future__ import annotations

import base64
import html
import importlib
import os
import time
import traceback
from collections.abc import Callable, Sequence

from jaxnet.chapter import EXPERIMENTS
from jaxnet.chapter._common import fmt


def run_experiments(
    out: str, names: Sequence[str] | None = None, *, quick: bool = True, log: Callable[[str], None] | None = print
) -> list[dict]:
    """Run the named experiments (default: all, in chapter order), figures under ``out/<name>``.

    Returns:
      One result per experiment (see :func:`jaxnet.chapter._common.new_result`) with ``seconds``
      added, and ``error`` (a traceback string) where it raised.

    Raises:
      ValueError: for an unknown experiment name, listing the known ones.
    """
    names = list(EXPERIMENTS) if names is None else list(names)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"jaxnet tour: unknown experiment(s) {unknown}; known: {list(EXPERIMENTS)}")
    results = []
    for name in names:
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(f"jaxnet.chapter.{name}")
            result = module.run(quick=quick, out=os.path.join(out, name))
        except Exception:  # one broken experiment must not hide the others
            section, title = EXPERIMENTS[name]
            result = {"name": name, "section": section, "title": title, "figures": [], "numbers": {}, "claims": []}
            result["error"] = traceback.format_exc()
        result["seconds"] = time.perf_counter() - t0
        if log is not None:
            held = sum(c["held"] for c in result["claims"])
            state = "ERROR" if "error" in result else f"{held}/{len(result['claims'])} claims held"
            log(f"[tour] {name:<22} {result['seconds']:6.1f} s  {state}")
        results.append(result)
    return results


# Counts the images that decoded and any error, into attributes a headless browser's DOM dump shows.
_CHECK = """
window.addEventListener("error", function (e) {
  var what = e.message || ("failed to load " + ((e.target && (e.target.alt || e.target.src)) || "a resource"));
  document.body.dataset.errors = (document.body.dataset.errors || "") + what.slice(0, 200) + ";";
}, true);
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  document.body.dataset.figures = imgs.length;
  document.body.dataset.rendered = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
});
"""

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
td, th { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
.held { color: #176f2c; font-weight: bold; } .failed { color: #b3261e; font-weight: bold; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; } pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
.section { color: #666; font-weight: normal; font-size: 0.8em; }
"""


def _img(path: str) -> str:
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(os.path.basename(path))}">'


def _verdict(held: bool) -> str:
    return '<span class="held">held</span>' if held else '<span class="failed">did not hold</span>'


def build_page(results: Sequence[dict], *, title: str = "The chapter, shown", note: str = "") -> str:
    """The tour page as one HTML string: summary of claims, then each experiment with figures inlined."""
    e = html.escape
    claims = [(r, c) for r in results for c in r["claims"]]
    held = sum(c["held"] for _, c in claims)
    total_s = sum(r.get("seconds", 0.0) for r in results)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_CSS}</style><script>{_CHECK}</script></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p>{len(results)} experiments of chapter 4, {held} of {len(claims)} claims held, "
        f"{total_s:.0f} s in all. {e(note)}</p>",
        "<h2>Claims</h2><table><tr><th>§</th><th>claim</th><th>measured</th><th></th></tr>",
    ]
    for r, c in claims:
        parts.append(
            f'<tr><td>{e(r["section"])}</td><td><a href="#{e(r["name"])}">{e(c["claim"])}</a></td>'
            f"<td>{e(c['measured'])}</td><td>{_verdict(c['held'])}</td></tr>"
        )
    parts.append("</table>")
    for r in results:
        parts.append(
            f'<h2 id="{e(r["name"])}">{e(r["title"])} <span class="section">§{e(r["section"])} · '
            f"{e(r['name'])} · {r.get('seconds', 0.0):.1f} s</span></h2>"
        )
        if "error" in r:
            parts.append(f'<p class="failed">This experiment raised:</p><pre>{e(r["error"])}</pre>')
        for f in r["figures"]:
            parts.append(f"<figure>{_img(f['path'])}<figcaption>{e(f['caption'])}</figcaption></figure>")
        if r["claims"]:
            parts.append("<table><tr><th>claim</th><th>measured</th><th></th></tr>")
            for c in r["claims"]:
                parts.append(
                    f"<tr><td>{e(c['claim'])}</td><td>{e(c['measured'])}</td><td>{_verdict(c['held'])}</td></tr>"
                )
            parts.append("</table>")
        if r["numbers"]:
            parts.append("<table>")
            for k, v in r["numbers"].items():
                text = fmt(v)
                cell = f"<pre>{e(text.strip())}</pre>" if "\n" in text else e(text)
                parts.append(f"<tr><th>{e(k)}</th><td>{cell}</td></tr>")
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def tour(
    out: str = os.path.join("out", "tour"),
    names: Sequence[str] | None = None,
    *,
    quick: bool = True,
    open_page: bool = False,
    log: Callable[[str], None] | None = print,
) -> tuple[str, list[dict]]:
    """Run the experiments and write ``out/index.html``; returns ``(page path, results)``.

    Args:
      out: output directory (figures under ``out/<experiment>``, the page at ``out/index.html``).
      names: experiments to run (default: all), see :data:`jaxnet.chapter.EXPERIMENTS`.
      quick: the quick settings (seconds per experiment) rather than the full ones.
      open_page: open the page in the default web browser afterwards.
      log: where progress lines go (``None`` for silence).
    """
    results = run_experiments(out, names, quick=quick, log=log)
    path = os.path.join(out, "index.html")
    mode = "Quick settings (python examples/NAME.py --full for the full ones)." if quick else "Full settings."
    with open(path, "w", encoding="utf-8") as f:
        f.write(build_page(results, note=mode))
    if log is not None:
        log(f"[tour] wrote {path}")
    if open_page:
        import webbrowser

        webbrowser.open("file://" + os.path.abspath(path))
    return path, results


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # needed as root (CI containers); the page is our own file
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def find_chromium() -> str | None:
    """The path of a Chromium/Chrome executable (``chromium``, ``chromium-browser``, ``google-chrome``), or None."""
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


def _chromium(page: str, extra: Sequence[str], *, timeout: float) -> str:
    import subprocess
    import tempfile

    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("no Chromium found; Debian/Ubuntu: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, "file://" + os.path.abspath(page)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited with {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def check_in_browser(page: str, *, timeout: float = 120.0) -> dict:
    """Load ``page`` in headless Chromium and report ``{"figures", "rendered", "errors", "title"}``.

    ``rendered`` counts the images that decoded (``naturalWidth > 0``); ``errors`` lists the
    script and resource errors the page saw.

    Raises:
      FileNotFoundError: when no Chromium is installed.
      RuntimeError: when Chromium fails, or the page never finished loading.
    """
    import re

    dom = _chromium(page, ["--virtual-time-budget=10000", "--dump-dom"], timeout=timeout)
    body = re.search(r"<body([^>]*)>", dom)
    title = re.search(r"<title>(.*?)</title>", dom, re.S)
    attrs = dict(re.findall(r'data-(\w+)="([^"]*)"', body.group(1))) if body else {}
    if "figures" not in attrs:
        raise RuntimeError(f"check_in_browser: the page did not finish loading (body attributes {attrs})")
    return {
        "figures": int(attrs["figures"]),
        "rendered": int(attrs["rendered"]),
        "errors": [m for m in html.unescape(attrs.get("errors", "")).split(";") if m],
        "title": html.unescape(title.group(1)) if title else None,
    }


def screenshot(page: str, png: str, *, width: int = 1200, height: int = 1800, timeout: float = 120.0) -> str:
    """Write a ``width`` x ``height`` PNG screenshot of ``page`` taken by headless Chromium; returns ``png``."""
    _chromium(
        page,
        [f"--window-size={width},{height}", "--virtual-time-budget=10000", f"--screenshot={os.path.abspath(png)}"],
        timeout=timeout,
    )
    if not os.path.exists(png):
        raise RuntimeError(f"screenshot: chromium wrote no file at {png}")
    return png
