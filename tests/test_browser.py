"""The app in a real browser: Playwright drives Debian's Chromium like a person would."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .app_server import RunningApp

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
PAIR = Path(__file__).resolve().parents[1] / "demo" / "examples" / "cat-and-coffee.jpg"

pytestmark = pytest.mark.browser

DROP = """
([selector, data, name]) => {
    const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
    const target = document.querySelector(selector);
    for (const type of ["dragenter", "dragover", "drop"]) {
        target.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }
}
"""


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        pytest.skip("Chromium is not installed (as root: apt-get install chromium); the browser test needs it")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield browser
        browser.close()


def test_drop_an_image_pick_a_class_and_explain(app: RunningApp, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app.url)
    page.wait_for_selector("#input-image button.upload-container", timeout=30_000)
    assert "untrained" in page.inner_text("#untrained-banner")

    page.evaluate(DROP, ["#input-image button.upload-container", base64.b64encode(PAIR.read_bytes()).decode(), PAIR.name])
    page.wait_for_function("document.querySelector('#sentence').innerText.includes('sure this is')", timeout=60_000)

    page.click("#target input")
    page.keyboard.press("Control+A")
    page.keyboard.type("espresso")
    page.get_by_role("option", name="espresso", exact=True).click()
    page.click("#explain")
    page.wait_for_function("document.querySelector('#sentence').innerText.includes('You asked about espresso')", timeout=60_000)
    page.wait_for_function(  # every panel has painted an image of the upload's size
        "w => ['original', 'heatmap', 'overlay', 'boxes'].every(p => {"
        " const img = document.querySelector(`#panel-${p} img`); return img && img.complete && img.naturalWidth === w; })",
        arg=Image.open(PAIR).width,
        timeout=60_000,
    )

    for panel in ("original", "heatmap", "overlay", "boxes"):
        width = page.eval_on_selector(f"#panel-{panel} img", "img => img.complete ? img.naturalWidth : 0")
        assert width == Image.open(PAIR).width, f"the {panel} panel shows no image of the upload's size"
    assert "%" in page.inner_text("#top5")
    assert page.locator("#archive a, #archive [download]").count() > 0, "no download of everything"

    # The Explore area answers "is it really looking there?" with the masking test.
    page.click("#masking-run")
    page.wait_for_function("document.querySelector('#masking-sentence').innerText.includes('Hiding the highlighted area')", timeout=90_000)
    assert "espresso" in page.inner_text("#masking-sentence")
    page.get_by_role("tab", name="Compare classes").click()
    page.click("#classes-run")
    page.wait_for_function("document.querySelectorAll('#classes-gallery img').length >= 3", timeout=60_000)

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "browser-explain.png"
    page.screenshot(path=str(shot), full_page=True)
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)
    assert pixels.std() > 20, "the screenshot is blank"
    page.close()
