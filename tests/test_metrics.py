"""Tests of mfif.metrics.

Every expected value is derived independently of the implementation: by hand on tiny arrays,
from closed forms, from identities of the definitions, or from an independent code path
(scikit-image, scipy filters, a line-by-line transcription of the published algorithm).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage, signal

from mfif import metrics as M
from mfif.errors import UsageError

C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2
# Q^AB/F sigmoids at perfect preservation (G = 1, A = 1)
QG1 = 0.9994 / (1 + math.exp(-15 * (1 - 0.5)))
QA1 = 0.9879 / (1 + math.exp(-22 * (1 - 0.8)))
QABF_MAX = QG1 * QA1  # = 0.97480...


def _smooth_u8(rng, shape, lo=0, hi=255, sigma=1.5):
    x = ndimage.gaussian_filter(rng.random(shape), sigma)
    x = (x - x.min()) / (x.max() - x.min())
    return np.round(lo + x * (hi - lo)).astype(np.uint8)


def _lum(mu_a, mu_b, c1=C1):
    """SSIM luminance term; equals SSIM when the contrast-structure term is 1."""
    return (2 * mu_a * mu_b + c1) / (mu_a ** 2 + mu_b ** 2 + c1)


#: Q_Y's constant C1 for each variant: Wang's SSIM constant, or the published toolbox's 2e-16.
QY_C1 = {"wang": C1, "toolbox": 2e-16}


# ------------------------------------------------------------------------------------------
# gray conversion
# ------------------------------------------------------------------------------------------

def test_as_gray255_matlab_rgb2gray_on_uint8():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], dtype=np.uint8)
    # 0.2989*255 = 76.23 -> 76; 0.5870*255 = 149.70 -> 150 (rounded, not truncated);
    # 0.1140*255 = 29.08 -> 29; 0.2989*10 + 0.5870*20 + 0.1140*30 = 18.15 -> 18
    assert M.as_gray255(rgb).tolist() == [[76.0, 150.0, 29.0, 18.0]]
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=2)
    assert M.as_gray255(rgba).tolist() == [[76.0, 150.0, 29.0, 18.0]]


def test_as_gray255_scales():
    assert M.as_gray255(np.array([[0, 65535, 32768]], np.uint16)) == pytest.approx(
        np.array([[0.0, 255.0, 32768 * 255 / 65535]]))
    assert M.as_gray255(np.array([[0.0, 0.5, 1.0]], np.float32)) == pytest.approx(np.array([[0, 127.5, 255]]))
    assert M.as_gray255(np.array([[0, 17, 255]])).tolist() == [[0.0, 17.0, 255.0]]  # int64 by hand
    assert M.as_gray255(np.array([[False, True]])).tolist() == [[0.0, 255.0]]


@pytest.mark.parametrize("bad", [np.full((4, 4), 2.0), np.full((4, 4), np.nan), np.array([[0, 300]]),
                                 np.zeros((4, 4, 5), np.uint8), np.zeros((3,), np.uint8)])
def test_as_gray255_refuses(bad):
    with pytest.raises(UsageError):
        M.as_gray255(bad)


# ------------------------------------------------------------------------------------------
# SSIM / PSNR
# ------------------------------------------------------------------------------------------

def test_ssim_identity_and_symmetry(rng):
    a = rng.integers(0, 256, (32, 40), dtype=np.uint8)
    b = rng.integers(0, 256, (32, 40), dtype=np.uint8)
    assert M.ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert M.ssim(a, b) == pytest.approx(M.ssim(b, a), abs=1e-12)
    assert M.ssim(a, b) < 0.2  # independent noise


def test_ssim_constant_images_closed_form():
    a = np.full((16, 16), 100, np.uint8)
    b = np.full((16, 16), 120, np.uint8)
    # no variance: SSIM = (2ab + C1) / (a^2 + b^2 + C1) in every window
    assert M.ssim(a, b) == pytest.approx((2 * 100 * 120 + C1) / (100 ** 2 + 120 ** 2 + C1), rel=1e-12)


def test_ssim_constant_offset_closed_form(rng):
    x = rng.integers(0, 201, (40, 48)).astype(np.uint8)
    y = x + np.uint8(40)
    # y = x + c: equal variances and cov = var, so contrast-structure = 1 and
    # SSIM = mean over windows of (2 mu (mu + c) + C1) / (mu^2 + (mu + c)^2 + C1).
    mu = ndimage.gaussian_filter(x.astype(np.float64), 1.5, truncate=3.5)[5:-5, 5:-5]  # 11x11
    expected = np.mean(_lum(mu, mu + 40))
    assert M.ssim(x, y) == pytest.approx(expected, abs=1e-9)
    assert M.ssim(x, y) < 1


def test_ssim_matches_scikit_image(rng):
    from skimage.metrics import structural_similarity

    a = _smooth_u8(rng, (60, 70))
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    # skimage averages its SSIM map over the same valid region (it crops (11-1)/2 pixels)
    ref = structural_similarity(a.astype(np.float64), b.astype(np.float64), gaussian_weights=True,
                                sigma=1.5, use_sample_covariance=False, data_range=255)
    assert M.ssim(a, b) == pytest.approx(ref, abs=1e-9)


def test_ssim_on_rgb_uses_matlab_gray(rng):
    from skimage.metrics import structural_similarity

    rgb = rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)
    # MATLAB's exact rgb2gray weights: first row of the inverse of the NTSC YIQ matrix
    w = np.linalg.inv(np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]]))[0]
    assert w == pytest.approx([0.2989, 0.5870, 0.1140], abs=1e-4)
    gray = np.floor(rgb.astype(np.float64) @ w + 0.5).astype(np.uint8)  # rounded like MATLAB
    assert M.ssim(rgb, gray) == pytest.approx(1.0, abs=1e-12)
    other = np.clip(gray.astype(int) + rng.integers(-30, 31, gray.shape), 0, 255).astype(np.uint8)
    ref = structural_similarity(gray.astype(float), other.astype(float), gaussian_weights=True,
                                sigma=1.5, use_sample_covariance=False, data_range=255)
    assert M.ssim(rgb, other) == pytest.approx(ref, abs=1e-9)


def test_ssim_dtype_scales_agree(rng):
    a = rng.integers(0, 256, (20, 20), dtype=np.uint8)
    b = rng.integers(0, 256, (20, 20), dtype=np.uint8)
    # the same picture as uint8, uint16 (x257) and float in [0, 1] is the same image
    v = M.ssim(a, b)
    assert M.ssim(a.astype(np.uint16) * 257, b.astype(np.uint16) * 257) == pytest.approx(v, abs=1e-9)
    assert M.ssim(a / 255.0, b / 255.0) == pytest.approx(v, abs=1e-9)


def test_psnr_closed_form(rng):
    x = rng.integers(0, 201, (16, 24)).astype(np.uint8)
    assert M.psnr(x + np.uint8(5), x) == pytest.approx(20 * math.log10(255 / 5), rel=1e-12)
    assert M.psnr(x, x) == math.inf


def test_size_mismatch_names_both_shapes():
    with pytest.raises(UsageError, match=r"32x32.*48x32"):
        M.ssim(np.zeros((32, 32), np.uint8), np.zeros((32, 48), np.uint8))
    with pytest.raises(UsageError, match=r"32x32.*48x32"):
        M.qabf(np.zeros((32, 32), np.uint8), [np.zeros((32, 32), np.uint8), np.zeros((32, 48), np.uint8)])
    with pytest.raises(UsageError, match="at least 2 sources"):
        M.qmi(np.zeros((8, 8), np.uint8), [np.zeros((8, 8), np.uint8)])
    with pytest.raises(UsageError, match="11x11"):
        M.ssim(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))


# ------------------------------------------------------------------------------------------
# boundary band
# ------------------------------------------------------------------------------------------

def _halves(h=40, w=64):
    m = np.zeros((h, w), np.int64)
    m[:, w // 2:] = 1
    return m


def test_boundary_band_geometry():
    m = _halves()
    # boundary: columns 31 and 32; within 10 px: columns 21..42 (22 columns)
    assert M.focus_boundary(m).sum() == 2 * 40
    band = M.boundary_band(m, k=10)
    assert band.sum() == 22 * 40
    assert band[:, 21].all() and band[:, 42].all() and not band[:, 20].any() and not band[:, 43].any()
    assert M.boundary_band(np.zeros((5, 5), int)).sum() == 0


def test_boundary_band_psnr_hand_worked(rng):
    m = _halves()
    ref = rng.integers(0, 201, m.shape).astype(np.uint8)
    img = ref.copy()
    img[:, 21:43] += 10  # error of 10 on exactly the band
    assert M.boundary_band_psnr(img, ref, m) == pytest.approx(20 * math.log10(255 / 10), rel=1e-12)
    # whole image: MSE = 100 * 22/64
    assert M.psnr(img, ref) == pytest.approx(20 * math.log10(255 / math.sqrt(100 * 22 / 64)), rel=1e-12)


def test_boundary_band_ignores_errors_far_from_boundary(rng):
    m = _halves()
    ref = rng.integers(0, 201, m.shape).astype(np.uint8)
    img = ref.copy()
    img[:, :5] += 30  # windows of band pixels reach columns 16..47 only
    assert M.boundary_band_ssim(img, ref, m) == pytest.approx(1.0, abs=1e-12)
    assert M.boundary_band_psnr(img, ref, m) == math.inf
    assert M.ssim(img, ref) < 1


def test_boundary_band_ssim_constant_closed_form():
    m = _halves()
    a = np.full(m.shape, 100, np.uint8)
    b = np.full(m.shape, 120, np.uint8)
    assert M.boundary_band_ssim(a, b, m, k=3) == pytest.approx(_lum(100, 120), rel=1e-12)
    assert math.isnan(M.boundary_band_ssim(a, b, np.zeros(m.shape, int)))


# ------------------------------------------------------------------------------------------
# decision-map metrics
# ------------------------------------------------------------------------------------------

def test_decision_accuracy_and_iou_hand_worked():
    mask = np.array([[0, 0, 1, 1]] * 4)
    dec = np.array([[0, 0, 0, 1]] * 4)
    assert M.decision_accuracy(dec, mask) == 0.75
    # label 0: intersection 8, union 12; label 1: intersection 4, union 8
    assert M.decision_iou(dec, mask) == pytest.approx((8 / 12 + 4 / 8) / 2)
    assert M.decision_accuracy(mask, mask) == 1.0 and M.decision_iou(mask, mask) == 1.0


def test_boundary_fscore_hand_worked():
    mask = np.zeros((20, 40), int)
    mask[:, 20:] = 1  # 40 boundary pixels (columns 19 and 20)
    assert M.boundary_fscore(mask, mask) == 1.0
    shifted = np.roll(mask, 1, axis=1)
    shifted[:, 0] = 0
    assert M.boundary_fscore(shifted, mask, tol=2) == 1.0
    far = np.zeros_like(mask)
    far[:, 30:] = 1
    assert M.boundary_fscore(far, mask, tol=2) == 0.0
    blob = mask.copy()
    blob[5:7, 5:7] = 1  # 4 blob pixels + 8 neighbours = 12 false boundary pixels, far away
    # precision 40/52, recall 1 -> F = 80/92
    assert M.boundary_fscore(blob, mask, tol=2) == pytest.approx(80 / 92)
    flat = np.zeros((6, 6), int)
    assert M.boundary_fscore(flat, flat) == 1.0
    assert M.boundary_fscore(flat, _halves(6, 6)) == 0.0


def test_decision_metrics_check_shapes():
    with pytest.raises(UsageError, match="decision map"):
        M.decision_accuracy(np.zeros((4, 5), int), np.zeros((4, 4), int))
    with pytest.raises(UsageError, match="integer labels"):
        M.decision_iou(np.full((4, 4), 0.5), np.zeros((4, 4), int))


# ------------------------------------------------------------------------------------------
# Q^AB/F
# ------------------------------------------------------------------------------------------

def _square(h=32, w=32, v=200):
    a = np.zeros((h, w), np.uint8)
    a[8:24, 10:22] = v  # zero margin, so zero padding adds no edge of its own
    return a


# the toolbox variant gives an edgeless pixel the weight 1e-5 instead of 0: relative effects
# below 1e-6 on these images
QABF_REL = {"strict": 1e-12, "toolbox": 1e-6}


@pytest.mark.parametrize("variant", ["toolbox", "strict"])
def test_qabf_step_edge_kept_halved_lost(variant):
    a = _square()
    b = np.zeros_like(a)  # no edges at all
    rel = QABF_REL[variant]
    # F keeps every edge of A exactly: G = 1, A = 1 at every weighted pixel
    assert M.qabf(a, [a, b], variant=variant) == pytest.approx(QABF_MAX, rel=rel)
    # F has every edge at half strength, same orientation: G = 0.5 -> Qg = 0.9994 / 2
    assert M.qabf(_square(v=100), [a, b], variant=variant) == pytest.approx(0.9994 / 2 * QA1, rel=rel)
    # F lost every edge: G = 0 -> Qg = 0.9994 / (1 + e^7.5), Qa <= QA1
    lost = M.qabf(b, [a, b], variant=variant)
    assert 0 <= lost <= 0.9994 / (1 + math.exp(7.5)) * QA1 * (1 + rel)


@pytest.mark.parametrize("variant", ["toolbox", "strict"])
def test_qabf_n_sources_and_symmetry(rng, variant):
    a = _square()
    z = np.zeros_like(a)
    rel = QABF_REL[variant]
    assert M.qabf(a, [a, z, z], variant=variant) == pytest.approx(M.qabf(a, [a, z], variant=variant), rel=rel)
    x = _smooth_u8(rng, (30, 36))
    y = _smooth_u8(rng, (30, 36))
    f = ((x.astype(int) + y) // 2).astype(np.uint8)
    assert M.qabf(f, [x, y], variant=variant) == pytest.approx(M.qabf(f, [y, x], variant=variant), rel=1e-9)


def test_qabf_fused_equals_source_holding_all_edges(rng):
    a = _smooth_u8(rng, (48, 48), sigma=1.0)
    b = ndimage.gaussian_filter(a.astype(float), 3).round().astype(np.uint8)  # defocused copy
    q = M.qabf(a, [a, b])
    # A's edges are kept perfectly, so Q >= QABF_MAX * sum(g_A) / sum(g_A + g_B)
    def strength(x):
        x = x.astype(float)
        return np.hypot(ndimage.sobel(x, 1, mode="constant"), ndimage.sobel(x, 0, mode="constant"))

    ga, gb = strength(a), strength(b)
    assert QABF_MAX * ga.sum() / (ga.sum() + gb.sum()) <= q <= QABF_MAX
    assert q > M.qabf(b, [a, b])  # the blurred copy keeps less


def _qabf_transcribed(fa, fb, ff):
    """SPEC's Q^AB/F written out with MATLAB-style conv2 'same' and the toolbox kernels."""
    h1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], float)
    h3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)

    def grad(x):
        sx = signal.convolve2d(x, h3, mode="same")
        sy = signal.convolve2d(x, h1, mode="same")
        ang = np.full(x.shape, np.pi / 2)
        nz = sx != 0
        ang[nz] = np.arctan(sy[nz] / sx[nz])
        return np.sqrt(sx ** 2 + sy ** 2), ang

    gf, af = grad(ff)
    num = den = 0.0
    for x in (fa, fb):
        g, a = grad(x)
        G = np.where(np.maximum(g, gf) > 0, np.minimum(g, gf) / np.maximum(np.maximum(g, gf), 1e-300), 0.0)
        A = 1 - np.abs(a - af) / (np.pi / 2)
        Q = 0.9994 / (1 + np.exp(-15 * (G - 0.5))) * 0.9879 / (1 + np.exp(-22 * (A - 0.8)))
        num += (Q * g).sum()
        den += g.sum()
    return num / den


