"""Foreground shapes of the synthetic cases: smooth random blobs and unions of photo segments."""
from __future__ import annotations

import math

import cv2
import numpy as np



def blob_mask(shape: tuple[int, int], rng: np.random.Generator, *, fraction: float) -> tuple[np.ndarray, dict]:
    """Smooth random blob: thresholded low-pass noise plus a bump at a random centre.

    Returns a boolean ``HxW`` mask covering about ``fraction`` of the frame and its parameters.
    """
    h, w = shape
    cell = 8
    lh, lw = max(4, -(-h // cell)), max(4, -(-w // cell))
    smooth = float(rng.uniform(1.5, 5.0))           # low-res px (x8 at full res)
    bump_w = float(rng.uniform(0.0, 2.0))
    cy, cx = float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.8))
    bump_s = float(rng.uniform(0.15, 0.4))
    noise = rng.standard_normal((lh, lw)).astype(np.float32)
    field_ = cv2.GaussianBlur(noise, (0, 0), smooth, borderType=cv2.BORDER_REFLECT_101)
    field_ /= float(field_.std()) + 1e-6
    yy, xx = np.meshgrid(np.linspace(0, 1, lh), np.linspace(0, 1, lw), indexing="ij")
    field_ += bump_w * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * bump_s ** 2)).astype(np.float32)
    big = cv2.resize(field_, (w, h), interpolation=cv2.INTER_CUBIC)
    thr = float(np.quantile(big, 1.0 - fraction))
    m = big > thr
    return m, {"kind": "blob", "fraction": float(fraction), "smooth_px": smooth * cell,
               "bump_weight": bump_w, "bump_center": [cy, cx], "bump_sigma": bump_s}


def _graph_segments(img: np.ndarray, k: float, min_size: int) -> np.ndarray:
    """Felzenszwalb-Huttenlocher segmentation (OpenCV contrib; scikit-image as fallback)."""
    ximgproc = getattr(cv2, "ximgproc", None)
    if ximgproc is not None:
        u8 = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
        seg = ximgproc.segmentation.createGraphSegmentation(sigma=0.8, k=float(k), min_size=int(min_size))
        return np.asarray(seg.processImage(u8), dtype=np.int64)
    from skimage.segmentation import felzenszwalb  # pragma: no cover - contrib build is a dependency

    return felzenszwalb(img.astype(np.float64), scale=k, sigma=0.8, min_size=min_size,
                        channel_axis=None if img.ndim == 2 else -1).astype(np.int64)


def segment_mask(image: np.ndarray, rng: np.random.Generator, *, fraction: float) -> tuple[np.ndarray, dict]:
    """Object-like region: a connected union of adjacent segments of the photo itself.

    The photo (a copy whose long side is about 160 px) is over-segmented with the graph-based
    method of Felzenszwalb and Huttenlocher; a random seed segment grows by random adjacent
    segments until it covers about ``fraction`` of the frame (a segment that would overshoot
    the target by more than half is skipped); holes are filled and the staircase of the
    upscaled labels is smoothed. The outline follows image edges, as real depth edges do.

    Returns a boolean ``HxW`` mask and its parameters.

    References
    ----------
    .. [1] P. F. Felzenszwalb and D. P. Huttenlocher, "Efficient graph-based image
       segmentation", IJCV 59(2), 2004.
    """
    from scipy import ndimage as ndi

    h, w = image.shape[:2]
    scale = min(1.0, 160.0 / max(h, w))
    sh, sw = max(8, int(round(h * scale))), max(8, int(round(w * scale)))
    small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA) if scale < 1 else image
    fz_scale = float(math.exp(rng.uniform(math.log(60.0), math.log(400.0))))
    min_size = max(8, int(sh * sw * 0.003))
    labels = _graph_segments(small, fz_scale, min_size)
    n = int(labels.max()) + 1
    sizes = np.bincount(labels.ravel(), minlength=n).astype(np.int64)
    pairs = []
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        d = a != b
        pairs.append(np.stack([a[d], b[d]], 1))
    pairs = np.unique(np.sort(np.concatenate(pairs), 1), axis=0)
    nbrs: list[set] = [set() for _ in range(n)]
    for a, b in pairs.tolist():
        nbrs[a].add(b)
        nbrs[b].add(a)
    target = fraction * labels.size
    # seed: a random pixel's segment (favours larger segments), not bigger than 1.5 x target
    ok = np.nonzero(sizes <= 1.5 * target)[0]
    if ok.size == 0:
        ok = np.array([int(np.argmin(sizes))])
    seed = int(ok[int(rng.choice(ok.size, p=sizes[ok] / sizes[ok].sum()))])
    region = {seed}
    area = int(sizes[seed])
    frontier = set(nbrs[seed])
    while area < target and frontier:
        cand = sorted(frontier)
        pick = cand[int(rng.integers(len(cand)))]
        frontier.discard(pick)
        if area + sizes[pick] > 1.5 * target:
            continue
        region.add(pick)
        area += int(sizes[pick])
        frontier |= nbrs[pick] - region
    sel = np.zeros(n, bool)
    sel[list(region)] = True
    m_small = ndi.binary_fill_holes(sel[labels])
    big = cv2.resize(m_small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    big = cv2.GaussianBlur(big, (0, 0), max(0.7, 0.5 / scale), borderType=cv2.BORDER_REFLECT_101)
    m = big > 0.5
    return m, {"kind": "segment", "fraction": float(fraction), "fz_scale": fz_scale, "min_size": min_size,
               "n_segments": n, "seed_segment": seed, "n_picked": len(region)}
