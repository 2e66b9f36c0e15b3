"""Helpers shared by the web tests and ``benchmarks/web_screenshot.py``: test frames, a browser."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import numpy as np

#: Debian's Chromium; Playwright's own browser download cannot work on these machines.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def half_blurred_pair(image: np.ndarray, sigma: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Two frames of ``image``: A blurred on the left half, B blurred on the right half.

    The fused result should take the right half from A and the left half from B.
    """
    import cv2

    blurred = cv2.GaussianBlur(image, (0, 0), sigma)
    w = image.shape[1]
    a, b = image.copy(), image.copy()
    a[:, : w // 2] = blurred[:, : w // 2]
    b[:, w // 2:] = blurred[:, w // 2:]
    return a, b


def texture(h: int, w: int, *, seed: int = 0, dtype=np.uint8, channels: int = 3) -> np.ndarray:
    """A random texture with detail at every scale (so that blur is easy to see and to detect)."""
    import cv2

    rng = np.random.default_rng(seed)
    shape = (h, w, channels) if channels > 1 else (h, w)
    img = rng.random(shape).astype(np.float32)
    img = 0.6 * img + 0.4 * cv2.GaussianBlur(img, (0, 0), 2.0)
    top = np.iinfo(dtype).max
    return np.clip(np.rint(img * top), 0, top).astype(dtype)


def encode(img: np.ndarray, ext: str = ".png") -> bytes:
    """The bytes of ``img`` as an image file (via :func:`mfif.io.write_image`, so 16-bit stays 16-bit)."""
    import tempfile

    from mfif.io import write_image

    with tempfile.TemporaryDirectory() as d:
        return write_image(Path(d) / f"x{ext}", img).read_bytes()


def decode(data: bytes, ext: str = ".png") -> np.ndarray:
    """Decode image bytes with :func:`mfif.io.read_image`."""
    import tempfile

    from mfif.io import read_image

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"x{ext}"
        p.write_bytes(data)
        return read_image(p)


@contextlib.contextmanager
def chromium_page(width: int = 1280, height: int = 900) -> Iterator:
    """A Playwright page in headless Debian Chromium that accepts downloads."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
            yield context.new_page()
        finally:
            browser.close()
