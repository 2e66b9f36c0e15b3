"""The no-reference metrics reproduce the published MATLAB toolbox by default.

The published survey tables (the reference numbers the project measures itself against) were
computed with the MATLAB fusion-metric toolbox of Z. Liu as corrected by Yu Liu (2019):
``metricXydeas.m`` (Q^AB/F), ``metricMI.m`` (Q_MI, Hossny's normalisation), ``metricYang.m``
(Q_Y) and ``metricChenBlum.m`` (Q_CB). Each is written out here step by step, in the order and
with the constants of those scripts (``filter2`` is a correlation with zero padding, which
``scipy.signal.correlate2d`` computes), independently of mfif's vectorised implementation.
``mfif eval --json`` must agree with them to 1e-4 on synthetic images and on the shared real pairs.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import ndimage, signal

from mfif import metrics as M
from mfif.cli import main
from mfif.io import read_image, write_image


# ---------------------------------------------------------------------------------------------
# transcriptions of the published scripts (gray double images on 0..255)
# ---------------------------------------------------------------------------------------------
def filter2(k, x, mode="same"):
    return signal.correlate2d(x, k, mode=mode, boundary="fill")


def metric_xydeas(img1, img2, fuse):
    """Q^AB/F as metricXydeas.m (Yu Liu's 2019 constants)."""
    flt1 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)
    flt2 = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], float)

    def grads(x):
        gx, gy = filter2(flt1, x), filter2(flt2, x)
        g = np.sqrt(gx * gx + gy * gy)
        gx = gx + (gx == 0) * 0.00001
        return g, np.arctan(gy / gx)

    fuse_g, fuse_a = grads(fuse)
    g1, a1 = grads(img1)
    g2, a2 = grads(img2)
    kept = []
    for g, a in ((g1, a1), (g2, a2)):  # the script's two identical blocks, in its order
        bimap = g > fuse_g
        g = g + (g == 0) * 0.00001
        buffer1 = fuse_g / g
        fuse_g = fuse_g + (fuse_g == 0) * 0.00001  # replaced in place: the second block sees it
        buffer2 = g / fuse_g
        kept.append((bimap * buffer1 + (1 - bimap) * buffer2, 1 - np.abs(a - fuse_a) * 2 / np.pi, g))
    (gaf, aaf, g1), (gbf, abf, g2) = kept

    gama1, gama2, k1, k2, delta1, delta2 = 0.9994, 0.9879, -15, -22, 0.5, 0.8
    qaf = gama1 / (1 + np.exp(k1 * (gaf - delta1))) * gama2 / (1 + np.exp(k2 * (aaf - delta2)))
    qbf = gama1 / (1 + np.exp(k1 * (gbf - delta1))) * gama2 / (1 + np.exp(k2 * (abf - delta2)))
    wa, wb = g1 ** 1, g2 ** 1
    return float(np.sum(qaf * wa + qbf * wb) / np.sum(wa + wb))


def fspecial_gaussian(size, sigma):
    x = np.arange(size) - (size - 1) / 2
    xx, yy = np.meshgrid(x, x)
    h = np.exp(-(xx ** 2 + yy ** 2) / (2 * sigma ** 2))
    return h / h.sum()


def _rounding_level_to_zero(v, scale, flat):
    """With ``flat``: moments at the level of float64 rounding (|v| <= 1e-10 (|scale| + 1)) -> 0."""
    if flat:
        v = v.copy()
        v[np.abs(v) <= 1e-10 * (np.abs(scale) + 1)] = 0
    return v


def ssim_yang(img1, img2, flat=False):
    window = fspecial_gaussian(7, 1.5)
    c1 = c2 = 2e-16
    mu1, mu2 = filter2(window, img1, "valid"), filter2(window, img2, "valid")
    s1 = _rounding_level_to_zero(filter2(window, img1 * img1, "valid") - mu1 * mu1, mu1 * mu1, flat)
    s2 = _rounding_level_to_zero(filter2(window, img2 * img2, "valid") - mu2 * mu2, mu2 * mu2, flat)
    s12 = _rounding_level_to_zero(filter2(window, img1 * img2, "valid") - mu1 * mu2, mu1 * mu2, flat)
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 ** 2 + mu2 ** 2 + c1) * (s1 + s2 + c2))
    return ssim_map, s1, s2


