"""The app in a real browser: Playwright drives Debian's Chromium like a person would.

People click, type letter by letter, use the arrow keys and Enter; the tests do
the same at a projector's size (1280x720) and a phone's (390x844), wait on what
the page shows (never on a clock), and leave screenshots in ``test-artifacts/``.
The app runs a small untrained network with the 1000 ImageNet class names, so
the page behaves as with the real model but answers in a fraction of a second.
"""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from demo.files import DISPLAY_SIDE

from .app_server import RunningApp, served
from .light_app import light_service

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
EXAMPLES = Path(__file__).resolve().parents[1] / "demo" / "examples"
PAIR = EXAMPLES / "cat-and-coffee.jpg"
DESKTOP = {"width": 1280, "height": 720}
PHONE = {"width": 390, "height": 844}
TYPING = 60  # ms between keys, as a quick typist
UPLOAD = "#input-image button.upload-container"

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: True once the sentence has scrolled to the top of the screen (on a phone, after a result).
SENTENCE_AT_TOP = (
    "() => { const r = document.querySelector('#sentence').getBoundingClientRect(); return r.top >= 0 && r.top < 60; }"
)

DROP = """
([selector, data, name, type]) => {
    const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], name, {type: type || "image/jpeg"}));
    const target = document.querySelector(selector);
    for (const type of ["dragenter", "dragover", "drop"]) {
        target.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }
}
"""

PAINTED = """
(before) => {
    const images = ['original', 'heatmap', 'overlay', 'boxes'].map(k => document.querySelector(`#panel-${k} img`));
    return images.every(i => i && i.complete && i.naturalWidth > 0)
        && document.querySelector('#panel-overlay img').src !== before;
}
"""

