"""The Dask engine (mfif.engines.dask), z-stack readers (mfif.zstack), pyramid writers (mfif.ome)
and ``mfif fuse`` on z-stacks.

Tolerance of chunked against whole-image fusion, as the engine's docstring states it: fused PSNR
above 40 dB and depth maps agreeing on more than 99 % of pixels (sff-fast: 98 %).
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

pytest.importorskip("dask")
pytest.importorskip("zarr")

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import zarr  # noqa: E402

import mfif  # noqa: E402
from mfif.cli import main  # noqa: E402
from mfif.engines.dask import compute, fuse_dask, parse_scheduler  # noqa: E402
from mfif.errors import UsageError  # noqa: E402
from mfif.io import from_float, write_image  # noqa: E402
from mfif.ome import LAST_LEVEL_MAX, level_shapes, write_pyramid  # noqa: E402
from mfif.zstack import open_zstack  # noqa: E402
from tiff_support import write_pages  # noqa: E402

PSNR_MIN, AGREE_MIN = 40.0, 0.99
SFF_FAST_AGREE_MIN = 0.98  # sff-fast's depth maps: see test_chunked_equals_whole_sff_fast


def psnr(a, b, peak=255.0) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak ** 2 / mse)


@pytest.fixture(scope="module")
def planes():
    """3 focal planes of 300x260 RGB uint8, synthesised from skimage's astronaut."""
    from skimage.data import astronaut

    from mfif.synth import make_case

    case = make_case(astronaut(), n_sources=3, rng=np.random.default_rng(0), size=(300, 260))
    return np.stack([from_float(np.clip(s, 0, 1), np.uint8) for s in case.sources])


def write_ngff_zstack(path, z, axes=("z", "y", "x")):
    """A minimal OME-Zarr (NGFF 0.4) image of one level, axes as named."""
    g = zarr.open_group(str(path), mode="w", zarr_format=2)
    a = g.create_array("0", shape=z.shape, chunks=tuple(min(s, 64) for s in z.shape), dtype=z.dtype)
    a[...] = z
    g.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": n} for n in axes],
                               "datasets": [{"path": "0", "coordinateTransformations": [
                                   {"type": "scale", "scale": [1.0] * len(axes)}]}]}]
    return path


# --------------------------------------------------------------------------------------------
# engine: chunked equals whole within the stated tolerance
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["focus-map", pytest.param("sff", marks=pytest.mark.slow)])  # sff: ~5 s
def test_chunked_equals_whole(planes, method):
    whole = mfif.fuse(list(planes), method=method)
    fused, depth = fuse_dask(planes, method=method, chunk=128)
    assert fused.numblocks[:2] == (2, 2)
    with dask.config.set(scheduler="threads"):
        f, d = dask.compute(fused, depth)
    assert f.dtype == np.uint8 and d.dtype == np.uint16 and f.shape == planes.shape[1:]
    assert psnr(f, from_float(whole.fused, np.uint8)) > PSNR_MIN
    assert np.mean(d == whole.decision) > AGREE_MIN


@pytest.mark.slow  # ~5 s
def test_chunked_equals_whole_sff_fast():
    """sff-fast (halo 160 px) in 2 x 2 chunks of 384 px. Its weak-evidence fill spreads labels
    further than the halo, into areas without detail where either plane is as sharp, and each
    chunk gives its own part of a large area without detail (``flat=``) to one frame by its own
    vote, so the stated tolerance for its depth map is looser: PSNR above 40 dB, decisions above
    98 % (measured: 99.7 %, docs/scale.md). The chunks count in the whole stack's noise sigma;
    with each chunk estimating its own, agreement here was 88.4 %."""
    from skimage.data import astronaut

    from mfif.synth import make_case

    case = make_case(astronaut(), n_sources=3, rng=np.random.default_rng(0), size=(768, 768))
    z = np.stack([from_float(np.clip(s, 0, 1), np.uint8) for s in case.sources])
    whole = mfif.fuse(list(z), method="sff-fast")
    fused, depth = fuse_dask(z, method="sff-fast", chunk=384)
    assert fused.numblocks[:2] == (2, 2)
    f, d = dask.compute(fused, depth, scheduler="threads")
    assert psnr(f, from_float(whole.fused, np.uint8)) > PSNR_MIN
    assert np.mean(d == whole.decision) > SFF_FAST_AGREE_MIN


