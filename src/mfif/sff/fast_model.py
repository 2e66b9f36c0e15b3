"""The ``sff-fast`` focus network: a per-frame focus scorer light enough for stacker speed.

Why a different network
-----------------------
The paper's dual-stream classifier (:class:`mfif.sff.model.SFFNet`) costs about 37 GMAC per
megapixel and source and compares sources in pairs. This network scores *one* frame at a time,
so a stack of N frames costs N passes, and a pair's decision is the difference of two scores
(a Siamese ranking network): ``P(A sharper than B) = sigmoid(s_A - s_B)``. Swapping two sources
flips the decision exactly, by construction.

Architecture
------------
Gray input, mapped to ``(x - 0.5) * 4``:

1. **Band energies at full and half resolution.** A learned 5x5 convolution with ``bands``
   filters (no bias) on the frame, and another on the frame averaged 2x2; the absolute
   responses are averaged over each 4x4 cell, and log-compressed, ``log(e + 0.01)`` (the floor
   bounds the gradient on flat areas). Both give ``bands`` maps on a 4-px grid. Defocus lowers
   the energy in fine bands more than in coarse ones, and the log turns the contrast of the
   content into an offset that cancels in the difference of two frames' scores. With
   ``fine_stride=2`` (the shipped network) the full-resolution filters are evaluated on every
   second row and column only: each filter still sees every pixel of its 5x5 support, and the
   cell's mean absolute response is estimated from 4 of its 16 positions, at a quarter of the
   cost of the stage that dominated the run time.
2. **Context at the 4-px grid.** Four 3x3 convolutions with ReLU, dilated 1, 2, 4 and 8, of
   ``width`` maps, then a 1x1 convolution to one score. The receptive field is about 140 px,
   so flat areas borrow evidence from textured surroundings and a defocused foreground's
   spill over a sharp background can be recognised.

The score map has a stride of 4 px (``ceil(H/4) x ceil(W/4)``) and is upsampled bilinearly
to full resolution by the fusion step. Convolutions are zero padded ("same"); engines give
tiles a halo of :data:`HALO` px so that a tile's core sees the same context as a whole-image
pass.

``mac_per_pixel`` gives its cost per input pixel; the paper's network costs far more (the
model card, docs/model_card_fast.md, compares them).

References
----------
.. [1] I. Ismail and K. H. Ghazali, "Deep Learning-Based Semantic Focus Fusion for
   High-Quality Multifocus Image", 2025 (the task, the training data and recipe).
.. [2] F. Yu and V. Koltun, "Multi-scale context aggregation by dilated convolutions",
   ICLR 2016.
.. [3] S. K. Nayar and Y. Nakagawa, "Shape from focus", IEEE TPAMI 16(8), 1994 (focus as
   local band energy).
"""
from __future__ import annotations

import torch
from torch import nn

STRIDE = 4  #: stride of the score map, px
HALO = 160  #: context (px) a tile needs per side: the receptive radius (68 px) and the consistency steps
DILATIONS = (1, 2, 4, 8)


