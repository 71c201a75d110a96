"""Stage (2): pseudo-attributes for machine types without attributes (paper Sec. 2.4).

For each machine type whose training clips carry no attribute (`noAttribute`), or whose attributes
are hidden on request, the clips of each section are embedded (default: mean of EAT patch tokens,
eq. 8), clustered with Ward linkage, and the clusters written as `pseudo_NN` attribute strings.
Where the truth is known (names, DCASE 2025 correspondence files) the clusters are scored against it.
"""

from __future__ import annotations

import json
import logging
import os
import platform
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from asdlab import __version__
from asdlab._io import atomic_path, atomic_write_text
from asdlab.data.index import index_dataset
from asdlab.data.metadata import load_attribute_correspondences, reveal_attributes
from asdlab.data.records import ClipRecord, Split
from asdlab.embeddings.extract import ClipFailure, ProgressCallback, extract_embeddings
from asdlab.embeddings.table import EmbeddingTable
from asdlab.encoders.backbone import Backbone, Pooling, build_backbone
from asdlab.errors import ConfigError, DataError
from asdlab.features.level import Level
from asdlab.features.normalize import EAT_TARGET_FRAMES
from asdlab.pseudo.agreement import Agreement, measure_agreement
from asdlab.pseudo.count import AUTO_RULES, COUNT_RULES, CountChoice, CountRule
from asdlab.pseudo.files import PseudoAttributeRow, pseudo_attribute_name, write_attributes_csv, write_pseudo_attributes
from asdlab.pseudo.labeling import cluster_by_domain, cluster_embeddings
from asdlab.pseudo.ward import NORMALIZATIONS, Normalization, prepare_embeddings, ward_linkage
from asdlab.report.embedding_map import MapMethod, plot_embedding_map, project_2d

__all__ = [
    "PSEUDO_ATTRIBUTES_FILE",
    "CLUSTERING_FILE",
    "PseudoLabelSettings",
    "GroupClustering",
    "PseudoLabelResult",
    "run_pseudo_labeling",
]

logger = logging.getLogger(__name__)

PSEUDO_ATTRIBUTES_FILE = "pseudo_attributes.csv"  # what the fine-tuning stage reads
CLUSTERING_FILE = "clustering.json"
ATTRIBUTES_DIR = "attributes"  # <Machine>/attributes_<section>.csv, the DCASE-format copy


