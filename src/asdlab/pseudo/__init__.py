"""Pseudo-attributes for machines without attribute labels: Ward clustering of embeddings (paper Sec. 2.4)."""

from asdlab.pseudo.agreement import Agreement, measure_agreement
from asdlab.pseudo.count import (
    AUTO_RULES,
    COUNT_RULES,
    CountChoice,
    CountRule,
    choose_cluster_count,
    cluster_count_bounds,
)
from asdlab.pseudo.files import (
    PseudoAttributeMap,
    PseudoAttributeRow,
    pseudo_attribute_name,
    read_pseudo_attribute_rows,
    read_pseudo_attributes,
    write_attributes_csv,
    write_pseudo_attributes,
)
from asdlab.pseudo.labeling import DomainClustering, WardClustering, cluster_by_domain, cluster_embeddings
from asdlab.pseudo.ward import (
    NORMALIZATIONS,
    Normalization,
    cut_linkage,
    merge_small_clusters,
    prepare_embeddings,
    relabel_by_size,
    ward_linkage,
)

__all__ = [
    "AUTO_RULES",
    "Agreement",
    "COUNT_RULES",
    "CountChoice",
    "CountRule",
    "DomainClustering",
    "NORMALIZATIONS",
    "Normalization",
    "PseudoAttributeMap",
    "PseudoAttributeRow",
    "WardClustering",
    "choose_cluster_count",
    "cluster_by_domain",
    "cluster_count_bounds",
    "cluster_embeddings",
    "cut_linkage",
    "measure_agreement",
    "merge_small_clusters",
    "prepare_embeddings",
    "pseudo_attribute_name",
    "read_pseudo_attribute_rows",
    "read_pseudo_attributes",
    "relabel_by_size",
    "ward_linkage",
    "write_attributes_csv",
    "write_pseudo_attributes",
]
