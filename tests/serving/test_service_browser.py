"""The drawing page in a real Chromium (Playwright) against `digitlab serve` of the bundled model.

Draws with mouse strokes and a finger, uploads files, and checks what the page shows in each
state (empty, reading, result, rejected, error), in both modes (one digit, a whole number), at
desktop (1280x800) and phone (390x844) sizes, with no horizontal overflow; the request pacing
under a fake clock; the token dialog. Screenshots go to the pytest tmp dir (`screens0/`).
Skipped only when /usr/bin/chromium is absent.
"""
from __future__ import annotations

import json
import math
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (make system-deps) to run the browser test",
                allow_module_level=True)

from playwright.sync_api import Browser, Page, Route, expect, sync_playwright  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
STATES = ("empty", "reading", "result", "rejected", "error")
NOT_A_DIGIT = "That doesn't look like a digit"
NOT_CLOTHING = "That doesn't look like a piece of clothing"

Stroke = list[tuple[float, float]]  # points in canvas fractions (0..1) the pointer moves through, button down


def _circle(cx: float, cy: float, rx: float, ry: float, n: int = 26) -> Stroke:
    return [(cx + rx * math.sin(t / (n - 2) * 2 * math.pi), cy - ry * math.cos(t / (n - 2) * 2 * math.pi))
            for t in range(n)]


# one digit, on the square canvas
SEVEN = [[(0.28, 0.22), (0.72, 0.22), (0.45, 0.82)]]
ZERO = [_circle(0.5, 0.5, 0.2, 0.3)]
# clearly not digits: a five-pointed star (the designated one), a scribble, a hash sign
STAR = [[(0.5 + 0.36 * math.sin(k * 4 * math.pi / 5), 0.52 - 0.36 * math.cos(k * 4 * math.pi / 5)) for k in range(6)]]
SCRIBBLE = [[(0.2, 0.3), (0.8, 0.25), (0.25, 0.5), (0.75, 0.45), (0.2, 0.75), (0.8, 0.7), (0.3, 0.2), (0.6, 0.85)]]
HASH = [[(0.38, 0.15), (0.32, 0.85)], [(0.66, 0.15), (0.6, 0.85)], [(0.15, 0.38), (0.85, 0.38)],
        [(0.15, 0.64), (0.85, 0.64)]]
# a number on the wide (3:1) canvas: a 4 (two crossing strokes), then a 7 to its right
FOUR_WIDE = [[(0.12, 0.15), (0.09, 0.6), (0.2, 0.6)], [(0.17, 0.3), (0.17, 0.88)]]
SEVEN_WIDE = [[(0.3, 0.2), (0.42, 0.2), (0.34, 0.85)]]


# -- helpers ----------------------------------------------------------------------------------------

def draw(page: Page, strokes: list[Stroke]) -> None:
    """Draw `strokes` on the canvas with the mouse, moving in small steps as a hand would."""
    box = page.locator("#pad").bounding_box()
    assert box is not None

    def at(p: tuple[float, float]) -> tuple[float, float]:
        return box["x"] + p[0] * box["width"], box["y"] + p[1] * box["height"]

    for stroke in strokes:
        page.mouse.move(*at(stroke[0]))
        page.mouse.down()
        for point in stroke[1:]:
            page.mouse.move(*at(point), steps=6)
        page.mouse.up()


def expect_state(page: Page, state: str, timeout: float = 15_000) -> None:
    """The result card is in `state`, and only that state's view shows."""
    card = page.locator("#result-card")
    expect(card).to_have_attribute("data-state", state, timeout=timeout)
    answered = state in ("result", "rejected")
    for view, shown in (("#empty-view", state == "empty"), ("#error-view", state == "error"),
                        ("#busy", state == "reading")):
        (expect(page.locator(view)).to_be_visible if shown else expect(page.locator(view)).to_be_hidden)()
    if answered:
        expect(page.locator("#answer-view")).to_be_visible()
    elif state != "reading":
        expect(page.locator("#answer-view")).to_be_hidden()


