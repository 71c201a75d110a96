"""Waveform tensor -> time-frequency tensor: Kaldi fbank (EAT, BEATs), their normalisations, |FFT| and STFT."""

from asdlab.features.fbank import KaldiFbank, WindowType, count_frames, fbank, kaldi_mel_banks, kaldi_window
from asdlab.features.normalize import (
    BEATS_FBANK_MEAN,
    BEATS_FBANK_STD,
    BEATsFrontEnd,
    EAT_FBANK_MEAN,
    EAT_FBANK_STD,
    EAT_TARGET_FRAMES,
    EATFrontEnd,
    beats_input,
    eat_input,
    normalize_eat,
    pad_or_crop,
    pad_to_multiple,
)
from asdlab.features.spectra import (
    MagnitudeSpectrogram,
    WholeClipSpectrum,
    magnitude_spectrogram,
    subtract_time_mean,
    whole_clip_spectrum,
)

__all__ = [
    "BEATS_FBANK_MEAN",
    "BEATS_FBANK_STD",
    "BEATsFrontEnd",
    "beats_input",
    "EAT_FBANK_MEAN",
    "EAT_FBANK_STD",
    "EAT_TARGET_FRAMES",
    "EATFrontEnd",
    "KaldiFbank",
    "MagnitudeSpectrogram",
    "WholeClipSpectrum",
    "WindowType",
    "count_frames",
    "eat_input",
    "fbank",
    "kaldi_mel_banks",
    "kaldi_window",
    "magnitude_spectrogram",
    "normalize_eat",
    "pad_or_crop",
    "pad_to_multiple",
    "subtract_time_mean",
    "whole_clip_spectrum",
]