def test_chunks_get_the_whole_stacks_noise(planes, monkeypatch):
    """Every chunk of sff-fast is given one noise sigma: the whole stack's, as a whole-image run
    estimates it; an option the user gives is kept, one chunk estimates its own."""
    import mfif.engines.dask as engine
    from mfif.consistency import frames_noise
    from mfif.frames import ArrayFrames
    from mfif.io import to_float

    seen = []
    real = engine.fuse

    def spy(frames, **kw):
        seen.append(kw.get("noise"))
        return real(frames, **kw)

    monkeypatch.setattr(engine, "fuse", spy)
    tall = np.concatenate([planes, planes[:, ::-1]], axis=1)  # 600 x 260: 3 chunks of 160+ px
    expected = frames_noise(ArrayFrames([to_float(p) for p in tall]))
    assert expected > 0
    dask.compute(*fuse_dask(tall, method="sff-fast", chunk=160), scheduler="sync")
    assert len(seen) == 3 and all(v == pytest.approx(expected, rel=1e-6) for v in seen)
    seen.clear()
    dask.compute(*fuse_dask(tall, method="sff-fast", chunk=160, noise=0.25), scheduler="sync")
    assert seen == [0.25] * 3
    seen.clear()
    dask.compute(*fuse_dask(tall, method="sff-fast", chunk=1024), scheduler="sync")
    assert seen == [None]
    seen.clear()
    dask.compute(*fuse_dask(tall, method="focus-map", chunk=160), scheduler="sync")
    assert len(seen) > 1 and seen == [None] * len(seen)  # focus-map counts in no noise level


def test_float_stack_maps_by_whole_range(planes):
    z = planes[..., 1].astype(np.float32) * 4.0 - 100.0  # calibrated intensities outside [0, 1]
    whole = mfif.fuse(list(z), method="focus-map")
    f, _ = dask.compute(*fuse_dask(z, method="focus-map", chunk=128))
    assert f.dtype == np.float32
    assert psnr(f, whole.fused, peak=float(z.max() - z.min())) > PSNR_MIN


def test_gray_uint16_and_no_decision(planes):
    z = planes[..., 0].astype(np.uint16) * 257
    f, d = fuse_dask(z, method="average", chunk=128)
    assert d is None
    assert np.array_equal(f.compute(), from_float(mfif.fuse(list(z), method="average").fused, np.uint16))


def test_chunk_from_worker_budget(planes):
    small, _ = fuse_dask(planes, method="focus-map", worker_memory_mb=40)
    large, _ = fuse_dask(planes, method="focus-map", worker_memory_mb=4000)
    assert small.chunks[0][0] < large.chunks[0][0] or large.numblocks == (1, 1, 1)
    assert 256 <= small.chunks[0][0]


