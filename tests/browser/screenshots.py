"""Keeping docs/screenshot.png current without rewriting it on every run.

Chromium's anti-aliasing of rounded corners varies by a few pixels from run to run,
so byte equality would dirty the work tree each time. The file is rewritten only
when the picture changed: more than `tolerance` of its pixels differ (compared in
the browser itself, on a canvas, so no image library is needed).
"""

from __future__ import annotations

import base64
from pathlib import Path

from playwright.async_api import BrowserContext

_COUNT_DIFFERENT_PIXELS = """
async ([a, b]) => {
  const load = async (src) => { const img = new Image(); img.src = src; await img.decode(); return img; };
  const pixels = (img) => {
    const canvas = new OffscreenCanvas(img.width, img.height);
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    return ctx.getImageData(0, 0, img.width, img.height).data;
  };
  const [x, y] = await Promise.all([load(a), load(b)]);
  if (x.width !== y.width || x.height !== y.height) return -1;
  const [p, q] = [pixels(x), pixels(y)];
  let n = 0;
  for (let i = 0; i < p.length; i += 4) {
    if (p[i] !== q[i] || p[i + 1] !== q[i + 1] || p[i + 2] !== q[i + 2]) n += 1;
  }
  return { n, total: x.width * x.height };
}
"""


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


async def save_if_changed(context: BrowserContext, png: bytes, path: Path, tolerance: float = 0.001) -> bool:
    """Write `png` to `path` unless the file there shows the same picture. True if written."""
    old = _read(path)
    if old == png:
        return False
    if old is not None:
        page = await context.new_page()
        try:
            result = await page.evaluate(_COUNT_DIFFERENT_PIXELS, [_data_url(old), _data_url(png)])
        finally:
            await page.close()
        if result != -1 and result["n"] <= tolerance * result["total"]:
            return False
    _write(path, png)
    return True


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def _write(path: Path, png: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
