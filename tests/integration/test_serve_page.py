"""The service's page in a real headless Chromium: upload a clip, read the score it shows, compare with the API's.

Skips where Chromium, its driver or selenium is missing (Debian: `apt-get install chromium chromium-driver`).
Set ASDLAB_SCREENSHOT_DIR to keep the page's screenshot.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the serve extra is not installed")
pytest.importorskip("selenium", reason="selenium (dev extra) is not installed")
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="no headless Chromium with its driver (apt-get install chromium chromium-driver)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(tiny_detector_dir):
    from asdlab.detector import load_detector
    from asdlab.serve import create_app

    folder, _ = tiny_detector_dir
    port = _free_port()
    instance = uvicorn.Server(uvicorn.Config(create_app(load_detector(folder), source=folder.name), host="127.0.0.1",
                                             port=port, log_level="warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not instance.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=30)


@pytest.fixture()
def browser(tmp_path, monkeypatch):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # never let Selenium Manager look for a driver online
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=900,900",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_page_shows_the_api_score_of_an_uploaded_clip(server, browser, tiny_detector_dir, tmp_path):
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    _, root = tiny_detector_dir
    clip = sorted(root.rglob("test/*anomaly*.wav"))[0]
    api = httpx.post(f"{server}/v1/score", params={"machine": "SynFan", "filename": clip.name},
                     content=clip.read_bytes(), headers={"content-type": "audio/wav"}, timeout=60).json()["results"][0]

    browser.get(server + "/")
    wait = WebDriverWait(browser, 60)
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#machine option")))
    assert "SynFan / section 00" in browser.find_element(By.ID, "machine").text
    browser.find_element(By.ID, "files").send_keys(str(clip))
    browser.find_element(By.ID, "submit").click()
    shown = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, ".clip .score")))
    assert float(shown.get_attribute("data-score")) == api["score"]
    assert float(shown.text) == pytest.approx(api["score"], rel=1e-5)  # shown to 6 significant digits
    card = browser.find_element(By.CSS_SELECTOR, ".clip")
    assert clip.name in card.text and ("anomalous" if api["decision"] else "normal") in card.text
    svg = card.find_element(By.TAG_NAME, "svg")
    assert len(svg.find_elements(By.TAG_NAME, "rect")) == 20  # the training-score histogram
    assert svg.find_elements(By.CSS_SELECTOR, "line.threshold") and svg.find_elements(By.CSS_SELECTOR, "line.clip-score")
    shot = Path(os.environ.get("ASDLAB_SCREENSHOT_DIR", tmp_path)) / "serve_page.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 0
