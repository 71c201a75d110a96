"""EfficientAT MobileNetV3 (Schmid, Koutini, Widmer, ICASSP 2023), preset `mobilenet-mn04`, its front end
and the AudioSet weights `mn04_as_mAP_432.pt`.

Architecture: MobileNetV3-Large blocks (Howard et al. 2019, Table 1) at width 0.4, channel-wise "concurrent"
squeeze-excitation, "mlp" head; parameter names equal the upstream `models/mn/model.py` state dict so the
released file loads strictly. Front end: `models/preprocess.py` (`AugmentMelSTFT`) in eval mode.
Embeddings can come from an intermediate layer and keep the frequency bands ("band-mean"): on machine
sounds that beats the upstream global pool (benchmarks/results/mn04_embeddings.md).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Reading and downloading the weights is file I/O, which lives in checkpoints.py (STYLE.md); re-exported here.
from asdlab.encoders.checkpoints import (
    MN04_FILENAME,
    MN04_SHA256,
    MN04_URL,
    download_mn04_weights,
    load_mn04_weights,
)
from asdlab.encoders.conv_layers import SqueezeExcitation
from asdlab.encoders.registry import register_encoder
from asdlab.errors import CheckpointError, ConfigError
from asdlab.features.fbank import kaldi_mel_banks

__all__ = [
    "MOBILENET_POOLINGS",
    "MobileNetPooling",
    "MobileNetV3",
    "EfficientATFrontEnd",
    "EfficientATInput",
    "EfficientATTagger",
    "mobilenet_mn04",
    "check_mn04_state_dict",
    "load_mn04_weights",
    "download_mn04_weights",
    "MN04_URL",
    "MN04_SHA256",
    "MN04_FILENAME",
]

# MobileNetV3-Large bottlenecks before width scaling (Howard et al. 2019, Table 1; EfficientAT keeps them):
# (kernel, expanded channels, output channels, squeeze-excitation, hardswish (else ReLU), stride).
_LARGE_BLOCKS: tuple[tuple[int, int, int, bool, bool, int], ...] = (
    (3, 16, 16, False, False, 1),
    (3, 64, 24, False, False, 2),
    (3, 72, 24, False, False, 1),
    (5, 72, 40, True, False, 2),
    (5, 120, 40, True, False, 1),
    (5, 120, 40, True, False, 1),
    (3, 240, 80, False, True, 2),
    (3, 200, 80, False, True, 1),
    (3, 184, 80, False, True, 1),
    (3, 184, 80, False, True, 1),
    (3, 480, 112, True, True, 1),
    (3, 672, 112, True, True, 1),
    (5, 672, 160, True, True, 2),
    (5, 960, 160, True, True, 1),
    (5, 960, 160, True, True, 1),
)
MobileNetPooling = Literal["mean", "band-mean", "band-mean-max"]
# "mean": global average over frequency and time (upstream); "band-mean": average over time only, every
# frequency row kept (C x F' values), so spectral detail the global pool averages away survives;
# "band-mean-max": the time mean and the time maximum of every row (2 x C x F'), so a short event (a
# rattle, a late valve stroke) is not averaged away over the clip.
MOBILENET_POOLINGS: tuple[str, ...] = ("mean", "band-mean", "band-mean-max")
_STEM_CHANNELS = 16
_HEAD_CHANNELS = 1280
# Upstream BatchNorm2d settings (partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)); eps matters for the weights.
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Round to a multiple of `divisor`, never more than 10 % below `value` (the TF MobileNet rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    groups: int = 1,
    activation: type[nn.Module] | None,
) -> nn.Sequential:
    """Conv (no bias) -> BatchNorm -> activation, keyed `.0`, `.1` like torchvision's ConvNormActivation."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
            groups=groups, bias=False,
        ),
        nn.BatchNorm2d(out_channels, eps=_BN_EPS, momentum=_BN_MOMENTUM),
    ]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


