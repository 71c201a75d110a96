"""Training task of the two-branch CNN (Wilkinghoff, arXiv:2312.09578, /work/shared/seeds/ssl-featex-summary.md):
trained from scratch with sub-cluster AdaCos on machine-attribute classes plus the self-supervised
classes of mixup (waveforms), StatEx (temporal statistics of the STFT spectrogram) and FeatEx (the
stft-branch embedding of another clip), each applied to a clip with probability 0.5.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asdlab.encoders.two_branch_cnn import TwoBranchCNN
from asdlab.errors import ConfigError
from asdlab.heads import SubClusterAdaCosHead, soft_cross_entropy
from asdlab.training.finetune import cpu_generator
from asdlab.training.loop import TrainOutput
from asdlab.training.schedules import parameter_groups
from asdlab.training.ssl_classes import apply_featex, apply_mixup, apply_statex, featex_num_classes, statex_num_classes

__all__ = ["TwoBranchTask"]


class TwoBranchTask(nn.Module):
    """Sub-cluster AdaCos on [e_fft, e_stft] plus the SSL head; a `TrainTask` for `train`.

    Per batch (batch dict: "waveform" (B, S), "target" LongTensor (B,)): mixup of waveforms and
    targets (C classes); StatEx on the STFT spectrogram (targets 3C, `asdlab.training.ssl_classes`);
    the branches embed; loss 1 = CE of the C-class head on [e_fft, e_stft] with the mixup targets;
    FeatEx on the branch embeddings with the StatEx targets (9C); loss 2 = CE of the 9C-class head
    with trainable centres. Loss = loss 1 + ssl_weight * loss 2 (the reference weights them equally).

    Args:
        encoder: the network (its `forward_fft`, `forward_stft`, `spectrum`, `spectrogram` seams).
        num_classes: C.
        sub_clusters: centres per class (reference: 16).
        trainable_centres: learn the centres of the C-class head (the reference fixes them; the SSL
            head's centres are always trained, as the paper found better).
        mixup_p: probability a clip is mixed.
        statex_p: probability a clip's spectrogram gets its partner's temporal statistics.
        featex_p: probability a clip's stft-branch embedding is exchanged.
        ssl_weight: weight of the 9C-class loss; 0 drops StatEx/FeatEx classes (supervised + mixup only).
        seed: initialisation of the centres.

    Raises:
        ConfigError: fewer than 1 class, or a probability outside [0, 1].
    """

    def __init__(
        self,
        encoder: TwoBranchCNN,
        num_classes: int,
        *,
        sub_clusters: int = 16,
        trainable_centres: bool = False,
        mixup_p: float = 0.5,
        statex_p: float = 0.5,
        featex_p: float = 0.5,
        ssl_weight: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"the two-branch task needs at least one class, got {num_classes}")
        for name, p in (("mixup_p", mixup_p), ("statex_p", statex_p), ("featex_p", featex_p)):
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {p}")
        self.encoder = encoder
        self.num_classes = num_classes
        self.mixup_p, self.statex_p, self.featex_p = mixup_p, statex_p, featex_p
        self.ssl_weight = ssl_weight
        generator = torch.Generator().manual_seed(seed)
        # AdaCos needs >= 3 centres; with one class and K = 1 that fails, so K is at least 3 then.
        k = max(sub_clusters, 3) if num_classes * sub_clusters < 3 else sub_clusters
        self.head = SubClusterAdaCosHead(encoder.embed_dim, num_classes, sub_clusters=k,
                                         trainable_centres=trainable_centres, generator=generator)
        self.ssl_head = None
        if ssl_weight > 0:
            self.ssl_head = SubClusterAdaCosHead(
                encoder.embed_dim, featex_num_classes(statex_num_classes(num_classes)), sub_clusters=k,
                trainable_centres=True, generator=generator,
            )

    def optimizer_groups(self, *, weight_decay: float) -> list[dict]:
        """Every trainable parameter (no layer-wise decay: trained from scratch)."""
        return parameter_groups(self.named_parameters(), weight_decay=weight_decay)

    def after_optimizer_step(self, step: int) -> Mapping[str, float]:
        """The heads' adaptive scales, for the log."""
        logs = {"scale": float(self.head.scale)}
        if self.ssl_head is not None:
            logs["ssl_scale"] = float(self.ssl_head.scale)
        return logs

    def forward(self, batch: Mapping[str, Tensor], *, generator: torch.Generator) -> TrainOutput:
        """Loss of one batch (see the class docstring)."""
        cpu = cpu_generator(generator)
        waveform = batch["waveform"]
        targets = F.one_hot(batch["target"], self.num_classes).to(waveform.dtype)  # (B, C)
        if self.mixup_p > 0:
            waveform, targets = apply_mixup(waveform, targets, generator=cpu, p=self.mixup_p)
        spectrum = self.encoder.spectrum(waveform)  # (B, S // 2)
        spec = self.encoder.spectrogram(waveform)  # (B, T, F)
        statex_targets = None
        if self.ssl_head is not None:
            spec, statex_targets = apply_statex(spec, targets, generator=cpu, p=self.statex_p)
        e_fft, e_stft = self.encoder.forward_fft(spectrum), self.encoder.forward_stft(spec)
        log_probs = self.head(torch.cat([e_fft, e_stft], dim=1), targets)
        loss = soft_cross_entropy(log_probs, targets)
        accuracy = (log_probs.argmax(dim=1) == targets.argmax(dim=1)).float().mean()
        logs: dict[str, Tensor | float] = {"loss_attr": loss.detach(), "acc": accuracy.detach()}
        if self.ssl_head is not None:
            mixed, featex_targets = apply_featex(e_fft, e_stft, statex_targets, generator=cpu, p=self.featex_p)
            loss_ssl = soft_cross_entropy(self.ssl_head(mixed, featex_targets), featex_targets)
            loss = loss + self.ssl_weight * loss_ssl
            logs["loss_ssl"] = loss_ssl.detach()
        return TrainOutput(loss, logs)
