"""EAT's and BEATs' input pipelines around the fbank: scaling, pad/crop, AudioSet normalisation.

EAT: EAT.md "Front end" steps 1, 3, 4 and 5 as the official code does them (EAT
`data/raw_audio_dataset.py`, `feature_extract/feature_extract.py`): the log-mel fbank is padded with
zeros *before* normalising, so padded frames end up at 4.268 / 9.138 ~ 0.467. BEATs: microsoft/unilm
`beats/BEATs.py` `preprocess`: waveform x 2^15, torchaudio's Kaldi fbank with its defaults (povey
window, not EAT's hanning), 128 bins, 25 / 10 ms, then (fbank - 15.41663) / (2 x 6.55582); no padding.
"""

from __future__ import annotations

from torch import Tensor, nn

from asdlab.errors import ConfigError, DataError
from asdlab.features.fbank import KaldiFbank

__all__ = [
    "BEATS_FBANK_MEAN",
    "BEATS_FBANK_STD",
    "BEATS_WAVEFORM_SCALE",
    "BEATsFrontEnd",
    "beats_input",
    "EAT_FBANK_MEAN",
    "EAT_FBANK_STD",
    "EAT_TARGET_FRAMES",
    "EATFrontEnd",
    "eat_input",
    "normalize_eat",
    "pad_or_crop",
    "pad_to_multiple",
]

# AudioSet log-mel statistics used by EAT for pre-training and AudioSet fine-tuning
# (`norm_mean`, `norm_std` in EAT data/raw_audio_dataset.py); the std is doubled when applied.
EAT_FBANK_MEAN = -4.268
EAT_FBANK_STD = 4.569
# 10 s -> 998 frames, padded to 1024 = 64 patches of 16 frames (EAT.md step 3).
EAT_TARGET_FRAMES = 1024


def normalize_eat(fbank: Tensor) -> Tensor:
    """(fbank + 4.268) / (2 * 4.569): EAT's AudioSet normalisation.

    Args:
        fbank: log-mel features of any shape.

    Returns:
        Normalised features, same shape and dtype.
    """
    return (fbank - EAT_FBANK_MEAN) / (2.0 * EAT_FBANK_STD)


def pad_or_crop(features: Tensor, target_frames: int, *, value: float = 0.0) -> Tensor:
    """Pad the time axis at the end with `value`, or keep its first `target_frames` frames.

    Args:
        features: (*, T, F).
        target_frames: T' (> 0).
        value: fill of the added frames; EAT pads the log fbank with 0 before normalising.

    Returns:
        (*, T', F).

    Raises:
        ConfigError: `target_frames` < 1.
    """
    if target_frames < 1:
        raise ConfigError(f"target_frames must be >= 1, got {target_frames}")
    num_frames = features.shape[-2]
    if num_frames >= target_frames:
        return features[..., :target_frames, :]
    return nn.functional.pad(features, (0, 0, 0, target_frames - num_frames), value=value)


def pad_to_multiple(features: Tensor, multiple: int = 16, *, value: float = 0.0) -> Tensor:
    """Pad the time axis at the end to the next multiple of `multiple` (EAT patches are 16 frames).

    Args:
        features: (*, T, F).
        multiple: frame multiple (> 0).
        value: fill of the added frames (0 in the log domain, as EAT).

    Returns:
        (*, ceil(T / multiple) * multiple, F); unchanged when T is already a multiple.

    Raises:
        ConfigError: `multiple` < 1.
    """
    if multiple < 1:
        raise ConfigError(f"multiple must be >= 1, got {multiple}")
    extra = -features.shape[-2] % multiple
    if extra == 0:
        return features
    return nn.functional.pad(features, (0, 0, 0, extra), value=value)


def eat_input(
    waveform: Tensor,
    *,
    target_frames: int | None = EAT_TARGET_FRAMES,
    front_end: KaldiFbank | None = None,
) -> Tensor:
    """The (B, 1, T, F) tensor EAT expects, from 16 kHz waveforms.

    Steps: subtract each clip's mean, Kaldi fbank (EAT settings), pad with 0 / crop to
    `target_frames` (or pad to a multiple of 16 when None), normalise. For a batch of clips
    zero-padded to a common length the mean includes the padding; pass clips of equal length.

    Args:
        waveform: (B, S) or (S,) float samples in [-1, 1] at 16 kHz.
        target_frames: T; 1024 for 10 s clips (EAT); None keeps all frames, padded to a multiple of 16.
        front_end: a `KaldiFbank` to reuse (EAT's defaults when None).

    Returns:
        (B, 1, T, F) normalised log-mel; B = 1 for (S,) input.

    Raises:
        DataError: input not (S,) or (B, S), or shorter than one frame.
    """
    if waveform.ndim not in (1, 2):
        raise DataError(f"waveform must be (S,) or (B, S), got shape {tuple(waveform.shape)}")
    if front_end is None:
        front_end = KaldiFbank()
    x = waveform.reshape(-1, waveform.shape[-1])  # (B, S)
    x = x - x.mean(dim=-1, keepdim=True)
    feats = front_end(x)  # (B, T, F)
    feats = pad_to_multiple(feats, 16) if target_frames is None else pad_or_crop(feats, target_frames)
    # In place is safe: `feats` is fresh from the front end (or a crop of it). Same as `normalize_eat`.
    feats = feats.sub_(EAT_FBANK_MEAN).div_(2.0 * EAT_FBANK_STD)
    return feats.unsqueeze(1)  # (B, 1, T, F): time is the image height