@dataclass(frozen=True)
class PseudoLabelSettings:
    """What decides the pseudo-attributes. Defaults follow the paper where it says; see the notes.

    Attributes:
        backbone: encoder preset; the paper embeds with its domain-adapted EAT-base (Sec. 2.4).
        weights: weights file of the backbone (DAP, fine-tuned or general pre-trained); None = random.
        pooling: "mean" of patch tokens (eq. 8). Encoders without tokens (logmel-stats) give their
            clip vector for "mean"; None = the backbone's own default.
        target_frames: EAT: frames each clip is padded / cropped to; None = the clip's own length.
        duration_s: pad / crop waveforms to this length first; None keeps each clip's own.
        level: "rms" (default) scales each clip to a fixed RMS before embedding (the input of encoders
            trained by `asdlab pretrain` / `finetune`), so clusters do not follow recording gain;
            "none" embeds the files' own levels.
        normalization: "none" (the paper clusters E_DA as is), "l2" or "pca-whiten".
        rule: how K is chosen (`asdlab.pseudo.count`). Default "elbow": clustered per domain, it came
            closest to the true count (mean |K - 6| 0.83 against 1.28 for "gap", the next best) with the
            highest mean ARI (0.526) over three embedding sources on the synthetic machines
            (benchmarks/results/pseudo_labels_synthetic.txt).
        n_clusters: K for rule "fixed".
        distance_threshold: Ward merge height for rule "threshold".
        k_min / k_max: bounds of automatic rules; the upper bound is also capped at
            N // min_cluster_size. 16 is above the attribute count of any DCASE 2020-2025 section.
        min_cluster_size: smaller clusters are merged into their Ward-nearest neighbour, so every
            pseudo class has a few clips for the classifier (5: half a DCASE target domain).
        per_domain: cluster each domain's clips on its own (source clusters first, then the target
            domain's), as DCASE target attributes never occur in the source domain. Default on: on the
            synthetic machines it raised the mean ARI for every embedding tried
            (benchmarks/results/pseudo_labels_synthetic.txt). Clips without a domain form one group.
        target_min_cluster_size: `min_cluster_size` of the non-source domains when `per_domain`
            (a DCASE target domain has ~10 clips of 2-3 attributes).
        hide_attributes: machine types clustered even though their names carry attributes (which
            then serve as truth), or "all".
        splits: which clips are clustered; the paper uses the training clips (source + target).
        map_method: 2-D map drawn per (machine, section) ("tsne" / "pca"), or None for no PNGs.
        seed: random initialisation without weights, the "gap" rule and t-SNE.
        batch_size: clips per forward pass.
        encoder_options: constructor overrides of the preset.
    """

    backbone: str = "eat-base"
    weights: str | None = None
    pooling: Pooling | None = "mean"
    target_frames: int | None = EAT_TARGET_FRAMES
    duration_s: float | None = None
    level: Level = "rms"
    normalization: Normalization = "none"
    rule: CountRule = "elbow"
    n_clusters: int | None = None
    distance_threshold: float | None = None
    k_min: int = 2
    k_max: int = 16
    min_cluster_size: int = 5
    per_domain: bool = True
    target_min_cluster_size: int = 2
    hide_attributes: tuple[str, ...] | Literal["all"] = ()
    splits: tuple[Split, ...] = ("train",)
    map_method: MapMethod | None = "tsne"
    seed: int = 0
    batch_size: int = 16
    encoder_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GroupClustering:
    """The pseudo-attributes of one (machine, section).

    Attributes:
        machine / section: the group.
        hidden_by: "noAttribute" (the names carry none) or "request" (`hide_attributes`).
        n_clips: clips clustered.
        choice: how K was chosen (before small clusters were merged); of the source domain when
            clustered per domain.
        n_clusters: pseudo-attributes written.
        cluster_sizes: clips per pseudo-attribute, pseudo_00 first.
        true_k: distinct true attributes among the clips, None when the truth is unknown.
        agreement: scores against the truth over the clips whose truth is known, or None.
        agreement_source: the same over source-domain clips only, or None.
        dendrogram_path / map_path: files written (map None when maps are off).
        domain_clusters: per domain clustered on its own: (domain, clips, K chosen, clusters written);
            empty when all clips were clustered together.
    """

    machine: str
    section: str
    hidden_by: str
    n_clips: int
    choice: CountChoice
    n_clusters: int
    cluster_sizes: tuple[int, ...]
    true_k: int | None
    agreement: Agreement | None
    agreement_source: Agreement | None
    dendrogram_path: Path
    map_path: Path | None
    domain_clusters: tuple[tuple[str, int, int, int], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (paths as strings)."""
        out = asdict(self)
        out["choice"]["scores"] = {str(k): v for k, v in self.choice.scores.items()}
        out["dendrogram_path"] = self.dendrogram_path.name
        out["map_path"] = None if self.map_path is None else self.map_path.name
        return out


@dataclass(frozen=True)
class PseudoLabelResult:
    """What `run_pseudo_labeling` wrote.

    Attributes:
        out_dir: the output folder.
        csv_path: `<out_dir>/pseudo_attributes.csv`.
        clustering_path: `<out_dir>/clustering.json`.
        groups: one entry per (machine, section) clustered.
        rows: the pseudo-attribute of every clip written.
        failures: clips that could not be embedded.
    """

    out_dir: Path
    csv_path: Path
    clustering_path: Path
    groups: tuple[GroupClustering, ...]
    rows: tuple[PseudoAttributeRow, ...]
    failures: tuple[ClipFailure, ...]


def _check_settings(settings: PseudoLabelSettings) -> None:
    if settings.rule not in COUNT_RULES:
        raise ConfigError(f"rule must be one of {COUNT_RULES}, got {settings.rule!r}")
    if settings.normalization not in NORMALIZATIONS:
        raise ConfigError(f"normalization must be one of {NORMALIZATIONS}, got {settings.normalization!r}")
    if settings.rule == "fixed" and (settings.n_clusters is None or settings.n_clusters < 1):
        raise ConfigError(f"rule 'fixed' needs n_clusters >= 1, got {settings.n_clusters}")
    if settings.rule == "threshold" and (settings.distance_threshold is None or settings.distance_threshold < 0):
        raise ConfigError(f"rule 'threshold' needs distance_threshold >= 0, got {settings.distance_threshold}")
    if settings.rule in AUTO_RULES and not 1 <= settings.k_min <= settings.k_max:
        raise ConfigError(f"need 1 <= k_min <= k_max, got k_min={settings.k_min}, k_max={settings.k_max}")
    if settings.min_cluster_size < 1 or settings.target_min_cluster_size < 1 or settings.batch_size < 1:
        raise ConfigError("min_cluster_size, target_min_cluster_size and batch_size must be >= 1")
    if settings.map_method not in (None, "tsne", "pca"):
        raise ConfigError(f"map_method must be 'tsne', 'pca' or None, got {settings.map_method!r}")


def _relative(path: str | os.PathLike, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _select(records: list[ClipRecord], hide: tuple[str, ...] | str, root: Path) -> dict[str, str]:
    """{machine: "noAttribute" | "request"} of the machine types to cluster."""
    machines = sorted({r.machine for r in records})
    if hide != "all":
        if missing := sorted(set(hide) - set(machines)):
            raise ConfigError(f"hide_attributes: machine type(s) {missing} not in {root}; available: {machines}")
    chosen = {}
    for machine in machines:
        if not any(r.has_attributes for r in records if r.machine == machine):
            chosen[machine] = "noAttribute"
        elif hide == "all" or machine in hide:
            chosen[machine] = "request"
    return chosen


def _embed(
    records: list[ClipRecord], settings: PseudoLabelSettings, device: str | torch.device,
    progress: ProgressCallback | None,
) -> tuple[EmbeddingTable, tuple[ClipFailure, ...], dict[str, Any]]:
    backbone = build_backbone(
        settings.backbone, weights=settings.weights, target_frames=settings.target_frames, seed=settings.seed,
        level=settings.level, **settings.encoder_options,
    )
    # Encoders without tokens (logmel-stats) already output one clip vector: "mean" pooling is that vector.
    if backbone.kind != "waveform" or settings.pooling != "mean":
        backbone = Backbone(backbone.encoder, front_end=backbone.front_end, pooling=settings.pooling,
                            sample_rate=backbone.sample_rate, name=backbone.name, level=backbone.level)
    result = extract_embeddings(
        records, backbone, sample_rate=backbone.sample_rate, duration_s=settings.duration_s,
        batch_size=settings.batch_size, device=device, progress=progress,
    )
    return result.table, result.failures, backbone.settings()


def _table_rows(table: EmbeddingTable, records: list[ClipRecord]) -> tuple[EmbeddingTable, list[ClipRecord]]:
    """Rows of a given table for `records` (by resolved path), and the records it holds."""
    where = {str(Path(p).resolve()): i for i, p in enumerate(table.path)}
    kept = [r for r in records if str(Path(r.path).resolve()) in where]
    if not kept:
        raise DataError("the embeddings table given holds none of the clips to cluster")
    if len(kept) < len(records):
        logger.warning("embeddings table lacks %d of %d clips to cluster; they get no pseudo-attribute",
                       len(records) - len(kept), len(records))
    rows = table.select(np.array([where[str(Path(r.path).resolve())] for r in kept]))
    # The table may spell paths differently (relative, another mount): use the index's spelling.
    return replace(rows, path=np.array([str(r.path) for r in kept], dtype=np.str_)), kept


def run_pseudo_labeling(
    data_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    settings: PseudoLabelSettings,
    *,
    machines: Iterable[str] | None = None,
    embeddings: EmbeddingTable | None = None,
    device: str | torch.device = "auto",
    progress: ProgressCallback | None = None,
) -> PseudoLabelResult:
    """Cluster the clips of attribute-less machine types into pseudo-attributes and write them.

    Writes `<out_dir>/pseudo_attributes.csv` (`asdlab.pseudo.files`), `attributes/<Machine>/
    attributes_<section>.csv`, `clustering.json` (settings, rule, K, true K and scores per group),
    `dendrogram_<machine>_<section>.npz` (linkage, labels, paths, map coordinates) and
    `map_<machine>_<section>.png`, each atomically.

    Args:
        data_root: dataset root in any layout `index_dataset` reads.
        out_dir: output folder (created).
        settings: see `PseudoLabelSettings`.
        machines: only these machine types; None = all.
        embeddings: a table that already holds the clips' embeddings (rows matched by path);
            None = embed with `settings.backbone` / `settings.weights`.
        device: where the backbone runs ("auto": the GPU when there is one).
        progress: called as `progress(clips_done, clips_total)` while embedding.

    Returns:
        `PseudoLabelResult`.

    Raises:
        ConfigError: invalid settings or unknown machine names.
        DataError: no clips, or no machine type without attributes (and none hidden on request).
        CheckpointError: weights that do not fit the backbone.
    """
    _check_settings(settings)
    root, out = Path(data_root), Path(out_dir)
    records = index_dataset(root, machines=machines, splits=settings.splits)
    chosen = _select(records, settings.hide_attributes, root)
    if not chosen:
        raise DataError(f"{root}: every machine type has attributes; name some in hide_attributes (or 'all') "
                        "to cluster them anyway")
    records = [r for r in records if r.machine in chosen]
    truth_records = reveal_attributes(records, load_attribute_correspondences(root))
    truth = {r.path: r.attributes if r.has_attributes else None for r in truth_records}

    if embeddings is None:
        table, failures, backbone_settings = _embed(records, settings, device, progress)
    else:
        table, records = _table_rows(embeddings, records)
        failures, backbone_settings = (), {"backbone": "embeddings table given by the caller"}
    by_path = {str(r.path): r for r in records}

    out.mkdir(parents=True, exist_ok=True)
    groups, rows = [], []
    for machine, section in sorted({(str(m), str(s)) for m, s in zip(table.machine, table.section, strict=True)}):
        index = np.flatnonzero((table.machine == machine) & (table.section == section))
        group_records = [by_path[str(p)] for p in table.path[index]]
        group, group_rows = _cluster_group(
            machine, section, chosen[machine], table.embeddings[index], group_records,
            [truth[r.path] for r in group_records], root, out, settings,
        )
        groups.append(group)
        rows.extend(group_rows)
        logger.info("%s section %s: %d clips -> %d pseudo-attributes (rule %s chose %d%s)", machine, section,
                    group.n_clips, group.n_clusters, group.choice.rule, group.choice.k,
                    "" if group.agreement is None else f"; ARI {group.agreement.ari:.3f} vs {group.true_k} true")

    csv_path = out / PSEUDO_ATTRIBUTES_FILE
    write_pseudo_attributes(csv_path, rows)
    for machine, section in {(r.machine, r.section) for r in rows}:
        write_attributes_csv(out / ATTRIBUTES_DIR / machine / f"attributes_{section}.csv",
                             [r for r in rows if r.machine == machine and r.section == section])
    summary = {
        "format": "asdlab-pseudo-attributes",
        "version": 1,
        "data_root": str(root),
        "settings": asdict(settings),
        "backbone": backbone_settings,
        "groups": [g.as_dict() for g in groups],
        "failures": [{"path": str(f.path), "problem": f.problem} for f in failures],
        "versions": {"asdlab": __version__, "numpy": np.__version__, "python": platform.python_version()},
    }
    clustering_path = out / CLUSTERING_FILE
    atomic_write_text(clustering_path, json.dumps(summary, indent=2, default=str) + "\n")
    return PseudoLabelResult(out, csv_path, clustering_path, tuple(groups), tuple(rows), tuple(failures))


def _cluster_group(
    machine: str,
    section: str,
    hidden_by: str,
    X: np.ndarray,
    records: Sequence[ClipRecord],
    truth: Sequence[str | None],
    root: Path,
    out: Path,
    settings: PseudoLabelSettings,
) -> tuple[GroupClustering, list[PseudoAttributeRow]]:
    domains = np.array([r.domain or "" for r in records], dtype=np.str_)
    options = dict(normalization=settings.normalization, rule=settings.rule, n_clusters=settings.n_clusters,
                   distance_threshold=settings.distance_threshold, k_min=settings.k_min, k_max=settings.k_max,
                   seed=settings.seed)
    domain_clusters: tuple[tuple[str, int, int, int], ...] = ()
    if settings.per_domain:
        sizes = {d: settings.min_cluster_size if d in ("source", "") else settings.target_min_cluster_size
                 for d in set(domains.tolist())}
        split = cluster_by_domain(X, domains, min_cluster_size=sizes, **options)
        labels, n_clusters = split.labels, split.n_clusters
        choice = split.parts[split.domains[0]].choice
        domain_clusters = tuple((d, int((domains == d).sum()), p.choice.k, p.n_clusters) for d, p in split.parts.items())
        # The whole group's tree and features, for the dendrogram file and the map.
        features = prepare_embeddings(X, settings.normalization)
        linkage = ward_linkage(features) if len(X) > 1 else np.zeros((0, 4))
    else:
        whole = cluster_embeddings(X, min_cluster_size=settings.min_cluster_size, **options)
        labels, n_clusters, choice = whole.labels, whole.n_clusters, whole.choice
        features, linkage = whole.features, whole.linkage
    pseudo = [pseudo_attribute_name(int(c)) for c in labels]
    known = np.array([t is not None for t in truth])
    true_arr = np.array(["" if t is None else t for t in truth], dtype=np.str_)
    agreement = agreement_source = None
    if known.any():
        agreement = measure_agreement(true_arr[known], labels[known])
        source = known & (domains == "source")
        if source.any():
            agreement_source = measure_agreement(true_arr[source], labels[source])

    stem = f"{machine}_{section}"
    coords = np.zeros((len(X), 2))
    map_path = None
    if settings.map_method is not None:
        coords = project_2d(features, method=settings.map_method, seed=settings.seed)
        map_path = out / f"map_{stem}.png"
        plot_embedding_map(
            coords, map_path, pseudo=pseudo, true=list(true_arr) if known.all() else None, domains=domains,
            title=f"{machine} section {section}: {settings.backbone} ({len(X)} clips, {settings.map_method})",
        )
    relative = [_relative(r.path, root) for r in records]
    dendrogram_path = out / f"dendrogram_{stem}.npz"
    with atomic_path(dendrogram_path, suffix=".npz") as tmp:
        np.savez(
            tmp, linkage=linkage, labels=labels, path=np.array(relative, dtype=np.str_),
            domain=domains, true_attributes=true_arr, map_coords=coords,
        )
    group = GroupClustering(
        machine=machine, section=section, hidden_by=hidden_by, n_clips=len(X), choice=choice,
        n_clusters=n_clusters, cluster_sizes=tuple(int(n) for n in np.bincount(labels)),
        true_k=None if not known.any() else int(len(set(true_arr[known].tolist()))),
        agreement=agreement, agreement_source=agreement_source, dendrogram_path=dendrogram_path, map_path=map_path,
        domain_clusters=domain_clusters,
    )
    rows = [
        PseudoAttributeRow(path=rel, machine=machine, section=section, domain=r.domain or "", pseudo_attribute=p)
        for rel, r, p in zip(relative, records, pseudo, strict=True)
    ]
    return group, rows
