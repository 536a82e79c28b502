"""The drawing page: served by the app, self-contained (works offline), accessible markup."""
from __future__ import annotations

import re
from pathlib import Path

import digitlab.serving

STATIC = Path(digitlab.serving.__file__).parent / "static"


def test_page_and_assets_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        r = client.get(asset)
        assert r.status_code == 200, asset
    assert client.get("/static/app.js").headers["content-type"].split(";")[0] in {"text/javascript",
                                                                                   "application/javascript"}


def test_no_external_resources():
    """Nothing is loaded from another host: the page works offline."""
    for path in STATIC.iterdir():
        text = path.read_text()
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), path.name
        assert "@import url(" not in text, path.name


def test_page_markup_for_phones_and_keyboards(client):
    html = client.get("/").text
    assert '<meta name="viewport"' in html
    assert 'aria-live="polite"' in html
    assert 'accept="image/*"' in html and "capture=" in html
    assert 'aria-keyshortcuts="Escape"' in html
    assert re.search(r'<canvas id="pad"[^>]*tabindex="0"', html)
    css = (STATIC / "style.css").read_text()
    assert "touch-action: none" in css and ":focus-visible" in css
    js = (STATIC / "app.js").read_text()
    for needle in ("pointerdown", "pointermove", "setPointerCapture", "AbortController", "DEBOUNCE_MS = 150"):
        assert needle in js
