"""A contact sheet of synthetic cases, to look at them."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .cases import SynthCase


def contact_sheet(cases: Sequence[SynthCase], *, tile: int = 160, gap: int = 4,
                  titles: Sequence[str] | None = None) -> np.ndarray:
    """Render cases as an RGB uint8 contact sheet: one row per case.

    Each row shows the sources (A, B, ...), the ground truth and the label mask (turbo colour
    map: source A dark blue ... last source dark red); ``titles`` adds a caption line under
    each row.
    """
    cap = 18 if titles is not None else 0
    font = cv2.FONT_HERSHEY_SIMPLEX

    def rgb(x, tw):
        u8 = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
        u8 = np.repeat(u8[..., None], 3, 2) if u8.ndim == 2 else u8
        return cv2.resize(u8, (tw, tile), interpolation=cv2.INTER_AREA)

    rows = []
    for i, c in enumerate(cases):
        h, w = c.mask.shape
        tw = int(round(tile * w / h))
        tiles = [rgb(s, tw) for s in c.sources] + [rgb(c.gt, tw)]
        m = np.clip(np.rint(c.mask.astype(np.float32) * (255.0 / max(c.n_sources - 1, 1))), 0, 255).astype(np.uint8)
        m = cv2.cvtColor(cv2.applyColorMap(m, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
        tiles.append(cv2.resize(m, (tw, tile), interpolation=cv2.INTER_NEAREST))
        for t, lab in zip(tiles, list(c.names) + ["gt", "mask"]):
            cv2.putText(t, lab, (5, 17), font, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(t, lab, (5, 17), font, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        row = np.full((tile + cap, len(tiles) * (tw + gap) - gap, 3), 255, np.uint8)
        for j, t in enumerate(tiles):
            row[:tile, j * (tw + gap): j * (tw + gap) + tw] = t
        if cap and titles[i]:
            cv2.putText(row, str(titles[i]), (3, tile + cap - 5), font, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    rh = tile + cap
    sheet = np.full((len(rows) * (rh + gap) - gap, width, 3), 255, np.uint8)
    for i, r in enumerate(rows):
        sheet[i * (rh + gap): i * (rh + gap) + rh, : r.shape[1]] = r
    return sheet