class FastFocusNet(nn.Module):
    """Per-frame focus scorer; ``forward(x)`` maps ``(B, 1, H, W)`` gray in [0, 1] to scores
    ``(B, 1, ceil(H/4), ceil(W/4))`` (H and W must be multiples of 4; callers pad).

    Parameters
    ----------
    bands : int
        Learned band-pass filters per scale.
    width : int
        Feature maps of the context layers.
    fine_stride : {1, 2}
        Stride of the full-resolution filters (2: evaluated on every second row and column).
    """

    def __init__(self, bands: int = 8, width: int = 24, fine_stride: int = 1):
        super().__init__()
        if fine_stride not in (1, 2):
            raise ValueError(f"fine_stride must be 1 or 2, got {fine_stride}")
        self.bands, self.width, self.fine_stride = int(bands), int(width), int(fine_stride)
        self.fine = nn.Conv2d(1, bands, 5, padding=2, stride=self.fine_stride, bias=False)
        self.coarse = nn.Conv2d(1, bands, 5, padding=2, bias=False)
        layers: list[nn.Module] = []
        c = 2 * bands
        for d in DILATIONS:
            layers += [nn.Conv2d(c, width, 3, padding=d, dilation=d), nn.ReLU()]
            c = width
        layers.append(nn.Conv2d(width, 1, 1))
        self.context = nn.Sequential(*layers)

    def energies(self, x: torch.Tensor) -> torch.Tensor:
        """Log band energies ``(B, 2*bands, H/4, W/4)``."""
        x = (x - 0.5) * 4.0
        fine = nn.functional.avg_pool2d(torch.abs(self.fine(x)), STRIDE // self.fine_stride)
        half = nn.functional.avg_pool2d(x, 2)
        coarse = nn.functional.avg_pool2d(torch.abs(self.coarse(half)), 2)
        return torch.log(torch.cat([fine, coarse], 1) + 1e-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.context(self.energies(x))

    def mac_per_pixel(self) -> float:
        """Multiply-accumulates per input pixel of one forward pass."""
        b, w = self.bands, self.width
        full = 25 * b / self.fine_stride ** 2 + 25 * b / 4
        grid = 9 * 2 * b * w + 3 * 9 * w * w + w
        return full + grid / 16


def from_card(card: dict) -> FastFocusNet:
    """An untrained :class:`FastFocusNet` of the architecture a model card describes."""
    arch = card.get("architecture", {})
    return FastFocusNet(bands=int(arch.get("bands", 8)), width=int(arch.get("width", 24)),
                        fine_stride=int(arch.get("fine_stride", 1)))


class _SignSplit(nn.Module):
    """:class:`FastFocusNet` for the inference runtime: the same function, re-parameterised.

    ``|a| = relu(a) + relu(-a)``: each filter bank is one convolution with the filters and their
    negatives, the ReLU is fused into it, the pairs are pooled and then summed by a fixed 1x1
    convolution (whose bias adds the log's floor). ONNX Runtime keeps a convolution, its ReLU,
    the pooling and a 1x1 convolution in its blocked channel layout, whereas an absolute value
    made it move the filter bank's maps back to the plain layout at full and half resolution
    (most of the time of those stages, docs/speed.md); now the maps leave the blocked layout
    once, on the 4-px grid. The outputs equal the network's to float rounding (tested).
    """

    def __init__(self, net: FastFocusNet):
        super().__init__()
        b, self.fine_stride = net.bands, net.fine_stride
        self.fine = nn.Conv2d(1, 2 * b, 5, padding=2, stride=net.fine_stride, bias=False)
        self.coarse = nn.Conv2d(1, 2 * b, 5, padding=2, bias=False)
        self.pairs = nn.Conv2d(4 * b, 2 * b, 1)
        with torch.no_grad():
            self.fine.weight.copy_(torch.cat([net.fine.weight, -net.fine.weight]))
            self.coarse.weight.copy_(torch.cat([net.coarse.weight, -net.coarse.weight]))
            w = torch.zeros(2 * b, 4 * b, 1, 1)
            for k in range(b):
                w[k, k, 0, 0] = w[k, b + k, 0, 0] = 1.0  # fine band k: its filter and its negative
                w[b + k, 2 * b + k, 0, 0] = w[b + k, 3 * b + k, 0, 0] = 1.0  # coarse band k
            self.pairs.weight.copy_(w)
            self.pairs.bias.fill_(1e-2)
        self.context = net.context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - 0.5) * 4.0
        fine = nn.functional.avg_pool2d(torch.relu(self.fine(x)), STRIDE // self.fine_stride)
        half = nn.functional.avg_pool2d(x, 2)
        coarse = nn.functional.avg_pool2d(torch.relu(self.coarse(half)), 2)
        return self.context(torch.log(self.pairs(torch.cat([fine, coarse], 1))))


def export_onnx(net: FastFocusNet, path) -> None:
    """Write ``net`` as an ONNX graph (opset 17) with dynamic batch, height and width, atomically.

    The graph is :class:`_SignSplit` of ``net``: the same function, in the form ONNX Runtime runs
    fastest. Needs the ``onnx`` package (a training-time dependency); inference reads the file
    with ONNX Runtime, :mod:`mfif.sff.fast_runtime`.
    """
    import io
    import warnings

    from ..io import atomic_output

    buf = io.BytesIO()
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_SignSplit(net.eval()).eval(), (torch.zeros(1, 1, 64, 64),), buf, input_names=["gray"],
                          output_names=["score"], dynamic_axes={"gray": axes, "score": axes},
                          opset_version=17, dynamo=False)
    with atomic_output(path) as f:
        f.write(buf.getvalue())