def test_chunk_tasks_read_their_own_window_and_share_nothing(planes):
    """Every fusion task depends on the one source key only (no overlap or rechunk pieces a worker
    would hold for its neighbours), and reads exactly its chunk plus the halo, clipped at the edges."""
    from mfif.methods import get_method

    class Spy:
        shape, dtype, ndim = planes.shape, planes.dtype, planes.ndim

        def __init__(self):
            self.windows = []

        def __getitem__(self, key):
            self.windows.append(tuple((k.start, k.stop) for k in key[1:3]))
            return planes[key]

    spy = Spy()
    fused, _ = fuse_dask(spy, method="focus-map", chunk=128)
    graph = dict(fused.__dask_graph__())
    tasks = [k for k in graph if isinstance(k, tuple) and str(k[0]).startswith("_fuse_window")]
    assert len(tasks) == 4
    deps = {str(d) for k in tasks for d in graph[k].dependencies}
    assert len(deps) == 1 and next(iter(deps)).startswith("zstack-planes-")
    f = fused.compute(scheduler="sync")
    halo = get_method("focus-map").halo
    expect = {((max(0, y0 - halo), min(300, y1 + halo)), (max(0, x0 - halo), min(260, x1 + halo)))
              for y0, y1 in ((0, 128), (128, 300)) for x0, x1 in ((0, 128), (128, 260))}
    assert set(spy.windows) == expect
    assert np.array_equal(f, fuse_dask(planes, method="focus-map", chunk=128)[0].compute(scheduler="sync"))


def test_tiff_planes_in_files_are_read_window_by_window(tmp_path, planes, monkeypatch):
    """A folder of plain (tiled) TIFF planes is read tile by tile, never decoded whole; a rotated
    TIFF (orientation 6) is decoded whole, upright; both equal what read_image gives."""
    import mfif.zstack as zs

    for k, p in enumerate(planes):
        tifffile.imwrite(tmp_path / f"p{k}.tif", p, photometric="rgb", tile=(64, 64))
    decoded = []
    real = zs.read_image
    monkeypatch.setattr(zs, "read_image", lambda p: decoded.append(p) or real(p))
    zs._decoded_files.cache_clear()
    s = open_zstack([tmp_path], chunk=64)
    assert np.array_equal(s.array[:, 30:200, 40:170].compute(scheduler="threads"), planes[:, 30:200, 40:170])
    assert decoded == []
    rot = tmp_path / "rot"
    rot.mkdir()
    for k, p in enumerate(planes):  # stored sideways, tagged to be shown upright
        tifffile.imwrite(rot / f"p{k}.tif", np.ascontiguousarray(np.rot90(p, 1)), photometric="rgb",
                         extratags=[(274, "H", 1, 6, True)])
    assert zs.window_page(rot / "p0.tif") is None and zs.window_page(tmp_path / "p0.tif") == 0
    upright = np.stack([real(rot / f"p{k}.tif") for k in range(len(planes))])
    assert np.array_equal(open_zstack([rot], chunk=64).array.compute(scheduler="threads"), upright)
    assert len(decoded) == 3


def test_tiff_planes_too_large_to_decode_go_to_the_dask_engine(tmp_path, planes, capsys):
    for k, p in enumerate(planes):
        tifffile.imwrite(tmp_path / f"p{k}.tif", p, photometric="rgb", tile=(64, 64))
        write_image(tmp_path / f"p{k}.png", p)
    tifs = [str(tmp_path / f"p{k}.tif") for k in range(3)]
    pngs = [str(tmp_path / f"p{k}.png") for k in range(3)]
    # 300 x 260 x 3 bytes = 0.23 MB a plane: more than a 0.1 MB budget, less than 1 MB
    code, err = run_cli(["fuse", *tifs, "-o", tmp_path / "a.tif", "-m", "focus-map", "--max-memory", "0.1"], capsys)
    assert code == 0 and "on Dask" in err, err
    code, err = run_cli(["fuse", *tifs, "-o", tmp_path / "b.tif", "-m", "focus-map", "--max-memory", "1"], capsys)
    assert code == 0 and "on Dask" not in err, err
    code, err = run_cli(["fuse", *pngs, "-o", tmp_path / "c.png", "-m", "focus-map", "--max-memory", "0.1"], capsys)
    assert code == 0 and "on Dask" not in err, err  # PNG cannot be read in windows: the local engine
    a, b = mfif.read_image(tmp_path / "a.tif"), mfif.read_image(tmp_path / "b.tif")
    assert psnr(a, b) > PSNR_MIN


