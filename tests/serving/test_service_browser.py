"""The drawing page in a real Chromium (Playwright) against `digitlab serve` on a real model.

Draws digits as mouse strokes, checks the page's answer, clears, draws the next; saves
screenshots to artifacts/browser/. Skipped only when /usr/bin/chromium is absent.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (make system-deps) to run the browser test",
                allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Strokes in canvas fractions (0..1), each a list of points the mouse moves through with the button down.
SEVEN = [[(0.28, 0.22), (0.72, 0.22), (0.45, 0.82)]]
ZERO = [[(0.5 + 0.2 * math.sin(t / 24 * 2 * math.pi), 0.5 - 0.3 * math.cos(t / 24 * 2 * math.pi))
         for t in range(26)]]


def draw(page: Page, strokes: list[list[tuple[float, float]]]) -> None:
    """Draw `strokes` on the canvas with the mouse, moving in small steps as a hand would."""
    box = page.locator("#pad").bounding_box()
    assert box is not None

    def at(p: tuple[float, float]) -> tuple[float, float]:
        return box["x"] + p[0] * box["width"], box["y"] + p[1] * box["height"]

    for stroke in strokes:
        page.mouse.move(*at(stroke[0]))
        page.mouse.down()
        for point in stroke[1:]:
            page.mouse.move(*at(point), steps=8)
        page.mouse.up()


def expect_digit(page: Page, digit: int) -> None:
    result = page.locator("#result")
    expect(result).to_have_attribute("data-label", str(digit), timeout=15_000)
    expect(result).to_contain_text(f"{digit} (")
    bars = page.locator("#bars li")
    expect(bars).to_have_count(10)
    expect(page.locator("#bars li.best")).to_contain_text(str(digit))
    assert page.locator("#seen").get_attribute("src").startswith("data:image/png;base64,")


def expect_cleared(page: Page) -> None:
    expect(page.locator("#result")).not_to_have_attribute("data-label", "0")
    assert page.locator("#result").get_attribute("data-label") is None
    expect(page.locator("#bars li")).to_have_count(0)
    blank = page.evaluate("""() => {
        const c = document.getElementById('pad');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return d.every((v, i) => i % 4 === 3 || v === 0);
    }""")
    assert blank, "the canvas still has ink after clearing"


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_draw_clear_draw(browser, live_server):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("requestfailed", lambda req: problems.append(f"{req.url}: {req.failure}")
            if "/api/predict" not in req.url else None)  # aborted stale predictions are expected
    page.goto(live_server)
    expect(page.locator("#model option")).to_have_count(2)  # two models served: the picker shows
    expect(page.locator("#model-row")).to_be_visible()

    # A slow stroke (about 1.2 s): predictions arrive while the button is still down.
    box = page.locator("#pad").bounding_box()
    page.mouse.move(box["x"] + 0.52 * box["width"], box["y"] + 0.18 * box["height"])
    page.mouse.down()
    for i in range(1, 25):
        page.mouse.move(box["x"] + (0.52 - 0.02 * i / 24) * box["width"], box["y"] + (0.18 + 0.64 * i / 24) * box["height"])
        page.wait_for_timeout(50)
    expect(page.locator("#result")).to_have_attribute("data-label", re.compile(r"\d"), timeout=5_000)
    page.mouse.up()
    expect_digit(page, 1)
    page.screenshot(path=str(ARTIFACTS / "one.png"))
    page.locator("#clear").click()
    expect_cleared(page)

    draw(page, SEVEN)
    expect_digit(page, 7)
    page.screenshot(path=str(ARTIFACTS / "seven.png"))
    page.select_option("#model", "second")  # the same drawing, asked of the other model
    expect(page.locator("#model-id")).to_contain_text("second")
    expect_digit(page, 7)
    page.keyboard.press("Escape")  # the keyboard shortcut clears too
    expect_cleared(page)

    draw(page, ZERO)
    expect_digit(page, 0)
    page.screenshot(path=str(ARTIFACTS / "zero.png"))
    assert problems == []
    page.close()


def test_upload_photo_on_a_phone_sized_screen(browser, live_server, mnist):
    context = browser.new_context(viewport={"width": 375, "height": 667}, has_touch=True, is_mobile=True)
    page = context.new_page()
    page.goto(live_server)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width}px wide on a 375px screen"
    # A finger draws (touch events become pointer events; touch-action: none stops scrolling).
    box = page.locator("#pad").bounding_box()
    cdp = context.new_cdp_session(page)
    xs = box["x"] + 0.5 * box["width"]
    ys = [box["y"] + (0.18 + 0.64 * i / 12) * box["height"] for i in range(13)]
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": xs, "y": ys[0]}]})
    for y in ys[1:]:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": xs, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    expect_digit(page, 1)
    assert page.evaluate("window.scrollY") == 0
    page.locator("#clear").click()
    expect_cleared(page)
    # A photo-like upload: an MNIST test digit, enlarged, dark ink on light grey paper.
    digit = mnist.x_test[3]
    paper = np.asarray(Image.fromarray(255 - digit).resize((300, 300), Image.Resampling.BICUBIC), dtype=float)
    photo = np.clip(paper * 0.8 + 30, 0, 255).astype(np.uint8)
    path = ARTIFACTS / "upload.png"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo).save(path)
    page.set_input_files("#upload", str(path))
    expect(page.locator("#photo")).to_be_visible()
    expect_digit(page, int(mnist.y_test[3]))
    page.screenshot(path=str(ARTIFACTS / "phone.png"), full_page=True)
    # Keyboard: Tab from the canvas reaches Clear, which shows a visible focus outline.
    page.locator("#pad").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "clear"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("Enter")
    expect_cleared(page)
    expect(page.locator("#photo")).to_be_hidden()
    context.close()
