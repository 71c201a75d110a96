"""One-file detectors: the export round trip is bit-identical, and hostile archives are refused naming the member."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile

import numpy as np
import pytest

from asdlab.cli import main as cli_main
from asdlab.detector import load_detector
from asdlab.detector_archive import MANIFEST_FILE, export_detector, is_detector_archive, read_detector_archive
from asdlab.errors import CheckpointError


@pytest.fixture(scope="module")
def archive(tiny_detector_dir, tmp_path_factory):
    folder, _ = tiny_detector_dir
    return export_detector(folder, tmp_path_factory.mktemp("archive") / "tiny.asdlab")


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _rewrite(members: dict[str, bytes], path, *, manifest_for=None) -> None:
    """Write `members` as an archive with a manifest that matches them (so the check under test is the one hit)."""
    members = dict(members)
    manifest = json.loads(members.pop(MANIFEST_FILE))
    listed = members if manifest_for is None else manifest_for
    manifest["members"] = {n: {"size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for n, d in listed.items()}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(MANIFEST_FILE, json.dumps(manifest))
        for name, data in members.items():
            zf.writestr(name, data)


def test_archive_holds_json_safetensors_and_embeddings_only(archive):
    names = sorted(_members(archive))
    assert names == ["detector.json", "manifest.json", "model/encoder.safetensors", "train_embeddings.npz"]
    assert is_detector_archive(archive) and not is_detector_archive(archive.parent)
    record = json.loads(_members(archive)["detector.json"])
    assert record["backbone"]["weights"] == "model/encoder.safetensors"


def test_round_trip_scores_are_bit_identical(tiny_detector_dir, archive, tmp_path):
    folder, root = tiny_detector_dir
    from_folder = load_detector(folder).score(root, tmp_path / "folder")
    from_file = load_detector(archive).score(root, tmp_path / "file")
    written = sorted(p.name for p in (tmp_path / "folder").glob("*_score*.csv")) + ["decision_result_SynFan_section_00_test.csv"]
    for name in written:
        assert (tmp_path / "folder" / name).read_bytes() == (tmp_path / "file" / name).read_bytes()
    for a, b in zip(from_folder.machines, from_file.machines, strict=True):
        assert a.test_scores.tobytes() == b.test_scores.tobytes() and a.threshold == b.threshold
    # Exporting the archive again gives the same bytes (no clock time, sorted members).
    assert export_detector(archive, tmp_path / "again.asdlab").read_bytes() == archive.read_bytes()


def test_cli_export_then_score_the_file(tiny_detector_dir, tmp_path, capsys):
    folder, root = tiny_detector_dir
    out = tmp_path / "d.asdlab"
    assert cli_main.main(["export", str(folder), str(out)]) == 0
    assert cli_main.main(["score", str(out), str(root), "--out", str(tmp_path / "scores")]) == 0
    assert "scored" in capsys.readouterr().out
    assert (tmp_path / "scores" / "anomaly_score_SynFan_section_00_test.csv").is_file()


def test_refuses_a_pickle_inside(archive, tmp_path):
    members = _members(archive)
    members["model/encoder.safetensors"] = pickle.dumps({"weights": np.zeros(3)})
    bad = tmp_path / "pickle.asdlab"
    _rewrite(members, bad)
    with pytest.raises(CheckpointError, match=r"member 'model/encoder.safetensors': holds a pickle"):
        read_detector_archive(bad)


def test_refuses_pickled_object_arrays_in_the_training_embeddings(archive, tmp_path):
    members = _members(archive)
    with np.load(io.BytesIO(members["train_embeddings.npz"]), allow_pickle=False) as table:
        columns = {name: table[name] for name in table.files}
    columns["path"] = columns["path"].astype(object)  # stored by NumPy as a pickle
    buffer = io.BytesIO()
    np.savez(buffer, **columns)
    members["train_embeddings.npz"] = buffer.getvalue()
    bad = tmp_path / "objects.asdlab"
    _rewrite(members, bad)
    with pytest.raises(CheckpointError, match=r"member 'train_embeddings.npz': path.npy is an object array"):
        read_detector_archive(bad)


@pytest.mark.parametrize("name", ["../escape.json", "/abs.json", "model/../../up.json", "model\\win.json"])
def test_refuses_member_paths_that_escape(archive, tmp_path, name):
    members = _members(archive)
    members[name] = b"{}"
    bad = tmp_path / "escape.asdlab"
    _rewrite(members, bad)
    with pytest.raises(CheckpointError, match=r"escapes the archive's folder"):
        read_detector_archive(bad)


def test_refuses_a_backbone_path_outside_the_archive(archive, tmp_path):
    members = _members(archive)
    record = json.loads(members["detector.json"])
    record["backbone"]["weights"] = "/etc/passwd"
    members["detector.json"] = json.dumps(record).encode()
    bad = tmp_path / "outside.asdlab"
    _rewrite(members, bad)
    with pytest.raises(CheckpointError, match=r"member 'detector.json': backbone.weights '/etc/passwd' is not a file"):
        read_detector_archive(bad)


def test_refuses_members_of_the_wrong_shape(archive, tmp_path):
    from safetensors.numpy import load, save

    members = _members(archive)
    tensors = load(members["model/encoder.safetensors"])
    name = sorted(k for k, v in tensors.items() if v.ndim == 2)[0]
    tensors[name] = tensors[name].reshape(-1)[:-1].copy()  # a valid file whose tensor no longer fits the model
    header_len = int.from_bytes(members["model/encoder.safetensors"][:8], "little")
    metadata = json.loads(members["model/encoder.safetensors"][8 : 8 + header_len])["__metadata__"]
    members["model/encoder.safetensors"] = save(tensors, metadata=metadata)
    bad = tmp_path / "shape.asdlab"
    _rewrite(members, bad)
    with pytest.raises(CheckpointError, match=r"member model/encoder.safetensors: weights do not fit"):
        read_detector_archive(bad)

    # A safetensors header whose shape disagrees with its bytes.
    header = json.dumps({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}).encode()
    members = _members(archive)
    members["model/encoder.safetensors"] = len(header).to_bytes(8, "little") + header + bytes(8)
    _rewrite(members, bad)
    with pytest.raises(CheckpointError, match=r"member 'model/encoder.safetensors': tensor 'w': shape \[3\] \(F32\) "
                                              r"does not match its 8 bytes"):
        read_detector_archive(bad)

    # Training embeddings of another size than the model's.
    members = _members(archive)
    with np.load(io.BytesIO(members["train_embeddings.npz"]), allow_pickle=False) as table:
        columns = {name: table[name] for name in table.files}
    columns["embeddings"] = columns["embeddings"][:, :5].copy()
    buffer = io.BytesIO()
    np.savez(buffer, **columns)
    members["train_embeddings.npz"] = buffer.getvalue()
    _rewrite(members, bad)
    with pytest.raises(CheckpointError, match=r"member 'train_embeddings.npz': embeddings are 5-d but the model gives"):
        read_detector_archive(bad)


def test_refuses_another_version_unlisted_members_and_altered_bytes(archive, tmp_path):
    bad = tmp_path / "bad.asdlab"
    members = _members(archive)
    manifest = json.loads(members[MANIFEST_FILE])
    manifest["version"] = 99
    with zipfile.ZipFile(bad, "w") as zf:
        for name, data in {**members, MANIFEST_FILE: json.dumps(manifest).encode()}.items():
            zf.writestr(name, data)
    with pytest.raises(CheckpointError, match=r"archive format version 99, this asdlab reads 1"):
        read_detector_archive(bad)

    members = _members(archive)
    _rewrite({**members, "model/extra.json": b"{}"}, bad, manifest_for={k: v for k, v in members.items() if k != MANIFEST_FILE})
    with pytest.raises(CheckpointError, match=r"member 'model/extra.json': not listed in manifest.json"):
        read_detector_archive(bad)

    members = _members(archive)
    with zipfile.ZipFile(bad, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data.replace(b"tiny-test", b"evil-test") if name == "detector.json" else data)
    with pytest.raises(CheckpointError, match=r"member 'detector.json': SHA-256 differs"):
        read_detector_archive(bad)

    members = _members(archive)
    _rewrite({**members, "model/run.py": b"print('hi')"}, bad)
    with pytest.raises(CheckpointError, match=r"member 'model/run.py': not a member a detector archive has"):
        read_detector_archive(bad)

    (tmp_path / "text.asdlab").write_text("not a zip")
    with pytest.raises(CheckpointError, match=r"not a detector archive \(not a zip file"):
        load_detector(tmp_path / "text.asdlab")


@pytest.mark.slow
def test_pickle_based_weights_are_converted_to_safetensors(shared_dir, tiny_detector_dir, tmp_path):
    """The released mn04 weights are a torch `.pt` (a pickle): the archive holds them as safetensors, same scores."""
    from asdlab.data.index import index_dataset
    from asdlab.detector import save_detector
    from asdlab.embeddings.extract import extract_embeddings
    from asdlab.pipeline.backbones import BackboneSpec, load_backbone
    from asdlab.pipeline.scoring import ScoreSettings

    weights = shared_dir / "models" / "efficientat-mn04" / "mn04_as_mAP_432.pt"
    if not weights.is_file():
        pytest.skip(f"{weights} is missing from ../shared")
    _, root = tiny_detector_dir
    spec = BackboneSpec(preset="mobilenet-mn04", weights=str(weights))
    train = extract_embeddings(index_dataset(root, splits=("train",)), load_backbone(spec)).table
    folder = save_detector(tmp_path / "mn04", backbone=spec, train=train, scoring=ScoreSettings()).directory
    archive = export_detector(folder, tmp_path / "mn04.asdlab")
    assert sorted(n for n in _members(archive) if n.startswith("model/")) == ["model/mn04_as_mAP_432.safetensors"]
    a = load_detector(folder).score(root, tmp_path / "a").machines[0]
    b = load_detector(archive).score(root, tmp_path / "b").machines[0]
    assert a.test_scores.tobytes() == b.test_scores.tobytes() and a.threshold == b.threshold
