"""The drawing page and the API docs page as served: their assets, the CSP they must live under.

What the page does (drawing, states, pacing, keyboard, phones) is tested in a real browser in
test_service_browser.py; these checks need no browser.
"""
from __future__ import annotations

from html.parser import HTMLParser

import pytest

CSP = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'"


class Document(HTMLParser):
    """The parts of an HTML document the CSP cares about: scripts, styles, inline handlers, URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []  # what the CSP (no 'unsafe-inline') would block
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v is not None]
        if tag == "style":
            self.inline.append("<style> element")
        if tag == "script" and not a.get("src"):
            self._in_script = True
        self.inline += [f"{k}= on <{tag}>" for k, _ in attrs if k == "style" or k.startswith("on")]

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("inline <script>")


def parse(html: str) -> Document:
    doc = Document()
    doc.feed(html)
    return doc


@pytest.mark.parametrize("path", ["/", "/docs"])
def test_page_and_its_assets_are_served_under_the_csp(client, path):
    page = client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith(CSP)
    assets = [u for u in parse(page.text).urls if u.startswith("/static/")]
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    kinds = {".js": {"text/javascript", "application/javascript"}, ".css": {"text/css"}}
    for asset in assets:
        r = client.get(asset)
        assert r.status_code == 200, asset
        assert r.headers["content-type"].split(";")[0] in kinds[asset[asset.rindex("."):]], asset
        assert r.headers["content-security-policy"].startswith(CSP), asset


@pytest.mark.parametrize("path", ["/", "/docs"])
def test_page_has_nothing_inline_and_nothing_from_another_host(client, path):
    """Under script-src/style-src 'self' an inline script, style or handler would not run: none is there.
    Every URL is this server's (a path) or data: (the empty favicon): the page works offline."""
    doc = parse(client.get(path).text)
    assert doc.inline == []
    for url in doc.urls:
        assert url.startswith(("/", "#", "data:")) and not url.startswith("//"), url
