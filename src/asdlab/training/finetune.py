"""Machine-attribute classification task for transformer fine-tuning (EAT, SSLAM, BEATs; the paper's
"Model adaptation", Eq. 1-3, 10; recipe in its Section 3: mixup and SpecAugment, ArcFace head), with the companions of
`ensemble-domain-generalization-report.txt` Section 2: attentive statistics pooling and a projection,
LoRA, and a second head on cluster pseudo-labels of attribute-less clips (dual-head semi-supervised).

Modes: "full" (every weight, layer-wise lr decay), "lora" (adapters on the attention, optionally MLP,
plus pooling / projection / head), "probe" (frozen encoder in eval mode; pooling, projection, head).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asdlab.encoders.backbone import Backbone, build_backbone
from asdlab.encoders.beats import BEATS_PRESETS
from asdlab.encoders.eat import EAT_PRESETS
from asdlab.errors import ConfigError
from asdlab.features.augment import mixup, spec_augment
from asdlab.heads import AdaCosHead, ArcFaceHead, AttentiveStatsPooling, SubClusterAdaCosHead, soft_cross_entropy
from asdlab.training.compile import CompiledCall
from asdlab.training.loop import TrainOutput
from asdlab.training.schedules import eat_layer_id, parameter_groups

__all__ = [
    "FinetuneMode",
    "HeadKind",
    "PoolingKind",
    "EmbeddingProjection",
    "make_head",
    "make_eat_backbone",
    "cpu_generator",
    "AttributeTask",
]

FinetuneMode = Literal["full", "lora", "probe"]
HeadKind = Literal["arcface", "adacos", "sc-adacos"]
PoolingKind = Literal["cls", "mean", "asp"]
_MODES = ("full", "lora", "probe")
_HEADS = ("arcface", "adacos", "sc-adacos")
_POOLINGS = ("cls", "mean", "asp")


class EmbeddingProjection(nn.Module):
    """Pooled encoder output (B, in_features) -> embedding (B, out_features).

    One Linear, or with `layers=2` Linear-LayerNorm-GELU-Linear (the report's "two fully connected
    layers for feature transformation").
    """

    def __init__(self, in_features: int, out_features: int, *, layers: int = 1) -> None:
        super().__init__()
        if layers not in (1, 2):
            raise ConfigError(f"projection layers must be 1 or 2, got {layers}")
        self.in_features = in_features
        self.out_features = out_features
        self.layers = layers
        if layers == 1:
            self.net: nn.Module = nn.Linear(in_features, out_features)
        else:
            self.net = nn.Sequential(
                nn.Linear(in_features, out_features), nn.LayerNorm(out_features), nn.GELU(),
                nn.Linear(out_features, out_features),
            )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def make_head(
    kind: HeadKind,
    embed_dim: int,
    num_classes: int,
    *,
    scale: float = 30.0,
    margin: float = 0.5,
    sub_clusters: int = 16,
    trainable_centres: bool = True,
    seed: int = 0,
) -> nn.Module:
    """A margin head by name ("arcface", "adacos", "sc-adacos"); centres drawn from `seed`.

    Raises:
        ConfigError: unknown kind, or too few classes for AdaCos (it needs 3 centres).
    """
    generator = torch.Generator().manual_seed(seed)
    try:
        if kind == "arcface":
            return ArcFaceHead(embed_dim, num_classes, scale=scale, margin=margin, generator=generator)
        if kind == "adacos":
            return AdaCosHead(embed_dim, num_classes, generator=generator)
        if kind == "sc-adacos":
            return SubClusterAdaCosHead(embed_dim, num_classes, sub_clusters=sub_clusters,
                                        trainable_centres=trainable_centres, generator=generator)
    except ValueError as error:
        raise ConfigError(f"head {kind!r} with {num_classes} classes: {error}") from None
    raise ConfigError(f"head must be one of {', '.join(_HEADS)}, got {kind!r}")


def make_eat_backbone(
    preset: str,
    *,
    pooling: PoolingKind = "cls",
    projection_dim: int | None = 256,
    projection_layers: int = 1,
    weights: str | None = None,
    target_frames: int | None = 1024,
    seed: int = 0,
    **encoder_options: Any,
) -> Backbone:
    """A transformer backbone (EAT, SSLAM, BEATs) for fine-tuning: encoder (+ weights), pooling, projection.

    The pooling / projection are drawn from `seed` (the encoder too when `weights` is None), so
    `load_finetuned_backbone` can rebuild the same modules before loading their weights.

    Args:
        preset: an EAT preset ("eat-tiny" ... "eat-large", "sslam-base") or a BEATs one ("beats-tiny",
            "beats-base").
        pooling: "cls" (EAT only), "mean" of the patch tokens, or "asp" (attentive statistics, 2 D).
        projection_dim: embedding size after the projection; None = no projection.
        projection_layers: 1 or 2 (see `EmbeddingProjection`).
        weights: encoder weights (any format `build_backbone` reads); None = random.
        target_frames: frames of the input (EAT: padded / cropped to, 1024 = 10.24 s, 208 fits 2 s
            clips; BEATs: at most).
        seed: initialisation of the random parts.
        **encoder_options: preset overrides, e.g. `drop_path=0.1`.

    Raises:
        ConfigError: unknown pooling, "cls" for BEATs, or a preset that is not a transformer.
    """
    if pooling not in _POOLINGS:
        raise ConfigError(f"pooling must be one of {', '.join(_POOLINGS)}, got {pooling!r}")
    if preset not in EAT_PRESETS and preset not in BEATS_PRESETS:
        raise ConfigError(f"{preset}: the attribute-classification task fine-tunes transformer presets: "
                          f"{', '.join([*EAT_PRESETS, *BEATS_PRESETS])}")
    # "asp" pools the patch tokens itself; the backbone's own pooling is then unused (its default).
    backbone = build_backbone(preset, pooling=None if pooling == "asp" else pooling, weights=weights,
                              target_frames=target_frames, seed=seed, **encoder_options)
    with torch.random.fork_rng(devices=[]):  # draw the new layers from `seed`, leave the global RNG as it was
        torch.manual_seed(seed + 1)
        pool_module = AttentiveStatsPooling(backbone.encoder.embed_dim) if pooling == "asp" else None
        width = pool_module.out_dim if pool_module is not None else backbone.encoder.embed_dim
        projection = None
        if projection_dim is not None:
            projection = EmbeddingProjection(width, projection_dim, layers=projection_layers)
    return Backbone(backbone.encoder, front_end=backbone.front_end, pooling=backbone.pooling,
                    sample_rate=backbone.sample_rate, name=preset, pool_module=pool_module, projection=projection)


def cpu_generator(generator: torch.Generator) -> torch.Generator:
    """A CPU generator seeded from `generator` (any device): the augmentations draw on the CPU."""
    if generator.device.type == "cpu":
        return generator
    # From the seed the loop gave this micro-batch, not a draw on the device: reading a draw back
    # would make the host wait for the GPU every step.
    return torch.Generator().manual_seed((generator.initial_seed() * 6364136223846793005 + 1) % 2**63)


class AttributeTask(nn.Module):
    """Train a `Backbone` to classify machine attributes; a `TrainTask` for `asdlab.training.loop.train`.

    Batches are dicts: "waveform" (B, S), "target" LongTensor (B,) class ids, and with a second head
    "pseudo" LongTensor (B,), the cluster id of an attribute-less clip or -1. Mixup and SpecAugment
    act on the front end's output (the normalised fbank), so targets of both heads are mixed alike.
    The loss is CE(head(e), t) + second_weight * CE(second_head(e), t2) over the clips that carry a
    pseudo-label (the report's dual-head objective).

    Args:
        backbone: from `make_eat_backbone` (any transformer preset).
        num_classes: C of the attribute head.
        mode: "full", "lora" or "probe" (module docstring).
        head: "arcface" (paper), "adacos" or "sc-adacos".
        head_scale: ArcFace s.
        head_margin: ArcFace m (radians).
        sub_clusters: sub-cluster AdaCos K.
        layer_decay: full mode: lr scale decay ** (depth + 1 - layer) (EAT fine-tuning: 0.65).
        lora_rank: LoRA r.
        lora_alpha: LoRA alpha.
        lora_mlp: also adapt the MLP Linear layers.
        mixup_p: probability a clip is mixed (0 = off).
        mixup_alpha: Beta(alpha, alpha) mixing weights.
        time_masks: SpecAugment time bands per clip (0 = off).
        time_width: widest time band, frames.
        freq_masks: SpecAugment frequency bands per clip.
        freq_width: widest frequency band, mel bins.
        second_head_classes: K clusters of the second head; 0 = no second head.
        second_weight: weight of the second head's loss.
        seed: initialisation of the heads.
        compile_backend: a `torch.compile` backend ("inductor") for the backbone's encoder, pooling and
            projection, or None for eager (falls back to eager when compiling fails).

    Raises:
        ConfigError: unknown mode or head, or LoRA without peft.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        *,
        mode: FinetuneMode = "full",
        head: HeadKind = "arcface",
        head_scale: float = 30.0,
        head_margin: float = 0.5,
        sub_clusters: int = 16,
        layer_decay: float = 0.65,
        lora_rank: int = 8,
        lora_alpha: float = 16.0,
        lora_mlp: bool = False,
        mixup_p: float = 0.5,
        mixup_alpha: float = 1.0,
        time_masks: int = 2,
        time_width: int = 20,
        freq_masks: int = 2,
        freq_width: int = 16,
        second_head_classes: int = 0,
        second_weight: float = 1.0,
        seed: int = 0,
        compile_backend: str | None = None,
    ) -> None:
        super().__init__()
        if mode not in _MODES:
            raise ConfigError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
        if backbone.kind != "transformer":
            raise ConfigError(f"{backbone.name}: AttributeTask fine-tunes transformer backbones (EAT, SSLAM, BEATs)")
        self.backbone = backbone
        self.mode = mode
        self.num_classes = num_classes
        self.layer_decay = layer_decay
        self.mixup_p, self.mixup_alpha = mixup_p, mixup_alpha
        self.time_masks, self.time_width = time_masks, time_width
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.second_weight = second_weight
        self._embed = CompiledCall(backbone.embed_input, compile_backend, what="fine-tuning encoder")
        dim = backbone.embed_dim
        self.head = make_head(head, dim, num_classes, scale=head_scale, margin=head_margin,
                              sub_clusters=sub_clusters, seed=seed)
        self.second_head = None
        if second_head_classes > 0:
            self.second_head = make_head(head, dim, second_head_classes, scale=head_scale, margin=head_margin,
                                         sub_clusters=sub_clusters, seed=seed + 1)
        self._head_options = dict(kind=head, scale=head_scale, margin=head_margin, sub_clusters=sub_clusters, seed=seed)
        encoder = backbone.encoder
        if mode == "lora":
            from asdlab.training.lora import apply_lora  # peft is optional: import only when asked

            apply_lora(encoder, rank=lora_rank, alpha=lora_alpha, include_mlp=lora_mlp)
        elif mode == "probe":
            encoder.requires_grad_(False)

    def add_second_head(self, num_classes: int) -> None:
        """Stage 2 of dual-head training: a new head for `num_classes` cluster pseudo-labels (batches
        must then carry "pseudo")."""
        options = dict(self._head_options)
        kind, seed = options.pop("kind"), options.pop("seed")
        device = next(self.parameters()).device
        self.second_head = make_head(kind, self.backbone.embed_dim, num_classes, seed=seed + 1, **options).to(device)

    def train(self, mode: bool = True) -> AttributeTask:
        """As `nn.Module.train`, but a probed encoder stays in eval mode (no drop-path, fixed)."""
        super().train(mode)
        if self.mode == "probe":
            self.backbone.encoder.eval()
        return self

    def optimizer_groups(self, *, weight_decay: float) -> list[dict]:
        """Trainable parameters; in full mode with layer-wise learning-rate decay of the encoder."""
        if self.mode != "full" or self.layer_decay == 1.0:
            return parameter_groups(self.named_parameters(), weight_decay=weight_decay)
        depth = len(self.backbone.encoder.blocks)

        def layer_scale(name: str) -> float:
            return self.layer_decay ** (depth + 1 - eat_layer_id(name, depth, prefix="backbone.encoder."))

        return parameter_groups(self.named_parameters(), weight_decay=weight_decay, lr_scale=layer_scale)

    def after_optimizer_step(self, step: int) -> Mapping[str, float]:
        """The adaptive scale of AdaCos heads, for the log."""
        scale = getattr(self.head, "scale", None)
        return {"head_scale": float(scale)} if isinstance(scale, Tensor) else {}

    def forward(self, batch: Mapping[str, Tensor], *, generator: torch.Generator) -> TrainOutput:
        """Loss of one batch (see the class docstring)."""
        waveform, target = batch["waveform"], batch["target"]
        cpu = cpu_generator(generator)
        with torch.no_grad():
            x = self.backbone.front_end(waveform)  # (B, 1, T, F)
        targets = F.one_hot(target, self.num_classes).to(x.dtype)  # (B, C)
        if self.second_head is not None:
            pseudo = batch["pseudo"]
            k = self.second_head.num_classes
            second = F.one_hot(pseudo.clamp_min(0), k).to(x.dtype) * (pseudo >= 0)[:, None]  # (B, K), 0 = none
            targets = torch.cat([targets, second], dim=1)  # mixed together: one pairing for both heads
        if self.mixup_p > 0:
            x, targets = mixup(x, targets, generator=cpu, alpha=self.mixup_alpha, p=self.mixup_p)
        if self.time_masks or self.freq_masks:
            x = spec_augment(x, time_masks=self.time_masks, time_width=self.time_width,
                             freq_masks=self.freq_masks, freq_width=self.freq_width, generator=cpu)
        embeddings = self._embed(x, num_samples=waveform.shape[1])
        first = targets[:, : self.num_classes]
        logits = self.head(embeddings, first)
        loss = soft_cross_entropy(logits, first)
        with torch.no_grad():  # inference logits (no margin): what the classifier would predict
            accuracy = (self.head(embeddings.detach()).argmax(dim=1) == first.argmax(dim=1)).float().mean()
        logs: dict[str, Tensor | float] = {"loss_attr": loss.detach(), "acc": accuracy.detach()}
        if self.second_head is not None:
            second = targets[:, self.num_classes:]
            weight = second.sum(dim=1)  # (B,): share of the mixed clip that carries a pseudo-label
            rows = weight > 0
            if bool(rows.any()):
                soft = second[rows] / weight[rows, None]
                losses = soft_cross_entropy(self.second_head(embeddings[rows], soft), soft, reduction="none")
                loss2 = (losses * weight[rows]).sum() / weight[rows].sum()
            else:
                # Zero that keeps the second head's parameters in the graph (DDP expects gradients for all).
                loss2 = embeddings.sum() * 0.0 + sum(p.sum() for p in self.second_head.parameters()) * 0.0
            loss = loss + self.second_weight * loss2
            logs["loss_pseudo"] = loss2.detach()
        return TrainOutput(loss, logs)