def test_multipage_tiff_goes_to_dask_only_when_a_plane_is_too_large(tmp_path, planes, capsys):
    """One multi-page TIFF: the local engine when a decoded plane fits --max-memory (the same
    result as its planes as files), the Dask engine, window by window, when not."""
    src = write_pages(tmp_path / "z.tif", planes, tile=(64, 64))
    code, err = run_cli(["fuse", src, "-o", tmp_path / "a.tif", "-m", "focus-map", "--max-memory", "0.1"], capsys)
    assert code == 0 and "on Dask" in err, err
    code, err = run_cli(["fuse", src, "-o", tmp_path / "b.tif", "-m", "focus-map"], capsys)
    assert code == 0 and "on Dask" not in err, err
    for k, p in enumerate(planes):
        write_image(tmp_path / f"p{k}.png", p)
    from mfif.stack import fuse_stack

    files = fuse_stack(sorted(tmp_path.glob("p*.png")), method="focus-map")
    assert np.array_equal(mfif.read_image(tmp_path / "b.tif"), files.fused)
    assert psnr(mfif.read_image(tmp_path / "a.tif"), files.fused) > PSNR_MIN


def test_without_the_dask_extra_a_clear_line(tmp_path, planes, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "distributed" else real(name, *a))
    src = write_pages(tmp_path / "z.tif", planes)
    code, err = run_cli(["fuse", src, "-o", tmp_path / "f.ome.zarr", "-m", "focus-map"], capsys)
    assert code == 2 and err.strip() == ("mfif: error: this input or output needs the Dask engine, which needs the "
                                         "dask extra (missing: distributed): pip install 'mfif[dask]'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["z.tif"]


def test_file_planes_decode_each_file_once(tmp_path, planes, monkeypatch):
    import mfif.zstack as zs

    for k, p in enumerate(planes):
        write_image(tmp_path / f"p{k}.png", p)
    calls = []
    real = zs.read_image
    monkeypatch.setattr(zs, "read_image", lambda p: calls.append(p) or real(p))
    zs._decoded_files.cache_clear()
    s = open_zstack([tmp_path], chunk=64)
    f, _ = fuse_dask(s.array, method="focus-map", chunk=128)
    f.compute(scheduler="threads")
    assert len(calls) == 3 and np.array_equal(s.array.compute(), planes)


@pytest.mark.parametrize("bad, match", [((np.zeros((1, 50, 50), np.uint8),), "at least 2"),
                                        ((np.zeros((3, 50, 50, 4), np.uint8),), "C = 1 or 3"),
                                        ((np.zeros((3, 50, 50), np.int32),), "pixel type")])
def test_engine_refuses_bad_arrays(bad, match):
    with pytest.raises(UsageError, match=match):
        fuse_dask(bad[0], method="average")


def test_lazy_export_and_plain_fuse_imports_no_dask(tmp_path, planes):
    f, _ = mfif.fuse_dask(planes, method="average", chunk=128)
    assert f.shape == planes.shape[1:]
    write_image(tmp_path / "a.png", planes[0])
    write_image(tmp_path / "b.png", planes[1])
    code = ("import sys; from mfif.cli import main; rc = main(['fuse', sys.argv[1], sys.argv[2], '-o', sys.argv[3], "
            "'-m', 'average', '-q']); print(rc, 'dask' in sys.modules, 'zarr' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, tmp_path / "a.png", tmp_path / "b.png", tmp_path / "o.png"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "False", "False"]


@pytest.mark.parametrize("spec, kind", [(None, "threads"), ("local:2", "local"), ("tcp://10.0.0.1:8786", "remote")])
def test_parse_scheduler(spec, kind):
    assert parse_scheduler(spec)[0] == kind


@pytest.mark.parametrize("spec", ["local:0", "local:x", "http://a:1", "tcp://host", "slurm"])
def test_parse_scheduler_refuses(spec):
    with pytest.raises(UsageError, match="threads, local:N"):
        parse_scheduler(spec)


# --------------------------------------------------------------------------------------------
# readers: same pixels, chunked in Y and X only
# --------------------------------------------------------------------------------------------
def test_multipage_tiff_reads_lazily(tmp_path, planes):
    s = open_zstack(write_pages(tmp_path / "z.tif", planes, tile=(64, 64)), chunk=128)
    assert s.array.chunks[0] == (3,) and s.array.chunks[1][0] == 128 and s.array.chunks[3] == (3,)
    assert np.array_equal(s.array.compute(), planes)
    gray = open_zstack(write_pages(tmp_path / "g.tif", planes[..., 0]), chunk=100)  # strips, not tiles
    assert np.array_equal(gray.array[:, 10:250, 20:200].compute(), planes[:, 10:250, 20:200, 0])


def test_ome_tiff_reads(tmp_path, planes):
    tifffile.imwrite(tmp_path / "z.ome.tif", planes, ome=True, metadata={"axes": "ZYXS"}, photometric="rgb",
                     tile=(64, 64))
    assert np.array_equal(open_zstack(tmp_path / "z.ome.tif", chunk=96).array.compute(), planes)


def test_ome_zarr_reads_z_axis(tmp_path, planes):
    czyx = np.moveaxis(planes, 3, 0)  # NGFF order: c, z, y, x
    s = open_zstack(write_ngff_zstack(tmp_path / "z.ome.zarr", czyx, axes=("c", "z", "y", "x")), chunk=128)
    assert s.array.chunks[0] == (3,)
    assert np.array_equal(s.array.compute(), planes)


def test_files_read_as_stack(tmp_path, planes):
    for i, p in enumerate(planes):
        write_image(tmp_path / f"f{i}.png", p)
    s = open_zstack([tmp_path], chunk=128)
    assert s.n == 3 and np.array_equal(s.array.compute(), planes)


# --------------------------------------------------------------------------------------------
# writers
# --------------------------------------------------------------------------------------------
def test_level_shapes():
    assert level_shapes(300, 260) == [(300, 260), (150, 130), (75, 65)]
    big = level_shapes(40000, 25000)
    assert len(big) >= 3 and max(big[-1]) <= LAST_LEVEL_MAX and max(big[-2]) > LAST_LEVEL_MAX


@pytest.fixture(scope="module")
def big_image():
    rng = np.random.default_rng(3)
    return (rng.random((2100, 1300, 3)) * 255).astype(np.uint8)


def test_ome_tiff_writer(tmp_path, big_image):
    import dask.array as da

    out = write_pyramid(tmp_path / "x.ome.tif", da.from_array(big_image, chunks=(700, 700, 3)), compute=compute)
    assert [p.name for p in tmp_path.iterdir()] == ["x.ome.tif"]  # no temporary left
    with tifffile.TiffFile(out) as tf:
        assert tf.is_ome and tf.is_bigtiff and "<OME" in tf.ome_metadata
        page = tf.pages[0]
        assert page.is_tiled and page.tilewidth == 512 and len(page.subifds) == 2
        levels = tf.series[0].levels
        assert [lv.shape[:2] for lv in levels] == [(2100, 1300), (1050, 650), (525, 325)]
        assert np.array_equal(levels[0].asarray(), big_image)
        assert np.abs(levels[1].asarray().astype(int) - big_image[::2, ::2].astype(int)).max() < 255


def test_ome_zarr_writer(tmp_path, big_image):
    import dask.array as da

    out = write_pyramid(tmp_path / "x.ome.zarr", da.from_array(big_image[..., 0], chunks=700), compute=compute)
    attrs = json.loads((out / ".zattrs").read_text())
    ms = attrs["multiscales"][0]
    assert ms["version"] == "0.4" and [a["name"] for a in ms["axes"]] == ["y", "x"]
    assert [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]] == [[1, 1], [2, 2], [4, 4]]
    g = zarr.open_group(str(out), mode="r")
    shapes = [g[d["path"]].shape for d in ms["datasets"]]
    assert len(shapes) >= 3 and max(shapes[-1][-2:]) <= LAST_LEVEL_MAX
    assert np.array_equal(np.asarray(g["0"])[0], big_image[..., 0])
    again = open_zstack  # the reader refuses it as a z-stack: it has no z axis
    with pytest.raises(UsageError, match="no z axis"):
        again(out)


# --------------------------------------------------------------------------------------------
# mfif fuse on z-stacks
# --------------------------------------------------------------------------------------------
def run_cli(argv, capsys):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def fails_cleanly(argv, folder, capsys, *fragments):
    before = sorted(p.name for p in folder.rglob("*"))
    code, err = run_cli(argv, capsys)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("mfif: error: "), err
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])
    assert sorted(p.name for p in folder.rglob("*")) == before, "a failed run created files"