class _ConcurrentSE(nn.Module):
    """EfficientAT's ConcurrentSEBlock restricted to the channel axis (`se_dims="c"`, the mn04 setting).

    With a single SE layer the upstream max-aggregation over layers is the identity.
    """

    def __init__(self, channels: int, *, reduction: int) -> None:
        super().__init__()
        squeeze = _make_divisible(channels // reduction, 8)
        self.conc_se_layers = nn.ModuleList([SqueezeExcitation(channels, squeeze, bias=True)])

    def forward(self, x: Tensor) -> Tensor:
        return self.conc_se_layers[0](x)


class _InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (k x k, stride) -> [SE] -> project (1x1, linear), residual when shapes match."""

    def __init__(
        self,
        in_channels: int,
        kernel_size: int,
        expanded_channels: int,
        out_channels: int,
        *,
        use_se: bool,
        use_hardswish: bool,
        stride: int,
        se_reduction: int,
    ) -> None:
        super().__init__()
        activation = nn.Hardswish if use_hardswish else nn.ReLU
        layers: list[nn.Module] = []
        if expanded_channels != in_channels:
            layers.append(_conv_norm_act(in_channels, expanded_channels, 1, activation=activation))
        layers.append(
            _conv_norm_act(
                expanded_channels, expanded_channels, kernel_size, stride=stride, groups=expanded_channels,
                activation=activation,
            )
        )
        if use_se:
            layers.append(_ConcurrentSE(expanded_channels, reduction=se_reduction))
        layers.append(_conv_norm_act(expanded_channels, out_channels, 1, activation=None))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return out + x if self.use_residual else out


class MobileNetV3(nn.Module):
    """EfficientAT MobileNetV3 audio tagger on log-mel spectrograms.

    Args:
        width_mult: channel multiplier of every layer (mn04: 0.4).
        num_classes: logits of the head (AudioSet: 527).
        in_channels: input channels (1 for a mel spectrogram).
        dropout: dropout of the "mlp" head.
        se_reduction: squeeze-excitation bottleneck ratio.
        embed_layer: index into `features` (0 = stem, 1-15 = inverted residuals, 16 = last conv) whose
            map `forward_features` returns; None = the last. The AudioSet head always uses the last.
        num_mel_bins: F of the input, for the width of "band-mean" embeddings (EfficientAT: 128).

    Input is (B, in_channels, F, T) for any T; the maps shrink 32-fold in both axes by the last layer
    and every pooling averages over time, so clip length is free.
    """

    def __init__(
        self,
        *,
        width_mult: float = 0.4,
        num_classes: int = 527,
        in_channels: int = 1,
        dropout: float = 0.2,
        se_reduction: int = 4,
        embed_layer: int | None = None,
        num_mel_bins: int = 128,
    ) -> None:
        super().__init__()

        def width(channels: int) -> int:
            return _make_divisible(channels * width_mult, 8)

        stem_channels = width(_STEM_CHANNELS)
        layers: list[nn.Module] = [
            _conv_norm_act(in_channels, stem_channels, 3, stride=2, activation=nn.Hardswish)
        ]
        channels = stem_channels
        widths, strides = [stem_channels], [2]
        for kernel, expanded, out, use_se, use_hs, stride in _LARGE_BLOCKS:
            layers.append(
                _InvertedResidual(
                    channels, kernel, width(expanded), width(out), use_se=use_se, use_hardswish=use_hs,
                    stride=stride, se_reduction=se_reduction,
                )
            )
            channels = width(out)
            widths.append(channels)
            strides.append(stride)
        last_width = 6 * channels  # upstream: last conv widens 6x (mn04: 64 -> 384)
        layers.append(_conv_norm_act(channels, last_width, 1, activation=nn.Hardswish))
        widths.append(last_width)
        strides.append(1)
        self.features = nn.Sequential(*layers)
        depth = len(layers)
        if embed_layer is not None and not -depth <= embed_layer < depth:
            raise ConfigError(f"embed_layer={embed_layer} is not a layer index of the {depth} feature layers")
        self.embed_layer = depth - 1 if embed_layer is None else embed_layer % depth
        self.embed_dim = widths[self.embed_layer]
        self.num_mel_bins = num_mel_bins
        # F' of the embedding layer's map: every stride-2 conv halves F, rounding up (padding (k-1)//2).
        bands = num_mel_bins
        for stride in strides[: self.embed_layer + 1]:
            bands = -(-bands // stride)
        self.embed_bands = bands
        hidden = width(_HEAD_CHANNELS)
        # Keys classifier.2 / classifier.5 of the upstream "mlp" head; the pooling stays inside it.
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(start_dim=1),
            nn.Linear(last_width, hidden),
            nn.Hardswish(),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes),
        )
        self.num_classes = num_classes
        self._init_weights()

    def _init_weights(self) -> None:
        # Upstream initialisation (torchvision MobileNetV3).
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def example_input(self, batch: int, *, generator: torch.Generator | None = None) -> Tensor:
        """A small valid input: (batch, 1, num_mel_bins, 64) standard normal "mel", on the module's device."""
        device = self.classifier[-1].weight.device
        return torch.randn(batch, 1, self.num_mel_bins, 64, generator=generator).to(device)

    def feature_maps(self, mel: Tensor) -> list[Tensor]:
        """Output of every stage: stem, 15 inverted residuals, last 1x1 conv (17 maps).

        Args:
            mel: (B, 1, F, T) normalised log-mel (see `EfficientATFrontEnd`).

        Returns:
            list of (B, C_i, F_i, T_i); the last is `forward_features(mel)`.
        """
        maps = []
        x = mel
        for layer in self.features:
            x = layer(x)
            maps.append(x)
        return maps

    def forward_features(self, mel: Tensor) -> Tensor:
        """(B, 1, F, T) -> the map of layer `embed_layer` (B, embed_dim, F', T'); the last layer's is
        (B, 384, ceil(F/32), ceil(T/32))."""
        return self.features[: self.embed_layer + 1](mel)

    def pooled_dim(self, how: MobileNetPooling = "mean") -> int:
        """D of `pool(..., how)`: embed_dim for "mean", embed_dim x F' for "band-mean", twice that for
        "band-mean-max"."""
        if how not in MOBILENET_POOLINGS:
            raise ConfigError(f"MobileNet pooling must be one of {', '.join(MOBILENET_POOLINGS)}, got {how!r}")
        return self.embed_dim * {"mean": 1, "band-mean": self.embed_bands, "band-mean-max": 2 * self.embed_bands}[how]

    def pool(self, feature_map: Tensor, how: MobileNetPooling = "mean") -> Tensor:
        """(B, embed_dim, F', T') -> (B, pooled_dim(how)).

        "mean" is the upstream global average; "band-mean" averages over time per frequency row and
        flattens channel-major (B, C * F'); "band-mean-max" is that followed by the time maxima, flattened
        the same way (B, 2 * C * F').
        """
        if how == "mean":
            return feature_map.mean(dim=(2, 3))
        if how in ("band-mean", "band-mean-max"):
            if feature_map.shape[2] != self.embed_bands:
                raise ValueError(f"{how} expects {self.embed_bands} frequency rows "
                                 f"({self.num_mel_bins} mel bins), got {feature_map.shape[2]}")
            mean = feature_map.mean(dim=3).flatten(1)  # (B, C, F') -> (B, C * F')
            if how == "band-mean":
                return mean
            return torch.cat([mean, feature_map.amax(dim=3).flatten(1)], dim=1)
        raise ConfigError(f"MobileNet pooling must be one of {', '.join(MOBILENET_POOLINGS)}, got {how!r}")

    def embed(self, mel: Tensor, how: MobileNetPooling = "mean") -> Tensor:
        """(B, 1, F, T) -> (B, pooled_dim(how)) clip embedding (384-d for mn04's default)."""
        return self.pool(self.forward_features(mel), how)

    def forward(self, mel: Tensor) -> Tensor:
        """(B, 1, F, T) -> AudioSet logits (B, num_classes); apply a sigmoid for tag probabilities."""
        return self.classifier(self.features(mel))


@register_encoder("mobilenet-mn04")
def mobilenet_mn04(**overrides) -> MobileNetV3:
    """EfficientAT mn04: width 0.4, 527 AudioSet classes, 384-d embedding (weights: `load_mn04_weights`)."""
    return MobileNetV3(**{"width_mult": 0.4, "num_classes": 527, **overrides})


class EfficientATFrontEnd(nn.Module):
    """EfficientAT log-mel front end (`AugmentMelSTFT` in eval mode): 32 kHz waveform -> (B, 1, F, T).

    Pre-emphasis y[n] = x[n+1] - 0.97 x[n] (drops one sample), centred STFT with reflect padding,
    symmetric Hann window of `win_length` zero-padded to `n_fft`, power spectrum, Kaldi mel banks
    (`kaldi_mel_banks`, zero weight on the Nyquist bin), log(x + 1e-5), then (x + 4.5) / 5.
    T = 1 + (S - 1) // hop_length: 1000 frames for 10 s at 32 kHz. The training-time augmentations of
    upstream (random fmin/fmax shifts, frequency and time masking) are left out.

    Args:
        sample_rate: Hz of the input waveform.
        n_fft: FFT size in samples.
        win_length: window length in samples.
        hop_length: frame shift in samples.
        num_mel_bins: F.
        low_freq: lowest mel-bank edge in Hz.
        high_freq: highest mel-bank edge in Hz (upstream eval: 16000 - 2000 / 2 = 15000).
        preemph_coeff: pre-emphasis coefficient.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 32000,
        n_fft: int = 1024,
        win_length: int = 800,
        hop_length: int = 320,
        num_mel_bins: int = 128,
        low_freq: float = 0.0,
        high_freq: float = 15000.0,
        preemph_coeff: float = 0.97,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.preemph_coeff = preemph_coeff
        self.register_buffer("window", torch.hann_window(win_length, periodic=False), persistent=False)
        mel_banks = kaldi_mel_banks(num_mel_bins, n_fft, float(sample_rate), low_freq, high_freq)
        self.register_buffer("mel_banks", mel_banks, persistent=False)  # (F, n_fft // 2 + 1)

    def forward(self, waveform: Tensor) -> Tensor:
        """(B, S) float waveform at `sample_rate` -> (B, 1, num_mel_bins, 1 + (S - 1) // hop_length)."""
        x = waveform[:, 1:] - self.preemph_coeff * waveform[:, :-1]  # (B, S - 1)
        spec = torch.stft(
            x, self.n_fft, hop_length=self.hop_length, win_length=self.win_length, window=self.window,
            center=True, pad_mode="reflect", normalized=False, return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()  # (B, n_fft // 2 + 1, T)
        mel = torch.matmul(self.mel_banks, power)  # (B, F, T)
        mel = (torch.log(mel + 1e-5) + 4.5) / 5.0
        return mel.unsqueeze(1)  # (B, 1, F, T)


def _upsampling_filter(factor: int, *, zero_crossings: int = 32, rolloff: float = 0.95) -> Tensor:
    """Kaiser-windowed sinc low-pass for integer upsampling, cutoff `rolloff` x the input Nyquist."""
    half = zero_crossings * factor
    k = torch.arange(-half, half + 1, dtype=torch.float64)
    window = torch.kaiser_window(2 * half + 1, periodic=False, beta=8.6, dtype=torch.float64)
    return (rolloff * torch.sinc(rolloff * k / factor) * window).float()  # (2 * half + 1,)


class EfficientATInput(nn.Module):
    """Waveform (B, S) at `sample_rate` = 32000 / n -> EfficientAT model input (B, 1, 128, T).

    Inputs below 32 kHz (16 kHz, 8 kHz, ...) are upsampled by n with a windowed-sinc filter first;
    content above the input's Nyquist is then (correctly) absent. No trainable parameters.

    Args:
        sample_rate: Hz of the input waveforms.

    Raises:
        ConfigError: `sample_rate` does not divide 32000.
    """

    front_rate = 32000

    def __init__(self, *, sample_rate: int = 32000) -> None:
        super().__init__()
        if sample_rate <= 0 or self.front_rate % sample_rate:
            raise ConfigError(f"sample_rate={sample_rate} Hz must divide {self.front_rate} Hz; resample first")
        self.sample_rate = sample_rate
        self.factor = self.front_rate // sample_rate
        self.front_end = EfficientATFrontEnd(sample_rate=self.front_rate)
        filt = _upsampling_filter(self.factor) if self.factor > 1 else torch.ones(1)
        self.register_buffer("upsampling_filter", filt, persistent=False)

    def to_front_rate(self, waveform: Tensor) -> Tensor:
        """(B, S) at `sample_rate` -> (B, S * factor) at 32 kHz."""
        if self.factor == 1:
            return waveform
        kernel = self.upsampling_filter.view(1, 1, -1)  # (1, 1, K)
        half = (kernel.shape[-1] - 1) // 2
        # Transposed conv = zero-stuffing by `factor` followed by the low-pass, centred on the input samples.
        out = F.conv_transpose1d(
            waveform.unsqueeze(1), kernel, stride=self.factor, padding=half, output_padding=self.factor - 1
        )  # (B, 1, S * factor)
        return out.squeeze(1)

    def forward(self, waveform: Tensor) -> Tensor:
        """(B, S) at `sample_rate` -> (B, 1, 128, T) normalised log-mel."""
        return self.front_end(self.to_front_rate(waveform))


class EfficientATTagger(nn.Module):
    """Waveform -> AudioSet logits or embedding with an EfficientAT model and its input (`EfficientATInput`).

    Args:
        model: the network (e.g. `load_mn04_weights(path)`); a random mn04 when None.
        sample_rate: Hz of the waveforms given to `forward` / `embed` (32000 / n).

    Raises:
        ConfigError: `sample_rate` does not divide 32000.
    """

    def __init__(self, model: MobileNetV3 | None = None, *, sample_rate: int = 32000) -> None:
        super().__init__()
        self.input = EfficientATInput(sample_rate=sample_rate)
        self.sample_rate = sample_rate
        self.factor = self.input.factor
        self.model = model if model is not None else mobilenet_mn04()
        self.embed_dim = self.model.embed_dim

    def to_front_rate(self, waveform: Tensor) -> Tensor:
        """(B, S) at `sample_rate` -> (B, S * factor) at 32 kHz."""
        return self.input.to_front_rate(waveform)

    def mel(self, waveform: Tensor) -> Tensor:
        """(B, S) at `sample_rate` -> (B, 1, 128, T) model input."""
        return self.input(waveform)

    def embed(self, waveform: Tensor) -> Tensor:
        """(B, S) at `sample_rate` -> (B, embed_dim)."""
        return self.model.embed(self.mel(waveform))

    def forward(self, waveform: Tensor) -> Tensor:
        """(B, S) at `sample_rate` -> logits (B, num_classes)."""
        return self.model(self.mel(waveform))


def check_mn04_state_dict(model: nn.Module, state_dict: dict[str, Tensor], *, source: str = "state dict") -> None:
    """Raise if `state_dict` does not match `model` key for key and shape for shape.

    Raises:
        CheckpointError: listing missing, unexpected and mis-shaped keys, naming `source`.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    misshaped = sorted(
        f"{key}: checkpoint {tuple(state_dict[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in set(expected) & set(state_dict)
        if tuple(state_dict[key].shape) != tuple(expected[key].shape)
    )
    if missing or unexpected or misshaped:
        parts = [
            f"{label} ({len(keys)}): {', '.join(keys)}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped))
            if keys
        ]
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: " + "; ".join(parts))
