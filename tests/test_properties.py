"""Property-based checks: options and small inputs drawn at the edges never give a traceback
or silent garbage.

Hypothesis draws sources (one pixel to a few dozen, gray or RGB, 8/16-bit or float with NaN,
infinities, negative and huge values) and options (every method's, the CLI's numeric flags) from
sets that lean on the edges: NaN, inf, negative, zero, huge, the ends of each range. Every call
must either succeed with a finite result of the right shape, type and range, or refuse with a
:class:`~mfif.errors.UsageError` (exit status 2 and one line on the command line).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import mfif  # noqa: E402
from mfif.cli import main  # noqa: E402
from mfif.errors import UsageError  # noqa: E402
from mfif.io import read_image, write_image  # noqa: E402
from mfif.methods import METHODS  # noqa: E402

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                derandomize=True)

EDGE_NUMBERS = ["nan", "inf", "-inf", "-1", "0", "1e-12", "0.5", "1", "3", "64", "1e9", "1e400", "", "x", "2.5"]


def edge_value(param):
    """Values for one method option: its edges, its range ends, its choices, junk."""
    vals = list(EDGE_NUMBERS)
    if param.min is not None:
        vals += [param.min, param.min - 1]
    if param.max is not None:
        vals += [param.max, param.max + 1]
    if param.allowed:
        vals += list(param.allowed)[:3]
    if param.type is float:
        vals += [float("nan"), float("inf"), -0.0]
    return st.sampled_from(vals)


@st.composite
def sources(draw):
    n = draw(st.integers(2, 3))
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    shape = (h, w) + ((3,) if draw(st.booleans()) else ())
    kind = draw(st.sampled_from(["uint8", "uint16", "float_unit", "float_wide", "float_bad"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    out = []
    for _ in range(n):
        if kind == "uint8":
            a = rng.integers(0, 256, shape).astype(np.uint8)
        elif kind == "uint16":
            a = rng.integers(0, 65536, shape).astype(np.uint16)
        elif kind == "float_unit":
            a = rng.random(shape).astype(np.float32)
        elif kind == "float_wide":
            a = ((rng.random(shape) - 0.3) * draw(st.sampled_from([1.0, 255.0, 1e6, 1e30]))).astype(np.float32)
        else:
            a = draw(hnp.arrays(np.float32, shape, elements=st.floats(width=32, allow_nan=True, allow_infinity=True)))
        out.append(a)
    return out


@st.composite
def method_and_options(draw):
    name = draw(st.sampled_from(sorted(METHODS)))
    m = METHODS[name]
    opts = {}
    for p in m.params:
        if p.name in ("weights", "filters", "threads", "tile"):
            continue  # file paths and thread counts: covered elsewhere
        if draw(st.integers(0, 5)) == 0:
            opts[p.name] = draw(edge_value(p))
    return name, opts


def check_fused(res, srcs):
    f = res.fused
    assert f.shape == np.asarray(srcs[0]).shape[:2] + (np.asarray(srcs[0]).shape[2:3] if np.asarray(srcs[0]).ndim == 3 else ())
    assert f.dtype == np.float32
    assert np.isfinite(f).all(), "non-finite fused pixels"
    if any(np.asarray(s).dtype.kind == "f" for s in srcs):
        lo = min(0.0, min(float(np.min(s)) for s in srcs))
        hi = max(1.0, max(float(np.max(s)) for s in srcs))
    else:
        lo, hi = 0.0, 1.0
    span = hi - lo
    assert f.min() >= lo - 1e-5 * span and f.max() <= hi + 1e-5 * span, (f.min(), f.max(), lo, hi)
    if res.decision is not None:
        d = res.decision
        assert d.shape == f.shape[:2] and d.min() >= 0 and d.max() < len(srcs)


@settings(max_examples=120, **SETTINGS)
@given(srcs=sources(), mo=method_and_options())
def test_python_api_never_crashes(srcs, mo):
    name, opts = mo
    try:
        res = mfif.fuse(srcs, method=name, **opts)
    except UsageError as exc:
        event(f"refused: {str(exc).split(':')[0][:30]}")
        return
    event("fused")
    check_fused(res, srcs)


@settings(max_examples=40, **SETTINGS)
@given(srcs=st.lists(hnp.arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 6)),
                                elements=st.floats(width=32)), min_size=0, max_size=3))
def test_python_api_mismatched_inputs(srcs):
    try:
        res = mfif.fuse(srcs, method="average")
    except UsageError:
        return
    check_fused(res, srcs)


def one_error_line(code, err):
    assert "Traceback" not in err and "internal error" not in err, err
    if code != 0:
        assert code == 2, err
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("mfif: error: "), err


@settings(max_examples=150, **SETTINGS)
@given(srcs=sources(), mo=method_and_options(),
       ext=st.sampled_from([".tif"] * 8 + [".png", ".jpg", ".bmp", ".webp", ""]),
       tile=st.sampled_from([None] * 12 + ["0", "-1", "nan", "63", "64", "1e9"]),
       mem=st.sampled_from([None] * 12 + ["nan", "0", "-1", "1", "1e-9", "4096"]),
       depth=st.sampled_from([None] * 6 + ["d.png", "d.tif", "d.jpg", "o"]))
def test_cli_fuse_never_crashes(tmp_path_factory, capsys, srcs, mo, ext, tile, mem, depth):
    d = tmp_path_factory.mktemp("fuse")
    paths = []
    for i, s in enumerate(srcs):
        p = d / (f"s{i}.tif" if s.dtype.kind == "f" or i % 2 else f"s{i}.png")
        try:
            write_image(p, s)
        except UsageError:
            return
        paths.append(str(p))
    name, opts = mo
    out = d / f"o{ext}"
    argv = ["fuse", *paths, "-o", str(out), "-m", name, "-q"]
    for k, v in opts.items():
        argv += ["-p", f"{k}={v}"]
    if tile is not None:
        argv += ["--tile", tile]
    if mem is not None:
        argv += ["--max-memory", mem]
    if depth is not None:
        argv += ["--depth-map", str(d / depth) + (ext if depth == "o" else "")]
    code = main(argv)
    err = capsys.readouterr().err
    one_error_line(code, err)
    event("fused" if code == 0 else "refused: " + " ".join(err.split("error:")[-1].split()[:3])[:60])
    if code == 0:
        if not ext:  # no extension: the frames' own format is added (s0.png or s0.tif)
            out = out.with_name(out.name + Path(paths[0]).suffix)
        img = read_image(out)
        assert img.shape[:2] == srcs[0].shape[:2]
        if img.dtype == np.float32:
            assert np.isfinite(img).all()


@settings(max_examples=40, **SETTINGS)
@given(band=st.sampled_from(["nan", "inf", "-1", "0", "3", "1e9", "x"]),
       fused=st.sampled_from(["same", "nan", "small", "missing"]),
       size=st.tuples(st.integers(1, 12), st.integers(1, 12)))
def test_cli_eval_never_crashes(tmp_path_factory, capsys, band, fused, size):
    d = tmp_path_factory.mktemp("eval")
    rng = np.random.default_rng(0)
    a = rng.random(size).astype(np.float32)
    write_image(d / "a.tif", a)
    write_image(d / "b.tif", a[::-1].copy())
    f = {"same": a, "nan": np.where(a > 0.5, np.nan, a).astype(np.float32),
         "small": a[: max(1, size[0] - 1)], "missing": None}[fused]
    if f is not None:
        import tifffile

        tifffile.imwrite(d / "f.tif", f)
    code = main(["eval", str(d / "f.tif"), str(d / "a.tif"), str(d / "b.tif"), "--band", band, "--json"])
    err = capsys.readouterr().err
    one_error_line(code, err)


@settings(max_examples=40, **SETTINGS)
@given(opts=st.fixed_dictionaries({}, optional={
    "--count": st.sampled_from(["nan", "inf", "0", "-1", "1", "2", "x"]),
    "--counts": st.sampled_from(["inf,0,0", "1,0,0", "0,0,0", "1,1", "nan,1,1", "-1,1,1", "1.5,0,0"]),
    "--split": st.sampled_from(["nan,1,1", "1,0,0", "0,0,0", "1,1", "-1,1,1", "inf,1,1"]),
    "--size": st.sampled_from(["nan", "16", "15", "32", "100000", "1e9", "-16"]),
    "--radius": st.sampled_from(["nan,8", "0,8", "1,inf", "2,1", "0.6,8", "1"]),
    "--fg-fraction": st.sampled_from(["0,1", "0.2,0.6", "nan,0.5", "0.5,0.2", "0.1,0.9"]),
    "--noise": st.sampled_from(["nan", "-1", "0", "0.05", "2", "inf"]),
    "--jpeg": st.sampled_from(["0", "1", "50", "101", "nan"]),
    "--brightness": st.sampled_from(["nan", "-0.1", "0.1", "1", "inf"]),
    "--sources": st.sampled_from(["1", "2", "3", "27", "nan"]),
    "--jobs": st.sampled_from(["0", "1", "-1", "nan"]),
}))
def test_cli_synth_never_crashes(tmp_path_factory, capsys, opts):
    d = tmp_path_factory.mktemp("synth")
    photos = d / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(photos / f"p{i}.png", (rng.random((40, 48, 3)) * 255).astype(np.uint8))
    argv = ["synth", str(photos), str(d / "out"), "-q"]
    if "--count" not in opts and "--counts" not in opts:
        argv += ["--count", "2"]
    if "--size" not in opts:
        argv += ["--size", "32"]
    for k, v in opts.items():
        argv += [k, v]
    code = main(argv)
    err = capsys.readouterr().err
    one_error_line(code, err)
    event("made cases" if code == 0 else "refused")
    if code == 0:
        cases = list((d / "out").rglob("gt.png"))
        for gt in cases:
            assert read_image(gt).dtype == np.uint8


@settings(max_examples=40, **SETTINGS)
@given(photo=hnp.arrays(np.float32, st.tuples(st.integers(1, 40), st.integers(1, 40)),
                        elements=st.floats(width=32, allow_nan=True, allow_infinity=True)),
       n=st.sampled_from([1, 2, 3, float("nan"), 2.5]),
       size=st.sampled_from([None, 16, 15, float("nan"), (16, 20), (16,)]),
       radius=st.sampled_from([(0.6, 8.0), (float("nan"), 8.0), 0.0, (2.0, 1.0), 3.0]))
def test_python_synth_never_crashes(photo, n, size, radius):
    from mfif.synth import make_case

    try:
        case = make_case(photo, n_sources=n, rng=np.random.default_rng(0), size=size, radius=radius)
    except UsageError:
        return
    for s in case.sources:
        assert np.isfinite(s).all()
    assert np.isfinite(case.gt).all()


@settings(max_examples=80, **SETTINGS)
@given(h=st.integers(1, 9), w=st.integers(1, 9), colour=st.booleans(),
       dtype=st.sampled_from(["uint8", "uint16", "float32"]), ext=st.sampled_from([".png", ".tif", ".bmp", ".jpg"]))
def test_header_probe_predicts_the_read(tmp_path_factory, h, w, colour, dtype, ext):
    """image_info (header only) says what read_image returns; lossless formats round-trip."""
    from mfif.io import image_info

    rng = np.random.default_rng(h * 10 + w)
    shape = (h, w, 3) if colour else (h, w)
    a = (rng.random(shape) * {"uint8": 255, "uint16": 65535, "float32": 1}[dtype]).astype(dtype)
    p = tmp_path_factory.mktemp("probe") / f"x{ext}"
    try:
        write_image(p, a)
    except UsageError:
        assert (dtype, ext) not in {("uint8", ".png"), ("uint8", ".tif"), ("uint16", ".png"), ("uint16", ".tif"),
                                    ("float32", ".tif"), ("uint8", ".bmp"), ("uint8", ".jpg")}
        return
    got = read_image(p)
    info = image_info(p)
    assert info.shape == got.shape and info.dtype == got.dtype
    if ext != ".jpg":
        assert np.array_equal(got, a)
