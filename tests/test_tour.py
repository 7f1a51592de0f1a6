"""``jaxnet tour``: the page builder, the CLI, and the page opened in a real headless Chromium."""

import base64
import os
import re

import pytest

pytest.importorskip("matplotlib")

from jaxnet import cli, tour
from jaxnet.chapter import EXPERIMENTS
from jaxnet.chapter._common import claim, new_result, pyplot, save

NO_CHROMIUM = "no Chromium installed (.ci/run installs Debian's chromium)"


def _fake_results(tmp_path):
    """Two results with real PNG figures and one held and one failed claim, without training anything."""
    plt = pyplot()
    results = []
    for name, held in (("activations", True), ("xor", False)):
        r = new_result(name, EXPERIMENTS[name][0], EXPERIMENTS[name][1])
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [0, 1])
        save(r, fig, str(tmp_path / name), f"{name}.png", f"caption of {name} <&>")
        r["numbers"]["accuracy"] = [0.5, 1.0]
        r["numbers"]["table"] = "\nline 1\nline 2"
        r["claims"].append(claim(f"claim of {name}", held, "measured 1.0"))
        r["seconds"] = 1.5
        results.append(r)
    return results


def test_page_inlines_every_figure_and_lists_every_claim(tmp_path):
    results = _fake_results(tmp_path)
    page = tour.build_page(results)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 2
    for data, r in zip(images, results, strict=True):
        with open(r["figures"][0]["path"], "rb") as f:
            assert base64.b64decode(data) == f.read()
    assert 'src="http' not in page and "src='http" not in page  # nothing to fetch
    assert "caption of xor &lt;&amp;&gt;" in page  # escaped
    assert page.count('class="held">held') == 2 and page.count('class="failed">did not hold') == 2
    assert "1 of 2 claims held" in page
    assert "§4.1.2" in page and "§4.1.3" in page
    assert "<pre>line 1\nline 2</pre>" in page


def test_an_experiment_that_raises_is_shown_not_fatal(tmp_path, monkeypatch):
    from jaxnet.chapter import activations

    def boom(quick=True, out=None):
        raise RuntimeError("synthetic failure")

    monkeypatch.setattr(activations, "run", boom)
    results = tour.run_experiments(str(tmp_path), ["activations"], log=None)
    assert "synthetic failure" in results[0]["error"]
    assert "This experiment raised" in tour.build_page(results)
    with pytest.raises(ValueError, match="unknown experiment\\(s\\) \\['nope'\\]"):
        tour.run_experiments(str(tmp_path), ["nope"])


def test_cli_tour_writes_the_page(tmp_path, capsys):
    out = tmp_path / "tour"
    assert cli.main(["tour", "--out", str(out), "--only", "activations"]) == 0
    page = (out / "index.html").read_text()
    assert "Activation functions and their derivatives" in page and "data:image/png;base64," in page
    assert "[tour] activations" in capsys.readouterr().out
    assert cli.main(["tour", "--out", str(out), "--only", "nope"]) == 2


chromium = pytest.mark.skipif(tour.find_chromium() is None, reason=NO_CHROMIUM)


@chromium
def test_page_loads_in_headless_chromium_with_every_figure_rendered(tmp_path):
    results = _fake_results(tmp_path)
    page = tmp_path / "index.html"
    page.write_text(tour.build_page(results))
    seen = tour.check_in_browser(str(page))
    assert seen == {"figures": 2, "rendered": 2, "errors": [], "title": "The chapter, shown"}
    shot = tour.screenshot(str(page), str(tmp_path / "shot.png"), width=800, height=600)
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@chromium
def test_the_browser_check_sees_a_broken_figure_and_a_script_error(tmp_path):
    page = tmp_path / "bad.html"
    broken = '<img src="data:image/png;base64,AAAA" alt="broken"><script>no_such_function()</script></body>'
    page.write_text(tour.build_page(_fake_results(tmp_path)).replace("</body>", broken))
    seen = tour.check_in_browser(str(page))
    assert seen["figures"] == 3 and seen["rendered"] == 2
    assert any("no_such_function" in e for e in seen["errors"]) and any("broken" in e for e in seen["errors"])


@pytest.mark.slow
@chromium
def test_the_whole_tour_in_headless_chromium(tmp_path):
    """Every experiment in quick mode, the page in Chromium, and the screenshot the docs show."""
    path, results = tour.tour(str(tmp_path), log=None)
    assert [r["name"] for r in results] == list(EXPERIMENTS)
    assert not [r["name"] for r in results if "error" in r]
    seen = tour.check_in_browser(path)
    assert seen["errors"] == []
    assert seen["figures"] == sum(len(r["figures"]) for r in results) >= len(EXPERIMENTS)
    assert seen["rendered"] == seen["figures"]
    shot = tour.screenshot(path, str(tmp_path / "tour.png"))
    assert os.path.getsize(shot) > 10_000


def test_every_experiment_has_its_example_script(tmp_path, monkeypatch, capsys):
    import pathlib
    import runpy
    import sys

    examples = pathlib.Path(__file__).resolve().parent.parent / "examples"
    for name in EXPERIMENTS:
        text = (examples / f"{name}.py").read_text()
        assert f"jaxnet.chapter.{name}" in text and "--full" in text
    monkeypatch.setattr(sys, "argv", ["activations.py", "--out", str(tmp_path)])
    runpy.run_path(str(examples / "activations.py"), run_name="__main__")
    printed = capsys.readouterr().out
    assert "[held] every handwritten derivative equals jax.grad" in printed
    assert (tmp_path / "activations.png").stat().st_size > 5_000
