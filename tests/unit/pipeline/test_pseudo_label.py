"""Stage `pseudo-label` on a tiny synthetic dataset: which machines are clustered, files written, truth scored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from asdlab.data.index import index_dataset
from asdlab.data.metadata import load_attribute_tables
from asdlab.data.synth import generate_dataset
from asdlab.embeddings.table import EmbeddingTable
from asdlab.errors import ConfigError, DataError
from asdlab.pipeline.pseudo_label import PseudoLabelSettings, run_pseudo_labeling
from asdlab.pseudo.files import read_pseudo_attribute_rows, read_pseudo_attributes

# logmel-stats: no weights, milliseconds per clip; its statistics separate the synthetic attributes.
FAST = PseudoLabelSettings(backbone="logmel-stats", rule="fixed", n_clusters=4, min_cluster_size=1, map_method="pca",
                          per_domain=False)


@pytest.fixture(scope="module")
def both_hidden(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hidden2")
    # 12 source clips = 3 per source combination, 2 target clips of the one target combination: 5 true attributes.
    generate_dataset(root, machines=["SynFan", "SynPump"], hide_attributes=2, train_source=12, train_target=2, test_per_group=1,
                     duration_s=1.0, seed=0)
    return root


@pytest.fixture(scope="module")
def one_hidden(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hidden1")
    generate_dataset(root, machines=["SynFan", "SynPump"], hide_attributes=1, train_source=12, train_target=2, test_per_group=1,
                     duration_s=1.0, seed=0)
    return root


@pytest.fixture(scope="module")
def result(both_hidden, tmp_path_factory):
    return run_pseudo_labeling(both_hidden, tmp_path_factory.mktemp("out"), FAST)


def test_every_training_clip_of_both_machines_gets_a_pseudo_attribute(result, both_hidden):
    train = index_dataset(both_hidden, splits=["train"])
    mapping = read_pseudo_attributes(result.csv_path)
    assert result.csv_path.name == "pseudo_attributes.csv"
    assert sorted(mapping) == sorted(r.path.relative_to(both_hidden).as_posix() for r in train)
    assert all(mapping[r.path] in {f"pseudo_0{i}" for i in range(4)} for r in train)  # absolute paths resolve
    assert [g.machine for g in result.groups] == ["SynFan", "SynPump"]
    assert {g.hidden_by for g in result.groups} == {"noAttribute"}


def test_truth_from_correspondence_files_is_scored(result):
    for group in result.groups:
        assert group.n_clips == 14 and group.true_k == 6 and group.n_clusters == 4
        assert group.agreement is not None and group.agreement.n_true == 6
        # 4 clusters for 6 true attributes cannot all be pure; still far better than chance (ARI ~ 0)
        assert group.agreement.homogeneity < 0.99
        assert group.agreement.ari > 0.3
        assert group.agreement_source is not None and group.agreement_source.n_clips == 12


def test_files_beside_the_csv(result):
    out = result.out_dir
    summary = json.loads((out / "clustering.json").read_text())
    assert summary["settings"]["backbone"] == "logmel-stats"
    assert summary["settings"]["rule"] == "fixed"
    fan = summary["groups"][0]
    assert (fan["machine"], fan["choice"]["k"], fan["true_k"]) == ("SynFan", 4, 6)
    assert set(fan["agreement"]) >= {"ari", "nmi", "homogeneity", "completeness"}
    with np.load(out / "dendrogram_SynFan_00.npz") as data:
        assert data["linkage"].shape == (13, 4)
        assert data["labels"].shape == (14,) and data["map_coords"].shape == (14, 2)
        assert set(data["true_attributes"].tolist()) >= {"bl_5_rpm_1200", "bl_6_rpm_1800"}
    assert (out / "map_SynPump_00.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tables = load_attribute_tables(out / "attributes")
    rows = {Path(r.path).name: r.pseudo_attribute for r in read_pseudo_attribute_rows(result.csv_path)
            if r.machine == "SynFan"}
    assert tables["SynFan"] == rows


def test_given_embeddings_table_gives_the_same_clusters(result, both_hidden, tmp_path):
    from asdlab.embeddings.extract import extract_embeddings
    from asdlab.encoders.backbone import build_backbone

    backbone = build_backbone("logmel-stats")
    table = extract_embeddings(index_dataset(both_hidden), backbone).table  # train and test rows
    again = run_pseudo_labeling(both_hidden, tmp_path, FAST, embeddings=EmbeddingTable.load(_saved(table, tmp_path)))
    assert again.rows == result.rows


def test_table_paths_may_be_spelled_relative_to_the_working_folder(result, both_hidden, tmp_path, monkeypatch):
    from dataclasses import replace

    from asdlab.embeddings.extract import extract_embeddings
    from asdlab.encoders.backbone import build_backbone

    table = extract_embeddings(index_dataset(both_hidden, splits=["train"]), build_backbone("logmel-stats")).table
    monkeypatch.chdir(both_hidden)
    relative = replace(table, path=np.array([str(Path(p).relative_to(both_hidden)) for p in table.path]))
    assert run_pseudo_labeling(both_hidden, tmp_path, FAST, embeddings=relative).rows == result.rows


def _saved(table: EmbeddingTable, folder: Path) -> Path:
    table.save(folder / "emb.npz")
    return folder / "emb.npz"


def test_attributes_hidden_on_request_serve_as_truth(one_hidden, tmp_path):
    only_hidden = run_pseudo_labeling(one_hidden, tmp_path / "a", FAST)
    assert [(g.machine, g.hidden_by) for g in only_hidden.groups] == [("SynPump", "noAttribute")]
    both = run_pseudo_labeling(one_hidden, tmp_path / "b", PseudoLabelSettings(
        backbone="logmel-stats", rule="silhouette", min_cluster_size=2, hide_attributes=("SynFan",), map_method=None,
        per_domain=False))
    fan = both.groups[0]
    assert (fan.machine, fan.hidden_by, fan.true_k) == ("SynFan", "request", 6)
    assert 2 <= fan.choice.k <= 7 and fan.map_path is None  # 14 clips // 2 = 7
    assert sorted(fan.choice.scores) == list(range(2, 8))


def test_nothing_to_cluster_and_bad_names(one_hidden, tmp_path):
    with pytest.raises(DataError, match="every machine type has attributes"):
        run_pseudo_labeling(one_hidden, tmp_path, FAST, machines=["SynFan"])
    with pytest.raises(ConfigError, match=r"\['SynTrain'\] not in"):
        run_pseudo_labeling(one_hidden, tmp_path, PseudoLabelSettings(backbone="logmel-stats",
                                                                       hide_attributes=("SynTrain",)))
    with pytest.raises(ConfigError, match="needs n_clusters"):
        run_pseudo_labeling(one_hidden, tmp_path, PseudoLabelSettings(backbone="logmel-stats", rule="fixed"))


def test_per_domain_clusters_never_span_domains(both_hidden, tmp_path):
    settings = PseudoLabelSettings(backbone="logmel-stats", rule="fixed", n_clusters=2, map_method=None,
                                   min_cluster_size=1, target_min_cluster_size=1)
    result = run_pseudo_labeling(both_hidden, tmp_path, settings)
    rows = read_pseudo_attribute_rows(result.csv_path)
    for group in result.groups:
        assert group.domain_clusters == (("source", 12, 2, 2), ("target", 2, 2, 2))
        assert group.n_clusters == 4 and sum(group.cluster_sizes) == 14
        mine = [r for r in rows if r.machine == group.machine]
        by_domain = {d: {r.pseudo_attribute for r in mine if r.domain == d} for d in ("source", "target")}
        assert by_domain == {"source": {"pseudo_00", "pseudo_01"}, "target": {"pseudo_02", "pseudo_03"}}
    record = json.loads(result.clustering_path.read_text())
    assert record["groups"][0]["domain_clusters"] == [["source", 12, 2, 2], ["target", 2, 2, 2]]
