"""The documentation runs: every ```python block of README.md and docs/**/*.md, page by page.

The blocks of one page run in order in one namespace (a later block sees the names of the earlier
ones), in a fresh temporary directory, so files a page writes do not land in the checkout. A page's
blocks are its tutorial: if one raises, the test names the page, the block and its first line.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# The pages every user meets first; each must keep at least one runnable block.
PAGES_WITH_CODE = (
    "README.md",
    "docs/getting-started.md",
    "docs/guides/layers.md",
    "docs/guides/optimizers.md",
    "docs/guides/training.md",
    "docs/guides/autodiff.md",
    "docs/guides/data.md",
    "docs/guides/checkpoints.md",
    "docs/guides/devices.md",
)

# Pages whose blocks take over ~20 s of CPU (measured on the 2-core dev machine): run by make test, not test-fast.
SLOW_PAGES = ("docs/guides/training.md",)

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\s`]*)")


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line number, source)`` of every top-level ```python fence, in page order.

    Fences nested in a longer fence (a page showing Markdown source) are not blocks of the page.
    """
    blocks: list[tuple[int, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, info = opening.group("fence"), opening.group("info").strip("{}").lower()
        start = i + 1
        i += 1
        while i < len(lines):
            closing = _FENCE.match(lines[i])
            if (
                closing
                and closing.group("fence")[0] == fence[0]
                and len(closing.group("fence")) >= len(fence)
                and not closing.group("info")
            ):
                break
            i += 1
        if info in ("python", "py"):
            blocks.append((start + 1, "\n".join(lines[start:i])))
        i += 1
    return blocks


def doc_pages() -> list[str]:
    """README.md and every Markdown page under docs/ (not the build output), relative to the root."""
    pages = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
    return [str(p.relative_to(ROOT)) for p in pages if "_build" not in p.parts and p.exists()]


def _pages_with_blocks() -> list[str]:
    return [page for page in doc_pages() if python_blocks((ROOT / page).read_text())]


def test_extractor_reads_fences_in_order_and_skips_nested_ones():
    text = "\n".join(
        [
            "```python",
            "a = 1",
            "```",
            "````markdown",
            "```python",
            "not_a_block = 1",
            "```",
            "````",
            "```console",
            "$ make test",
            "```",
            "```python",
            "b = a + 1",
            "```",
        ]
    )
    assert python_blocks(text) == [(2, "a = 1"), (13, "b = a + 1")]


def test_the_main_pages_have_runnable_blocks():
    missing = [page for page in PAGES_WITH_CODE if page not in _pages_with_blocks()]
    assert not missing, f"pages without a ```python block (or missing): {missing}"


@pytest.mark.parametrize(
    "page", [pytest.param(p, marks=pytest.mark.slow) if p in SLOW_PAGES else p for p in _pages_with_blocks()]
)
def test_page_code_runs(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": f"docs:{page}"}
    previous_x64 = jax.config.jax_enable_x64  # a page may switch to float64 for its gradient checks
    try:
        for line, source in python_blocks((ROOT / page).read_text()):
            code = compile(source, f"{page}:{line}", "exec")
            try:
                exec(code, namespace)
            except Exception as error:
                first = source.strip().splitlines()[0] if source.strip() else ""
                raise AssertionError(f"{page}, block at line {line} ({first!r}) raised {error!r}") from error
    finally:
        jax.config.update("jax_enable_x64", previous_x64)


def _api_extension():
    spec = importlib.util.spec_from_file_location("jaxnet_api", DOCS / "_ext" / "jaxnet_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_public_name_has_a_docstring():
    api = _api_extension()
    assert api.missing_docstrings() == []


def test_docstring_check_sees_a_missing_docstring():
    api = _api_extension()

    def undocumented():
        pass

    class Undocumented:
        pass

    def documented():
        """Present."""

    assert not api.own_docstring(undocumented)
    assert not api.own_docstring(Undocumented)
    assert api.own_docstring(documented) == "Present."
    # namedtuple's generated "Name(a, b)" is not a docstring.
    from typing import NamedTuple

    class Pair(NamedTuple):
        a: int
        b: int

    assert not api.own_docstring(Pair)


def test_api_reference_covers_every_public_name():
    api = _api_extension()
    modules = api.api_modules()
    assert set(api.ROOTS) <= set(modules)
    canonical = api.canonical_names(modules)
    for modname in api.ROOTS:
        module = importlib.import_module(modname)
        for name in module.__all__:
            obj = getattr(module, name)
            if api.is_documentable(obj):
                assert id(obj) in canonical, f"{modname}.{name} has no page in the API reference"
