"""The package's metadata and CI wiring: licence, changelog, package discovery, the wheel smoke test.

The wheel itself is built, installed and exercised by .ci/wheel-smoke (run by .ci/run); these fast checks
catch the mistakes that would only show there, or that a merge could silently undo.
"""

import os
import re
import subprocess
import tomllib

import pytest
import setuptools

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts) -> str:
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


@pytest.fixture(scope="module")
def project() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_licence_is_mit_and_shipped(project):
    assert project["project"]["license"] == "MIT"
    assert project["project"]["license-files"] == ["LICENSE"]
    text = _read("LICENSE")
    assert text.startswith("MIT License") and "jaxnet developers" in text
    # license = "MIT" (PEP 639) needs setuptools >= 77 to build.
    (req,) = [r for r in project["build-system"]["requires"] if r.startswith("setuptools")]
    assert int(re.search(r">=\s*(\d+)", req).group(1)) >= 77


def test_extras_for_release_and_safetensors(project):
    extras = project["project"]["optional-dependencies"]
    assert any(r.startswith("build") for r in extras["release"])
    assert any(r.startswith("safetensors") for r in extras["safetensors"])
    # the tests import safetensors, so the test extra (and through it dev) brings it
    assert any(r.startswith("safetensors") for r in extras["test"])


def test_every_folder_of_python_files_is_a_discovered_package(project):
    find = project["tool"]["setuptools"]["packages"]["find"]
    found = set(setuptools.find_namespace_packages(ROOT, include=find["include"]))
    folders = {
        os.path.relpath(d, ROOT).replace(os.sep, ".")
        for d, _, files in os.walk(os.path.join(ROOT, "jaxnet"))
        if "__pycache__" not in d and any(f.endswith(".py") for f in files)
    }
    assert folders <= found, sorted(folders - found)
    # a regular package, not a namespace one, so that the import finds its __init__
    assert all(os.path.isfile(os.path.join(ROOT, *f.split("."), "__init__.py")) for f in folders)


def test_changelog_keeps_an_unreleased_section():
    text = _read("CHANGELOG.md")
    assert text.startswith("# Changelog")
    assert "keepachangelog.com" in text
    headings = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert headings[0] == "Unreleased" and len(headings) >= 2


def test_ci_runs_the_wheel_smoke_test_after_the_tests():
    lines = [line.strip() for line in _read(".ci", "run").splitlines()]
    assert "make test" in lines and ".ci/wheel-smoke" in lines
    assert lines.index(".ci/wheel-smoke") > lines.index("make test")
    script = os.path.join(ROOT, ".ci", "wheel-smoke")
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", script], check=True)  # parses


def test_contributing_names_the_make_targets():
    text = _read("CONTRIBUTING.md")
    for target in ("make demo", "make test", "make test-fast", "make lint", "make docs", "make bench"):
        assert f"`{target}`" in text, target