def test_cli_fuses_multipage_tiff_to_pyramids(tmp_path, planes, capsys):
    src = write_pages(tmp_path / "z.tif", planes)
    code, err = run_cli(["fuse", src, "-o", tmp_path / "f.ome.zarr", "--depth-map", tmp_path / "d.ome.tif",
                         "-m", "focus-map", "--tile", "128"], capsys)
    assert code == 0, err
    f, d = dask.compute(*fuse_dask(planes, method="focus-map", chunk=128))
    g = zarr.open_group(str(tmp_path / "f.ome.zarr"), mode="r")
    assert np.array_equal(np.moveaxis(np.asarray(g["0"]), 0, -1), f)
    with tifffile.TiffFile(tmp_path / "d.ome.tif") as tf:
        assert tf.pages[0].dtype == np.uint16 and np.array_equal(tf.series[0].levels[0].asarray(), d)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.ome.tif", "f.ome.zarr", "z.tif"]


def test_threads_share_the_process_budget(tmp_path, planes, capsys, monkeypatch):
    """On the threads scheduler every thread fuses a chunk at once: --max-memory is divided among
    them (a cluster worker, one thread, gets it whole)."""
    import mfif.engines.dask as engine

    budgets = []
    real = engine.fuse_dask
    monkeypatch.setattr(engine, "fuse_dask", lambda *a, **k: budgets.append(k["worker_memory_mb"]) or real(*a, **k))
    src = write_pages(tmp_path / "z.tif", planes)
    with dask.config.set(num_workers=4):
        code, err = run_cli(["fuse", src, "-o", tmp_path / "f.ome.zarr", "-m", "focus-map", "--max-memory", "2400"],
                            capsys)
    assert code == 0, err
    assert budgets == [600]


