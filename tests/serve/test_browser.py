"""End to end: the page at ``GET /`` streams the bundled clip through ``tiny_vad`` in headless
Chromium, and what it received equals the offline forward of what it sent."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from tests.serve.conftest import ServerProcess

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs /usr/bin/chromium and /usr/bin/chromedriver (Debian packages chromium and "
           "chromium-driver)")


def _chrome(profile: Path) -> WebDriver:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=1100,900"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=opts)


def test_page_streams_clip_through_tiny_vad(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    pytest.importorskip("selenium", reason="needs the selenium package (pip install selenium)")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    monkeypatch.setenv("SE_OFFLINE", "true")  # never let selenium-manager fetch a driver
    server = ServerProcess("memory")
    driver = None
    try:
        server.start()
        driver = _chrome(tmp_path / "profile")
        driver.get(server.url + "/")
        WebDriverWait(driver, 10).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#model option[value=tiny_vad]"))
        Select(driver.find_element(By.ID, "model")).select_by_value("tiny_vad")
        driver.find_element(By.XPATH, "//button[text()='Stream bundled clip']").click()
        WebDriverWait(driver, 40, poll_frequency=0.2).until(
            lambda d: d.execute_script("return window.swState.status") in ("done", "error"))
        time.sleep(0.1)  # one more animation frame for the screenshot
        shot = tmp_path / "serve_page.png"
        driver.save_screenshot(str(shot))
        print(f"\nscreenshot: {shot}")
        st = driver.execute_script("return window.swState")
    finally:
        if driver is not None:
            driver.quit()
        server.stop()

    assert st["status"] == "done", st["errors"]
    assert st["errors"] == []
    assert st["session"]
    assert st["outputsReceived"] == st["chunksSent"] + 1  # every chunk's output, then the tail
    n = st["inputSamples"]
    assert st["chunksSent"] == -(-n // 320)
    # tiny_vad: stride 1/32, no lookahead; its causal strided conv emits the frame at sample 32 k
    # as soon as that sample exists, so T samples give ceil(T / 32) frames (T // 32 when 32 | T)
    assert st["framesReceived"] == -(-n // 32)
    assert len(st["outputs"]) == st["framesReceived"]
    assert st["maxRttMs"] > 0

    from streamwise.assets import speech
    from streamwise.models.tiny_vad import tiny_vad

    audio, rate = speech()
    assert rate == 16000 and n == audio.shape[-1]  # the page streamed the whole clip
    with torch.no_grad():
        ref = tiny_vad()(audio[None, :, :n])[0, 0].numpy()
    np.testing.assert_allclose(np.asarray(st["outputs"], dtype=np.float32), ref, atol=1e-4)


def test_page_transcribes_the_words_clip_live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    """The recogniser in the page: committed words appear while the clip streams, a tentative
    tail comes from ``peek``, and the final transcript equals the offline decode of the clip."""
    pytest.importorskip("selenium", reason="needs the selenium package (pip install selenium)")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    monkeypatch.setenv("SE_OFFLINE", "true")
    server = ServerProcess("memory")
    driver = None
    seen_mid_stream: set[str] = set()
    try:
        server.start()
        driver = _chrome(tmp_path / "profile")
        driver.get(server.url + "/")
        WebDriverWait(driver, 10).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#model option[value=asr]"))
        Select(driver.find_element(By.ID, "model")).select_by_value("asr")
        driver.find_element(By.XPATH, "//button[text()='Stream bundled clip']").click()

        def finished(d: WebDriver) -> bool:
            st = d.execute_script("return window.swState")
            if st["status"] == "streaming":
                seen_mid_stream.add(st["transcript"])
            return st["status"] in ("done", "error")

        WebDriverWait(driver, 60, poll_frequency=0.1).until(finished)
        time.sleep(0.1)
        shot = tmp_path / "serve_asr_page.png"
        driver.save_screenshot(str(shot))
        print(f"\nscreenshot: {shot}")
        st = driver.execute_script("return window.swState")
        shown = driver.find_element(By.ID, "committed").text
    finally:
        if driver is not None:
            driver.quit()
        server.stop()

    from streamwise.assets import words_clip
    from streamwise.speech.recognizer import load_recognizer, transcribe_offline

    assert st["status"] == "done", st["errors"]
    audio, rate, text = words_clip()
    assert rate == 16000 and st["inputSamples"] == audio.numel()
    want = " ".join(w.text for w in transcribe_offline(load_recognizer(chunk=4), audio))
    assert st["transcript"] == want and shown == want
    print(f"transcript: {want!r} (spoken: {text!r})")
    assert len(seen_mid_stream - {""}) >= 2  # words appeared while the clip was streaming
    assert st["peeks"] > 0 and st["tentative"] == ""  # tails were shown; none is left at the end
