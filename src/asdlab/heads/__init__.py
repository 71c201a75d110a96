"""Classification heads and pooling for fine-tuning: ArcFace, AdaCos, sub-cluster AdaCos, soft
cross-entropy, attentive statistics pooling. Tensors in, tensors out."""

from asdlab.heads.margin import AdaCosHead, ArcFaceHead, SubClusterAdaCosHead, as_soft_targets, soft_cross_entropy
from asdlab.heads.pooling import AttentiveStatsPooling

__all__ = [
    "AdaCosHead",
    "ArcFaceHead",
    "AttentiveStatsPooling",
    "SubClusterAdaCosHead",
    "as_soft_targets",
    "soft_cross_entropy",
]