def expect_digit(page: Page, digit: int) -> None:
    """The page shows `digit` as its (accepted) answer, with its bars and the 28x28 the model saw."""
    expect(page.locator("#result-card")).to_have_attribute("data-label", str(digit), timeout=15_000)
    expect_state(page, "result")
    expect(page.locator("#answer")).to_have_text(str(digit))
    expect(page.locator("#bars li")).to_have_count(10)
    expect(page.locator("#bars li.best .name")).to_have_text(str(digit))
    expect(page.locator("#verdict")).to_be_hidden()
    assert page.locator("#seen").get_attribute("src").startswith("data:image/png;base64,")


def expect_cleared(page: Page) -> None:
    expect_state(page, "empty")
    assert page.locator("#result-card").get_attribute("data-label") is None
    expect(page.locator("#bars li")).to_have_count(0)
    assert canvas_is_blank(page, "#pad"), "the canvas still has ink"
    assert canvas_is_blank(page, "#boxes", alpha=True), "the digits' boxes are still drawn"


def canvas_is_blank(page: Page, selector: str, *, alpha: bool = False) -> bool:
    """No pixel of the canvas has ink (any non-black colour), or with `alpha` any opacity (an overlay)."""
    return page.evaluate("""([sel, alpha]) => {
        const c = document.querySelector(sel);
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 0; i < d.length; i += 4) if (alpha ? d[i + 3] : d[i] | d[i + 1] | d[i + 2]) return false;
        return true;
    }""", [selector, alpha])


def no_horizontal_overflow(page: Page) -> None:
    width, inner = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    assert width <= inner, f"the page is {width}px wide in a {inner}px window"


