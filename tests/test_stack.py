"""Real-stack pipeline: N sources, tiles, 16-bit end to end, alignment through the CLI."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from skimage import data

from mfif.cli import main
from mfif.io import from_float, read_image, to_float, write_image
from mfif.metrics import decision_accuracy, psnr
from mfif.align import scale_matrix
from mfif.methods import get_method
from mfif.stack import fuse_stack
from mfif.tiling import plan_tiles, ramp
from mfif.synth import make_case
from tiff_support import write_pages


def _write_case(tmp_path, case, dtype=np.uint8, ext=".png"):
    paths = []
    for k, s in enumerate(case.sources):
        paths.append(write_image(tmp_path / f"frame{k + 1}{ext}", from_float(s, dtype)))
    return paths


@pytest.fixture(scope="module")
def photo():
    return to_float(data.astronaut())


@pytest.mark.parametrize("n", [3, 4, 5])
def test_n_source_stack_with_ground_truth(tmp_path, photo, n):
    case = make_case(photo, n_sources=n, rng=np.random.default_rng(n), size=256, radius=(2.5, 5.0))
    paths = _write_case(tmp_path, case)
    gt8 = from_float(case.gt)
    avg = from_float(np.mean(case.sources, axis=0))
    for method in ("focus-map", "sff"):
        res = fuse_stack(paths, method=method)
        assert res.fused.shape == gt8.shape and res.fused.dtype == np.uint8
        assert set(np.unique(res.decision)) <= set(range(n))
        # clearly better than averaging, and the depth map mostly right
        assert psnr(res.fused, gt8) > psnr(avg, gt8) + 4.0, method
        assert decision_accuracy(res.decision, case.mask) > 0.75, method


@pytest.mark.parametrize("method", ["focus-map", "sff"])
@pytest.mark.slow
def test_tiled_equals_untiled(tmp_path, photo, method):
    big = cv2.resize(photo, (640, 560), interpolation=cv2.INTER_CUBIC)
    case = make_case(big, n_sources=2, rng=np.random.default_rng(3), radius=(3.0, 5.0))
    paths = _write_case(tmp_path, case)
    whole = fuse_stack(paths, method=method, tile=0)
    tiled = fuse_stack(paths, method=method, tile=256, overlap=64)
    assert whole.tiles == 1 and tiled.tiles == 9
    # stated tolerance: fused images within 40 dB of each other, decisions agree on 99 % of pixels
    assert psnr(tiled.fused, whole.fused) > 40.0
    assert np.mean(tiled.decision == whole.decision) > 0.99


@pytest.mark.slow  # ~6 s
def test_tiled_equals_untiled_sff_fast(tmp_path, photo):
    """sff-fast in 2 x 2 tiles with its 160-px halo: the tiles count in the whole image's noise
    sigma (estimated once), so areas without detail that span tiles are decided alike. Stated
    tolerance as for the Dask engine: PSNR above 40 dB, decisions above 98 % (the measured
    agreement, and what it was when each tile estimated its own sigma, are in docs/scale.md)."""
    case = make_case(photo, n_sources=3, rng=np.random.default_rng(0), size=(768, 768))
    paths = _write_case(tmp_path, case)
    whole = fuse_stack(paths, method="sff-fast", tile=0)
    tiled = fuse_stack(paths, method="sff-fast", tile=384, overlap=160)
    assert whole.tiles == 1 and tiled.tiles == 4
    assert psnr(tiled.fused, whole.fused) > 40.0
    assert np.mean(tiled.decision == whole.decision) > 0.98


@pytest.mark.parametrize("method", ["sff-fast", "focus-map"])
def test_in_memory_frame_cache_equals_the_disk_cache(tmp_path, photo, monkeypatch, method):
    """A small stack is cached in memory (views instead of file reads, its luminance kept); the
    fusion is bit for bit the one from the cache on disk, also when tiled."""
    from mfif import stack

    case = make_case(photo, n_sources=3, rng=np.random.default_rng(5), size=256, radius=(2.5, 5.0))
    paths = _write_case(tmp_path, case)
    made = []
    real = stack.FrameCache

    def spy(*a, **k):
        made.append(k.get("in_memory", False))
        return real(*a, **k)

    monkeypatch.setattr(stack, "FrameCache", spy)
    for tile in (0, 160):
        mem = fuse_stack(paths, method=method, tile=tile, overlap=48)
        monkeypatch.setattr(stack, "IN_MEMORY_SHARE", 0.0)
        disk = fuse_stack(paths, method=method, tile=tile, overlap=48)
        monkeypatch.setattr(stack, "IN_MEMORY_SHARE", 0.1)
        assert np.array_equal(mem.fused, disk.fused) and np.array_equal(mem.decision, disk.decision)
    assert made == [True, False, True, False]
    # a stack over a tenth of the budget goes to disk: 3 RGB frames of 256 x 256 px are 0.59 MB
    fuse_stack(paths, method=method, max_memory_mb=5.0, tile=256)
    assert made[-1] is False


@pytest.mark.parametrize("preadv", [True, False])
def test_frame_cache_reads_from_threads_at_once(monkeypatch, preadv):
    """Boxes read by several threads at once come back right, with positional reads and with
    the locked seek-and-read used where the platform has no os.preadv."""
    from concurrent.futures import ThreadPoolExecutor

    from mfif import stack

    monkeypatch.setattr(stack, "_PREADV", preadv and stack._PREADV)
    rng = np.random.default_rng(4)
    frames = (rng.random((3, 120, 90, 3)) * 65535).astype(np.uint16)
    boxes = [(k % 3, y, y + 37, x, x + 29) for k, (y, x) in enumerate((y, x) for y in range(0, 80, 9) for x in range(0, 60, 7))]
    with stack.FrameCache(3, (120, 90, 3), np.uint16) as cache:
        for i, f in enumerate(frames):
            cache.write(i, f)
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda b: cache.read(*b), boxes))
    for (k, y0, y1, x0, x1), g in zip(boxes, got):
        assert np.array_equal(g, frames[k, y0:y1, x0:x1])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_row_band_equals_a_full_size_accumulator(dtype):
    """Feathering tiles through the band of rows they still write gives the full-size
    accumulator's image exactly, at the memory of one row of tiles."""
    from mfif.stack import _RowBand
    from mfif.tiling import tiles

    rng = np.random.default_rng(9)
    h, w, tile, ov = 301, 250, 64, 20
    acc, wsum = np.zeros((h, w, 3), np.float32), np.zeros((h, w), np.float32)
    band = _RowBand(np.empty((h, w, 3), dtype), tile + 2 * ov)
    assert band.acc.shape[0] == tile + 2 * ov
    for (cy0, cx0, cy1, cx1), (py0, px0, py1, px1) in tiles(h, w, tile, ov):
        f = rng.random((py1 - py0, px1 - px0, 3)).astype(np.float32) * 1.1 - 0.05
        wt = ramp(py1 - py0, cy0 - py0, py1 - cy1, ov)[:, None] * ramp(px1 - px0, cx0 - px0, px1 - cx1, ov)[None, :]
        acc[py0:py1, px0:px1] += f * wt[..., None]
        wsum[py0:py1, px0:px1] += wt
        band.add(py0, px0, f, wt)
    ref = acc / wsum[..., None]
    got = band.finish()
    assert got.dtype == dtype
    assert np.array_equal(got, ref if dtype == np.float32 else from_float(ref, dtype))


