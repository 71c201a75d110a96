"""EAT's input pipeline around the fbank: clip-mean removal, pad/crop, AudioSet normalisation.

Implements EAT.md "Front end" steps 1, 3, 4 and 5 as the official code does them
(EAT `data/raw_audio_dataset.py`, `feature_extract/feature_extract.py`): the log-mel fbank is
padded with zeros *before* normalising, so padded frames end up at 4.268 / 9.138 ~ 0.467.
"""

from __future__ import annotations

from torch import Tensor, nn

from asdlab.errors import ConfigError, DataError
from asdlab.features.fbank import KaldiFbank

__all__ = [
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