def touch_stroke(page: Page, cdp, points: Stroke) -> None:
    """A finger stroke through `points` (canvas fractions): touch events, which Chromium makes pointer events."""
    box = page.locator("#pad").bounding_box()
    xy = [{"x": box["x"] + x * box["width"], "y": box["y"] + y * box["height"]} for x, y in points]
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [xy[0]]})
    for p in xy[1:]:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [p]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def read_canvas(page: Page, url: str) -> dict:
    """POST /api/read of the drawing now on the page's canvas, from here (not through the page)."""
    data_url = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
    body = json.dumps({"image": data_url}).encode()
    request = urllib.request.Request(url + "/api/read", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.load(r)


def served_models(url: str, token: str | None = None) -> dict:
    request = urllib.request.Request(url + "/api/model", headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.load(r)


class Watch:
    """What must not happen on a page: script errors, CSP violations, requests to other hosts."""

    def __init__(self, page: Page, origin: str) -> None:
        self.problems: list[str] = []
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("console", self._console)
        page.on("request", lambda req: None if req.url.startswith((origin, "data:", "blob:"))
                else self.problems.append(f"request to another host: {req.url}"))

    def _console(self, msg) -> None:
        # a 4xx answer to fetch is logged as "Failed to load resource": the tests ask for those
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            self.problems.append(f"console: {msg.text}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def screens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go (look at them: they are the design review)."""
    return tmp_path_factory.mktemp("screens")


def shot(page: Page, screens: Path, name: str) -> None:
    page.screenshot(path=str(screens / f"{name}.png"), full_page=True)


def release(held: list[Route]) -> None:
    """Let held requests through (those the page aborted meanwhile are gone: nothing to do)."""
    for route in held:
        try:
            route.continue_()
        except Exception:  # noqa: BLE001 - the request was aborted by the page
            pass
    held.clear()


# -- tests --------------------------------------------------------------------------------------

def test_digit_mode_states_history_and_models_on_a_desktop(browser, page_server, screens):
    page = browser.new_page(viewport=DESKTOP)
    watch = Watch(page, page_server)
    page.goto(page_server)
    expect(page.locator("#model option")).to_have_count(2)  # two models served: the picker shows
    expect(page.locator("#model-row")).to_be_visible()
    expect_state(page, "empty")
    expect(page.locator("#empty-title")).to_have_text("Draw a digit to start")
    expect(page.locator("#pad-hint")).to_be_visible()
    expect(page.locator("#history-card")).to_be_hidden()
    expect(page.get_by_text("Take a photo")).to_be_hidden()  # no camera to point on a desktop
    no_horizontal_overflow(page)
    shot(page, screens, "desktop-empty")

    # Reading: the request is held until the state has been seen.
    held: list[Route] = []
    page.route("**/api/predict*", lambda route: held.append(route))
    draw(page, SEVEN)
    expect_state(page, "reading")
    expect(page.locator("#reading-view")).to_be_visible()  # a first answer: no stale one to dim
    expect(page.locator("#pad-hint")).to_be_hidden()
    page.wait_for_timeout(400)  # for the screenshot: "Reading..." fades in after 120 ms (quick answers never flash it)
    shot(page, screens, "desktop-reading")
    page.unroute("**/api/predict*")
    release(held)
    expect_digit(page, 7)
    expect(page.locator("#announce")).to_have_attribute("aria-live", "polite")
    expect(page.locator("#announce")).to_have_text(re.compile(r"^7, \d+\.\d% sure$"))  # for screen readers
    expect(page.locator("#history li")).to_have_count(1)
    expect(page.locator("#history li").first).to_have_attribute("data-answer", "7")
    no_horizontal_overflow(page)
    shot(page, screens, "desktop-result")
    page.emulate_media(color_scheme="dark")
    shot(page, screens, "desktop-result-dark")
    page.emulate_media(color_scheme="light")

    # The same drawing asked of the Fashion model, which rejects everything: worded for clothing.
    page.select_option("#model", "fashion")
    expect_state(page, "rejected")
    expect(page.locator("#mode-number")).to_be_disabled()  # numbers are for digit models
    expect(page.locator("#verdict")).to_have_text(NOT_CLOTHING)
    expect(page.locator("#announce")).to_contain_text(NOT_CLOTHING)
    expect(page.locator("#answer")).to_be_hidden()  # no confident answer...
    expect(page.locator("#confidence")).to_contain_text("Closest guess")  # ...the closest guess, small
    assert page.locator("#result-card").get_attribute("data-reason") == "not a piece of clothing"
    expect(page.locator("#history li")).to_have_count(1)  # still the same drawing
    expect(page.locator("#history li").first).to_have_attribute("data-answer", "?")
    shot(page, screens, "desktop-rejected")
    page.select_option("#model", "mnist")
    expect_digit(page, 7)

    page.locator("#pad").focus()
    page.keyboard.press("Escape")  # the keyboard shortcut clears
    expect_cleared(page)
    assert page.evaluate("document.activeElement.id") == "pad"
    draw(page, ZERO)
    expect_digit(page, 0)
    expect(page.locator("#history li")).to_have_count(2)
    assert [li.get_attribute("data-answer") for li in page.locator("#history li").all()] == ["0", "7"]
    page.get_by_role("button", name="Clear").click()
    expect_cleared(page)
    assert watch.problems == []
    page.close()


def test_request_pacing_during_a_long_stroke(browser, page_server):
    """Under a fake clock: while the pen moves, a prediction at least every 400 ms (never on every
    movement); one 150 ms after it stops moving; none more when the button is released."""
    page = browser.new_page(viewport=DESKTOP)
    # When each request's picture is taken (toBlob is called in the same task as the request timer fires).
    page.add_init_script("""
        window.__asked = [];
        const toBlob = HTMLCanvasElement.prototype.toBlob;
        HTMLCanvasElement.prototype.toBlob = function (...args) {
            window.__asked.push(performance.now());
            return toBlob.apply(this, args);
        };""")
    page.clock.install()
    page.goto(page_server)
    expect(page.locator("#model option")).to_have_count(2)
    page.clock.pause_at(page.evaluate("Date.now()") + 1000)
    sent: list[str] = []
    page.on("request", lambda req: sent.append(req.url) if "/api/predict" in req.url else None)

    box = page.locator("#pad").bounding_box()
    # a 1.65 s stroke, the pointer moving every 25 ms; it stops 50 ms after the 4th request, so its
    # last movements are not sent yet (a stop right after a request would leave nothing to send)
    step_ms, steps = 25, 67
    page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + 0.1 * box["height"])
    page.mouse.down()
    start = page.evaluate("performance.now()")
    for i in range(1, steps + 1):
        page.mouse.move(box["x"] + (0.5 - 0.05 * i / steps) * box["width"],
                        box["y"] + (0.1 + 0.8 * i / steps) * box["height"])
        page.clock.run_for(step_ms)
    last_move = page.evaluate("performance.now()") - step_ms  # the clock ran on after the last movement
    during = [t - start for t in page.evaluate("window.__asked")]
    gaps = np.diff([0.0, *during])
    assert len(during) >= (last_move - start) // 400, during
    assert gaps.max() <= 400 and gaps.min() >= 150, during  # at least every 400 ms, never on every movement
    page.clock.run_for(150 - step_ms - 1)  # 149 ms after the last movement: no new request yet
    assert len(page.evaluate("window.__asked")) == len(during)
    page.clock.run_for(1)  # 150 ms after it: one
    assert [t - last_move for t in page.evaluate("window.__asked")[len(during):]] == [150]
    page.mouse.up()  # nothing changed since that request: none more
    page.clock.run_for(1000)
    assert len(page.evaluate("window.__asked")) == len(during) + 1
    expect_digit(page, 1)
    assert len(sent) == len(during) + 1  # every picture taken was sent
    page.close()


def test_not_a_digit_then_a_digit(browser, page_server, screens):
    """Clear non-digits get "That doesn't look like a digit" (the star at least); then a digit is read."""
    page = browser.new_page(viewport=DESKTOP)
    watch = Watch(page, page_server)
    page.goto(page_server)
    expect(page.locator("#model option")).to_have_count(2)
    seen: dict[str, str] = {}
    for name, strokes in (("star", STAR), ("scribble", SCRIBBLE), ("hash", HASH)):
        draw(page, strokes)
        # the stroke's end sent the finished drawing (state "reading"): the next answer is the final one
        expect(page.locator("#result-card")).to_have_attribute("data-state", re.compile("^(result|rejected)$"),
                                                              timeout=15_000)
        state = page.locator("#result-card").get_attribute("data-state")
        seen[name] = f"{state}: {page.locator('#verdict').text_content() or page.locator('#answer').text_content()}" \
                     f" ({page.locator('#confidence').text_content()})"
        if state == "rejected":
            expect(page.locator("#verdict")).to_have_text(NOT_A_DIGIT)
            expect(page.locator("#answer")).to_be_hidden()
            shot(page, screens, f"desktop-not-a-digit-{name}")
        page.keyboard.press("Escape")
        expect_cleared(page)
    draw(page, SEVEN)
    expect_digit(page, 7)
    assert watch.problems == []
    page.close()
    print(f"not-a-digit drawings: {seen}")
    mnist = next(m for m in served_models(page_server)["models"] if m["name"] == "mnist")
    if (mnist["meta"].get("rejection") or {}).get("threshold") is None:
        pytest.skip("the bundled model has no not-a-digit detector (no 'rejection' in its model.json), so only "
                    f"blank pictures can be rejected; the page showed {seen}")
    assert seen["star"].startswith("rejected"), f"the star was read as a digit: {seen}"


def test_number_mode_reads_47_and_boxes_each_digit(browser, page_server, screens):
    page = browser.new_page(viewport=DESKTOP)
    watch = Watch(page, page_server)
    page.goto(page_server)
    expect(page.locator("#model option")).to_have_count(2)
    page.get_by_role("button", name="A number").click()
    expect(page.locator("#mode-number")).to_have_attribute("aria-pressed", "true")
    assert page.evaluate("(c => [c.width, c.height])(document.getElementById('pad'))") == [840, 280]
    expect_state(page, "empty")
    expect(page.locator("#empty-title")).to_have_text("Write a number to start")
    no_horizontal_overflow(page)
    shot(page, screens, "desktop-number-empty")
    draw(page, FOUR_WIDE)
    expect(page.locator("#result-card")).to_have_attribute("data-text", "4", timeout=15_000)  # read as it goes
    draw(page, SEVEN_WIDE)
    expect(page.locator("#result-card")).to_have_attribute("data-text", "47", timeout=15_000)
    expect_state(page, "result")
    expect(page.locator("#answer")).to_have_text("47")
    last = read_canvas(page, page_server)  # what the API reads in this very drawing
    assert last["text"] == "47"
    chips = page.locator("#digits li")
    expect(chips).to_have_count(len(last["digits"]))
    for chip, digit in zip(chips.all(), last["digits"]):
        expect(chip).to_contain_text(f"{100 * digit['probability']:.1f}%")
    # Each digit's box is drawn on the overlay where the server found it (box in the canvas's pixels).
    alpha_at = """([x, y]) => document.getElementById('boxes').getContext('2d').getImageData(x, y, 1, 1).data[3]"""
    for digit in last["digits"]:
        x0, y0, x1, y1 = digit["box"]
        mid = (y0 + y1) // 2
        assert page.evaluate(alpha_at, [x0, mid]) > 0 and page.evaluate(alpha_at, [x1 - 1, mid]) > 0, digit
        assert page.evaluate(alpha_at, [(x0 + x1) // 2, mid]) == 0, digit  # a frame, not a filled block
    expect(page.locator("#history li").first).to_have_attribute("data-answer", "47")
    no_horizontal_overflow(page)
    shot(page, screens, "desktop-number")
    page.keyboard.press("Escape")
    expect_cleared(page)
    assert watch.problems == []
    page.close()


def test_a_bad_upload_shows_the_error_alone(browser, page_server, screens):
    page = browser.new_page(viewport=DESKTOP)
    watch = Watch(page, page_server)
    page.goto(page_server)
    draw(page, SEVEN)
    expect_digit(page, 7)
    page.set_input_files("#upload", files=[{"name": "notes.png", "mimeType": "image/png",
                                            "buffer": b"these bytes are not an image"}])
    expect_state(page, "error")
    expect(page.locator("#error")).to_contain_text("not an image")
    for stale in ("#answer-view", "#reading-view", "#busy", "#photo", "#bars li", "#seen-box"):
        expect(page.locator(stale)).to_be_hidden()  # no stale result, no broken image, nothing "reading"
    shot(page, screens, "desktop-error")
    draw(page, ZERO)  # drawing again recovers
    expect_digit(page, 0)
    assert watch.problems == []
    page.close()


def test_phone_finger_photo_number_and_keyboard(browser, page_server, screens, mnist, tmp_path):
    context = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    page = context.new_page()
    watch = Watch(page, page_server)
    page.goto(page_server)
    expect(page.locator("#model option")).to_have_count(2)
    expect_state(page, "empty")
    no_horizontal_overflow(page)
    pad_width = page.locator("#pad").bounding_box()["width"]
    assert pad_width >= 0.85 * PHONE["width"], f"the canvas is {pad_width}px of a {PHONE['width']}px screen"
    expect(page.get_by_text("Take a photo")).to_be_visible()
    shot(page, screens, "phone-empty")

    # A finger draws (touch-action: none: it draws instead of scrolling).
    cdp = context.new_cdp_session(page)
    touch_stroke(page, cdp, [(0.5, 0.18 + 0.64 * i / 12) for i in range(13)])
    expect_digit(page, 1)
    assert page.evaluate("window.scrollY") == 0
    no_horizontal_overflow(page)
    shot(page, screens, "phone-result")

    # A photo-like upload: an MNIST test digit, enlarged, dark ink on light grey paper.
    digit = mnist.x_test[3]
    paper = np.asarray(Image.fromarray(255 - digit).resize((300, 300), Image.Resampling.BICUBIC), dtype=float)
    path = tmp_path / "photo.png"
    Image.fromarray(np.clip(paper * 0.8 + 30, 0, 255).astype(np.uint8)).save(path)
    page.set_input_files("#upload", str(path))
    expect(page.locator("#photo")).to_be_visible()
    expect_digit(page, int(mnist.y_test[3]))
    expect(page.locator("#history li")).to_have_count(2)
    shot(page, screens, "phone-photo")

    page.select_option("#model", "fashion")  # the photo, asked of the model that rejects everything
    expect_state(page, "rejected")
    expect(page.locator("#verdict")).to_have_text(NOT_CLOTHING)
    no_horizontal_overflow(page)
    shot(page, screens, "phone-rejected")
    page.select_option("#model", "mnist")

    page.set_input_files("#upload", files=[{"name": "x.jpg", "mimeType": "image/jpeg", "buffer": b"\x00" * 64}])
    expect_state(page, "error")
    expect(page.locator("#photo")).to_be_hidden()
    no_horizontal_overflow(page)
    shot(page, screens, "phone-error")

    page.get_by_role("button", name="A number").click()
    expect_state(page, "empty")
    assert page.locator("#pad").bounding_box()["width"] >= 0.85 * PHONE["width"]
    draw(page, FOUR_WIDE + SEVEN_WIDE)
    expect(page.locator("#result-card")).to_have_attribute("data-text", "47", timeout=15_000)
    no_horizontal_overflow(page)
    shot(page, screens, "phone-number")
    # A photo of a number: MNIST test digits 0 and 1 side by side, dark on light paper; boxed over the photo.
    row = np.concatenate([np.pad(mnist.x_test[i], 4) for i in (0, 1)], axis=1)  # (36, 72)
    paper = np.asarray(Image.fromarray(255 - row).resize((576, 288), Image.Resampling.BICUBIC), dtype=float)
    path = tmp_path / "number.png"
    Image.fromarray(np.clip(paper * 0.8 + 30, 0, 255).astype(np.uint8)).save(path)
    page.get_by_label("Upload a photo").set_input_files(path)
    expected = "".join(str(int(mnist.y_test[i])) for i in (0, 1))
    expect(page.locator("#result-card")).to_have_attribute("data-text", expected, timeout=15_000)
    expect(page.locator("#photo")).to_be_visible()
    expect(page.locator("#photo-boxes")).to_be_visible()
    size = page.evaluate("(c => [c.width, c.height])(document.getElementById('photo-boxes'))")
    assert size == [576, 288]  # the photo's pixels, as the boxes' coordinates are
    assert not canvas_is_blank(page, "#photo-boxes", alpha=True)
    shot(page, screens, "phone-number-photo")

    # Keyboard: Tab from the canvas reaches Clear, which shows a visible focus outline; Enter clears.
    page.locator("#pad").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "clear"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("Enter")
    expect_cleared(page)
    assert watch.problems == []
    context.close()


def test_token_dialog(browser, token_server, screens):
    """The page asks for the token once, in its own dialog; a wrong one asks again; the right one is kept
    for the tab."""
    url, token = token_server
    page = browser.new_page(viewport=DESKTOP)
    watch = Watch(page, url)
    authorizations: list[str | None] = []
    page.on("request", lambda r: authorizations.append(r.headers.get("authorization"))
            if "/api/predict" in r.url else None)
    page.goto(url)
    dialog = page.get_by_role("dialog", name="This server needs an access token")
    expect(dialog).to_be_visible()
    field = page.get_by_label("Access token", exact=True)
    expect(field).to_be_focused()
    shot(page, screens, "desktop-token")
    page.keyboard.press("Escape")  # cancelled: the page says what it needs; the next request asks again
    expect(dialog).to_be_hidden()
    expect_state(page, "error")
    expect(page.locator("#error-title")).to_have_text("Access token needed")
    draw(page, SEVEN)
    expect(dialog).to_be_visible()

    field.fill("not-the-token-at-all-0000")
    page.get_by_role("button", name="Unlock").click()
    expect(dialog).to_be_visible()
    expect(page.locator("#token-error")).to_have_text(re.compile("not accepted"))
    expect(field).to_have_value("")
    shot(page, screens, "desktop-token-wrong")

    field.fill(token)
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.locator("#model option")).to_have_count(1)  # the models listed with the token
    expect(page.locator("#model-row")).to_be_hidden()
    expect_digit(page, 7)  # the drawing that asked, answered once the token came
    assert page.evaluate("sessionStorage.getItem('digitlab.token')") == token
    assert authorizations and set(authorizations) == {f"Bearer {token}"}

    page.reload()  # the same tab: no question asked
    expect(page.locator("#model option")).to_have_count(1)
    draw(page, ZERO)
    expect_digit(page, 0)
    expect(dialog).to_be_hidden()
    assert watch.problems == []
    page.close()