def test_16bit_tiff_stack_stays_16bit(tmp_path, photo):
    # give the photo detail below 1/255 so that an 8-bit step anywhere would be visible
    fine = np.clip(photo + np.random.default_rng(1).uniform(0, 1 / 255, photo.shape), 0, 1).astype(np.float32)
    case = make_case(fine, n_sources=2, rng=np.random.default_rng(5), size=128, radius=(2.0, 4.0))
    paths = _write_case(tmp_path, case, dtype=np.uint16, ext=".tif")
    out = tmp_path / "fused.tif"
    assert main(["fuse", *map(str, paths), "-o", str(out), "-m", "focus-map", "-q"]) == 0
    fused = read_image(out)
    assert fused.dtype == np.uint16 and fused.shape == case.gt.shape
    # no 8-bit step inside: values use the 16-bit range finely (not multiples of 257)
    assert np.mean(fused % 257 != 0) > 0.9
    # away from decision boundaries the fused value is the chosen source's 16-bit value (to within
    # 2 LSB of float rounding; an 8-bit step would cost up to 128 LSB)
    res = fuse_stack(paths, method="focus-map")
    np.testing.assert_array_equal(res.fused, fused)
    srcs = [read_image(p) for p in paths]
    checked = 0
    for k, src in enumerate(srcs):
        # the guided filter (radius 8) reaches 2 x 8 px: look further inside than that
        inner = cv2.erode((res.decision == k).astype(np.uint8), np.ones((37, 37), np.uint8)).astype(bool)
        checked += inner.sum()
        assert np.mean(np.abs(fused[inner].astype(int) - src[inner]) <= 2) > 0.99
    assert checked > 0.1 * fused.shape[0] * fused.shape[1]
    gt16 = from_float(case.gt, np.uint16)
    assert psnr(fused, gt16) > 30.0