def metric_yang(im1, im2, fim, flat=False):
    """Q_Y as metricYang.m (Yu Liu's 2019 version: lambda = 0.5 where both variances are 0).

    In an exactly flat window the script's E[x^2] - E[x]^2 leaves float rounding noise of about
    1e-12, and with C1 = C2 = 2e-16 its SSIM there is a ratio of two noises (values far outside
    [-1, 1] occur on real pairs with saturated or black areas). ``flat=True`` sets moments at
    the rounding level to zero first, so a flat window compares by its mean alone, the value
    the formula takes without rounding (mfif's implementation does the same).
    """
    map1, s1, s2 = ssim_yang(im1, im2, flat)
    map2, _, _ = ssim_yang(im1, fim, flat)
    map3, _, _ = ssim_yang(im2, fim, flat)
    bin_map = map1 >= 0.75
    test = (s1 + s2 == 0) * 0.5
    s1, s2 = s1 + test, s2 + test
    ramda = s1 / (s1 + s2)
    q1 = (ramda * map2 + (1 - ramda) * map3) * bin_map
    q2 = np.maximum(map2, map3) * ~bin_map
    return float(np.mean(q1 + q2))


def normalize1(x):
    """normalize1.m: MATLAB's round takes halves away from zero (numpy's to even); x >= 0 here."""
    return np.floor((x - x.min()) / (x.max() - x.min()) * 255 + 0.5)


def mutual_info(im1, im2):
    h = np.zeros((256, 256))
    np.add.at(h, (im1.astype(int).ravel(), im2.astype(int).ravel()), 1)
    h = h / h.sum()
    m1, m2 = h.sum(axis=0), h.sum(axis=1)
    hx = -np.sum(m1 * np.log2(m1 + (m1 == 0)))
    hy = -np.sum(m2 * np.log2(m2 + (m2 == 0)))
    hxy = -np.sum(h * np.log2(h + (h == 0)))
    return hx + hy - hxy, hxy, hx, hy


def metric_mi(im1, im2, fim):
    """Q_MI as metricMI.m with sw = 1 (Hossny's revised MI)."""
    im1, im2, fim = normalize1(im1), normalize1(im2), normalize1(fim)
    i_fx, _, h_x, h_f1 = mutual_info(im1, fim)
    i_fy, _, h_y, h_f2 = mutual_info(im2, fim)
    return float(2 * (i_fx / (h_f1 + h_x) + i_fy / (h_f2 + h_y)))


def published(a, b, f, *, qcb=True, flat=False):
    """The no-reference metrics of the survey tables, as the toolbox computes them."""
    from test_metrics import _qcb_transcribed

    a, b, f = (M.as_gray255(x) for x in (a, b, f))
    out = {"qabf": metric_xydeas(a, b, f), "qmi": metric_mi(a, b, f), "qy": metric_yang(a, b, f, flat)}
    if qcb:
        out["qcb"] = _qcb_transcribed(a, b, f)
    return out


