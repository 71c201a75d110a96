"""Machine-attribute classification with the AudioSet MobileNet (EfficientAT mn04): the paper's model
adaptation (Sec. 2.5: a margin head on (machine, attribute) classes, mixup and SpecAugment) applied to a
pre-trained CNN small enough to fine-tune on a CPU.

The front end has no trainable part, so `MelClips` computes each clip's log-mel once and the task trains
on random time crops of it: a 10-s clip costs one front-end pass per fit, not one per step. Embeddings
come from an intermediate layer's map averaged over time per frequency band, then a linear projection
(benchmarks/results/mn04_embeddings.md). Only the layers up to `embed_layer` and the new layers train;
the AudioSet classifier and later layers are frozen (they do not reach the embedding).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from asdlab.encoders.backbone import Backbone, build_backbone
from asdlab.encoders.mobilenet import MobileNetPooling, MobileNetV3
from asdlab.errors import ConfigError
from asdlab.features.augment import mixup, spec_augment
from asdlab.heads import soft_cross_entropy
from asdlab.training.finetune import EmbeddingProjection, HeadKind, cpu_generator, make_head
from asdlab.training.loop import TrainOutput
from asdlab.training.schedules import parameter_groups

__all__ = ["FRAMES_PER_S", "make_mobilenet_backbone", "MelClips", "MobileNetAttributeTask"]

FRAMES_PER_S = 100  # EfficientAT's front end: hop 320 at 32 kHz


def make_mobilenet_backbone(
    preset: str = "mobilenet-mn04",
    *,
    pooling: MobileNetPooling = "band-mean",
    embed_layer: int | None = None,
    projection_dim: int | None = 256,
    projection_layers: int = 1,
    weights: str | None = None,
    sample_rate: int = 16000,
    seed: int = 0,
) -> Backbone:
    """A MobileNet backbone for fine-tuning: encoder (+ weights), pooling, optional projection.

    The projection is drawn from `seed` (the encoder too when `weights` is None), so
    `load_finetuned_backbone` rebuilds the same modules before loading their weights.

    Args:
        preset: a MobileNet preset ("mobilenet-mn04").
        pooling: "mean", "band-mean" or "band-mean-max" (see `MobileNetV3.pool`).
        embed_layer: the feature layer embedded (`MobileNetV3`); None = the last.
        projection_dim: embedding size after the projection; None = no projection.
        projection_layers: 1 or 2 (see `EmbeddingProjection`).
        weights: "pretrained", an EfficientAT state dict or an asdlab encoder file; None = random.
        sample_rate: Hz of the waveforms (32000 / n).
        seed: initialisation of the random parts.

    Raises:
        ConfigError: a preset that is not a MobileNet, or a bad pooling / layer.
    """
    options = {} if embed_layer is None else {"embed_layer": embed_layer}
    backbone = build_backbone(preset, pooling=pooling, weights=weights, sample_rate=sample_rate, seed=seed, **options)
    if not isinstance(backbone.encoder, MobileNetV3):
        raise ConfigError(f"{preset}: the mobilenet recipe fine-tunes MobileNet presets only")
    projection = None
    if projection_dim is not None:
        with torch.random.fork_rng(devices=[]):  # draw from `seed`, leave the global RNG as it was
            torch.manual_seed(seed + 1)
            projection = EmbeddingProjection(backbone.pooled_dim, projection_dim, layers=projection_layers)
    return Backbone(backbone.encoder, front_end=backbone.front_end, pooling=backbone.pooling,
                    sample_rate=backbone.sample_rate, name=preset, projection=projection, level=backbone.level)


class MelClips(Dataset):
    """A dataset of {"waveform", ...} items served as {"mel" (1, F, T), ...}, each log-mel computed once.

    The mels are kept in memory (10 s = 0.5 MB per clip), filled on first access.

    Args:
        clips: map-style dataset whose items hold "waveform" (S,).
        front_end: waveform (B, S) -> (B, 1, F, T), e.g. a MobileNet backbone's `front_end` (a CPU copy
            is used, so moving the model to another device does not move it).
    """

    def __init__(self, clips: Dataset, front_end: nn.Module) -> None:
        self.clips = clips
        self.front_end = copy.deepcopy(front_end).to("cpu").eval()
        self._mels: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return len(self.clips)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.clips[index])
        waveform = item.pop("waveform")
        if index not in self._mels:
            with torch.no_grad():
                self._mels[index] = self.front_end(waveform[None])[0]  # (1, F, T)
        item["mel"] = self._mels[index]
        return item


def _random_crops(mel: Tensor, frames: int, generator: torch.Generator) -> Tensor:
    """(B, 1, F, T) -> (B, 1, F, frames), an independent uniform start per clip (all of T if shorter)."""
    total = mel.shape[-1]
    if frames >= total:
        return mel
    starts = torch.randint(0, total - frames + 1, (mel.shape[0],), generator=generator).tolist()
    return torch.stack([mel[i, :, :, s: s + frames] for i, s in enumerate(starts)])


class MobileNetAttributeTask(nn.Module):
    """Train a MobileNet `Backbone` to classify machine attributes; a `TrainTask` for `train`.

    Batches are dicts with "mel" (B, 1, F, T) from `MelClips` (or "waveform" (B, S), passed through the
    front end) and "target" LongTensor (B,). Per batch: random crops of `crop_frames`, mixup of the mels
    and one-hot targets, SpecAugment, embedding (pooling + projection), margin-head cross-entropy.

    Args:
        backbone: from `make_mobilenet_backbone`.
        num_classes: C.
        head: "arcface", "adacos" or "sc-adacos".
        head_scale: ArcFace s.
        head_margin: ArcFace m (radians).
        sub_clusters: sub-cluster AdaCos K.
        layer_decay: lr scale decay ** (L - layer) for feature layer `layer` (0 = stem), L = embed_layer
            + 1 for the projection and head, so the pre-trained low layers move least (1.0 = off).
        crop_frames: training crop length in frames (100 per second); None = whole clips.
        mixup_p: probability a clip is mixed (0 = off).
        mixup_alpha: Beta(alpha, alpha) mixing weights.
        time_masks / time_width: SpecAugment time bands per clip and the widest, frames.
        freq_masks / freq_width: SpecAugment frequency bands per clip and the widest, mel bins.
        seed: initialisation of the head.

    Raises:
        ConfigError: not a MobileNet backbone, an unknown head, or a bad crop length.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        *,
        head: HeadKind = "arcface",
        head_scale: float = 30.0,
        head_margin: float = 0.5,
        sub_clusters: int = 16,
        layer_decay: float = 1.0,
        crop_frames: int | None = None,
        mixup_p: float = 0.5,
        mixup_alpha: float = 1.0,
        time_masks: int = 2,
        time_width: int = 20,
        freq_masks: int = 2,
        freq_width: int = 16,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if backbone.kind != "mobilenet":
            raise ConfigError(f"{backbone.name}: MobileNetAttributeTask fine-tunes MobileNet backbones")
        if crop_frames is not None and crop_frames < 32:
            raise ConfigError(f"crop_frames must be at least 32 (the network's time stride), got {crop_frames}")
        self.backbone = backbone
        self.num_classes = num_classes
        self.layer_decay = layer_decay
        self.crop_frames = crop_frames
        self.mixup_p, self.mixup_alpha = mixup_p, mixup_alpha
        self.time_masks, self.time_width = time_masks, time_width
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.head = make_head(head, backbone.embed_dim, num_classes, scale=head_scale, margin=head_margin,
                              sub_clusters=sub_clusters, seed=seed)
        encoder = backbone.encoder
        self.depth = encoder.embed_layer + 1  # feature layers that reach the embedding
        # The AudioSet classifier and the layers after embed_layer never reach the embedding.
        encoder.classifier.requires_grad_(False)
        for layer in encoder.features[self.depth:]:
            layer.requires_grad_(False)

    def _layer_id(self, name: str) -> int:
        prefix = "backbone.encoder.features."
        if name.startswith(prefix):
            return int(name[len(prefix):].split(".", 1)[0])
        return self.depth  # projection and head

    def optimizer_groups(self, *, weight_decay: float) -> list[dict]:
        """Trainable parameters, with layer-wise learning-rate decay when `layer_decay` < 1."""
        if self.layer_decay == 1.0:
            return parameter_groups(self.named_parameters(), weight_decay=weight_decay)
        return parameter_groups(self.named_parameters(), weight_decay=weight_decay,
                                lr_scale=lambda name: self.layer_decay ** (self.depth - self._layer_id(name)))

    def after_optimizer_step(self, step: int) -> Mapping[str, float]:
        """The adaptive scale of AdaCos heads, for the log."""
        scale = getattr(self.head, "scale", None)
        return {"head_scale": float(scale)} if isinstance(scale, Tensor) else {}

    def forward(self, batch: Mapping[str, Tensor], *, generator: torch.Generator) -> TrainOutput:
        """Loss of one batch (see the class docstring)."""
        cpu = cpu_generator(generator)
        if "mel" in batch:
            mel = batch["mel"]
        else:
            with torch.no_grad():
                mel = self.backbone.front_end(batch["waveform"])  # (B, 1, F, T)
        if self.crop_frames is not None:
            mel = _random_crops(mel, self.crop_frames, cpu)
        targets = F.one_hot(batch["target"], self.num_classes).to(mel.dtype)  # (B, C)
        if self.mixup_p > 0:
            mel, targets = mixup(mel, targets, generator=cpu, alpha=self.mixup_alpha, p=self.mixup_p)
        if self.time_masks or self.freq_masks:
            masked = spec_augment(mel.transpose(2, 3), time_masks=self.time_masks, time_width=self.time_width,
                                  freq_masks=self.freq_masks, freq_width=self.freq_width, generator=cpu)  # (B, 1, T, F)
            mel = masked.transpose(2, 3)  # (B, 1, F, T)
        embeddings = self.backbone.embed_input(mel)
        logits = self.head(embeddings, targets)
        loss = soft_cross_entropy(logits, targets)
        with torch.no_grad():  # inference logits (no margin): what the classifier would predict
            accuracy = (self.head(embeddings.detach()).argmax(dim=1) == targets.argmax(dim=1)).float().mean()
        return TrainOutput(loss, {"loss_attr": loss.detach(), "acc": accuracy.detach()})
