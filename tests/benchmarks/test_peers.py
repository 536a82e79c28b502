"""The peer OCR engines of the realistic benchmark: each reads a clean printed number it is given (skipped
when its engine is not installed), boxes are put in reading order, and `--peers` refuses unknown names."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from benchmarks import peers, realistic

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # Debian's fonts-dejavu (make system-deps)
FONT_PX = 96  # large, clean print: every engine should read it


def _printed(text: str) -> np.ndarray:
    """uint8 (H, W) black `text` (lines split on "\\n") on white, drawn with PIL, a margin all round."""
    if not FONT.exists():
        pytest.skip(f"{FONT} not found: install Debian's fonts-dejavu (make system-deps)")
    font = ImageFont.truetype(str(FONT), FONT_PX)
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    x0, y0, x1, y1 = probe.multiline_textbbox((0, 0), text, font=font, spacing=FONT_PX // 2)
    margin = FONT_PX // 2
    img = Image.new("L", (x1 - x0 + 2 * margin, y1 - y0 + 2 * margin), 255)
    ImageDraw.Draw(img).multiline_text((margin - x0, margin - y0), text, font=font, fill=0, spacing=FONT_PX // 2)
    return np.asarray(img)


@pytest.fixture(scope="module", params=sorted(peers.PEERS))
def peer(request: pytest.FixtureRequest) -> peers.Peer:
    reason = peers.PEERS[request.param].missing()
    if reason:
        pytest.skip(reason)
    return peers.PEERS[request.param]()


def test_peer_reads_a_clean_printed_number(peer: peers.Peer) -> None:
    assert peer.read(_printed("4071")) == "4071"


def test_peer_reads_two_lines_top_to_bottom(peer: peers.Peer) -> None:
    assert peer.read(_printed("58\n2093")) == "58\n2093"


def test_peer_reads_rgb_and_transparent_canvases(peer: peers.Peer) -> None:
    grey = _printed("4071")
    rgba = np.dstack([np.zeros_like(grey)] * 3 + [255 - grey])  # black ink, transparent paper
    assert peer.read(np.dstack([grey] * 3)) == "4071"
    assert peer.read(rgba) == "4071"


def test_peer_names_its_version(peer: peers.Peer) -> None:
    assert peer.version().startswith(peer.name)


def test_available_peers_are_those_installed() -> None:
    assert peers.available_peers() == [n for n, cls in peers.PEERS.items() if cls.missing() is None]


def test_missing_tesseract_says_what_to_install() -> None:
    with pytest.raises(peers.PeerUnavailable, match="apt-get install tesseract-ocr"):
        peers.Tesseract(binary="no-such-tesseract-binary")


def test_rgb_lays_transparency_on_white() -> None:
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (6, 7, 4), dtype=np.uint8)
    white = Image.new("RGBA", (7, 6), (255, 255, 255, 255))
    expected = np.asarray(Image.alpha_composite(white, Image.fromarray(rgba)).convert("RGB")).astype(int)
    assert np.abs(peers._rgb(rgba).astype(int) - expected).max() <= 1
    grey = rgba[..., 0]
    assert np.array_equal(peers._rgb(grey), np.dstack([grey] * 3))


def test_order_lines_reads_top_to_bottom_then_left_to_right() -> None:
    # (x_left, y_top, y_bottom, text): two lines of two boxes each, the second line's boxes uneven
    boxes = [(50, 0, 40, "34"), (0, 2, 38, "12"), (60, 55, 100, "8"), (0, 50, 90, "7"), (90, 0, 30, "")]
    for order in ([0, 1, 2, 3, 4], [3, 2, 4, 1, 0], [2, 0, 3, 4, 1]):
        assert peers.order_lines([boxes[i] for i in order]) == "1234\n78"
    assert peers.order_lines([]) == ""


def test_unknown_peer_is_refused_naming_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        realistic.parse_args(["--peers", "tesseract,abbyy"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "'abbyy'" in err and all(name in err for name in peers.PEERS)
    with pytest.raises(ValueError, match="known peers: " + ", ".join(peers.PEERS)):
        peers.make_peers(["abbyy"])


def test_table_without_peers_is_unchanged_and_with_peers_has_a_column_each() -> None:
    row = {"condition": "number_plain", "kind": "number", "n": 2, "accuracy": 0.5, "rejected": 0.0,
           "char_accuracy": 0.75, "ms_mean": 1.0, "ms_p95": 2.0, "megapixels_median": 0.5,
           "generate_ms_per_sample": 3.0, "peers": {"tesseract": {"accuracy": 1.0, "ms_mean": 9.0}}}
    assert realistic.header() == realistic.HEADER
    assert realistic.parse_args([]).peers == []
    names = ["tesseract", "rapidocr"]
    table = [*realistic.header(names).splitlines(), realistic.format_row(row, names),
             realistic.format_row({"condition": "x", "kind": "digit", "error": "boom"}, names)]
    assert {line.count("|") for line in table} == {realistic.HEADER.splitlines()[0].count("|") + len(names)}
    assert "| 50.0% | 100.0% | |" in table[2]
    assert realistic.format_row(row).count("|") == realistic.HEADER.splitlines()[0].count("|")
