"""Tests of mfif.metrics.CaseMetrics: one case prepared once, many fused images evaluated.

The prepared evaluation must give exactly what :func:`mfif.metrics.evaluate` gives (same keys,
same values) and what the single-metric functions give, for every fused image, whatever was
evaluated before it.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy import ndimage

from mfif.bench import run as B
from mfif import metrics as M
from mfif.errors import UsageError


def _smooth(rng, shape, sigma):
    x = ndimage.gaussian_filter(rng.random(shape), sigma)
    return (x - x.min()) / (x.max() - x.min())


def _case(rng, *, n=2, color=False, structured=False, dtype="uint8", h=48, w=64):
    """Sources, ground truth, mask and several fused images / decision maps of one case."""
    shape = (h, w, 3) if color else (h, w)
    gt = _smooth(rng, shape, 1.2)
    if structured:  # vertical stripes of focus, one per source
        mask = np.arange(w)[None, :].repeat(h, 0) * n // w
    else:  # blobs of focus
        mask = np.argmax(np.stack([_smooth(rng, (h, w), 6) for _ in range(n)]), axis=0)
    blurred = ndimage.gaussian_filter(gt, (2.5, 2.5, 0) if color else 2.5)
    srcs = []
    for i in range(n):
        sel = (mask == i)[..., None] if color else mask == i
        srcs.append(np.where(sel, gt, blurred))

    def conv(x):
        x = np.clip(x, 0, 1)
        if dtype == "uint8":
            return np.round(x * 255).astype(np.uint8)
        if dtype == "uint16":
            return np.round(x * 65535).astype(np.uint16)
        return x.astype(dtype)

    fused = [gt, srcs[0], np.mean(srcs, axis=0), gt + 0.03 * rng.standard_normal(shape), blurred]
    decisions = [mask, rng.integers(0, n, (h, w)), np.zeros((h, w), np.int64), (mask + 1) % n]
    return [conv(s) for s in srcs], conv(gt), mask, [conv(f) for f in fused], decisions


def _same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        if math.isinf(a[k]) or math.isinf(b[k]):
            assert a[k] == b[k], k
        else:
            assert abs(a[k] - b[k]) <= 1e-12, (k, a[k], b[k])


def _singles(f, srcs, ref=None, mask=None, decision=None, k=10, tol=2) -> dict:
    """The metrics of ``evaluate`` from the single-metric functions (their own code paths)."""
    out = {}
    if ref is not None:
        out.update(ssim=M.ssim(f, ref), psnr=M.psnr(f, ref))
        if mask is not None:
            out.update(ssim_band=M.boundary_band_ssim(f, ref, mask, k=k),
                       psnr_band=M.boundary_band_psnr(f, ref, mask, k=k))
    if mask is not None and decision is not None:
        out.update(accuracy=M.decision_accuracy(decision, mask), iou=M.decision_iou(decision, mask),
                   boundary_f=M.boundary_fscore(decision, mask, tol=tol))
    out.update(qabf=M.qabf(f, srcs), qmi=M.qmi(f, srcs), qy=M.qy(f, srcs), qcb=M.qcb(f, srcs),
               ssim_avg=M.ssim_avg(f, srcs))
    return {name: out[name] for name in M.METRICS if name in out and not math.isnan(out[name])}


CASES = [
    dict(n=2, color=False, structured=True, dtype="uint8"),
    dict(n=2, color=True, structured=False, dtype="uint8"),
    dict(n=3, color=False, structured=False, dtype="float32"),
    dict(n=3, color=True, structured=True, dtype="uint16"),
    dict(n=2, color=False, structured=False, dtype="float64", h=33, w=41),
]


def _case_id(spec) -> str:
    return f"n{spec['n']}-{'rgb' if spec['color'] else 'gray'}-{spec['dtype']}"


@pytest.mark.parametrize("spec", CASES, ids=_case_id)
@pytest.mark.parametrize("with_ref,with_mask",
                         [(False, False), (True, False), (False, True), (True, True)])
def test_prepared_equals_evaluate(rng, spec, with_ref, with_mask):
    srcs, gt, mask, fused, decisions = _case(rng, **spec)
    ref = gt if with_ref else None
    m = mask if with_mask else None
    case = M.CaseMetrics(srcs, reference=ref, mask=m)
    seen = []
    for f in fused:
        for d in (None, *decisions[:2]):
            got = case.evaluate(f, decision=d)
            _same(got, M.evaluate(f, srcs, reference=ref, mask=m, decision=d))
            seen.append(got)
    for f, d in zip(fused[::2], decisions):
        _same(case.evaluate(f, decision=d), _singles(f, srcs, ref, m, d))
    keys = set(seen[1])
    assert {"qabf", "qmi", "qy", "qcb", "ssim_avg"} <= keys
    assert ("ssim" in keys) == with_ref and ("psnr_band" in keys) == (with_ref and with_mask)
    assert ("accuracy" in keys) == with_mask
    # the fused images differ, so must their scores: the comparison above can fail
    for name in ("qabf", "qmi", "qy", "qcb", "ssim_avg"):
        assert len({row[name] for row in seen[::3]}) == len(fused), name
    # nothing from an earlier image leaks into a later one
    _same(case.evaluate(fused[0], decision=decisions[0]), seen[1])


def test_prepared_equals_single_metric_functions(rng):
    srcs, gt, mask, fused, decisions = _case(rng, n=3, color=True)
    case = M.CaseMetrics(srcs, reference=gt, mask=mask, k=4, tol=1.5)
    for f, d in zip(fused, decisions):
        got = case.evaluate(f, decision=d)
        assert len(got) == len(M.METRICS)
        _same(got, _singles(f, srcs, gt, mask, d, k=4, tol=1.5))
    assert case.evaluate(gt)["psnr"] == math.inf


def test_prepared_band_width_and_tolerance_are_used(rng):
    srcs, gt, mask, fused, decisions = _case(rng, structured=True)
    narrow = M.CaseMetrics(srcs, reference=gt, mask=mask, k=2, tol=0)
    wide = M.CaseMetrics(srcs, reference=gt, mask=mask, k=12, tol=3)
    d = decisions[1]
    a, b = narrow.evaluate(fused[3], decision=d), wide.evaluate(fused[3], decision=d)
    assert a["psnr_band"] != b["psnr_band"] and a["boundary_f"] < b["boundary_f"]
    _same(a, M.evaluate(fused[3], srcs, reference=gt, mask=mask, decision=d, k=2, tol=0))
    _same(b, M.evaluate(fused[3], srcs, reference=gt, mask=mask, decision=d, k=12, tol=3))


def test_prepared_single_label_mask_and_flat_source(rng):
    srcs, gt, mask, fused, decisions = _case(rng)
    srcs[1] = np.full_like(srcs[1], 128)
    one = np.zeros_like(mask)
    case = M.CaseMetrics(srcs, reference=gt, mask=one)
    for f, d in zip(fused, decisions):
        got = case.evaluate(f, decision=d)
        assert "ssim_band" not in got  # empty band: left out
        _same(got, M.evaluate(f, srcs, reference=gt, mask=one, decision=d))


def test_prepared_from_threads_matches_serial(rng):
    srcs, gt, mask, fused, decisions = _case(rng, n=3)
    case = M.CaseMetrics(srcs, reference=gt, mask=mask)
    jobs = list(zip(fused, decisions + [None])) * 2
    serial = [case.evaluate(f, decision=d) for f, d in jobs]
    with ThreadPoolExecutor(max_workers=2) as ex:
        threaded = list(ex.map(lambda fd: case.evaluate(fd[0], decision=fd[1]), jobs))
    for a, b in zip(serial, threaded):
        _same(a, b)


def test_prepared_checks_sizes(rng):
    srcs, gt, mask, fused, decisions = _case(rng)
    with pytest.raises(UsageError, match="need at least 2 sources"):
        M.CaseMetrics(srcs[:1])
    with pytest.raises(UsageError, match="source 2 is 30x48 but source 1 is 64x48"):
        M.CaseMetrics([srcs[0], srcs[1][:, :30]])
    with pytest.raises(UsageError, match="reference is 64x20 but the sources are 64x48"):
        M.CaseMetrics(srcs, reference=gt[:20])
    with pytest.raises(UsageError, match="mask is 64x20"):
        M.CaseMetrics(srcs, mask=mask[:20])
    with pytest.raises(UsageError, match="band width"):
        M.CaseMetrics(srcs, reference=gt, mask=mask, k=-1)
    with pytest.raises(UsageError, match="at least 11x11"):
        M.CaseMetrics([s[:9, :9] for s in srcs])
    case = M.CaseMetrics(srcs, reference=gt, mask=mask)
    with pytest.raises(UsageError, match="fused image is 64x20 but the sources are 64x48"):
        case.evaluate(fused[0][:20])
    with pytest.raises(UsageError, match="decision map is 64x20"):
        case.evaluate(fused[0], decision=decisions[0][:20])


def test_bench_metrics_with_prepared_case_equal_per_image(rng):
    srcs, gt, mask, fused, decisions = _case(rng)
    for data in (B.CaseData(srcs, gt, mask.astype(np.uint8)), B.CaseData(srcs)):
        scorer = B._prepare_metrics(data)
        assert scorer is not None
        for f, d in zip(fused, decisions):
            a, b = B._metrics(f, d, data), B._metrics(f, d, data, scorer)
            assert a["status"] == b["status"] == "ok"
            assert a.pop("status") and b.pop("status")
            _same(a, b)
            assert ("sharpness" in b) == (data.gt is not None)
    # inputs that cannot be prepared: no scorer, the error is reported per image as before
    bad = B.CaseData(srcs, gt[:20], mask)
    assert B._prepare_metrics(bad) is None
    row = B._metrics(fused[0], None, bad, None)
    assert row["status"] == "error" and "reference" in row["error"]
