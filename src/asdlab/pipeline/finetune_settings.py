"""Settings of the fine-tuning stage (`asdlab.pipeline.finetune`): every recipe's knobs and the values
each recipe fills in for those left None, apart from the stage's training and model-folder code."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from asdlab.errors import ConfigError
from asdlab.features.level import Level
from asdlab.training.labels import Granularity

__all__ = ["Recipe", "FinetuneSettings"]

Recipe = Literal["eat", "two-branch-cnn", "mobilenet"]

# Values a recipe fills in for fields left None. EAT: the paper's Section 3 recipe; EAT.md
# "Fine-tuning" for layer decay (0.65) and drop-path (0.1). Two-branch CNN: the reference trains with
# Adam at lr 1e-3 and batch 64 for ~10 epochs; on the CPU-sized synthetic set fewer steps suffice
# (benchmarks/finetune_synthetic.py). MobileNet: benchmarks/results/mn04_finetune.md.
_RECIPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "eat": {"preset": "eat-base", "steps": 20_000, "batch_size": 32, "lr": 5e-5, "warmup_steps": 120,
            "head": "arcface", "weight_decay": 0.05, "pooling": "cls"},
    "two-branch-cnn": {"preset": "two-branch-cnn", "steps": 300, "batch_size": 32, "lr": 1e-3,
                       "warmup_steps": 0, "head": "sc-adacos", "weight_decay": 0.0, "pooling": "cls"},
    "mobilenet": {"preset": "mobilenet-mn04", "steps": 200, "batch_size": 32, "lr": 3e-4, "warmup_steps": 10,
                  "head": "arcface", "weight_decay": 0.0, "pooling": "band-mean", "embed_layer": 10},
}


@dataclass(frozen=True)
class FinetuneSettings:
    """What decides a fine-tuned model. None = the recipe's value (`resolved()`).

    Attributes:
        recipe: "two-branch-cnn" (default, trains on a CPU), "eat" (the paper's, for every transformer
            preset: EAT, "sslam-base", "beats-base", ...) or "mobilenet" (the AudioSet mn04 from `init_weights`).
        preset: encoder preset ("eat-base" / "two-branch-cnn" / "mobilenet-mn04" by recipe).
        mode: EAT: "full", "lora" or "probe"; the two-branch CNN and the MobileNet train fully.
        steps / batch_size / lr / warmup_steps / weight_decay: optimisation (cosine schedule).
        epochs: scale the steps with the data: ceil(epochs x clips / batch) updates, at most `steps`
            (None = `steps` whatever the data size).
        head: EAT: "arcface" (paper), "adacos", "sc-adacos". The two-branch recipe uses sub-cluster AdaCos.
        head_scale / head_margin: ArcFace s and m.
        sub_clusters: sub-cluster AdaCos centres per class.
        pooling: EAT: "cls", "mean" or "asp" (BEATs: "mean" or "asp"); MobileNet: "mean", "band-mean" or "band-mean-max";
            projection_dim / projection_layers: the embedding projection (transformers, MobileNet).
        embed_layer: MobileNet: the feature layer embedded (0 = stem ... 16 = last conv).
        crop_s: MobileNet: train on random crops this long (None = whole clips); embeddings use whole clips.
        layer_decay: transformer full mode and MobileNet layer-wise lr decay; drop_path: EAT stochastic depth. The paper's
            0.65 suits a well pre-trained encoder; from a random or briefly pre-trained start it all but
            freezes a 12-block model (its first block gets 0.65^13 of the lr), and such a start wants
            layer_decay 1.0, no drop path and lr <= 1e-4: EAT's post-LN blocks do not train at 5e-4
            beyond a few blocks (measured on `eat-small`: benchmarks/results/finetune_eat_small_synthetic.md).
        lora_rank / lora_alpha / lora_mlp: EAT LoRA.
        mixup_p / mixup_alpha: mixup; spec_time_masks / spec_time_width / spec_freq_masks /
            spec_freq_width: EAT / MobileNet SpecAugment (time width None = EAT: a tenth of the input
            frames; MobileNet: 20 frames, 0.2 s).
        statex_p / featex_p / ssl_weight: two-branch SSL classes.
        granularity / use_domain: the class table (`asdlab.training.labels`); "section" = the
            paper's "N/A" baseline (no attributes).
        auxiliary: add classes for supplementary clean / noise clips when the dataset has them.
        dual_head / dual_head_stage1 / dual_head_clusters: EAT two-stage dual-head training (see
            `run_finetuning`): the share of steps in stage 1, and K per attribute-less machine section
            (None = chosen by the Calinski-Harabasz rule of `asdlab.pseudo`).
        target_frames: EAT input frames; None = all frames of the clip (padded to a multiple of 16).
        duration_s: clip length for training (None = the most common); sample_rate: Hz.
        level: "rms" (default) trains on clips scaled to a fixed RMS and makes the saved model do the
            same to every clip it embeds, so scores do not depend on a recording's gain; "none"
            keeps the files' own levels.
        cache_dir: memory-mapped waveform cache (None = in memory).
        precision / accelerator / devices / num_nodes / strategy / num_workers: Fabric; precision "auto"
            is bf16-mixed on a GPU and 32-true on a CPU.
        accumulate_steps: micro-batches per update (W processes with K each update like one process
            with W x K: the same batches and random draws).
        checkpoint_every / log_every: updates between checkpoints / log rows.
        seed: data order, augmentation and the random initialisations.
        compile: EAT: torch.compile the encoder, pooling and projection (eager when compiling fails);
            the same model, so a run may resume with it changed.
    """

    recipe: Recipe = "two-branch-cnn"
    preset: str | None = None
    mode: Literal["full", "lora", "probe"] = "full"
    steps: int | None = None
    epochs: float | None = None
    batch_size: int | None = None
    lr: float | None = None
    warmup_steps: int | None = None
    weight_decay: float | None = None
    grad_clip: float | None = 4.0
    head: Literal["arcface", "adacos", "sc-adacos"] | None = None
    head_scale: float = 30.0
    head_margin: float = 0.5
    sub_clusters: int = 16
    pooling: Literal["cls", "mean", "asp", "band-mean", "band-mean-max"] | None = None
    projection_dim: int | None = 256
    projection_layers: int = 1
    embed_layer: int | None = None
    crop_s: float | None = None
    layer_decay: float = 0.65
    drop_path: float = 0.1
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_mlp: bool = False
    mixup_p: float = 0.5
    mixup_alpha: float = 1.0
    spec_time_masks: int = 2
    spec_time_width: int | None = None
    spec_freq_masks: int = 2
    spec_freq_width: int = 16
    statex_p: float = 0.5
    featex_p: float = 0.5
    ssl_weight: float = 1.0
    granularity: Granularity = "attribute"
    use_domain: bool = False
    auxiliary: bool = True
    dual_head: bool = False
    dual_head_stage1: float = 0.5
    dual_head_clusters: int | None = None
    target_frames: int | None = None
    duration_s: float | None = None
    sample_rate: int = 16000
    level: Level = "rms"
    cache_dir: str | None = None
    precision: str = "auto"
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    accumulate_steps: int = 1
    num_workers: int = 0
    checkpoint_every: int = 500
    log_every: int = 10
    seed: int = 0
    compile: bool = False

    def resolved(self) -> FinetuneSettings:
        """A copy with the recipe's values in every field left None.

        Raises:
            ConfigError: unknown recipe or mode, or a mode the recipe does not have.
        """
        if self.recipe not in _RECIPE_DEFAULTS:
            raise ConfigError(f"recipe must be one of {', '.join(_RECIPE_DEFAULTS)}, got {self.recipe!r}")
        if self.mode not in ("full", "lora", "probe"):
            raise ConfigError(f"mode must be full, lora or probe, got {self.mode!r}")
        if self.recipe in ("two-branch-cnn", "mobilenet") and self.mode != "full":
            raise ConfigError(f"recipe {self.recipe} trains every layer: mode must be 'full', got {self.mode!r}")
        if self.epochs is not None and self.epochs <= 0:
            raise ConfigError(f"epochs must be positive or null, got {self.epochs}")
        fills = {k: v for k, v in _RECIPE_DEFAULTS[self.recipe].items() if getattr(self, k) is None}
        return replace(self, **fills)
