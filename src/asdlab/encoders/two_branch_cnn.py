"""Two-branch CNN of Wilkinghoff's DCASE 2023 / ICASSP 2024 ASD system ("Self-supervised learning for
anomalous sound detection", arXiv:2312.09578), preset `two-branch-cnn`.

Branch 1 reads the whole-clip FFT magnitude (strided Conv1d + squeeze-excitation, then dense layers),
branch 2 the linear-magnitude STFT after temporal mean normalisation (a ResNet with SE blocks); each gives
a 128-d embedding and the clip embedding is their concatenation (fft first). Layer sizes, orders and
"same" paddings follow the public Keras reference `model_emb_cnn` (repository wilkinghoff/ssl4asd).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asdlab.encoders.conv_layers import Conv1dSame, Conv2dSame, SqueezeExcitation
from asdlab.encoders.registry import register_encoder
from asdlab.features.spectra import MagnitudeSpectrogram, WholeClipSpectrum, subtract_time_mean

__all__ = ["TwoBranchCNN", "two_branch_cnn", "two_branch_cnn_small"]

# Keras BatchNormalization defaults (epsilon 1e-3, moving-average momentum 0.99 = PyTorch momentum 0.01).
_BN = {"eps": 1e-3, "momentum": 0.01}


def _se(channels: int, ratio: int) -> SqueezeExcitation:
    # Keras reference: Dense(C // ratio, relu, no bias) -> Dense(C, sigmoid, no bias); at least 1 unit.
    return SqueezeExcitation(channels, max(1, channels // ratio), bias=False)


class _FFTBranch(nn.Module):
    """|FFT| (B, K) -> (B, embed_dim): three strided Conv1d + ReLU + SE, four Dense-BN-ReLU, linear."""

    def __init__(
        self,
        *,
        channels: int,
        kernel_sizes: tuple[int, ...],
        strides: tuple[int, ...],
        positions: int,
        hidden_layers: int,
        embed_dim: int,
        se_ratio: int,
    ) -> None:
        super().__init__()
        convs: list[nn.Module] = []
        in_channels = 1
        for kernel, stride in zip(kernel_sizes, strides, strict=True):
            conv = Conv1dSame(in_channels, channels, kernel, stride=stride, bias=False)
            convs += [conv, nn.ReLU(), _se(channels, se_ratio)]
            in_channels = channels
        self.convs = nn.Sequential(*convs)
        # The reference flattens a fixed number of positions (18 for 18 s clips); adaptive pooling keeps
        # that size for any clip length and is the identity at the reference length.
        self.resize = nn.AdaptiveAvgPool1d(positions)
        dense: list[nn.Module] = []
        width = channels * positions
        for _ in range(hidden_layers):
            dense += [nn.Linear(width, embed_dim, bias=False), nn.BatchNorm1d(embed_dim, **_BN), nn.ReLU()]
            width = embed_dim
        self.dense = nn.Sequential(*dense)
        self.embedding = nn.Linear(width, embed_dim, bias=False)

    def forward(self, spectrum: Tensor) -> Tensor:
        x = self.convs(spectrum.unsqueeze(1))  # (B, 1, K) -> (B, C, ceil(K / prod(strides)))
        x = self.resize(x).flatten(1)  # (B, C * positions)
        return self.embedding(self.dense(x))


class _ResidualUnit(nn.Module):
    """Pre-activation residual unit of the reference: [BN] -> ReLU-Conv-BN-ReLU-Conv-SE, plus shortcut.

    With a stride the shortcut is a 2x2 max-pool ("same") followed by a 1x1 conv. The BN before the unit
    (`pre_norm`) also feeds the shortcut, as in the reference.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int,
        pre_norm: bool,
        relu_before_norm: bool,
        se_ratio: int,
    ) -> None:
        super().__init__()
        self.norm_in = nn.BatchNorm2d(in_channels, **_BN) if pre_norm else nn.Identity()
        self.conv1 = Conv2dSame(in_channels, out_channels, 3, stride=stride, bias=False)
        self.norm1 = nn.BatchNorm2d(out_channels, **_BN)
        self.conv2 = Conv2dSame(out_channels, out_channels, 3, bias=False)
        self.se = _se(out_channels, se_ratio)
        self.relu_before_norm = relu_before_norm
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = nn.Sequential(
                nn.MaxPool2d(stride, ceil_mode=True),  # = Keras MaxPooling2D(stride, padding="same")
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm_in(x)
        r = self.conv1(F.relu(x))
        r = self.norm1(F.relu(r)) if self.relu_before_norm else F.relu(self.norm1(r))
        return self.shortcut(x) + self.se(self.conv2(r))


class _STFTBranch(nn.Module):
    """|STFT| (B, T, F) -> (B, embed_dim): temporal mean normalisation, per-bin BN, ResNet, max over time."""

    def __init__(
        self, *, num_bins: int, widths: tuple[int, ...], stem_kernel: int, embed_dim: int, se_ratio: int
    ) -> None:
        super().__init__()
        self.input_norm = nn.BatchNorm1d(num_bins, **_BN)  # Keras BatchNormalization(axis=-2): one per bin
        self.stem = nn.Sequential(
            Conv2dSame(1, widths[0], stem_kernel, stride=2, bias=False),
            nn.BatchNorm2d(widths[0], **_BN),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2),
        )
        units: list[nn.Module] = []
        in_channels = widths[0]
        for stage, width in enumerate(widths):
            first = stage == 0
            units.append(
                _ResidualUnit(
                    in_channels, width, stride=1 if first else 2, pre_norm=not first, relu_before_norm=False,
                    se_ratio=se_ratio,
                )
            )
            # The reference's second unit of the first stage applies ReLU before BN; kept as published.
            units.append(
                _ResidualUnit(width, width, stride=1, pre_norm=True, relu_before_norm=first, se_ratio=se_ratio)
            )
            in_channels = width
        self.units = nn.Sequential(*units)
        bins = (math.ceil(num_bins / 2) - 3) // 2 + 1  # stem conv ("same", stride 2) and max-pool 3/2
        for _ in widths[1:]:
            bins = math.ceil(bins / 2)
        self.out_bins = bins
        self.output_norm = nn.BatchNorm1d(widths[-1] * bins, **_BN)
        self.embedding = nn.Linear(widths[-1] * bins, embed_dim, bias=False)

    def forward(self, spec: Tensor) -> Tensor:
        # Temporal mean normalisation (cepstral-mean-like): removes each bin's stationary level.
        x = self.input_norm(subtract_time_mean(spec).transpose(1, 2))  # (B, T, F) -> (B, F, T)
        x = self.units(self.stem(x.unsqueeze(1)))  # (B, 1, F, T) -> (B, C, F', T')
        # Max over time: the reference's MaxPooling2D((18, 1)) covers all 18 frames of its 18 s clips.
        x = x.amax(dim=-1).flatten(1)  # (B, C, F') -> (B, C * F')
        return self.embedding(self.output_norm(x))


