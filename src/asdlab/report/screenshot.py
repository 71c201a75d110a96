"""Screenshot a report page with a headless Chromium/Chrome, to check that every figure shows."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from asdlab._io import atomic_path
from asdlab.errors import ConfigError, DataError

__all__ = ["BROWSERS", "find_browser", "screenshot"]

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    """The first of `BROWSERS` on PATH, or None."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(
    html_path: str | os.PathLike,
    png_path: str | os.PathLike,
    *,
    width: int = 1400,
    height: int = 3000,
    browser: str | None = None,
    timeout_s: float = 120.0,
) -> Path:
    """Render a local HTML file headlessly and save a PNG of its top `width` x `height` pixels.

    Args:
        html_path: the page, opened as a file:// URL (so relative figure links are exercised).
        png_path: where the screenshot goes (written atomically).
        width: window width in pixels.
        height: window height in pixels; content below it is cut off.
        browser: the browser executable; default: the first of `BROWSERS` on PATH.
        timeout_s: give up after this many seconds.

    Returns:
        `png_path`.

    Raises:
        ConfigError: no browser found (install one, e.g. `apt-get install chromium`).
        DataError: the page is missing, or the browser fails or writes no image.
    """
    page = Path(html_path).resolve()
    if not page.is_file():
        raise DataError(f"{page}: page to screenshot not found")
    executable = browser or find_browser()
    if executable is None:
        raise ConfigError(
            f"no headless browser on PATH (looked for {', '.join(BROWSERS)}): install one, e.g. "
            "`apt-get install chromium`, or pass browser="
        )
    png_path = Path(png_path)
    with atomic_path(png_path, suffix=".png") as tmp:
        tmp.unlink()  # the browser's own write must create the file, so an empty leftover cannot pass
        command = [
            executable, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--window-size={int(width)},{int(height)}", f"--screenshot={tmp}", page.as_uri(),
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise DataError(f"{executable} could not screenshot {page}: {error}") from None
        if done.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise DataError(
                f"{executable} exited with {done.returncode} and wrote no screenshot of {page}: " + " | ".join(tail)
            )
    return png_path
