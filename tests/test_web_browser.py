"""End-to-end: the page in headless Chromium (Playwright) against a real server on loopback."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from web_support import CHROMIUM, chromium_page, decode, half_blurred_pair, texture

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing (Debian: apt-get install chromium; `make test` installs it as root)",
                allow_module_level=True)
pytest.importorskip("playwright")
pytest.importorskip("uvicorn")

from mfif.io import write_image  # noqa: E402
from mfif.methods import DEFAULT_METHOD  # noqa: E402
from mfif.web import create_app  # noqa: E402
from mfif.web.server import serve_in_thread  # noqa: E402

H, W = 96, 128


@pytest.fixture
def slow_progress(monkeypatch):
    """Make every progress report of the fusion take a moment, so the page can show it moving."""
    import mfif.stack

    real = mfif.stack.fuse_stack

    def slowed(*args, progress=None, **kwargs):
        def report(stage, done, total):
            time.sleep(0.25)
            progress(stage, done, total)

        return real(*args, progress=report, **kwargs)

    monkeypatch.setattr(mfif.stack, "fuse_stack", slowed)


def test_page_fuse_wipe_retouch_download(tmp_path, slow_progress):
    a, b = half_blurred_pair(texture(H, W, seed=11))
    paths = [write_image(tmp_path / "stack_a.png", a), write_image(tmp_path / "stack_b.png", b)]
    app = create_app()  # the page starts on the CLI's default method; the test picks a fast one
    with serve_in_thread(app) as url, chromium_page() as page:
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")
        # the method list arrives from /api/info after the page has loaded
        page.wait_for_function("() => document.getElementById('method').options.length > 0", timeout=15000)
        assert page.locator("#method").input_value() == DEFAULT_METHOD
        page.set_input_files("#files", [str(p) for p in paths])
        assert page.locator("#filelist li").count() == 2
        page.select_option("#method", "focus-map")
        page.check("#depth")
        page.click("#start")
        # progress from the server: strictly between 0 and 1 at some point, then done
        page.wait_for_function("() => { const v = document.getElementById('progress').value; return v > 0 && v < 1; }",
                               timeout=15000)
        assert "%" in page.locator("#progress-text").inner_text()
        page.wait_for_selector("body[data-state=done]", timeout=30000)
        page.wait_for_selector("#base[data-version='0']")
        assert page.locator("#progress").evaluate("p => p.value") == 1
        assert "128 × 96 px, 2 frames, 8-bit" in page.locator("#size").inner_text()
        job_id = next(iter(app.state.manager.jobs))
        job = app.state.manager.get(job_id)

        # wipe against frame 1
        page.select_option("#compare", "1")
        page.locator("#wipe").fill("20")
        assert "80%" in page.locator("#before-wrap").evaluate("e => e.style.clipPath")
        assert page.locator("#wipe-left").inner_text().startswith("frame 1")
        assert page.locator("#before").evaluate("i => i.complete && i.naturalWidth") == W

        # paint frame 0 over a band of the left half, where the result came from frame 1
        page.check("#brush")
        page.select_option("#brush-frame", "0")
        page.locator("#radius").fill("10")
        box = page.locator("#paint").bounding_box()
        sx, sy = box["width"] / W, box["height"] / H
        page.mouse.move(box["x"] + 15 * sx, box["y"] + 40 * sy)
        page.mouse.down()
        for x in range(15, 56, 5):
            page.mouse.move(box["x"] + x * sx, box["y"] + 40 * sy)
        page.mouse.up()
        page.wait_for_selector("#base[data-version='1']", timeout=15000)
        assert page.locator("#strokes").inner_text() == "1 stroke"

        # depth view, zoom to 100 %
        page.check("#view-depth")
        page.wait_for_function("() => document.getElementById('base').src.includes('/depth')")
        page.click("#zoom")
        assert page.locator("#base").bounding_box()["width"] == pytest.approx(W, abs=1)

        # download: the retouched result, the band equal to frame 0
        with page.expect_download() as info:
            page.click("#dl-png")
        saved = tmp_path / "download.png"
        info.value.save_as(saved)
        assert info.value.suggested_filename == "fused.png"
        got = decode(saved.read_bytes())
        assert got.shape == a.shape and got.dtype == np.uint8
        np.testing.assert_array_equal(got[35:46, 20:51], a[35:46, 20:51])
        assert np.abs(got[35:46, 20:51].astype(int) - job.fused[35:46, 20:51]).max() > 0
        with page.expect_download() as info:
            page.click("#dl-depth")
        info.value.save_as(tmp_path / "depth.png")
        depth = decode((tmp_path / "depth.png").read_bytes())
        assert depth.dtype == np.uint16 and (depth[35:46, 20:51] == 0).all()

        # undo brings the original back
        page.click("#undo")
        page.wait_for_selector("#base[data-version='2']", timeout=15000)
        assert page.locator("#strokes").inner_text() == "no strokes"
        np.testing.assert_array_equal(job.result()[0], job.fused)
        assert errors == []


def test_page_shows_server_errors(tmp_path):
    a = texture(H, W, seed=1)
    paths = [write_image(tmp_path / "a.png", a), write_image(tmp_path / "b.png", texture(H + 4, W, seed=2))]
    with serve_in_thread(create_app()) as url, chromium_page() as page:
        page.goto(url + "/")
        page.set_input_files("#files", [str(p) for p in paths])
        page.select_option("#method", "average")
        page.click("#start")
        page.wait_for_selector("body[data-state=failed]", timeout=15000)
        text = page.locator("#error").inner_text()
        assert "a.png is 128x96" in text and "b.png is 128x100" in text
        assert page.locator("#result").is_hidden()


def test_page_takes_one_multipage_tiff(tmp_path):
    """One TIFF may start a job (its pages are the frames); one PNG may not."""
    from tiff_support import write_pages

    a, b = half_blurred_pair(texture(H, W, seed=7))
    write_pages(tmp_path / "z.tif", [a, b])
    with serve_in_thread(create_app()) as url, chromium_page() as page:
        page.goto(url + "/")
        page.wait_for_function("() => document.getElementById('method').options.length > 0", timeout=15000)
        page.set_input_files("#files", [str(write_image(tmp_path / "one.png", a))])
        assert page.locator("#start").is_disabled() and "at least two" in page.locator("#error").inner_text()
        page.set_input_files("#files", [str(tmp_path / "z.tif")])
        assert page.locator("#start").is_enabled()
        page.select_option("#method", "focus-map")
        page.click("#start")
        page.wait_for_selector("body[data-state=done]", timeout=30000)
        assert "2 frames" in page.locator("#size").inner_text()


def test_readme_screenshot(tmp_path):
    """Writes docs/img/web.png when MFIF_WEB_SCREENSHOT=1 (benchmarks/web_screenshot.py sets it)."""
    if os.environ.get("MFIF_WEB_SCREENSHOT") != "1":
        pytest.skip("set MFIF_WEB_SCREENSHOT=1 to rewrite docs/img/web.png")
    from skimage import data

    photo = data.coffee()
    a, b = half_blurred_pair(photo, sigma=4.0)
    paths = [write_image(tmp_path / "coffee_near.png", a), write_image(tmp_path / "coffee_far.png", b)]
    out = Path(__file__).resolve().parents[1] / "docs" / "img" / "web.png"
    with serve_in_thread(create_app()) as url, chromium_page(1280, 860) as page:
        page.goto(url + "/")
        page.set_input_files("#files", [str(p) for p in paths])
        page.select_option("#method", "focus-map")
        page.check("#depth")
        page.click("#start")
        page.wait_for_selector("#base[data-version='0']", timeout=60000)
        page.select_option("#compare", "1")  # coffee_near: blurred on the left, where the wipe shows it
        page.locator("#wipe").fill("40")
        page.wait_for_function("() => document.getElementById('before').complete")
        page.screenshot(path=str(out), full_page=True)
    assert out.stat().st_size > 10_000