def _tile(n, mb, method, params, size=4000):
    """The tile fuse_stack plans for a size x size RGB stack of n frames."""
    plan = plan_tiles(get_method(method), params, n, size, size, max_memory_mb=mb)
    return plan.tile, {**params, **plan.fitted}


def test_tile_plan_follows_budget_frames_and_method():
    assert _tile(2, 4096, "focus-map", {}, size=1000)[0] == 0  # one tile
    sff = {"threads": 2}  # the CNN's workers would otherwise follow this machine's core count
    for method, params in (("focus-map", {}), ("sff", sff), ("sff", {**sff, "scale": 0.5})):
        sides = [_tile(10, mb, method, params)[0] for mb in (800, 1500, 3000)]
        assert 256 < sides[0] < sides[1] < sides[2] < 4000, (method, sides)  # grows with the budget
        assert all(t % 64 == 0 for t in sides)
        by_n = [_tile(n, 1500, method, params)[0] for n in (5, 10, 20)]
        assert by_n[0] > by_n[1] > by_n[2] >= 256, (method, by_n)  # shrinks with the number of frames
    # SFF's CNN needs more than a focus measure: a smaller tile at the same budget
    for n in (5, 10, 20):
        fm, sf, sf_half = (_tile(n, 1500, m, p)[0] for m, p in (("focus-map", {}), ("sff", sff),
                                                                ("sff", {**sff, "scale": 0.5})))
        assert sf <= sf_half < fm, (n, sf, sf_half, fm)
    # more CNN workers hold more internal tiles: a smaller stack tile
    assert _tile(10, 3000, "sff", {"threads": 8, "tile": 384})[0] < _tile(10, 3000, "sff", {"threads": 1, "tile": 384})[0]
    # a budget too small for any tile gives the smallest one, and says it does not fit
    plan = plan_tiles(get_method("sff"), sff, 20, 4000, 4000, max_memory_mb=100)
    assert plan.tile == 256 and plan.need_mb > 100
    # the overlap is the method's declared halo unless given
    assert plan.overlap == get_method("sff").halo
    assert plan_tiles(get_method("sff"), sff, 2, 500, 500, max_memory_mb=4096, overlap=10).overlap == 10


