"""Headless screenshots of a report page (skipped where no Chromium/Chrome is installed)."""

from __future__ import annotations

import importlib

import pytest

from asdlab.errors import ConfigError, DataError
from asdlab.report.screenshot import find_browser, screenshot

# `asdlab.report.screenshot` the attribute is the function; the module is reached by its full name.
screenshot_module = importlib.import_module("asdlab.report.screenshot")


def test_no_browser_is_a_clear_error(tmp_path, monkeypatch):
    page = tmp_path / "index.html"
    page.write_text("<p>hi</p>")
    monkeypatch.setattr(screenshot_module.shutil, "which", lambda name: None)
    assert find_browser() is None
    with pytest.raises(ConfigError, match="no headless browser on PATH .looked for chromium"):
        screenshot(page, tmp_path / "shot.png")
    with pytest.raises(DataError, match="missing.html: page to screenshot not found"):
        screenshot(tmp_path / "missing.html", tmp_path / "shot.png")


@pytest.mark.skipif(find_browser() is None, reason="no chromium/google-chrome on PATH")
def test_screenshot_renders_the_page(tmp_path):
    Image = pytest.importorskip("PIL.Image")

    page = tmp_path / "index.html"
    page.write_text('<body style="margin:0;background:#ff0000"><div style="height:50px"></div></body>')
    shot = screenshot(page, tmp_path / "shots" / "page.png", width=320, height=200)
    with Image.open(shot) as image:
        assert image.size == (320, 200)
        assert image.convert("RGB").getpixel((160, 100)) == (255, 0, 0)
