"""Encoders: plain nn.Modules mapping spectrograms to token features and clip embeddings.

Presets are built by short name (`create_encoder("eat-base")`); released EAT / SSLAM weights load with
`load_eat_checkpoint`, released BEATs weights with `load_beats_checkpoint`, and any encoder saves to /
loads from one safetensors file. Every later stage uses a `Backbone` (front end + encoder + pooling: waveforms -> embeddings) from `build_backbone`.
"""

from asdlab.encoders.backbone import Backbone, build_backbone, list_backbones
from asdlab.encoders.beats import BEATsEncoder, BEATsFeatures
from asdlab.encoders.beats_checkpoint import BEATsCheckpointReport, load_beats_checkpoint
from asdlab.encoders.checkpoints import CheckpointReport, load_eat_checkpoint, load_encoder, save_encoder
from asdlab.encoders.eat import EATDecoder, EATEncoder, EATFeatures, create_eat_decoder
from asdlab.encoders.registry import create_encoder, list_encoders, register_encoder

__all__ = [
    "Backbone",
    "build_backbone",
    "list_backbones",
    "create_encoder",
    "list_encoders",
    "register_encoder",
    "EATEncoder",
    "EATDecoder",
    "EATFeatures",
    "create_eat_decoder",
    "BEATsEncoder",
    "BEATsFeatures",
    "load_beats_checkpoint",
    "BEATsCheckpointReport",
    "load_eat_checkpoint",
    "CheckpointReport",
    "save_encoder",
    "load_encoder",
]
