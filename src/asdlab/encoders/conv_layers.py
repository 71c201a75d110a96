"""Convolutional building blocks shared by the CNN encoders (two-branch CNN, EfficientAT MobileNet).

Squeeze-and-excitation (Hu et al., 2018) and convolutions with TensorFlow/Keras "same" padding, which
the Keras reference of the two-branch CNN (Wilkinghoff, ICASSP 2024) uses for strided layers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SqueezeExcitation", "Conv1dSame", "Conv2dSame", "same_padding"]


class SqueezeExcitation(nn.Module):
    """Channel squeeze-and-excitation: x * sigmoid(fc2(relu(fc1(mean over non-channel axes of x)))).

    Works on (B, C, L) and (B, C, H, W) inputs alike.

    Args:
        channels: C.
        squeeze_channels: width of the bottleneck.
        bias: whether fc1/fc2 have biases (EfficientAT: yes; the Keras two-branch CNN: no).
    """

    def __init__(self, channels: int, squeeze_channels: int, *, bias: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, squeeze_channels, bias=bias)
        self.fc2 = nn.Linear(squeeze_channels, channels, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, *) -> (B, C, *), each channel rescaled by a gate in (0, 1)."""
        squeezed = x.mean(dim=tuple(range(2, x.dim())))  # (B, C)
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(squeezed))))
        return x * gate.view(*gate.shape, *([1] * (x.dim() - 2)))  # (B, C, 1[, 1])


def same_padding(size: int, kernel_size: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's "same" padding of one axis: output length ceil(size / stride), extra pad at the end.

    Returns:
        (pad_before, pad_after) in samples.
    """
    effective_kernel = dilation * (kernel_size - 1) + 1
    out_size = math.ceil(size / stride)
    total = max((out_size - 1) * stride + effective_kernel - size, 0)
    return total // 2, total - total // 2


class Conv1dSame(nn.Conv1d):
    """`nn.Conv1d` with Keras `padding="same"` for any stride (zero padding, asymmetric when odd).

    Constructed like `nn.Conv1d` without `padding`; parameter names are those of `nn.Conv1d`.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, padding=0, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, L) -> (B, C_out, ceil(L / stride))."""
        pad = same_padding(x.shape[-1], self.kernel_size[0], self.stride[0], self.dilation[0])
        return super().forward(F.pad(x, pad))


class Conv2dSame(nn.Conv2d):
    """`nn.Conv2d` with Keras `padding="same"` for any stride (zero padding, asymmetric when odd).

    Constructed like `nn.Conv2d` without `padding`; parameter names are those of `nn.Conv2d`.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, padding=0, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, ceil(H / stride), ceil(W / stride))."""
        pad_h = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
        pad_w = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
        return super().forward(F.pad(x, (*pad_w, *pad_h)))  # F.pad takes the last axis first
