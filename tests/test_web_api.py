"""The web API through Starlette's TestClient: results, retouching, and every error path."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
with warnings.catch_warnings():  # newer Starlette prefers httpx2; httpx still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from mfif.web import create_app  # noqa: E402
from mfif.web.jobs import JobManager, overall_progress  # noqa: E402
from mfif.web.retouch import Stroke, compose, parse_stroke, stroke_mask  # noqa: E402
from mfif.errors import UsageError  # noqa: E402
from web_support import decode, encode, half_blurred_pair, texture  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
H, W = 96, 128


@pytest.fixture
def pair():
    return half_blurred_pair(texture(H, W, seed=3))


@pytest.fixture
def client():
    app = create_app(max_upload_mb=2, max_frames=4, default_method="focus-map")
    with TestClient(app) as c:
        yield c


def post(client, frames, names=None, **fields):
    names = names or [f"f{i}.png" for i in range(len(frames))]
    files = [("files", (n, f if isinstance(f, bytes) else encode(f), "image/png")) for n, f in zip(names, frames)]
    return client.post("/api/jobs", files=files, data=fields)


def wait(client, job_id, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        s = client.get(f"/api/jobs/{job_id}").json()
        if s["state"] in ("done", "failed") or time.monotonic() > deadline:
            return s
        time.sleep(0.02)


def fuse_ok(client, frames, **fields):
    r = post(client, frames, **fields)
    assert r.status_code == 202, r.text
    s = wait(client, r.json()["id"])
    assert s["state"] == "done", s
    return s


def error_of(r, status):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    return body["error"]


# -- results ------------------------------------------------------------------------------------
def test_fuse_depth_and_frames(client, pair):
    a, b = pair
    s = fuse_ok(client, [a, b], method="focus-map", depth_map="true")
    assert (s["progress"], s["error"], s["width"], s["height"], s["frames"]) == (1.0, None, W, H, 2)
    assert s["names"] == ["f0.png", "f1.png"] and s["has_depth"] and s["dtype"] == "uint8"
    jid = s["id"]
    fused = decode(client.get(f"/api/jobs/{jid}/fused").content)
    assert fused.shape == a.shape and fused.dtype == np.uint8
    # sharp halves: left from B, right from A (away from the seam)
    assert np.abs(fused[:, 8:48].astype(int) - b[:, 8:48]).mean() < 1.0
    assert np.abs(fused[:, 80:120].astype(int) - a[:, 80:120]).mean() < 1.0
    r = client.get(f"/api/jobs/{jid}/depth")
    assert r.headers["content-type"] == "image/png" and "attachment" in r.headers["content-disposition"]
    depth = decode(r.content)
    assert depth.dtype == np.uint16 and set(np.unique(depth)) <= {0, 1}
    assert (depth[:, 8:48] == 1).mean() > 0.95 and (depth[:, 80:120] == 0).mean() > 0.95
    assert decode(client.get(f"/api/jobs/{jid}/depth?preview=1").content).shape == (H, W, 3)
    tif = decode(client.get(f"/api/jobs/{jid}/fused?format=tif").content, ".tif")
    np.testing.assert_array_equal(tif, fused)
    np.testing.assert_array_equal(decode(client.get(f"/api/jobs/{jid}/frames/1").content), b)


def test_16bit_downloads_stay_16bit(client):
    a, b = half_blurred_pair(texture(H, W, seed=5, dtype=np.uint16, channels=1))
    s = fuse_ok(client, [a, b], method="average")
    assert s["dtype"] == "uint16" and not s["has_depth"]
    jid = s["id"]
    png = decode(client.get(f"/api/jobs/{jid}/fused?format=png").content)
    tif = decode(client.get(f"/api/jobs/{jid}/fused?format=tiff").content, ".tif")
    assert png.dtype == tif.dtype == np.uint16
    expect = np.rint((a.astype(np.float64) + b) / 2)
    assert np.abs(png - expect).max() <= 1
    assert decode(client.get(f"/api/jobs/{jid}/fused?preview=1").content).dtype == np.uint8
    assert "no depth map" in error_of(client.get(f"/api/jobs/{jid}/depth"), 404)


def test_default_method_and_methods_list(client):
    info = client.get("/api/methods").json()
    assert info["default"] == "focus-map" and info["max_frames"] == 4
    names = [m["name"] for m in info["methods"]]
    from mfif.methods import METHODS

    assert names == list(METHODS)
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text.replace("http-equiv", "")  # nothing loaded from elsewhere
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200


# -- retouching ---------------------------------------------------------------------------------
def test_retouch_takes_the_frame_and_undo_restores(client, pair):
    a, b = pair
    s = fuse_ok(client, [a, b], method="focus-map", depth_map="1")
    jid = s["id"]
    before = decode(client.get(f"/api/jobs/{jid}/fused").content)
    depth0 = decode(client.get(f"/api/jobs/{jid}/depth").content)
    r = client.post(f"/api/jobs/{jid}/retouch", json={"frame": 0, "radius": 10, "points": [[20, 40], [50, 40]]})
    assert r.status_code == 200 and r.json()["strokes"] == 1 and r.json()["version"] == 1
    after = decode(client.get(f"/api/jobs/{jid}/fused").content)
    depth = decode(client.get(f"/api/jobs/{jid}/depth").content)
    np.testing.assert_array_equal(after[35:46, 20:51], a[35:46, 20:51])  # solid core: the frame exactly
    assert (depth[35:46, 20:51] == 0).all() and (depth0[35:46, 20:51] == 1).mean() > 0.9
    far = np.ones((H, W), bool)
    far[25:56, 5:66] = False  # beyond the brush: untouched
    np.testing.assert_array_equal(after[far], before[far])
    assert (np.abs(after.astype(int) - before)[28:53, 10:61].max(axis=-1) > 0).any()
    r = client.post(f"/api/jobs/{jid}/undo")
    assert r.json()["strokes"] == 0
    np.testing.assert_array_equal(decode(client.get(f"/api/jobs/{jid}/fused").content), before)
    np.testing.assert_array_equal(decode(client.get(f"/api/jobs/{jid}/depth").content), depth0)
    assert "nothing to undo" in error_of(client.post(f"/api/jobs/{jid}/undo"), 409)


@pytest.mark.parametrize("body, text", [
    ({"frame": 2, "radius": 5, "points": [[1, 1]]}, "frame must be"),
    ({"frame": "0", "radius": 5, "points": [[1, 1]]}, "frame must be"),
    ({"frame": 0, "radius": -1, "points": [[1, 1]]}, "radius must be"),
    ({"frame": 0, "radius": 5, "points": []}, "points must be"),
    ({"frame": 0, "radius": 5, "points": [[1, "x"]]}, "is not an [x, y] pair"),
    ({"frame": 0, "radius": 5, "points": [[1e9, 1]]}, "far outside"),
    ({"frame": 0, "radius": 5}, "missing points"),
    ([1, 2], "JSON object"),
])
def test_bad_strokes(client, pair, body, text):
    jid = fuse_ok(client, list(pair), method="average")["id"]
    assert text in error_of(client.post(f"/api/jobs/{jid}/retouch", json=body), 400)


def test_retouch_needs_json(client, pair):
    jid = fuse_ok(client, list(pair), method="average")["id"]
    r = client.post(f"/api/jobs/{jid}/retouch", content=b"{not json", headers={"content-type": "application/json"})
    assert "must be JSON" in error_of(r, 400)


def test_stroke_mask_is_soft_and_compose_is_pure():
    s = Stroke(frame=1, radius=8.0, points=((20.0, 20.0),))
    (x0, y0, x1, y1), m = stroke_mask(s, 64, 48)
    full = np.zeros((48, 64), np.float32)
    full[y0:y1, x0:x1] = m
    assert full[20, 20] == 1.0 and full[20, 25] == 1.0 and full[20, 29] == 0.0 and 0 < full[20, 27] < 1
    assert stroke_mask(Stroke(0, 5.0, ((-100.0, -100.0),)), 64, 48) is None
    fused = np.zeros((48, 64), np.uint8)
    frames = [fused, np.full((48, 64), 200, np.uint8)]
    img, depth = compose(fused, np.zeros((48, 64), np.int16), [s], frames.__getitem__)
    assert img[20, 20] == 200 and depth[20, 20] == 1 and depth[20, 29] == 0 and fused.max() == 0
    with pytest.raises(UsageError, match="frame must be"):
        parse_stroke({"frame": True, "radius": 3, "points": [[0, 0]]}, n_frames=2, width=64, height=48)


def test_progress_spans():
    assert overall_progress("read", 0, 2, align=False) == 0.0
    assert overall_progress("fuse", 1, 1, align=False) == 1.0
    seq = [overall_progress(st, d, 2, align=True) for st in ("align", "read", "fuse") for d in (1, 2)]
    assert seq == sorted(seq) and seq[-1] == 1.0


def _pages(planes) -> bytes:
    import io

    from tiff_support import write_pages

    return write_pages(io.BytesIO(), planes).getvalue()


def test_one_multipage_tiff_is_a_stack_of_its_pages(client, pair):
    a, b = pair
    s = fuse_ok(client, [_pages([a, b])], names=["z.tif"], method="focus-map", depth_map="true")
    assert s["frames"] == 2 and s["names"] == ["z.tif plane 1", "z.tif plane 2"]
    ref = fuse_ok(client, [a, b], method="focus-map", depth_map="true")
    for what in ("fused", "depth"):
        np.testing.assert_array_equal(decode(client.get(f"/api/jobs/{s['id']}/{what}").content),
                                      decode(client.get(f"/api/jobs/{ref['id']}/{what}").content))
    np.testing.assert_array_equal(decode(client.get(f"/api/jobs/{s['id']}/frames/1").content), b)
    e = error_of(post(client, [_pages([a, b[:50]])], names=["odd.tif"]), 400)
    assert e.startswith("odd.tif: pages must share a size") and "frame_" not in e, e


# -- bad uploads -------------------------------------------------------------------------------
def test_one_frame(client, pair):
    assert "at least 2 frames, got 1" in error_of(post(client, [pair[0]]), 400)


def test_no_files(client):
    r = client.post("/api/jobs", files=[("method", (None, "average"))])  # multipart without a file
    assert "at least 2 frames, got 0" in error_of(r, 400)
    assert "multipart/form-data" in error_of(client.post("/api/jobs", data={"method": "average"}), 400)
    assert "multipart/form-data" in error_of(client.post("/api/jobs", json={"files": []}), 400)


def test_non_image_extension(client, pair):
    e = error_of(post(client, [pair[0], b"hello"], names=["a.png", "notes.txt"]), 400)
    assert "notes.txt" in e and "not an image file name" in e


def test_text_named_png(client, pair):
    e = error_of(post(client, [pair[0], b"just text, not a picture"], names=["a.png", "b.png"]), 400)
    assert e.startswith("b.png: cannot read image") and "frame_" not in e


def test_different_sizes(client, pair):
    e = error_of(post(client, [pair[0], texture(H, W + 2)], names=["big.png", "small.png"]), 400)
    assert "big.png is 128x96" in e and "small.png is 130x96" in e


def test_different_bit_depths(client, pair):
    e = error_of(post(client, [pair[0], pair[1].astype(np.uint16) * 257]), 400)
    assert "bit depth" in e


def test_path_tricks_in_file_names(client, pair):
    names = ["../../escape.png", "/etc/passwd.png"]
    r = post(client, list(pair), names=names, method="average")
    assert r.status_code == 202, r.text
    s = wait(client, r.json()["id"])
    assert s["state"] == "done" and s["names"] == ["escape.png", "passwd.png"]
    folder = client.app.state.manager.get(s["id"]).folder
    assert sorted(p.name for p in folder.glob("frame_*")) == ["frame_000.png", "frame_001.png"]
    assert not (folder.parent.parent / "escape.png").exists()


@pytest.mark.parametrize("path", ["/api/jobs/..%2F..%2Fetc", "/api/jobs/../../etc/passwd", "/api/jobs/%2Fetc%2Fpasswd",
                                  "/api/jobs/nope", "/api/jobs/" + "A" * 24 + "/fused"])
def test_unknown_and_tricky_ids(client, path):
    r = client.get(path)
    error_of(r, 404)


def test_bad_frame_index(client, pair):
    jid = fuse_ok(client, list(pair), method="average")["id"]
    assert "no frame 2" in error_of(client.get(f"/api/jobs/{jid}/frames/2"), 404)
    assert "numbered from 0" in error_of(client.get(f"/api/jobs/{jid}/frames/-1"), 404)
    error_of(client.get(f"/api/jobs/{jid}/frames/..%2F..%2Fetc"), 404)


# -- limits --------------------------------------------------------------------------------------
def test_upload_too_large(client):
    big = os.urandom(2_100_000)
    e = error_of(post(client, [big, big], names=["a.png", "b.png"]), 413)
    assert "too large" in e and "2 MB" in e


def test_upload_too_large_without_length():
    app = create_app(max_upload_mb=0.5)
    body = b"--x\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.png\"\r\n\r\n" + b"0" * 600_000
    with TestClient(app) as c:
        r = c.post("/api/jobs", content=iter([body, b"\r\n--x--\r\n"]),
                   headers={"content-type": "multipart/form-data; boundary=x"})
        assert "too large" in error_of(r, 413)


def test_too_many_frames(client, pair):
    e = error_of(post(client, [pair[0]] * 5), 400)
    assert "too many frames: 5 (at most 4)" in e
    assert "files" in error_of(post(client, [pair[0]] * 7), 400).lower()  # stopped while parsing


# -- options -------------------------------------------------------------------------------------
@pytest.mark.parametrize("fields, text", [
    ({"method": "nope"}, "unknown method 'nope'"),
    ({"method": "average", "depth_map": "true"}, "no depth map"),
    ({"align": "maybe"}, "align must be true or false"),
    ({"depth_map": "2"}, "depth_map must be true or false"),
    ({"colour": "red"}, "unknown field 'colour'"),
])
def test_bad_options(client, pair, fields, text):
    assert text in error_of(post(client, list(pair), **fields), 400)


def test_bad_query_values(client, pair):
    jid = fuse_ok(client, list(pair), method="average")["id"]
    assert "format must be png or tif" in error_of(client.get(f"/api/jobs/{jid}/fused?format=gif"), 400)
    assert "preview must be" in error_of(client.get(f"/api/jobs/{jid}/fused?preview=perhaps"), 400)


def test_routes_and_methods_answer_json(client):
    assert "not found" in error_of(client.get("/nowhere"), 404)
    assert "not allowed" in error_of(client.delete("/api/jobs"), 405)
    assert "not allowed" in error_of(client.get("/api/jobs"), 405)
    assert "not allowed" in error_of(client.get("/api/jobs/x/retouch"), 405)


def test_internal_error_answers_json(pair, monkeypatch):
    app = create_app()
    with TestClient(app, raise_server_exceptions=False) as c:
        jid = fuse_ok(c, list(pair), method="average")["id"]
        job = app.state.manager.get(jid)
        monkeypatch.setattr(type(job), "render", lambda *a: 1 / 0)
        assert "internal error: ZeroDivisionError" in error_of(c.get(f"/api/jobs/{jid}/fused"), 500)


def test_failed_job_reports_why(client, pair, monkeypatch):
    import mfif.stack

    def boom(*a, **k):
        raise UsageError("frame 1 (frame_001.png) cannot be aligned")

    monkeypatch.setattr(mfif.stack, "fuse_stack", boom)
    r = post(client, list(pair), method="average", align="on")
    s = wait(client, r.json()["id"])
    assert s["state"] == "failed" and "cannot be aligned" in s["error"]
    assert "is failed" in error_of(client.get(f"/api/jobs/{s['id']}/fused"), 409)


def test_host_header_checked(pair):
    app = create_app(allowed_hosts=["127.0.0.1", "localhost"])
    with TestClient(app, base_url="http://evil.example") as c:
        assert "Host header" in error_of(c.get("/api/methods"), 400)
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        assert c.get("/api/methods").status_code == 200


# -- job manager: private folder, ids, expiry ---------------------------------------------------
def test_private_folder_ids_and_cleanup(pair):
    jobs = JobManager(ttl=3600)
    app = create_app(manager=jobs)
    root = jobs.folder
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    with TestClient(app) as c:
        ids = {fuse_ok(c, list(pair), method="average")["id"] for _ in range(2)}
        assert len(ids) == 2 and all(len(i) >= 24 for i in ids)
        assert jobs.sweep() == 0
        assert jobs.sweep(now=time.monotonic() + 7200) == 2
        for i in ids:
            error_of(c.get(f"/api/jobs/{i}"), 404)
        assert list(root.iterdir()) == []
    assert not root.exists()  # deleted at shutdown


# -- command line ------------------------------------------------------------------------------
def test_fuse_does_not_import_the_web_stack():
    code = ("import sys, mfif.cli as c; c.build_parser(); "
            "print(any(m.split('.')[0] in ('starlette', 'uvicorn', 'multipart') or m.startswith('mfif.web') "
            "for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_serve_bad_arguments(capsys):
    from mfif.cli import main

    assert main(["serve", "--port", "70000"]) == 2
    assert "argument --port: must be an integer in 0..65535" in capsys.readouterr().err
    assert main(["serve", "--max-upload-mb", "nan"]) == 2
    assert main(["serve", "--max-frames", "1"]) == 2
    assert main(["serve", "-m", "nope"]) == 2
    assert "unknown method" in capsys.readouterr().err


def test_align_keeps_frames_in_step_with_the_result(client):
    import cv2
    from skimage import data

    a, b = half_blurred_pair(cv2.resize(data.camera(), (200, 160), interpolation=cv2.INTER_AREA), sigma=1.5)
    s = fuse_ok(client, [a, b], method="focus-map", align="yes", depth_map="on")
    assert s["align"] and s["progress"] == 1.0
    frame = decode(client.get(f"/api/jobs/{s['id']}/frames/0?format=png").content)
    assert frame.shape[:2] == (s["height"], s["width"])


def test_alignment_failure_names_the_users_files(client):
    a = texture(160, 200, seed=8)
    b = texture(160, 200, seed=9)  # another scene: nothing to match
    r = post(client, [a, b], names=["left.png", "right.png"], method="focus-map", align="true")
    s = wait(client, r.json()["id"])
    assert s["state"] == "failed" and "could not be aligned" in s["error"]
    assert "left.png" in s["error"] and "frame_" not in s["error"]
