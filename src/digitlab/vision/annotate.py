"""`annotate`: a picture with what `read` found drawn on it (boxes, digits, refusals), to look at.

    img = annotate(picture, reading)      # PIL RGB image, long side at most ANNOTATE_SIDE
    img.save("seen.png")

Accepted digits get a green box with the digit and its probability above it; refused marks a red
box with "?" (not a digit) or the unsure digit struck through by its reason's first letter.
"""
from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont, ImageOps

from digitlab.prediction import Reading

ANNOTATE_SIDE = 2000  # px: pictures are drawn at this long side at most (a 12 MP photo is still legible)
ACCEPTED, REFUSED = (0, 170, 0), (220, 0, 0)


def annotate(image: Image.Image, reading: Reading) -> Image.Image:
    """An RGB copy of `image` (at most ANNOTATE_SIDE on its long side) with `reading`'s boxes and digits drawn."""
    img = ImageOps.exif_transpose(image).convert("RGB")
    full = image.info.get("digitlab.full_size") or img.size  # a JPEG decoded at a reduced size
    scale = min(1.0, ANNOTATE_SIDE / max(img.size))
    if scale < 1:
        shrunk = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(shrunk, Image.Resampling.LANCZOS)
    sx, sy = img.width / full[0], img.height / full[1]
    draw = ImageDraw.Draw(img)
    heights = [d.box[3] - d.box[1] for d in reading.digits]
    size = max(10, int(0.45 * sy * (sorted(heights)[len(heights) // 2] if heights else 40)))
    font = ImageFont.load_default(size=size)
    width = max(1, size // 8)
    for d in reading.digits:
        x0, y0, x1, y1 = d.box[0] * sx, d.box[1] * sy, d.box[2] * sx, d.box[3] * sy
        colour = REFUSED if d.rejected else ACCEPTED
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=width)
        label = f"{d.class_name} {d.probability:.0%}" if not d.rejected else (
            "?" if d.reason == "not a digit" else f"{d.class_name}? {d.reason}")
        draw.text((x0, max(0, y0 - size - width)), label, fill=colour, font=font)
    return img