def test_cli_cluster_failure_is_one_line_exit_1_and_leaves_nothing(tmp_path, planes, capsys, monkeypatch):
    distributed = pytest.importorskip("distributed")
    import mfif.engines.dask as engine

    def die(objs, progress):
        raise distributed.KilledWorker("('_fuse_window-1', 0, 0, 0)", None, 3)

    monkeypatch.setattr(engine, "_compute", die)
    src = write_pages(tmp_path / "z.tif", planes)
    code, err = run_cli(["fuse", src, "-o", tmp_path / "f.ome.zarr", "--depth-map", tmp_path / "d.ome.tif",
                         "-m", "focus-map"], capsys)
    assert code == 1 and "Traceback" not in err
    assert err.splitlines()[-1].startswith("mfif: error: Dask workers died while running task ('_fuse_window-1'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["z.tif"]


def test_cli_fuses_multipage_tiff_to_plain_image(tmp_path, planes, capsys):
    src = write_pages(tmp_path / "z.tif", planes)
    code, err = run_cli(["fuse", src, "-o", tmp_path / "f.png", "-m", "focus-map", "--depth-map", tmp_path / "d.png"],
                        capsys)
    assert code == 0, err
    whole = mfif.fuse(list(planes), method="focus-map")
    assert psnr(mfif.read_image(tmp_path / "f.png"), from_float(whole.fused, np.uint8)) > PSNR_MIN
    assert (tmp_path / "d-preview.png").is_file()


def test_cli_refuses_pages_of_different_sizes(tmp_path, planes, capsys):
    write_pages(tmp_path / "z.tif", [planes[0], planes[1, :200]])
    fails_cleanly(["fuse", tmp_path / "z.tif", "-o", tmp_path / "o.ome.zarr"], tmp_path, capsys,
                  "z.tif", "pages must share a size", "260x200")


def test_cli_refuses_ome_zarr_without_z(tmp_path, planes, capsys):
    write_ngff_zstack(tmp_path / "i.ome.zarr", planes[0, ..., 0], axes=("y", "x"))
    fails_cleanly(["fuse", tmp_path / "i.ome.zarr", "-o", tmp_path / "o.tif"], tmp_path, capsys,
                  "i.ome.zarr", "no z axis")


def test_cli_refuses_one_plane(tmp_path, planes, capsys):
    write_ngff_zstack(tmp_path / "one.ome.zarr", planes[:1, ..., 0])
    fails_cleanly(["fuse", tmp_path / "one.ome.zarr", "-o", tmp_path / "o.tif"], tmp_path, capsys,
                  "one.ome.zarr", "one plane only")
    tifffile.imwrite(tmp_path / "p.tif", planes[0])
    fails_cleanly(["fuse", tmp_path / "p.tif", "-o", tmp_path / "o.ome.tif"], tmp_path, capsys,
                  "p.tif", "one plane only")


def test_cli_refuses_unreachable_scheduler(tmp_path, planes, capsys):
    src = write_pages(tmp_path / "z.tif", planes)
    fails_cleanly(["fuse", src, "-o", tmp_path / "o.ome.zarr", "--scheduler", "tcp://127.0.0.1:9",
                   "--connect-timeout", "1"], tmp_path, capsys, "tcp://127.0.0.1:9", "cannot reach")
    fails_cleanly(["fuse", src, "-o", tmp_path / "o.ome.zarr", "--scheduler", "slurm"], tmp_path, capsys,
                  "--scheduler slurm")


def _shifted_zstack():
    """A hand-held z-stack with known motion: (planes uint8 RGB, true frame -> reference matrices)."""
    from skimage.data import astronaut

    from mfif.synth import handheld_stack

    st = handheld_stack(astronaut(), rng=np.random.default_rng(4), n=3, size=(420, 300), max_shift=12.0,
                        max_rotation=1.0, breathing=0.01, max_blur=4.0, noise=0.005)
    return np.stack(st.frames), st.transforms, st.reference


def test_align_zstack_recovers_the_motion_chunk_by_chunk():
    from mfif.align import warp_frame
    from mfif.engines.align import align_zstack

    z, truth, ref = _shifted_zstack()
    arr = da.from_array(z, chunks=(1, 128, 128, 3))
    aligned, kept, matrices, box = align_zstack(arr, chunk=128)
    assert kept == [0, 1, 2] and aligned.shape == (3, box[3] - box[1], box[2] - box[0], 3)
    x0, y0, x1, y1 = box
    pts = np.array([[x, y, 1.0] for x in np.linspace(x0, x1 - 1, 5) for y in np.linspace(y0, y1 - 1, 5)]).T
    for i in range(3):  # the recovered matrix maps like the true one, to a fraction of a pixel
        if i == ref:
            np.testing.assert_allclose(matrices[i], np.eye(3), atol=1e-9)
            continue
        got = np.linalg.inv(matrices[i]) @ pts
        want = np.linalg.inv(truth[i]) @ pts
        assert np.abs(got[:2] / got[2] - want[:2] / want[2]).max() < 0.5, i
    # chunk by chunk equals warping each whole plane at once
    out = aligned.compute()
    for i in range(3):
        whole = warp_frame(z[i], matrices[i], box=box)
        assert np.abs(out[i].astype(int) - whole.astype(int)).max() <= 1, i


def test_cli_aligns_a_zstack(tmp_path, capsys):
    z, _, _ = _shifted_zstack()
    src = write_pages(tmp_path / "z.tif", z)
    out = tmp_path / "o.tif"
    assert main(["fuse", str(src), "-o", str(out), "--align", "-m", "focus-map", "-q", "--tile", "128"]) == 0, \
        capsys.readouterr().err
    fused = tifffile.imread(out)
    # the same stack as files through the local engine, aligned with the same registration
    for i, p in enumerate(z):
        write_image(tmp_path / f"f{i}.png", p)
    from mfif.stack import fuse_stack

    local = fuse_stack(sorted(tmp_path.glob("f*.png")), method="focus-map", align=True)
    assert fused.shape == local.fused.shape
    assert psnr(fused, local.fused) > 35.0
    fails_cleanly(["fuse", str(src), "-o", str(tmp_path / "o2.tif"), "--align", "--reference", "7"], tmp_path,
                  capsys, "--reference 7")


def test_cli_refuses_bad_outputs(tmp_path, planes, capsys):
    src = write_pages(tmp_path / "z.tif", planes)
    fails_cleanly(["fuse", src, "-o", tmp_path / "o.ome.tif", "--depth-map", tmp_path / "o.ome.tif", "-m",
                   "focus-map"], tmp_path, capsys, "same file")
    fails_cleanly(["fuse", src, "-o", src], tmp_path, capsys, "refusing to overwrite an input")
    fails_cleanly(["fuse", src, "-o", tmp_path / "o.tif", "-m", "average", "--depth-map", tmp_path / "d.png"],
                  tmp_path, capsys, "no decision map")


def test_cli_folder_on_dask_and_replacing_a_pyramid(tmp_path, planes, capsys):
    src = tmp_path / "frames"
    src.mkdir()
    for i, p in enumerate(planes):
        write_image(src / f"f{i}.png", p)
    out = tmp_path / "f.ome.zarr"
    for _ in range(2):  # the second run replaces the first pyramid once the new one is complete
        code, err = run_cli(["fuse", src, "-o", out, "-m", "average", "-q"], capsys)
        assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.ome.zarr", "frames"]
    g = zarr.open_group(str(out), mode="r")
    expect = from_float(mfif.fuse(list(planes), method="average").fused, np.uint8)
    assert np.array_equal(np.moveaxis(np.asarray(g["0"]), 0, -1), expect)
    (tmp_path / "x.ome.zarr").mkdir()  # a folder that is no OME-Zarr is never replaced
    fails_cleanly(["fuse", src, "-o", tmp_path / "x.ome.zarr", "-m", "average"], tmp_path, capsys,
                  "x.ome.zarr", "not an OME-Zarr")
    fails_cleanly(["fuse", src / "f0.png", src / "f1.png", "-o", src / "f0.ome.tif", "--save-maps", tmp_path / "m"],
                  tmp_path, capsys, "--save-maps")


def test_cli_depth_option_converts_on_the_workers(tmp_path, planes, capsys):
    src = write_pages(tmp_path / "z.tif", planes[..., 0])
    code, err = run_cli(["fuse", src, "-o", tmp_path / "f.tif", "-m", "average", "--depth", "16", "-q"], capsys)
    assert code == 0, err
    got = mfif.read_image(tmp_path / "f.tif")
    expect = from_float(mfif.fuse(list(planes[..., 0]), method="average").fused, np.uint8)
    assert got.dtype == np.uint16 and np.array_equal(got, expect.astype(np.uint16) * 257)
