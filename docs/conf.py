"""Sphinx configuration: Markdown pages (MyST), the API reference from the docstrings, built offline."""

import builtins
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "_ext"))

import jaxnet  # noqa: E402  (the extension path must come first)

project = "jaxnet"
author = "the jaxnet authors"
copyright = "the jaxnet authors, MIT licence"
release = jaxnet.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "jaxnet_api",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []


# Markdown: `#section` links (to depth 3), ::: fences, $math$ written as in the chapter.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

# Google-style docstrings; attributes as fields of the class so NamedTuple fields are not described twice.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
napoleon_use_rtype = False
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
autosummary_generate = False

# Every reference to a jaxnet name must resolve; names of Python, JAX and NumPy have no inventory
# offline (intersphinx would need the network), so they are shown as plain code.
nitpicky = True
_EXTERNAL = r"(jax|jaxlib|numpy|np|jnp|typing|collections|optax|torch|flax|equinox|haiku|pathlib|os|enum|types)"
_TYPING = "Any Callable Mapping Sequence Iterable Iterator NamedTuple Optional Union Literal Protocol TypeVar Self"
_ALIASES = "Array PRNGKey Key Params State OptState Shape Schedule PyTree ArrayLike DTypeLike Rule"
nitpick_ignore_regex = [
    ("py:.*", rf"{_EXTERNAL}(\..*)?"),
    ("py:.*", "|".join(sorted(set(dir(builtins)) | set(_TYPING.split()) | set(_ALIASES.split())))),
]

html_theme = "furo"
html_title = f"jaxnet {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
html_copy_source = False


def _drop_empty_guides_glob(app: object, docname: str, source: list[str]) -> None:
    """The guides' toctree ends with ``guides/*`` for pages added later; Sphinx warns (an error under
    ``-W``) when a glob matches nothing new, so the line is left out while every guide is listed."""
    if docname != "index":
        return
    listed = set(re.findall(r"^guides/([\w-]+)$", source[0], flags=re.MULTILINE))
    present = {p.stem for p in (HERE / "guides").glob("*.md")}
    if present <= listed:
        source[0] = re.sub(r"^guides/\*\n", "", source[0], flags=re.MULTILINE)


def setup(app: Any) -> None:
    app.connect("source-read", _drop_empty_guides_glob)