def test_qabf_matches_transcription(rng):
    a = _smooth_u8(rng, (33, 41))
    b = _smooth_u8(rng, (33, 41))
    f = np.maximum(a, b)
    expected = _qabf_transcribed(a.astype(float), b.astype(float), f.astype(float))
    assert M.qabf(f, [a, b], variant="strict") == pytest.approx(expected, rel=1e-10)


# ------------------------------------------------------------------------------------------
# Q_MI
# ------------------------------------------------------------------------------------------

def test_qmi_identities(rng):
    a = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    assert M.qmi(a, [a, a]) == pytest.approx(2.0, rel=1e-12)  # MI(A,A) = H(A): 2 (1/2 + 1/2)
    const = np.full_like(a, 9)
    assert M.qmi(a, [a, const]) == pytest.approx(1.0, rel=1e-12)  # H(B) = MI(B,F) = 0


def test_qmi_independent_is_zero():
    a = np.array([[0, 0, 255, 255]] * 4, np.uint8)
    f = a.T.copy()  # joint histogram uniform over 4 cells: MI = 1 + 1 - 2 = 0
    assert M.qmi(f, [a, a]) == pytest.approx(0.0, abs=1e-12)


def test_qmi_hand_worked():
    a = np.array([[0, 0, 0, 0, 255, 255, 255, 255]], np.uint8)
    f = np.array([[0, 0, 0, 255, 255, 255, 255, 255]], np.uint8)
    ha = 1.0
    hf = -(3 / 8 * math.log2(3 / 8) + 5 / 8 * math.log2(5 / 8))
    haf = -(3 / 8 * math.log2(3 / 8) + 1 / 8 * math.log2(1 / 8) + 4 / 8 * math.log2(4 / 8))
    term = (ha + hf - haf) / (ha + hf)
    assert M.qmi(f, [a, a]) == pytest.approx(2 * (term + term), rel=1e-12)
    # min-max rescaling makes the gray levels irrelevant: 0/100 reads as 0/255
    assert M.qmi((f // 255 * 100).astype(np.uint8), [a, a]) == pytest.approx(4 * term, rel=1e-12)


def test_qmi_symmetry_and_three_sources(rng):
    a, b, c = (rng.integers(0, 256, (20, 20), dtype=np.uint8) for _ in range(3))
    f = ((a.astype(int) + b + c) // 3).astype(np.uint8)
    assert M.qmi(f, [a, b]) == pytest.approx(M.qmi(f, [b, a]), rel=1e-12)
    pairs = [M.qmi(f, [a, b]), M.qmi(f, [a, c]), M.qmi(f, [b, c])]
    assert M.qmi(f, [a, b, c]) == pytest.approx(np.mean(pairs), rel=1e-12)  # documented: mean over pairs


# ------------------------------------------------------------------------------------------
# Q_Y
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("constants", ["wang", "toolbox"])
def test_qy_identity(rng, constants):
    a = _smooth_u8(rng, (24, 24))
    assert M.qy(a, [a, a], constants=constants) == pytest.approx(1.0, abs=1e-9)


def test_qy_dissimilar_sources_takes_max(rng):
    a = rng.integers(0, 256, (24, 24), dtype=np.uint8)
    b = np.full_like(a, 128)
    # SSIM(A,B) <= C2 / (var_A + C2) << 0.75 in every window -> max(SSIM(A,F)=1, .) = 1
    assert M.qy(a, [a, b]) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("constants", ["wang", "toolbox"])
def test_qy_similar_sources_weighted_closed_form(rng, constants):
    a = rng.integers(60, 201, (30, 34)).astype(np.uint8)
    b = a + np.uint8(20)
    # SSIM(A,B) = lum(mu, mu+20) >= 0.94 (similar branch); var_A = var_B -> lambda = 1/2;
    # F = A: Q = mean(1/2 * 1 + 1/2 * lum(mu, mu + 20)) with 7x7 Gaussian sigma 1.5 means
    mu = ndimage.gaussian_filter(a.astype(float), 1.5, truncate=2.0)[3:-3, 3:-3]
    expected = np.mean(0.5 + 0.5 * _lum(mu, mu + 20, QY_C1[constants]))
    assert M.qy(a, [a, b], constants=constants) == pytest.approx(expected, abs=1e-9)
    assert M.qy(a, [b, a], constants=constants) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("constants", ["wang", "toolbox"])
def test_qy_constant_sources(constants):
    a = np.full((12, 12), 100, np.uint8)
    b = np.full((12, 12), 120, np.uint8)
    # no variance anywhere: lambda = 1/2 (documented), SSIM(A,B) = lum(100, 120) >= 0.75
    expected = 0.5 + 0.5 * _lum(100, 120, QY_C1[constants])
    assert M.qy(a, [a, b], constants=constants) == pytest.approx(expected, rel=1e-12)


def test_qy_three_sources_mean_over_pairs(rng):
    a, b, c = (_smooth_u8(rng, (20, 20)) for _ in range(3))
    f = np.maximum(np.maximum(a, b), c)
    expected = np.mean([M.qy(f, [a, b]), M.qy(f, [a, c]), M.qy(f, [b, c])])
    assert M.qy(f, [a, b, c]) == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------------------------------
# Q_CB
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("csf", ["dog", "mannos-sakrison"])
def test_qcb_identities(rng, csf):
    a = _smooth_u8(rng, (32, 40))
    assert M.qcb(a, [a, a], csf=csf) == pytest.approx(1.0, abs=1e-12)
    # a constant source has zero contrast: all saliency on A, and F = A preserves it exactly
    assert M.qcb(a, [a, np.full_like(a, 50)], csf=csf) == pytest.approx(1.0, abs=1e-12)


def test_qcb_symmetry_and_range(rng):
    a = _smooth_u8(rng, (32, 40))
    b = _smooth_u8(rng, (32, 40))
    f = ((a.astype(int) + b) // 2).astype(np.uint8)
    q = M.qcb(f, [a, b])
    assert 0 < q < 1
    assert M.qcb(f, [b, a]) == pytest.approx(q, rel=1e-12)


def _qcb_transcribed(im1, im2, fim):
    """Chen-Blum as the toolbox's metricChenBlum.m computes it, step by step (DoG CSF)."""
    def normalize1(x):
        return np.floor((x - x.min()) / (x.max() - x.min()) * 255 + 0.5)  # MATLAB round: halves up (x >= 0)

    def freqspace(n):
        return (np.arange(n) - n // 2) * (2.0 / n)

    im1, im2, fim = (normalize1(x.astype(float)) for x in (im1, im2, fim))
    hang, lie = im1.shape
    u, v = np.meshgrid(freqspace(lie) * lie / 30, freqspace(hang) * hang / 30)
    r = np.sqrt(u ** 2 + v ** 2)
    sd = np.exp(-(r / 15.3870) ** 2) - 0.7622 * np.exp(-(r / 1.3456) ** 2)

    def csf(x):
        return np.fft.ifft2(np.fft.ifftshift(np.fft.fftshift(np.fft.fft2(x)) * sd))

    x, y = np.meshgrid(np.arange(-15, 16), np.arange(-15, 16))

    def gauss(s):
        return np.exp(-(x * x + y * y) / (2 * s * s)) / (2 * np.pi * s * s)

    def contrast(im):
        b1 = signal.correlate2d(im, gauss(2), mode="same")  # filter2 'same': zero padding
        b2 = signal.correlate2d(im, gauss(4), mode="same")
        c = np.abs(b1 / b2 - 1)
        return c ** 3 / (c ** 2 + 0.0001)

    c1, c2, cf = contrast(csf(im1)), contrast(csf(im2)), contrast(csf(fim))
    q1 = np.where(c1 < cf, c1 / cf, cf / c1)
    q2 = np.where(c2 < cf, c2 / cf, cf / c2)
    lam1 = c1 * c1 / (c1 * c1 + c2 * c2)
    lam2 = c2 * c2 / (c1 * c1 + c2 * c2)
    return float(np.mean(lam1 * q1 + lam2 * q2))


@pytest.mark.parametrize("shape", [(36, 45), (40, 32)])
def test_qcb_matches_toolbox_transcription(rng, shape):
    a = _smooth_u8(rng, shape, sigma=1.0)
    b = _smooth_u8(rng, shape, sigma=2.0)
    f = np.maximum(a, b)
    assert M.qcb(f, [a, b]) == pytest.approx(_qcb_transcribed(a, b, f), rel=1e-9)


# ------------------------------------------------------------------------------------------
# ssim_avg and evaluate
# ------------------------------------------------------------------------------------------

def test_ssim_avg_closed_form():
    f = np.full((16, 16), 100, np.uint8)
    b = np.full((16, 16), 120, np.uint8)
    assert M.ssim_avg(f, [f, b]) == pytest.approx((1 + _lum(100, 120)) / 2, rel=1e-12)
    assert M.ssim_avg(f, [f, f, f]) == pytest.approx(1.0, abs=1e-12)


def test_evaluate_keys_follow_inputs(rng):
    m = _halves(32, 32)
    gt = _smooth_u8(rng, m.shape)
    a = np.where(m == 0, gt, ndimage.uniform_filter(gt, 5)).astype(np.uint8)
    b = np.where(m == 1, gt, ndimage.uniform_filter(gt, 5)).astype(np.uint8)
    noref = {"qabf", "qmi", "qy", "qcb", "ssim_avg"}
    assert set(M.evaluate(gt, [a, b])) == noref
    assert set(M.evaluate(gt, [a, b], reference=gt)) == noref | {"ssim", "psnr"}
    full = M.evaluate(a, [a, b], reference=gt, mask=m, decision=m)
    assert list(full) == list(M.METRICS)  # all twelve, in the documented order
    assert full["accuracy"] == 1.0 and full["iou"] == 1.0 and full["boundary_f"] == 1.0
    assert full["ssim"] == pytest.approx(M.ssim(a, gt)) and full["qcb"] == pytest.approx(M.qcb(a, [a, b]))
    assert M.evaluate(gt, [a, b], reference=gt)["psnr"] == math.inf
    # a mask with one label has no boundary: the band metrics are not computable
    one = M.evaluate(a, [a, b], reference=gt, mask=np.zeros_like(m))
    assert "ssim_band" not in one and "psnr_band" not in one and "ssim" in one
    with pytest.raises(UsageError, match="reference"):
        M.evaluate(a, [a, b], reference=gt[:, :20])
    with pytest.raises(UsageError, match="mask"):
        M.evaluate(a, [a, b], mask=m[:20])
