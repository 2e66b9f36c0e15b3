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

PATCH = 22  #: side of the square patch the classifier sees (its receptive field)
STRIDE = 8  #: stride of the dense score grid with the paper's 2x2/2 pooling everywhere


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
        """Shared stream up to (but not including) the last max-pool; stride 4."""
        x = self.block1(self.normalize(x))
        x = nn.functional.max_pool2d(x, 2)
        x = self.block2(x)
        x = nn.functional.max_pool2d(x, 2)
        return self.block3(x)

    def features(self, x: torch.Tensor, *, dense_stride: int = 8) -> torch.Tensor:
        """Per-window 256-d features of one stream, on a grid of ``dense_stride`` px."""
        t = self.trunk(x)
        if dense_stride == 8:
            return nn.functional.max_pool2d(t, 2)
        if dense_stride == 4:
            return nn.functional.max_pool2d(t, 2, stride=1)
        raise ValueError("dense_stride must be 4 or 8")

    def head(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        """Paper's head on concatenated features: FC 256 + ReLU + 1 output (raw logit)."""
        h = torch.relu(self.fc(torch.cat([fa, fb], dim=1)))
        return self.out(h)[:, 0]

    def logit(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        """Swap-consistent logit that A is focused: ``h(a, b) - h(b, a)``."""
        return self.head(fa, fb) - self.head(fb, fa)

    def project(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Split the FC layer over the concatenation: ``fc([fa, fb]) = U fa + V fb + bias``.

        Returns ``(U f, V f)`` so that a pair's head costs two additions instead of a
        512x256 matrix product: with N sources, N projections serve all N(N-1)/2 pairs.
        """
        w = self.fc.weight
        k = w.shape[1] // 2
        u = nn.functional.conv2d(f, w[:, :k])
        v = nn.functional.conv2d(f, w[:, k:])
        return u, v

    def pair_logit(self, pa: tuple[torch.Tensor, torch.Tensor], pb: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Swap-consistent logit from projections: equals ``logit(fa, fb)``."""
        bias = self.fc.bias[None, :, None, None]
        h_ab = self.out(torch.relu(pa[0] + pb[1] + bias))
        h_ba = self.out(torch.relu(pb[0] + pa[1] + bias))
        return (h_ab - h_ba)[:, 0]

    def forward(self, a: torch.Tensor, b: torch.Tensor, *, dense_stride: int = 8) -> torch.Tensor:
        out = self.logit(self.features(a, dense_stride=dense_stride), self.features(b, dense_stride=dense_stride))
        if out.shape[-2:] == (1, 1):
            return out[:, 0, 0]
        return out
