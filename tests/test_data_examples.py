"""The data figures' scripts run and write small PNG files (the ones committed under docs/figures/)."""

import pathlib

import pytest
from _examples import load_example


@pytest.mark.parametrize(
    "script,expected",
    [
        ("figures_normalization", {"normalization_4_11.png", "normalization_4_12.png"}),
        pytest.param("augmentation_gallery", {"augmentation_gallery.png"}, marks=pytest.mark.slow),
    ],
)
def test_figure_scripts_write_small_pngs(tmp_path, script, expected):
    result = load_example(script).main(str(tmp_path))
    paths = result if isinstance(result, list) else [result]
    assert {pathlib.Path(p).name for p in paths} == expected
    for p in paths:
        data = pathlib.Path(p).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert 5_000 < len(data) < 200_000
