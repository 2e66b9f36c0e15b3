"""The SFF network: a dual-stream (Siamese) CNN that decides which of two patches is in focus.

Architecture (as in Ismail & Ghazali 2025)
------------------------------------------
Each stream takes one gray source patch and applies three blocks of
``Conv 3x3 + ReLU + MaxPool 2x2`` with 64, 128 and 256 feature maps. The two streams'
feature maps are concatenated and passed to a fully connected layer of 256 neurons (ReLU),
then to a single output, the probability that the patch of source A is the focused one.

Decisions mfif makes where the paper is silent
----------------------------------------------
* **Patch size 22x22, unpadded (valid) convolutions.** 22 -> conv 20 -> pool 10 -> conv 8 ->
  pool 4 -> conv 2 -> pool 1, so every stream ends in a 1x1x256 feature and no zero padding
  ever enters a decision. Because nothing is padded, running the network over a whole image
  gives *exactly* the classifier's output for every 22x22 window at a stride of 8 px; with the
  last max-pool at stride 1 it gives every window at a stride of 4 px for little extra cost
  (the fully connected layers are expressed as 1x1 convolutions).
* **Shared weights between the streams.** Focus is the same property in both sources, so the
  streams are one feature extractor applied twice (a Siamese network), halving the parameters.
* **Swap-consistent output.** The logit is ``h(f_A, f_B) - h(f_B, f_A)`` where ``h`` is the
  concatenation + FC-256 + output head. The head is exactly the paper's; evaluating it in both
  orders and subtracting makes ``P(A focused) = 1 - P(B focused)`` hold by construction, so
  swapping the sources flips the decision map exactly. The same form is used in training.
* Input scaling: gray in [0, 1] mapped to ``(x - 0.5) / 0.25``.
"""
from __future__ import annotations

import torch
from torch import nn

from .resources import PATCH  # noqa: F401  (re-exported: the network's patch side)

STRIDE = 8  #: stride of the dense score grid with the paper's 2x2/2 pooling everywhere


def max_pool(x: torch.Tensor, *, stride: int = 2) -> torch.Tensor:
    """2x2 max-pool (no padding, odd remainders dropped) as the maximum of four shifted views.

    Equal to ``torch.nn.functional.max_pool2d(x, 2, stride)``, and cheaper on CPU for wide
    NCHW maps (four strided views and three maxima, no pooling kernel).
    """
    h, w = x.shape[-2:]
    if stride == 2:
        h, w = h // 2 * 2, w // 2 * 2
        v = [x[..., i:h:2, j:w:2] for i in (0, 1) for j in (0, 1)]
    elif stride == 1:
        v = [x[..., i:h - 1 + i, j:w - 1 + j] for i in (0, 1) for j in (0, 1)]
    else:
        raise ValueError("stride must be 1 or 2")
    return torch.maximum(torch.maximum(v[0], v[1]), torch.maximum(v[2], v[3]))


def _conv_relu_pool(x: torch.Tensor, conv: nn.Conv2d, *, chunk: int = 512) -> torch.Tensor:
    """``max_pool(relu(conv(x)))`` for an unpadded 3x3 ``conv`` of a one-channel ``x``.

    Each 2x2 pooling cell sees a 4x4 input neighbourhood, and the conv's output at each of the
    cell's four positions is a dot product of that neighbourhood with the 3x3 kernel embedded
    at the position's offset. So the block is one matrix product ``(cells, 16) @ (16, 4 * C)``
    followed by a maximum over the four positions (ReLU commutes with max): the
    full-resolution 64-map activation is never stored, and the result comes out channels-last.
    At inference the product runs over ``chunk`` cells at a time so that it stays in cache.
    """
    b, _, hh, ww = x.shape
    c = conv.out_channels
    h, w = (hh - 2) // 2, (ww - 2) // 2
    k = nn.functional.pad(conv.weight[:, 0], (0, 1, 0, 1))  # (C, 4, 4), kernel at offset (0, 0)
    kernels = torch.stack([torch.roll(k, (dy, dx), (1, 2)) for dy in (0, 1) for dx in (0, 1)], 0)
    mat = kernels.reshape(4, c, 16).permute(2, 0, 1).reshape(16, 4 * c)  # (16, 4C)
    cols = nn.functional.unfold(x, 4, stride=2).transpose(1, 2)  # (B, cells, 16)
    n = cols.shape[1]
    if torch.is_grad_enabled() or n <= chunk:
        out = torch.matmul(cols, mat).view(b, n, 4, c).amax(2)
    else:
        out = torch.empty((b, n, c), dtype=x.dtype, device=x.device)
        for s in range(0, n, chunk):
            out[:, s:s + chunk] = torch.matmul(cols[:, s:s + chunk], mat).view(b, -1, 4, c).amax(2)
    out = torch.relu(out + conv.bias)
    return out.view(b, h, w, c).permute(0, 3, 1, 2)