class EATFrontEnd(nn.Module):
    """`eat_input` as a module: waveform (B, S) -> (B, 1, T, F), no trainable parameters."""

    def __init__(self, *, target_frames: int | None = EAT_TARGET_FRAMES, num_mel_bins: int = 128) -> None:
        super().__init__()
        self.target_frames = target_frames
        self.fbank = KaldiFbank(num_mel_bins=num_mel_bins)

    def forward(self, waveform: Tensor) -> Tensor:
        """See `eat_input`."""
        return eat_input(waveform, target_frames=self.target_frames, front_end=self.fbank)


# BEATs' fbank statistics (`fbank_mean`, `fbank_std` of BEATs.extract_features); the std is doubled when applied.
BEATS_FBANK_MEAN = 15.41663
BEATS_FBANK_STD = 6.55582
# BEATs scales [-1, 1] samples to the int16 range before the fbank (log-mel + 2 ln 2^15 ~ +20.8).
BEATS_WAVEFORM_SCALE = 2.0**15
_BEATS_PATCH = 16


def beats_input(waveform: Tensor, *, max_frames: int | None = EAT_TARGET_FRAMES,
                front_end: KaldiFbank | None = None) -> Tensor:
    """The (B, 1, T, F) tensor BEATs expects, from 16 kHz waveforms.

    Steps: x 2^15, Kaldi fbank (povey window, no dither), keep at most `max_frames` frames and then a
    multiple of 16 (BEATs' stride-16 patch convolution drops the remainder anyway), normalise. Nothing is
    padded and the clip mean is not removed (Kaldi removes each frame's DC offset), as upstream.

    Args:
        waveform: (B, S) or (S,) float samples in [-1, 1] at 16 kHz.
        max_frames: longest input in frames (1024 = 10.24 s, BEATs' 10-s training clips); None = all.
        front_end: a `KaldiFbank` with BEATs' settings to reuse (built when None).

    Returns:
        (B, 1, T, F) normalised log-mel, T a multiple of 16.

    Raises:
        DataError: input not (S,) or (B, S), or shorter than 16 frames (0.175 s).
    """
    if waveform.ndim not in (1, 2):
        raise DataError(f"waveform must be (S,) or (B, S), got shape {tuple(waveform.shape)}")
    if front_end is None:
        front_end = KaldiFbank(window_type="povey")
    feats = front_end(waveform.reshape(-1, waveform.shape[-1]) * BEATS_WAVEFORM_SCALE)  # (B, T, F)
    frames = feats.shape[-2] if max_frames is None else min(feats.shape[-2], max_frames)
    frames -= frames % _BEATS_PATCH
    if frames == 0:
        raise DataError(f"BEATs needs at least {_BEATS_PATCH} fbank frames; the clip gives {feats.shape[-2]}")
    feats = (feats[..., :frames, :] - BEATS_FBANK_MEAN) / (2.0 * BEATS_FBANK_STD)
    return feats.unsqueeze(1)  # (B, 1, T, F): time is the image height


class BEATsFrontEnd(nn.Module):
    """`beats_input` as a module: waveform (B, S) -> (B, 1, T, F), no trainable parameters.

    `target_frames` is the longest input kept (BEATs pads nothing); the name matches `EATFrontEnd`'s.
    """

    def __init__(self, *, target_frames: int | None = EAT_TARGET_FRAMES, num_mel_bins: int = 128) -> None:
        super().__init__()
        if target_frames is not None and target_frames < _BEATS_PATCH:
            raise ConfigError(f"target_frames must be at least {_BEATS_PATCH} for BEATs, got {target_frames}")
        self.target_frames = target_frames
        self.fbank = KaldiFbank(num_mel_bins=num_mel_bins, window_type="povey")

    def forward(self, waveform: Tensor) -> Tensor:
        """See `beats_input`."""
        return beats_input(waveform, max_frames=self.target_frames, front_end=self.fbank)