def test_inner_pass_is_fitted_tile_first_then_workers():
    fit = lambda given, n, mb: plan_tiles(get_method("sff"), given, n, 4000, 4000, max_memory_mb=mb).fitted  # noqa: E731
    assert plan_tiles(get_method("focus-map"), {}, 20, 4000, 4000, max_memory_mb=100).fitted == {}
    assert fit({"threads": 2}, 5, 8000) == {}  # fits as it is
    small = fit({"threads": 2}, 20, 1500)
    assert set(small) == {"tile"} and 192 <= small["tile"] < 384
    many = fit({}, 20, 300)
    assert many["tile"] == 192 and ("threads" not in many or many["threads"] >= 1)
    # options the user set are kept
    assert fit({"tile": 384, "threads": 16}, 20, 300) == {}
    assert fit({"tile": 384}, 20, 300).get("threads", 1) == 1
    # a tile given by the user is taken as it is: nothing fitted
    assert plan_tiles(get_method("sff"), {}, 20, 4000, 4000, max_memory_mb=300, tile=512).fitted == {}


def test_engine_names_no_method():
    """The tiling engine learns everything about a method from its registry entry."""
    import inspect

    import mfif.stack
    import mfif.tiling
    from mfif.methods import METHODS

    for mod in (mfif.stack, mfif.tiling):
        src = inspect.getsource(mod)
        for name in METHODS:
            assert f'"{name}"' not in src, (mod.__name__, name)


_PEAK = r"""
import gc, json, sys
from mfif.api import fuse
from mfif.stack import fuse_stack
import numpy as np
fuse(list(np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)), method="focus-map")
gc.collect()
rss = lambda key: int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1]) * 1024
base = rss("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # peak := now
res = fuse_stack(sys.argv[2:], method="focus-map", max_memory_mb=float(sys.argv[1]))
print(json.dumps({"tiles": res.tiles, "tile": res.tile_size, "peak": (rss("VmHWM") - base) / 1e6}))
"""


@pytest.mark.slow
def test_small_budget_gives_tiles_and_bounds_peak_memory(tmp_path, photo):
    """In a fresh process: a budget well below one tile's working set splits the stack into
    tiles, and the peak resident memory over the baseline stays within the budget."""
    import json
    import os
    import subprocess
    import sys

    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux /proc/self/clear_refs to measure the peak")
    big = cv2.resize(photo, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    case = make_case(big, n_sources=4, rng=np.random.default_rng(7), radius=(2.0, 4.0))
    paths = _write_case(tmp_path, case)
    whole = plan_tiles(get_method("focus-map"), {}, 4, 1024, 1024, max_memory_mb=1e6).need_mb
    budget = 120.0
    assert whole > 1.5 * budget  # one tile would not fit
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(os.path.dirname(__file__), "..", "src"),
                                                       os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", _PEAK, str(budget), *map(str, paths)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["tiles"] > 1 and r["tile"] >= 256
    assert r["peak"] <= budget, r


def test_scale_transform_round_trip():
    t_small = np.array([[1.01, -0.02, 3.0], [0.02, 1.01, -2.0], [0, 0, 1]])
    s = 0.25
    t_full = np.linalg.inv(scale_matrix(s)) @ t_small @ scale_matrix(s)
    p_full = np.array([800.0, 600.0, 1.0])
    a = np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5], [0, 0, 1]])
    np.testing.assert_allclose(a @ (t_full @ p_full), t_small @ (a @ p_full), atol=1e-9)