class SFFNet(nn.Module):
    """Dual-stream focus classifier with fully convolutional head.

    Parameters
    ----------
    widths : tuple of int
        Feature maps of the three conv blocks (paper: 64, 128, 256).
    fc : int
        Neurons of the fully connected layer (paper: 256).

    Notes
    -----
    ``forward(a, b)`` on ``(B, 1, 22, 22)`` patches returns ``(B,)`` logits; on whole images
    ``(B, 1, H, W)`` it returns the dense logit map ``(B, H', W')`` of every 22x22 window at a
    stride of 8 px (``dense_stride=4`` for 4 px).
    """

    def __init__(self, widths: tuple[int, int, int] = (64, 128, 256), fc: int = 256):
        super().__init__()
        w1, w2, w3 = widths
        self.widths = tuple(widths)
        self.fc_width = fc
        self.block1 = nn.Sequential(nn.Conv2d(1, w1, 3), nn.ReLU(inplace=True))
        self.block2 = nn.Sequential(nn.Conv2d(w1, w2, 3), nn.ReLU(inplace=True))
        self.block3 = nn.Sequential(nn.Conv2d(w2, w3, 3), nn.ReLU(inplace=True))
        self.fc = nn.Conv2d(2 * w3, fc, 1)  # fully connected layer as a 1x1 convolution
        self.out = nn.Conv2d(fc, 1, 1)

    @staticmethod
    def normalize(x: torch.Tensor) -> torch.Tensor:
        return (x - 0.5) * 4.0

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Shared stream up to (but not including) the last max-pool; stride 4.

        Computes exactly ``conv3(pool(conv2(pool(conv1(x)))))`` with ReLUs, arranged for speed
        on CPU: the first conv + ReLU + pool is one matrix product over pooling cells
        (:func:`_conv_relu_pool`), so the 64-map full-resolution activation is never written;
        pools take the maximum of four strided views; activations are channels-last, which
        the convolution kernels prefer.
        """
        x = self.block2(_conv_relu_pool(self.normalize(x), self.block1[0]))
        return self.block3(max_pool(x).contiguous(memory_format=torch.channels_last))

    def features(self, x: torch.Tensor, *, dense_stride: int = 8) -> torch.Tensor:
        """Per-window 256-d features of one stream, on a grid of ``dense_stride`` px."""
        t = self.trunk(x)
        if dense_stride == 8:
            return max_pool(t)
        if dense_stride == 4:
            return max_pool(t, stride=1)
        raise ValueError("dense_stride must be 4 or 8")

    def head(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        """Paper's head on concatenated features: FC 256 + ReLU + 1 output (raw logit)."""
        h = torch.relu(self.fc(torch.cat([fa, fb], dim=1)))
        return self.out(h)[:, 0]

    def logit(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        """Swap-consistent logit that A is focused: ``h(a, b) - h(b, a)``."""
        return self.head(fa, fb) - self.head(fb, fa)

    def project(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Split the FC layer over the concatenation: ``fc([fa, fb]) = (U fa + bias) + V fb``.

        Returns ``(U f + bias, V f)``, channels last (``(B, H', W', fc)``), so that a pair's
        head costs an addition instead of a 512x256 matrix product: with N sources, N
        projections serve all N(N-1)/2 pairs. Both are matrix products over the feature
        vectors (a 1x1 convolution as a GEMM, which PyTorch's CPU convolution does slowly).
        """
        w = self.fc.weight[:, :, 0, 0]
        k = w.shape[1] // 2
        x = f.permute(0, 2, 3, 1)
        return torch.matmul(x, w[:, :k].t()) + self.fc.bias, torch.matmul(x, w[:, k:].t())

    def pair_logit(self, pa: tuple[torch.Tensor, torch.Tensor], pb: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Swap-consistent logit from projections: equals ``logit(fa, fb)``, shape ``(B, H', W')``.

        The output layer's bias cancels in ``h(a, b) - h(b, a)``.
        """
        wo = self.out.weight[0, :, 0, 0]
        return torch.matmul(torch.relu(pa[0] + pb[1]), wo) - torch.matmul(torch.relu(pb[0] + pa[1]), wo)

    def forward(self, a: torch.Tensor, b: torch.Tensor, *, dense_stride: int = 8) -> torch.Tensor:
        out = self.logit(self.features(a, dense_stride=dense_stride), self.features(b, dense_stride=dense_stride))
        if out.shape[-2:] == (1, 1):
            return out[:, 0, 0]
        return out
