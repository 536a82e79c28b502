"""/api/read under load: readers queue within their deadline instead of being turned away."""
from __future__ import annotations

import io

import anyio
import httpx
import numpy as np
from PIL import Image

from digitlab.synth.pages import digit_page


def test_eight_clients_reading_a_page_at_once_all_get_answers(digits, mnist):
    """One decoder, eight uploads of a page at once: they queue within the deadline, none is refused."""
    from digitlab.serving import create_app

    page, _ = digit_page(mnist.x_test, mnist.y_test, np.random.default_rng(7), lines=6, per_line=20,
                         size=(1200, 700))
    buf = io.BytesIO()
    Image.fromarray(page).save(buf, format="PNG")
    app = create_app({"digits": digits}, max_decodes=1)
    codes: list[int] = []

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                     timeout=60) as http:
            async def post() -> None:
                r = await http.post("/api/read", files={"file": ("page.png", buf.getvalue(), "image/png")})
                codes.append(r.status_code)

            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(post)

    anyio.run(run)
    assert codes == [200] * 8