def test_cli_aligns_a_shifted_stack(tmp_path, photo):
    case = make_case(photo, n_sources=2, rng=np.random.default_rng(9), size=384, radius=(2.0, 4.0))
    a, b = (from_float(s) for s in case.sources)
    m = np.float32([[1.0, 0.0, 6.5], [0.0, 1.0, -4.0]])
    b_shift = cv2.warpAffine(b, m, (b.shape[1], b.shape[0]), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    pa, pb = write_image(tmp_path / "a.png", a), write_image(tmp_path / "b.png", b_shift)
    out = tmp_path / "o.png"
    assert main(["fuse", str(pa), str(pb), "-o", str(out), "-m", "focus-map", "--align", "-q"]) == 0
    fused = read_image(out)
    assert fused.shape[0] <= 384 - 4 and fused.shape[1] <= 384 - 6  # cropped to the common area
    assert fused.shape[0] >= 384 - 12 and fused.shape[1] >= 384 - 14


def test_cli_unalignable_frame_is_a_clear_error(tmp_path, photo, capsys):
    a = from_float(photo[:256, :256])
    noise = np.random.default_rng(0).integers(0, 256, a.shape, dtype=np.uint8)
    pa, pb = write_image(tmp_path / "a.png", a), write_image(tmp_path / "noise.png", noise)
    code = main(["fuse", str(pa), str(pb), "-o", str(tmp_path / "o.png"), "-m", "average", "--align"])
    err = capsys.readouterr().err
    assert code == 2
    assert "could not be aligned" in err and "noise.png" in err
    assert "Traceback" not in err


def test_frames_decoded_ahead_are_the_frames_and_keep_their_errors(tmp_path):
    """A frame decoded ahead on a thread is the frame read directly; a decoding error there is
    raised by the read that asks for it, as the direct read would."""
    from pathlib import Path

    from mfif.errors import UsageError
    from mfif.stack import _Frames

    imgs = {Path(f"f{k}"): np.full((4, 5), k, np.uint8) for k in range(4)}

    def read(p):
        if p.name == "f2":
            raise UsageError(f"{p}: not an image")
        return imgs[p].copy()

    frames = _Frames(list(imgs), read)
    for p in (Path("f1"), Path("f3")):
        frames.prefetch(p)
    assert (frames.read(Path("f0")) == 0).all() and (frames.read(Path("f1")) == 1).all()
    assert (frames.read(Path("f3")) == 3).all()
    frames.prefetch(Path("f2"))
    with pytest.raises(UsageError, match="f2: not an image"):
        frames.read(Path("f2"))


# ---------------------------------------------------------------------------------------------
# a multi-page TIFF z-stack on the local engine: its pages are the frames
# ---------------------------------------------------------------------------------------------
def _zcase(photo, n=3, size=200):
    case = make_case(photo, n_sources=n, rng=np.random.default_rng(11), size=size, radius=(2.0, 4.0))
    return case, np.stack([from_float(s) for s in case.sources])


@pytest.mark.parametrize("kind", ["rgb", "gray16", "int16"])
def test_multipage_tiff_fuses_as_its_pages_given_as_files(tmp_path, photo, kind):
    """The pages of one multi-page TIFF fuse exactly as the same planes written as files, for
    the API and the CLI; signed planes read as float32 in their own range, as files are."""
    import tifffile

    from mfif.io import tiff_stack_planes

    case, z = _zcase(photo)
    if kind == "gray16":
        z = from_float(np.mean(case.sources, axis=-1), np.uint16)
    elif kind == "int16":
        z = (from_float(np.mean(case.sources, axis=-1), np.uint16) // 2).astype(np.int16) - 8000
    src = write_pages(tmp_path / "z.tif", z, tile=(64, 64) if kind == "rgb" else None)
    files = []
    for k, p in enumerate(z):  # plain TIFF files (write_image writes no signed pixels)
        tifffile.imwrite(tmp_path / f"f{k}.tif", p, photometric="rgb" if p.ndim == 3 else "minisblack")
        files.append(tmp_path / f"f{k}.tif")
    planes = tiff_stack_planes(src)
    assert [p.name for p in planes] == ["z.tif plane 1", "z.tif plane 2", "z.tif plane 3"]
    for p, want in zip(planes, z):
        got = read_image(p)
        assert got.dtype == (np.float32 if kind == "int16" else z.dtype) and np.array_equal(got, want)
    a, b = fuse_stack([src], method="focus-map"), fuse_stack(files, method="focus-map")
    assert np.array_equal(a.fused, b.fused) and np.array_equal(a.decision, b.decision)
    assert main(["fuse", str(src), "-o", str(tmp_path / "o.tif"), "-m", "focus-map", "-q",
                 "--depth-map", str(tmp_path / "d.png")]) == 0
    assert np.array_equal(read_image(tmp_path / "o.tif"), b.fused)
    assert np.array_equal(read_image(tmp_path / "d.png"), b.decision)


def test_multipage_tiff_on_the_local_engine_needs_no_dask(tmp_path, photo):
    """A small z-stack starts without importing Dask or zarr, keeps the stage maps and the depth
    map, and fuses its planes in page order (reversing the pages reverses the depth map)."""
    import subprocess
    import sys

    case, z = _zcase(photo)
    src, rev = write_pages(tmp_path / "z.tif", z), write_pages(tmp_path / "r.tif", z[::-1])
    code = ("import sys; from mfif.cli import main; rc = main(['fuse', sys.argv[1], '-o', sys.argv[2], "
            "'--depth-map', sys.argv[3], '--save-maps', sys.argv[4], '-q']); "
            "print(rc, 'dask' in sys.modules, 'zarr' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, src, tmp_path / "o.png", tmp_path / "d.png", tmp_path / "m"],
                         capture_output=True, text=True)
    assert out.stdout.split() == ["0", "False", "False"], out.stderr
    assert (tmp_path / "m" / "decision.png").is_file() and (tmp_path / "d-preview.png").is_file()
    d = read_image(tmp_path / "d.png")
    assert decision_accuracy(d, case.mask) > 0.75
    assert main(["fuse", str(rev), "-o", str(tmp_path / "r.png"), "--depth-map", str(tmp_path / "rd.png"), "-q"]) == 0
    assert np.mean(read_image(tmp_path / "rd.png") == 2 - d) > 0.99


def test_multipage_tiff_bad_planes_are_one_line_before_any_output(tmp_path, photo, capsys):
    _, z = _zcase(photo, size=96)
    bad = z[..., 0].astype(np.float32) / 255
    bad[1, 3, 4] = np.inf
    cases = [(write_pages(tmp_path / "inf.tif", bad), ["inf.tif plane 2", "NaN or infinite"]),
             (write_pages(tmp_path / "one.tif", z[:1]), ["one.tif", "need at least 2 sources"])]
    write_pages(tmp_path / "mixed.tif", [z[0], z[1, :50]])
    cases.append((tmp_path / "mixed.tif", ["mixed.tif", "pages must share a size", "96x50"]))
    for src, fragments in cases:
        before = sorted(p.name for p in tmp_path.iterdir())
        code = main(["fuse", str(src), "-o", str(tmp_path / "o.tif")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and err.startswith("mfif: error: "), err
        assert all(f in err for f in fragments), (fragments, err)
        assert sorted(p.name for p in tmp_path.iterdir()) == before
    good = write_pages(tmp_path / "good.tif", z)
    assert main(["fuse", str(good), "-o", str(good)]) == 2
    assert "refusing to overwrite an input" in capsys.readouterr().err


@pytest.mark.parametrize("axes, kind, fragments", [
    ("CZYX", "ome", ["3 channels x 4 z-planes", "axes CZYX"]),
    ("ZCYX", "imagej", ["4 z-planes x 3 channels", "axes ZCYX"]),
    ("TZYX", "ome", ["3 time points x 4 z-planes"]),
    ("CYX", "ome", ["its pages are 3 channels", "not focal planes"]),
    ("CYX", "imagej", ["its pages are 3 channels", "not focal planes"]),
])
def test_hyperstack_pages_that_are_not_one_z_stack_are_refused(tmp_path, capsys, axes, kind, fragments):
    """Channels or time points stored as pages of an OME-TIFF or ImageJ hyperstack are not focal
    planes: fusing them as one stack would mix them, so it is refused in one line, before any
    output (the Dask engine reads the same layout)."""
    import tifffile

    shape = {"C": 3, "Z": 4, "T": 3, "Y": 32, "X": 40}
    z = np.random.default_rng(0).integers(0, 4000, [shape[a] for a in axes]).astype(np.uint16)
    tifffile.imwrite(tmp_path / "h.tif", z, **{kind: True}, metadata={"axes": axes})
    code = main(["fuse", str(tmp_path / "h.tif"), "-o", str(tmp_path / "o.tif"), "-m", "average"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "h.tif" in err, err
    assert all(f in err for f in fragments), (fragments, err)
    assert not (tmp_path / "o.tif").exists()


@pytest.mark.parametrize("axes, kind", [("ZYX", "ome"), ("ZYX", "imagej"), ("TYX", "ome")])
def test_hyperstacks_of_one_plane_axis_fuse(tmp_path, axes, kind):
    import tifffile

    _, z = _zcase(to_float(data.astronaut()), size=96)
    g = z[..., 1]
    tifffile.imwrite(tmp_path / "h.tif", g, **{kind: True}, metadata={"axes": axes})
    assert main(["fuse", str(tmp_path / "h.tif"), "-o", str(tmp_path / "o.tif"), "-m", "average", "-q"]) == 0
    assert np.array_equal(read_image(tmp_path / "o.tif"), np.rint(g.astype(np.float32).mean(0)).astype(np.uint8))


@pytest.mark.parametrize("alpha_of", ["rgb", "gray"])
def test_multipage_tiff_alpha_is_dropped_as_for_files(tmp_path, photo, alpha_of):
    """RGBA (or gray + alpha) pages fuse as their colour samples, as RGBA files do."""
    import tifffile

    case, z = _zcase(photo, size=96)
    if alpha_of == "gray":
        z = z[..., 1]
    alpha = np.full(z.shape[:3] + (1,), 200, np.uint8)
    za = np.concatenate([z if z.ndim == 4 else z[..., None], alpha], axis=-1)
    with tifffile.TiffWriter(tmp_path / "z.tif") as tw:
        for p in za:
            tw.write(p, photometric="rgb" if alpha_of == "rgb" else "minisblack", extrasamples=["unassalpha"])
    files = [write_image(tmp_path / f"f{k}.png", p) for k, p in enumerate(z)]
    got = fuse_stack([tmp_path / "z.tif"], method="focus-map")
    want = fuse_stack(files, method="focus-map")
    assert got.fused.shape == want.fused.shape and np.array_equal(got.fused, want.fused)
    dask = pytest.importorskip("dask")
    from mfif.engines.dask import fuse_dask
    from mfif.zstack import open_zstack

    arr = open_zstack(tmp_path / "z.tif", chunk=64).array
    assert arr.shape == z.shape and np.array_equal(arr.compute(), z)
    assert np.array_equal(np.asarray(arr[1, 10:20, 5:9]), z[1, 10:20, 5:9])
    f, _ = dask.compute(*fuse_dask(arr, method="focus-map", chunk=64))
    assert f.shape == z.shape[1:]


def test_a_folder_or_glob_holding_one_multipage_tiff_fuses_its_pages(tmp_path, photo):
    _, z = _zcase(photo, size=96)
    (tmp_path / "stack").mkdir()
    write_pages(tmp_path / "stack" / "z.tif", z)
    want = fuse_stack([tmp_path / "stack" / "z.tif"], method="focus-map").fused
    for spec in (tmp_path / "stack", tmp_path / "stack" / "*.tif"):
        out = tmp_path / "o.png"
        assert main(["fuse", str(spec), "-o", str(out), "-m", "focus-map", "-q"]) == 0
        assert np.array_equal(read_image(out), want)
        out.unlink()
    # a batch sub-folder holding one such file is a stack too
    (tmp_path / "shoot" / "slide").mkdir(parents=True)
    os.replace(tmp_path / "stack" / "z.tif", tmp_path / "shoot" / "slide" / "z.tif")
    assert main(["batch", str(tmp_path / "shoot"), "-o", str(tmp_path / "out"), "-m", "focus-map", "-q"]) == 0
    assert np.array_equal(read_image(tmp_path / "out" / "slide.tif"), want)