class TwoBranchCNN(nn.Module):
    """Waveform (B, S) at 16 kHz -> (B, 2 * branch_dim) embedding [fft branch, stft branch].

    Inputs come from `asdlab.features.spectra`: |FFT| of the whole clip (B, S // 2) and the magnitude
    STFT (B, T, n_fft // 2 + 1). Clip length is free (S >= n_fft). At the reference length S = 288000
    (clips tiled to 18 s) the network is the reference's; otherwise the FFT branch's conv output is
    average-pooled to `fft_positions` positions (a fixed frequency resolution whatever S) and the STFT
    branch takes the max over all frames.

    Args:
        fft_channels: filters of the FFT-branch Conv1d layers.
        fft_kernel_sizes: their kernel sizes (FFT bins).
        fft_strides: their strides.
        fft_positions: conv positions fed to the dense layers (18 = ceil(144000 bins / 8192)).
        fft_hidden_layers: Dense-BN-ReLU layers before the FFT embedding.
        n_fft: STFT frame and FFT length in samples (periodic Hann, no padding).
        hop_length: STFT frame shift in samples.
        stft_widths: channels of the ResNet stages (the first is also the stem's).
        stem_kernel: kernel of the stride-2 stem conv.
        branch_dim: embedding size of each branch.
        se_ratio: squeeze-excitation reduction.
    """

    def __init__(
        self,
        *,
        fft_channels: int = 128,
        fft_kernel_sizes: tuple[int, ...] = (256, 64, 16),
        fft_strides: tuple[int, ...] = (64, 32, 4),
        fft_positions: int = 18,
        fft_hidden_layers: int = 4,
        n_fft: int = 1024,
        hop_length: int = 512,
        stft_widths: tuple[int, ...] = (16, 32, 64, 128),
        stem_kernel: int = 7,
        branch_dim: int = 128,
        se_ratio: int = 16,
    ) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.spectrum = WholeClipSpectrum()
        self.spectrogram = MagnitudeSpectrogram(n_fft=n_fft, hop_length=hop_length)
        self.branch_dim = branch_dim
        self.embed_dim = 2 * branch_dim
        self.fft_branch = _FFTBranch(
            channels=fft_channels, kernel_sizes=tuple(fft_kernel_sizes), strides=tuple(fft_strides),
            positions=fft_positions, hidden_layers=fft_hidden_layers, embed_dim=branch_dim, se_ratio=se_ratio,
        )
        self.stft_branch = _STFTBranch(
            num_bins=n_fft // 2 + 1, widths=tuple(stft_widths), stem_kernel=stem_kernel, embed_dim=branch_dim,
            se_ratio=se_ratio,
        )

    def example_input(self, batch: int, *, generator: torch.Generator | None = None) -> Tensor:
        """A small valid input: (batch, 16000) white noise, 1 s at 16 kHz, on the module's device."""
        device = self.stft_branch.embedding.weight.device
        return torch.randn(batch, 16000, generator=generator).to(device)

    def forward_fft(self, spectrum: Tensor) -> Tensor:
        """FFT branch on a whole-clip magnitude spectrum (B, K) -> (B, branch_dim)."""
        return self.fft_branch(spectrum)

    def forward_stft(self, spec: Tensor) -> Tensor:
        """STFT branch on a linear-magnitude spectrogram (B, T, n_fft // 2 + 1) -> (B, branch_dim)."""
        return self.stft_branch(spec)

    def forward_branches(self, waveform: Tensor) -> tuple[Tensor, Tensor]:
        """(B, S) waveform -> (fft embedding (B, branch_dim), stft embedding (B, branch_dim)).

        The seam for FeatEx, which exchanges branch embeddings between clips.
        """
        return self.forward_fft(self.spectrum(waveform)), self.forward_stft(self.spectrogram(waveform))

    def forward(self, waveform: Tensor) -> Tensor:
        """(B, S) waveform at 16 kHz -> (B, embed_dim) = [fft embedding, stft embedding]."""
        return torch.cat(self.forward_branches(waveform), dim=-1)


@register_encoder("two-branch-cnn")
def two_branch_cnn(**overrides) -> TwoBranchCNN:
    """The published sizes: 2 x 128-d embedding (Wilkinghoff, ICASSP 2024)."""
    return TwoBranchCNN(**overrides)


@register_encoder("two-branch-cnn-small")
def two_branch_cnn_small(**overrides) -> TwoBranchCNN:
    """A 25k-parameter variant for tests and smoke runs (2 x 32-d)."""
    defaults = {
        "fft_channels": 8,
        "fft_kernel_sizes": (64, 16, 8),
        "fft_strides": (16, 8, 4),
        "fft_positions": 4,
        "fft_hidden_layers": 1,
        "n_fft": 256,
        "hop_length": 128,
        "stft_widths": (8, 16),
        "branch_dim": 32,
        "se_ratio": 2,
    }
    return TwoBranchCNN(**{**defaults, **overrides})
