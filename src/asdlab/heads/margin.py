"""Angular margin classification heads: ArcFace (Deng et al., CVPR 2019), AdaCos (Zhang et al., CVPR
2019) and sub-cluster AdaCos (Wilkinghoff, IJCNN 2021; the head of arXiv:2312.09578 and the public
repository wilkinghoff/ssl4asd). Each maps embeddings (B, D) to logits (B, C) whose
`soft_cross_entropy` with integer or soft targets is the training loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ArcFaceHead", "AdaCosHead", "SubClusterAdaCosHead", "soft_cross_entropy", "as_soft_targets"]

# Keeps acos and sqrt(1 - cos^2) finite (and differentiable) at cos = +-1.
_COS_EPS = 1e-7


def as_soft_targets(targets: Tensor, num_classes: int) -> Tensor:
    """Class indices (B,) or class weights (B, C) -> float weights (B, C).

    Args:
        targets: LongTensor (B,) of indices in [0, C), or a float tensor (B, C).
        num_classes: C.

    Raises:
        ValueError: on a wrong shape, dtype or index range.
    """
    if targets.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        if targets.ndim != 1:
            raise ValueError(f"integer targets must be (B,), got {tuple(targets.shape)}")
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
            raise ValueError(f"class indices must be in [0, {num_classes}), got {targets.min()}..{targets.max()}")
        return F.one_hot(targets.long(), num_classes).float()
    if not targets.is_floating_point() or targets.ndim != 2 or targets.shape[1] != num_classes:
        raise ValueError(
            f"soft targets must be a float tensor (B, {num_classes}), got {targets.dtype} {tuple(targets.shape)}"
        )
    return targets


def soft_cross_entropy(logits: Tensor, targets: Tensor, *, reduction: str = "mean") -> Tensor:
    """Cross-entropy with integer or soft (mixup / SSL) targets: -sum_c t_c log softmax(logits)_c.

    With one-hot targets this equals `F.cross_entropy(logits, indices)`. Works on the log class
    probabilities of `SubClusterAdaCosHead` too (log_softmax leaves log-probabilities unchanged).

    Args:
        logits: (B, C).
        targets: LongTensor (B,) or float weights (B, C), rows summing to 1.
        reduction: "mean" over the batch, "sum", or "none" for (B,).

    Returns:
        A scalar, or (B,) with reduction="none".
    """
    weights = as_soft_targets(targets, logits.shape[1]).to(logits.dtype)
    losses = -(weights * F.log_softmax(logits, dim=1)).sum(dim=1)  # (B,)
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _init_centres(num: int, dim: int, generator: torch.Generator | None) -> Tensor:
    # Glorot-uniform as Keras' default for the reference's centre matrix (fan_in + fan_out = num + dim).
    bound = math.sqrt(6.0 / (num + dim))
    return (torch.rand(num, dim, generator=generator) * 2.0 - 1.0) * bound


class _CosineHead(nn.Module):
    """Shared part: L2-normalised centres (one per row) and cosine similarities."""

    def __init__(self, embed_dim: int, num_centres: int, *, trainable: bool, generator: torch.Generator | None):
        super().__init__()
        if embed_dim < 1 or num_centres < 1:
            raise ValueError(f"embed_dim and the number of centres must be positive, got {embed_dim}, {num_centres}")
        self.embed_dim = embed_dim
        centres = _init_centres(num_centres, embed_dim, generator)
        if trainable:
            self.centres = nn.Parameter(centres)
        else:
            self.register_buffer("centres", centres)  # saved with the head, never optimised

    def _cosine(self, embeddings: Tensor) -> Tensor:
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embed_dim:
            raise ValueError(f"embeddings must be (B, {self.embed_dim}), got {tuple(embeddings.shape)}")
        return F.linear(F.normalize(embeddings, dim=1), F.normalize(self.centres, dim=1))  # (B, num_centres)


class ArcFaceHead(_CosineHead):
    """ArcFace: logits s cos(theta_k), with s cos(theta_y + m) for the target class y.

    Soft targets: the angular margin of class k is m * t_k (its target weight), so one-hot targets
    give ArcFace exactly, mixup pairs get m * lambda and m * (1 - lambda), and zero-weight classes
    none. Where theta + m' would pass pi (cos no longer decreasing), the logit continues as
    cos(theta) - m' sin(m'), as in the authors' insightface code.

    Args:
        embed_dim: D.
        num_classes: C.
        scale: s (the paper uses 64 for faces; 30 is the common choice for ASD's few classes).
        margin: m in radians (paper: 0.5).
        generator: RNG of the centre initialisation.
    """

    def __init__(
        self,
        embed_dim: int,
        num_classes: int,
        *,
        scale: float = 30.0,
        margin: float = 0.5,
        generator: torch.Generator | None = None,
    ):
        super().__init__(embed_dim, num_classes, trainable=True, generator=generator)
        self.num_classes = num_classes
        self.scale = float(scale)
        self.margin = float(margin)

    def cosine_similarity_to_centres(self, embeddings: Tensor) -> Tensor:
        """(B, D) -> cosine to each class centre (B, C)."""
        return self._cosine(embeddings)

    def forward(self, embeddings: Tensor, targets: Tensor | None = None) -> Tensor:
        """Scaled cosine logits (B, C), with the margin on target classes when `targets` is given.

        Args:
            embeddings: (B, D).
            targets: LongTensor (B,), float weights (B, C), or None for inference logits.
        """
        cos = self._cosine(embeddings)
        if targets is None:
            return self.scale * cos
        m = self.margin * as_soft_targets(targets, self.num_classes).to(cos.dtype)  # per-class margin (B, C)
        sin = (1.0 - cos.square()).clamp_min(_COS_EPS).sqrt()
        cos_margin = cos * torch.cos(m) - sin * torch.sin(m)  # cos(theta + m)
        fallback = cos - m * torch.sin(m)  # insightface's continuation past theta + m = pi
        cos_margin = torch.where(cos > torch.cos(math.pi - m), cos_margin, fallback)
        return self.scale * cos_margin

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_classes={self.num_classes}, scale={self.scale}, margin={self.margin}"


def _adacos_initial_scale(num_centres: int) -> float:
    # AdaCos Eq. 14 (fixed scale sqrt(2) log(C - 1)); the sub-cluster version counts all C * K centres.
    if num_centres < 3:
        raise ValueError(f"AdaCos needs at least 3 centres (its scale sqrt(2) log(C - 1) is <= 0), got {num_centres}")
    return math.sqrt(2.0) * math.log(num_centres - 1)


def _adacos_scale(scale: Tensor, cos: Tensor, nontarget: Tensor, target_angle: Tensor) -> Tensor:
    """AdaCos Eq. 16: log(B_avg) / cos(min(pi/4, theta_med)) computed with the current scale.

    B_avg = (1/B) sum_i sum_j nontarget_ij exp(s cos_ij); theta_med = median_i target_angle_i.
    The max is factored out of the exponentials (as the reference does) so large scales do not overflow.
    """
    s_cos = scale * cos
    top = s_cos.max()
    b_avg = (nontarget * torch.exp(s_cos - top)).sum(dim=1).mean()
    theta_med = target_angle.median()
    new = (top + torch.log(b_avg)) / torch.cos(torch.clamp(theta_med, max=math.pi / 4))
    # No non-target centre in the batch (e.g. a single class): B_avg = 0 says nothing; keep the scale.
    return torch.where(torch.isfinite(new) & (new > 0), new, scale)


class AdaCosHead(_CosineHead):
    """AdaCos: logits s cos(theta_k) without margin, the scale s adapted every training batch.

    s starts at sqrt(2) log(C - 1); each forward with targets in training mode sets it (no gradient)
    to log(B_avg) / cos(min(pi/4, theta_med)), where B_avg is the batch mean of the summed
    exp(s cos theta) over non-target classes and theta_med the median target angle. Soft targets
    weight class k's exponential by (1 - t_k) and use the target-weighted angle sum_k t_k theta_k
    (Wilkinghoff's treatment of mixed-up classes). The scale is a buffer, so it is saved and loaded.

    Args:
        embed_dim: D.
        num_classes: C (at least 3).
        generator: RNG of the centre initialisation.
    """

    def __init__(self, embed_dim: int, num_classes: int, *, generator: torch.Generator | None = None):
        super().__init__(embed_dim, num_classes, trainable=True, generator=generator)
        self.num_classes = num_classes
        self.register_buffer("scale", torch.tensor(_adacos_initial_scale(num_classes)))

    def cosine_similarity_to_centres(self, embeddings: Tensor) -> Tensor:
        """(B, D) -> cosine to each class centre (B, C)."""
        return self._cosine(embeddings)

    def forward(self, embeddings: Tensor, targets: Tensor | None = None) -> Tensor:
        """Scaled cosine logits (B, C); with targets in training mode the scale is updated first.

        Args:
            embeddings: (B, D).
            targets: LongTensor (B,), float weights (B, C), or None.
        """
        cos = self._cosine(embeddings)
        if targets is not None and self.training:
            weights = as_soft_targets(targets, self.num_classes).to(cos.dtype)
            with torch.no_grad():
                angle = torch.acos(cos.clamp(-1.0 + _COS_EPS, 1.0 - _COS_EPS))
                new = _adacos_scale(self.scale, cos, 1.0 - weights, (weights * angle).sum(dim=1))
                self.scale.copy_(new)
        return self.scale * cos

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_classes={self.num_classes}"


class SubClusterAdaCosHead(_CosineHead):
    """Sub-cluster AdaCos: K centres per class, softmax over all C * K scaled cosines, and the class
    probability = the sum of its sub-clusters' probabilities. `forward` returns log class probabilities
    (B, C), so `soft_cross_entropy(head(x, t), t)` is the reference's categorical cross-entropy.

    Scale: as `AdaCosHead` over the C * K centres, initial sqrt(2) log(C K - 1). Non-target
    centres are those of classes with zero target weight (weighted by 1 - t_c); a sample's target
    angle is sum_c t_c theta_c with theta_c the angle to the nearest centre of class c. (The
    reference code's update instead sums over all centres; this follows the AdaCos definition.)

    Centre row layout: class c, sub-cluster j is row c * K + j.

    Args:
        embed_dim: D.
        num_classes: C.
        sub_clusters: K per class (reference: 16).
        trainable_centres: learn the centres (the reference fixes them for the supervised head and
            trains them for the SSL heads of arXiv:2312.09578); fixed centres are a buffer.
        generator: RNG of the centre initialisation.
    """

    def __init__(
        self,
        embed_dim: int,
        num_classes: int,
        *,
        sub_clusters: int = 16,
        trainable_centres: bool = True,
        generator: torch.Generator | None = None,
    ):
        if sub_clusters < 1:
            raise ValueError(f"sub_clusters must be positive, got {sub_clusters}")
        super().__init__(embed_dim, num_classes * sub_clusters, trainable=trainable_centres, generator=generator)
        self.num_classes = num_classes
        self.sub_clusters = sub_clusters
        self.register_buffer("scale", torch.tensor(_adacos_initial_scale(num_classes * sub_clusters)))

    def cosine_similarity_to_centres(self, embeddings: Tensor) -> Tensor:
        """(B, D) -> cosine to every sub-cluster centre (B, C, K)."""
        cos = self._cosine(embeddings)
        return cos.view(cos.shape[0], self.num_classes, self.sub_clusters)  # (B, C*K) -> (B, C, K)

    def class_cosine(self, embeddings: Tensor) -> Tensor:
        """(B, D) -> cosine to the nearest sub-cluster centre of each class (B, C)."""
        return self.cosine_similarity_to_centres(embeddings).amax(dim=2)

    def forward(self, embeddings: Tensor, targets: Tensor | None = None) -> Tensor:
        """Log class probabilities (B, C); with targets in training mode the scale is updated first.

        Args:
            embeddings: (B, D).
            targets: LongTensor (B,), float weights (B, C), or None.
        """
        cos = self.cosine_similarity_to_centres(embeddings)  # (B, C, K)
        if targets is not None and self.training:
            weights = as_soft_targets(targets, self.num_classes).to(cos.dtype)  # (B, C)
            with torch.no_grad():
                nearest = torch.acos(cos.amax(dim=2).clamp(-1.0 + _COS_EPS, 1.0 - _COS_EPS))  # (B, C)
                nontarget = (1.0 - weights)[:, :, None].expand_as(cos)  # (B, C, K)
                new = _adacos_scale(self.scale, cos.flatten(1), nontarget.flatten(1), (weights * nearest).sum(dim=1))
                self.scale.copy_(new)
        s_cos = self.scale * cos  # (B, C, K)
        return torch.logsumexp(s_cos, dim=2) - torch.logsumexp(s_cos.flatten(1), dim=1, keepdim=True)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_classes={self.num_classes}, sub_clusters={self.sub_clusters}"