# WCAG relative luminance and contrast of an element's text against the first opaque background behind it.
CONTRAST = """
(element) => {
    const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
        const c = [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
    };
    let e = element, background = null;
    while (e) {
        const b = rgb(getComputedStyle(e).backgroundColor);
        if (b.length === 3 || (b.length === 4 && b[3] > 0.9)) { background = b.slice(0, 3); break; }
        e = e.parentElement;
    }
    background = background || [255, 255, 255];
    const [l1, l2] = [lum(rgb(getComputedStyle(element).color).slice(0, 3)), lum(background)];
    return (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
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
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def light_app() -> Iterator[RunningApp]:
    """The page with a tiny untrained network that knows the 1000 ImageNet names (fast on 2 cores)."""
    with served(light_service()) as running:
        yield running


def _open(browser, app: RunningApp, viewport: dict[str, int]):
    page = browser.new_page(viewport=viewport, accept_downloads=True)
    page.goto(app.url)
    page.wait_for_selector("#input-image", timeout=30_000)
    page.wait_for_selector("#examples img", timeout=30_000)
    return page


def _explained(browser, app: RunningApp, viewport: dict[str, int], example: int = 0):
    """A page opened at ``viewport`` that has explained one of the examples (clicked, as a person does)."""
    page = _open(browser, app, viewport)
    page.locator("#examples img").nth(example).click()
    _wait_painted(page)
    return page


def _drop(page, path: Path, type: str = "image/jpeg") -> None:
    page.evaluate(DROP, [UPLOAD, base64.b64encode(path.read_bytes()).decode(), path.name, type])


def _overlay_src(page) -> str:
    return page.evaluate("() => { const i = document.querySelector('#panel-overlay img'); return i ? i.src : ''; }")


def _wait_painted(page, before: str = "") -> None:
    page.wait_for_function(PAINTED, arg=before, timeout=60_000)


def _shot(page, name: str, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)
    assert np.asarray(Image.open(path).convert("RGB"), dtype=np.float32).std() > 20, "the screenshot is blank"
    return path


def _options(page) -> list[str]:
    return page.locator("#target [role=option]").all_inner_texts()


def _in_view(page, selector: str) -> bool:
    return page.eval_on_selector(
        selector,
        "e => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight && r.height > 0; }",
    )


def test_first_screen_shows_no_empty_placeholders_and_the_footer(light_app, browser):
    page = _open(browser, light_app, DESKTOP)
    assert not page.locator("#results").is_visible(), "empty panels on the first screen"
    assert page.locator("#examples img").count() >= 4, "the examples have no thumbnails"
    page.get_by_text("Use via API").wait_for(state="visible")
    description = page.get_attribute('meta[property="og:description"]', "content")
    assert description and "Grad-CAM" in description
    _shot(page, "first-screen-1280x720.png")
    page.close()


def test_the_picker_filters_as_you_type_and_keys_pick(light_app, browser):
    page = _explained(browser, light_app, DESKTOP)

    page.click("#target input")
    page.keyboard.type("tiger", delay=TYPING)
    assert page.input_value("#target input") == "tiger", "the old text was not replaced"
    page.wait_for_function("document.querySelectorAll('#target [role=option]').length > 0")
    options = _options(page)
    assert {"tiger", "tiger cat", "tiger shark"} <= set(options)
    assert all("tiger" in o.lower() for o in options)

    for _ in "tiger":
        page.keyboard.press("Backspace")
    page.keyboard.type("cat", delay=TYPING)
    page.wait_for_function(
        "[...document.querySelectorAll('#target [role=option]')].some(o => o.innerText === 'Persian cat')"
    )
    assert {"tiger cat", "Persian cat", "Egyptian cat"} <= set(_options(page))
    _shot(page, "picker-typing.png")

    before = _overlay_src(page)
    offered = _options(page)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#target input').value !== 'cat'")
    picked = page.input_value("#target input")
    assert picked in offered and "cat" in picked.lower()
    page.wait_for_function(
        f"document.querySelector('#sentence').innerText.includes('You asked about {picked}')", timeout=60_000
    )
    _wait_painted(page, before)
    assert page.locator(".error").count() == 0
    page.close()


#: Records, every frame, which photo "Your photo" shows and which one the visible results belong to.
WATCH = """
() => {
  window.__frames = [];
  const look = () => {
    const input = document.querySelector('#input-image img');
    const original = document.querySelector('#panel-original img');
    const results = document.querySelector('#results');
    const visible = results && results.offsetParent !== null && getComputedStyle(results).display !== 'none';
    window.__frames.push({input: input ? input.src : '', original: visible && original ? original.src : ''});
    requestAnimationFrame(look);
  };
  requestAnimationFrame(look);
}
"""


def _expected_class(app: RunningApp, path: Path) -> str:
    service = app.service
    return service.explanation(service.parse(path.read_bytes())).class_name


def test_a_mistyped_class_never_blocks_the_next_photo_nor_leaves_the_old_answer(light_app, browser):
    page = _explained(browser, light_app, DESKTOP)
    page.click("#target input")
    page.keyboard.type("zzzqqq", delay=TYPING)
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    page.wait_for_selector("#target-hint", state="visible", timeout=30_000)
    first = page.inner_text("#target-hint")
    assert first.startswith("No class is called \u201czzzqqq\u201d, so the pictures show the model's top prediction"), (
        first
    )
    assert page.locator(".error, [data-testid=toast-body]").count() == 0, "red error badges or toasts"

    page.evaluate(WATCH)
    before = _overlay_src(page)
    _drop(page, PAIR)  # the presenter drops the next photo without fixing the typo
    _wait_painted(page, before)
    expected = _expected_class(light_app, PAIR)
    page.wait_for_function(f"document.querySelector('#sentence').innerText.includes({expected!r})", timeout=30_000)
    assert page.input_value("#target input") == "zzzqqq", "the typo was replaced: it cannot be corrected"
    assert expected in page.inner_text("#target-hint") and "zzzqqq" in page.inner_text("#target-hint")
    width = page.eval_on_selector("#panel-original img", "i => i.naturalWidth")
    assert width == min(DISPLAY_SIDE, Image.open(PAIR).width), "the panels are not the new photo's"
    frames = page.evaluate("window.__frames")
    old = [
        f
        for f in frames
        if f["original"] and f["input"] and f["original"] == frames[0]["original"] and f["input"] != frames[0]["input"]
    ]
    assert not old, f"for {len(old)} frames the old answer stood beside the new photo"
    _shot(page, "typo-then-photo.png")

    # Correcting it: click, the text is selected, type a real name, pick it with Enter: the hint goes.
    page.click("#target input")
    page.keyboard.type("espresso", delay=TYPING)
    assert page.input_value("#target input") == "espresso"
    page.wait_for_function("document.querySelector('#target [role=option]')?.innerText === 'espresso'")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "document.querySelector('#sentence').innerText.includes('You asked about espresso')", timeout=60_000
    )
    assert not page.locator("#target-hint").is_visible()
    page.close()


def test_a_replaced_photo_is_explained_once(light_app, browser, monkeypatch):
    page = _explained(browser, light_app, DESKTOP)
    shown = []
    original = light_app.service.show
    monkeypatch.setattr(
        light_app.service, "show", lambda asked, *more: shown.append(asked.photo.name) or original(asked, *more)
    )
    before = _overlay_src(page)
    _drop(page, PAIR)  # Gradio announces a replaced photo twice: the second is told from a new request
    _wait_painted(page, before)
    page.wait_for_timeout(1500)  # time for a second answer, were there one
    assert shown == [PAIR.name], shown
    page.close()


def test_a_photo_the_browser_cannot_show_is_previewed_from_the_servers_copy(light_app, browser, tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    heic = tmp_path / "IMG_0042.HEIC"
    Image.open(EXAMPLES / "coffee.png").convert("RGB").save(heic, format="HEIF", quality=85)
    page = _open(browser, light_app, DESKTOP)
    _drop(page, heic, "image/heic")  # as a phone or a Mac hands it over
    _wait_painted(page)
    page.wait_for_function(
        "() => { const i = document.querySelector('#input-image img');"
        " return i && i.complete && i.naturalWidth > 0 && !i.classList.contains('undisplayable'); }",
        timeout=30_000,
    )
    preview = page.eval_on_selector("#input-image img", "i => [i.naturalWidth, i.naturalHeight]")
    assert preview == list(Image.open(EXAMPLES / "coffee.png").size), preview
    _shot(page, "heic-preview.png")
    page.close()


def test_nothing_is_an_empty_box_before_it_is_filled(light_app, browser):
    page = _open(browser, light_app, DESKTOP)
    assert not page.locator("#results").is_visible()
    _drop(page, PAIR)
    _wait_painted(page)
    assert not page.locator("#archive").is_visible(), "an empty download box"
    for tab in page.locator("button[role=tab]").all():
        tab.click()
        panel = page.locator("[role=tabpanel]:visible").first
        for box in panel.locator(".until-filled").all():
            assert not box.is_visible(), f"{tab.inner_text()}: an empty box before anything is asked"
    page.close()


def test_the_result_fits_the_first_screen_at_1280x720(light_app, browser):
    page = _open(browser, light_app, DESKTOP)
    _drop(page, PAIR)
    _wait_painted(page)
    for selector in ("#sentence", "#panel-original", "#panel-heatmap", "#panel-overlay", "#panel-boxes", "#explain"):
        assert _in_view(page, selector), f"{selector} is not in the first screen"
    widths = [
        page.eval_on_selector(f"#panel-{k} img", "i => i.naturalWidth")
        for k in ("original", "heatmap", "overlay", "boxes")
    ]
    # The page shows light copies, at most DISPLAY_SIDE wide; the download keeps the full size.
    assert widths == [min(DISPLAY_SIDE, Image.open(PAIR).width)] * 4
    _shot(page, "result-1280x720.png")
    # One click on "Download everything" writes the full-quality files and the browser downloads their zip.
    with page.expect_download(timeout=60_000) as download:
        page.click("#download")
    assert download.value.suggested_filename == "gradcam-cat-and-coffee.zip"
    assert page.locator("#archive").is_visible(), "the download is written but not shown"
    page.close()


def test_on_a_phone_the_page_scrolls_to_the_result(light_app, browser):
    page = _open(browser, light_app, PHONE)
    _shot(page, "first-screen-390x844.png")
    page.locator("#examples img").nth(2).click()
    _wait_painted(page)
    page.wait_for_function(
        SENTENCE_AT_TOP,
        timeout=10_000,
    )
    legend = page.eval_on_selector("#legend .words", "e => parseFloat(getComputedStyle(e).fontSize)")
    assert legend >= 12, "the colour key is unreadable on a phone"
    _shot(page, "result-390x844.png")
    _shot(page, "result-390x844-whole.png", full_page=True)
    page.close()


def test_examples_and_typed_numbers_follow_the_controls(light_app, browser):
    page = _open(browser, light_app, DESKTOP)
    page.get_by_text("Settings: model").click()
    page.get_by_label("viridis").check()

    page.locator("#examples img").nth(1).click()
    _wait_painted(page)
    assert "yellow" in page.inner_text("#sentence") and "red" not in page.inner_text("#sentence")
    assert "Dark purple: no evidence" in page.inner_text("#legend")

    before = _overlay_src(page)
    field = page.locator("#opacity input[type=number]")
    field.click()
    for _ in range(4):
        page.keyboard.press("Backspace")
    page.keyboard.type("0.9", delay=TYPING)
    page.keyboard.press("Enter")
    _wait_painted(page, before)
    page.close()


def test_the_layer_picker_lists_the_models_layers_and_explains_the_chosen_one(light_app, browser):
    page = _explained(browser, light_app, DESKTOP)
    page.get_by_text("Settings: model").click()
    page.locator("#layer input").click()
    options = [text.replace("✓", "").strip() for text in page.locator("#layer [role=option]").all_inner_texts()]
    assert options == ["features (automatic)", "features.3", "features.2", "features.0"], options  # ✓: selected
    before = _overlay_src(page)
    page.locator("#layer [role=option]", has_text="features.3").click()
    _wait_painted(page, before)
    assert page.locator("#layer input").input_value() == "features.3"
    assert "Can't explain" not in page.inner_text("#sentence")
    _shot(page, "layer-picker.png")
    page.close()


def test_a_picked_method_makes_the_map_and_the_trust_check_and_compare_methods_answer_for_it(light_app, browser):
    page = _explained(browser, light_app, DESKTOP)
    page.get_by_text("Settings: model").click()
    before = _overlay_src(page)
    page.locator("#method").get_by_text("LayerCAM", exact=True).click()
    _wait_painted(page, before)
    assert "Can't explain" not in page.inner_text("#sentence")

    page.get_by_role("tab", name="Can I trust this map?").click()
    page.click("#trust-run")
    page.wait_for_function(
        "document.querySelector('#trust-sentence').innerText.includes('Hiding the highlighted fifth')", timeout=120_000
    )
    said = page.inner_text("#trust-sentence")
    assert "learned weights are scrambled" in said and "ROAD" in said, said
    page.wait_for_selector("#trust-curves img")
    page.wait_for_selector("#trust-scrambled img")
    table = page.inner_text("#trust-figures")
    assert "Deletion AUC" in table and "Insertion AUC" in table and "LayerCAM map" in table, table
    assert re.search(r"\d+ passes through the model", table), table
    page.locator("#trust-figures").scroll_into_view_if_needed()
    _shot(page, "explore-trust.png")

    page.get_by_role("tab", name="Compare methods").click()
    page.click("#methods-run")
    page.wait_for_function("document.querySelectorAll('#methods-gallery img').length >= 6", timeout=120_000)
    captions = page.locator("#methods-gallery .caption-label").all_inner_texts()
    assert [c.split(":")[0] for c in captions] == [
        "Grad-CAM", "Grad-CAM++", "XGrad-CAM", "HiResCAM", "LayerCAM", "Eigen-CAM"
    ], captions
    assert all(re.search(r"deletion \d\.\d\d, insertion \d\.\d\d", c) for c in captions), captions
    for caption in page.locator("#methods-gallery .caption-label").all():
        assert caption.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), f"cut: {caption.inner_text()}"
    # An untrained network's confidence (0.1%) barely moves whatever is hidden: no map is called the best.
    assert "The maps score alike here" in page.inner_text("#methods-sentence")
    assert not any("(most faithful)" in c for c in captions), captions
    page.locator("#methods-gallery").scroll_into_view_if_needed()
    _shot(page, "explore-methods.png")
    page.close()


def test_a_new_photo_or_remove_clears_the_old_results(light_app, browser):
    page = _explained(browser, light_app, DESKTOP)
    page.get_by_role("tab", name="Fine detail").click()
    page.click("#guided-run")
    page.wait_for_selector("#guided-image img", timeout=60_000)

    before = _overlay_src(page)
    page.locator("#examples img").nth(3).click()
    _wait_painted(page, before)
    assert page.locator("#guided-image img").count() == 0, "the Explore tab still shows the old photo"

    page.get_by_role("button", name="Remove Image").click()
    page.wait_for_function("document.querySelector('#sentence').innerText.includes('Add an image')")
    assert not page.locator("#results").is_visible(), "old panels stay after the photo was removed"
    page.close()


def test_accessible_pictures_words_and_contrast(light_app, browser):
    page = _explained(browser, light_app, DESKTOP)
    for key in ("original", "heatmap", "overlay", "boxes"):
        alt = page.get_attribute(f"#panel-{key} img", "alt")
        assert alt and len(alt) > 10, f"the {key} panel has no alt text"
    assert page.get_attribute("#sentence", "aria-live") == "polite"

    texts = {
        "label": "#target [data-testid=block-info], #target .info-text, #panel-original label",
        "button": "#explain",
        "tab": "button[role=tab]",
        "legend": "#legend .words span",
        "sentence": "#sentence p",
    }
    for what, selector in texts.items():
        for element in page.locator(selector).element_handles()[:4]:
            ratio = element.evaluate(CONTRAST)
            assert ratio >= 4.5, f"{what} text has contrast {ratio:.2f}:1"
    page.close()


def test_keyboard_only_from_the_picker_to_the_result(light_app, browser):
    page = _open(browser, light_app, DESKTOP)
    # From the top of the page, Tab reaches an example; Enter explains it.
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('#examples') !== null"):
            break
    else:
        pytest.fail("Tab never reaches the examples")
    page.keyboard.press("Enter")
    _wait_painted(page)
    before = _overlay_src(page)
    page.focus("#target input")
    page.keyboard.type("espres", delay=TYPING)
    page.wait_for_function(
        "[...document.querySelectorAll('#target [role=option]')].map(o => o.innerText).join()"
        " === 'espresso,espresso maker'"
    )
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#target input').value === 'espresso maker'")  # as a person sees it
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "explain" or page.evaluate(
        "document.activeElement.closest('#explain') !== null"
    )
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#sentence').innerText.includes('espresso maker')", timeout=60_000)
    _wait_painted(page, before)
    page.close()


def test_a_file_that_is_not_a_photo_is_answered_in_the_sentence_without_red_badges(light_app, browser, tmp_path):
    page = _explained(browser, light_app, DESKTOP)
    fake = tmp_path / "holiday.jpg"
    fake.write_bytes(b"this is not an image at all")
    _drop(page, fake)
    page.wait_for_function(
        "document.querySelector('#sentence').innerText.includes(\"Can't explain this image\")", timeout=30_000
    )
    assert "not an image we can read" in page.inner_text("#sentence")
    assert page.locator(".error").count() == 0, "red error badges"
    assert not page.locator("#results").is_visible(), "the old photo's panels stay beside the new message"
    _shot(page, "not-a-photo.png")
    page.close()


def test_an_explore_question_without_a_photo_is_answered_in_words(light_app, browser):
    page = _open(browser, light_app, DESKTOP)
    page.click("#masking-run")
    page.wait_for_function(
        "document.querySelector('#masking-sentence').innerText.includes('add an image')", timeout=30_000
    )
    for tab, question in (("Fine detail", "guided"), ("Compare classes", "classes"), ("One-picture report", "report")):
        page.get_by_role("tab", name=tab).click()
        page.click(f"#{question}-run")
        page.wait_for_function(
            f"document.querySelector('#{question}-sentence').innerText.includes('add an image')", timeout=30_000
        )
    assert page.locator(".error").count() == 0, "red error badges"
    page.close()


def test_a_too_big_upload_is_explained_in_our_words(light_app, browser):
    page = _open(browser, light_app, DESKTOP)
    big = bytes(11 * 1024 * 1024)
    page.evaluate(DROP, [UPLOAD, base64.b64encode(big).decode(), "huge.jpg"])
    page.wait_for_selector("#upload-hint:not([hidden])", timeout=10_000)
    words = page.inner_text("#upload-hint")
    assert "11.0 MB" in words and "up to 10 MB" in words
    assert "exceed" not in page.inner_text("body")
    _shot(page, "upload-too-big.png")
    page.close()


def test_explore_pictures_are_shareable(light_app, browser):
    page = _open(browser, light_app, DESKTOP)
    _drop(page, PAIR)
    _wait_painted(page)
    assert (
        page.locator("#panel-overlay button[aria-label*='hare' i], #panel-overlay button[title*='hare' i]").count() == 0
    )

    for question in (
        "#masking-hidden",
        "#masking-kept",
        "#masking-curve",
        "#classes-gallery",
        "#report-image",
        "#report-file",
    ):
        assert not page.locator(question).is_visible(), f"{question} is an empty box before it is asked for"
    page.click("#masking-run")
    bar = page.locator("#masking-curve .progress-level", has_text="Hiding parts of the photo")
    bar.wait_for(state="visible", timeout=30_000)  # a real progress bar with words, not only a timer
    page.wait_for_function(
        "document.querySelector('#masking-sentence').innerText.includes('Hiding the highlighted area')", timeout=90_000
    )
    page.wait_for_selector("#masking-curve img")
    for picture in ("#masking-hidden", "#masking-kept", "#masking-curve"):
        label, frame = (page.locator(f"{picture} {part}").bounding_box() for part in ("label", ".image-container"))
        block = page.locator(picture).bounding_box()
        assert label and frame and block
        assert frame["y"] >= label["y"] + label["height"] - 1, f"{picture}: the picture sits beside its label"
        assert frame["x"] + frame["width"] <= block["x"] + block["width"] + 1, f"{picture}: the picture is cut off"
    page.locator("#masking-curve").scroll_into_view_if_needed()
    _shot(page, "explore-masking.png")

    page.get_by_role("tab", name="Compare classes").click()
    page.click("#classes-run")
    page.wait_for_function("document.querySelectorAll('#classes-gallery img').length >= 3", timeout=60_000)
    captions = page.locator("#classes-gallery .caption-label, #classes-gallery figcaption, #classes-gallery .caption")
    assert captions.count() >= 3 and all(c.is_visible() for c in captions.all()[:3]), "class names are not visible"
    assert all(re.search(r"\d%", c) for c in captions.all_inner_texts()[:3])
    page.locator("#classes-gallery").scroll_into_view_if_needed()
    _shot(page, "explore-classes.png")

    page.get_by_role("tab", name="One-picture report").click()
    page.click("#report-run")
    page.wait_for_selector("#report-image img", timeout=60_000)
    page.locator("#report-file a").first.wait_for(state="visible", timeout=30_000)  # the report's download, shown
    page.locator("#report-image").scroll_into_view_if_needed()
    _shot(page, "explore-report.png")
    page.close()


def test_on_a_phone_every_explore_question_is_in_view_and_answers_fit_the_screen(light_app, browser):
    page = _explained(browser, light_app, PHONE)
    tabs = page.locator("button[role=tab]")
    assert tabs.count() == 8
    for tab in tabs.all():  # none hidden in an overflow menu
        tab.scroll_into_view_if_needed()
        assert tab.is_visible(), f"{tab.inner_text()} is hidden"
    page.get_by_role("tab", name="Compare classes").click()
    page.click("#classes-run")
    page.wait_for_function("document.querySelectorAll('#classes-gallery img').length >= 3", timeout=60_000)
    for item in page.locator("#classes-gallery .gallery-item").all()[:3]:
        box = item.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], "a class is cut off at the edge"
    for caption in page.locator("#classes-gallery .caption-label").all()[:3]:
        assert caption.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), (
            f"the class name is cut: {caption.inner_text()}"
        )
    page.locator("#classes-gallery").scroll_into_view_if_needed()
    _shot(page, "explore-classes-390x844.png")
    page.close()


@pytest.fixture(scope="module")
def real_app() -> Iterator[RunningApp]:
    """The page with EfficientNet-Lite0 and its real (embedded) weights, as a Space would serve it."""
    from demo.service import load_service
    from gradcam import available_offline

    from .app_server import gradio_workdir

    usable, reason = available_offline("efficientnet_lite0")
    if not usable:
        pytest.skip(f"EfficientNet-Lite0's weights are not installed: {reason}")
    with served(load_service(None, ("efficientnet_lite0",), workdir=gradio_workdir())) as running:
        yield running


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x720", "390x844"])
def test_a_real_model_on_a_real_photo_as_the_room_sees_it(real_app, browser, viewport):
    page = _open(browser, real_app, viewport)
    assert page.locator("#untrained-banner").count() == 0, "a trained model, yet the page says untrained"
    _drop(page, PAIR)
    _wait_painted(page)
    page.wait_for_function("document.querySelector('#sentence').innerText.includes('sure this is')")
    before = _overlay_src(page)
    page.click("#target input")
    page.keyboard.type("tabb", delay=TYPING)  # the photo's top guess is espresso: ask for the cat
    page.wait_for_function("document.querySelector('#target [role=option]')?.innerText === 'tabby'")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#sentence').innerText.includes('tabby')", timeout=60_000)
    _wait_painted(page, before)  # the map moved: the overlay is another picture
    if viewport == DESKTOP:
        for selector in ("#sentence", "#panel-overlay", "#panel-boxes"):
            assert _in_view(page, selector), f"{selector} is not in the first screen"
    else:  # the phone scrolls to the new result
        page.wait_for_function(
            SENTENCE_AT_TOP
        )
    size = f"{viewport['width']}x{viewport['height']}"
    _shot(page, f"real-model-{size}.png")
    _shot(page, f"real-model-{size}-whole.png", full_page=True)
    page.close()