def eval_json(tmp_path, capsys, fused, a, b):
    paths = []
    for name, img in (("f", fused), ("a", a), ("b", b)):
        paths.append(str(write_image(tmp_path / f"{name}.png", img)))
    assert main(["eval", *paths, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _textured(rng, shape, sigma):
    x = ndimage.gaussian_filter(rng.random(shape) * 255, sigma)
    x = (x - x.min()) / (x.max() - x.min()) * 235 + 10
    return np.clip(np.rint(x + rng.normal(0, 2, shape)), 0, 255).astype(np.uint8)  # sensor-like noise


# ---------------------------------------------------------------------------------------------
# synthetic images: always run
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(48, 64), (61, 50)])
def test_eval_defaults_are_the_published_toolbox(tmp_path, capsys, rng, shape):
    sharp = _textured(rng, shape, 1.0)
    blurred = ndimage.gaussian_filter(sharp.astype(float), 2.5).round().astype(np.uint8)
    a, b = blurred.copy(), blurred.copy()
    a[:, : shape[1] // 2] = sharp[:, : shape[1] // 2]
    b[:, shape[1] // 2:] = sharp[:, shape[1] // 2:]
    fused = ((a.astype(int) + b) // 2).astype(np.uint8)
    got = eval_json(tmp_path, capsys, fused, a, b)
    want = published(a, b, fused)
    for k, v in want.items():
        assert abs(got[k] - v) <= 1e-4, (k, got[k], v)


def test_other_variants_are_options(rng):
    a = _textured(rng, (40, 40), 1.0)
    b = ndimage.gaussian_filter(a.astype(float), 2).round().astype(np.uint8)
    f = np.maximum(a, b)
    ref = published(a, b, f)
    assert M.qabf(f, [a, b]) == pytest.approx(ref["qabf"], abs=1e-6)
    assert M.qy(f, [a, b]) == pytest.approx(ref["qy"], abs=1e-6)
    assert M.qy(f, [a, b], constants="wang") > M.qy(f, [a, b])  # Wang's constants read higher
    assert M.qabf(f, [a, b], variant="strict") != M.qabf(f, [a, b])
    r = M.evaluate(f, [a, b], qabf_variant="strict", qy_constants="wang")
    assert r["qabf"] == M.qabf(f, [a, b], variant="strict") and r["qy"] == M.qy(f, [a, b], constants="wang")


# ---------------------------------------------------------------------------------------------
# the shared real pairs
# ---------------------------------------------------------------------------------------------
def _real_pairs(root):
    classic = root / "real_pairs" / "classic"
    out = [(classic / f"{n}_1.png", classic / f"{n}_2.png") for n in
           ("gray_mwg_clock", "gray_mwg_pepsi", "color_tid_t3", "color_dsift_flower")]
    out += [(root / "real_pairs" / "mffw2" / k / "image1.tif", root / "real_pairs" / "mffw2" / k / "image2.tif")
            for k in ("1", "7")]
    return out


@pytest.mark.data
def test_eval_on_real_pairs_equals_the_published_toolbox(shared_data, tmp_path, capsys):
    import mfif

    worst = 0.0
    for pa, pb in _real_pairs(shared_data):
        a, b = read_image(pa), read_image(pb)
        fused = mfif.io.from_float(mfif.fuse([a, b], method="focus-map").fused, a.dtype)
        got = eval_json(tmp_path, capsys, fused, a, b)
        want = published(a, b, fused)
        for k, v in want.items():
            assert math.isfinite(v)
            worst = max(worst, abs(got[k] - v))
            assert abs(got[k] - v) <= 1e-4, (pa.name, k, got[k], v)
    assert worst <= 1e-4


@pytest.mark.data
@pytest.mark.slow
def test_every_real_pair_q_abf_mi_y(shared_data, tmp_path, capsys):
    """All 31 classic and MFFW2 pairs: Q^AB/F and Q_MI as the scripts compute them; Q_Y as the
    script's formula gives it without rounding noise in flat windows (see :func:`metric_yang`)."""
    import mfif

    classic = shared_data / "real_pairs" / "classic"
    pairs = [(p, p.with_name(p.stem[:-2] + "_2.png")) for p in sorted(classic.glob("*_1.png"))]
    pairs += [(d / "image1.tif", d / "image2.tif") for d in sorted((shared_data / "real_pairs" / "mffw2").iterdir())]
    assert len(pairs) == 31
    for pa, pb in pairs:
        a, b = read_image(pa), read_image(pb)
        fused = mfif.io.from_float(mfif.fuse([a, b], method="focus-map").fused, a.dtype)
        got = M.evaluate(fused, [a, b])
        for k, v in published(a, b, fused, qcb=False, flat=True).items():
            assert abs(got[k] - v) <= 1e-4, (pa.name, k, got[k], v)
