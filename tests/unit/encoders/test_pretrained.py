"""`weights="pretrained"`: where a released file is looked for, checksums, and the opt-in download."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

from asdlab.encoders import pretrained
from asdlab.encoders.backbone import build_backbone
from asdlab.encoders.mobilenet import MN04_FILENAME, load_mn04_weights
from asdlab.encoders.pretrained import (
    DOWNLOAD_ENV,
    PRETRAINED,
    WEIGHTS_DIR_ENV,
    ReleasedWeights,
    find_pretrained_weights,
    resolve_weights,
    weight_search_dirs,
)
from asdlab.errors import CheckpointError

_CONTENT = b"released weights"


@pytest.fixture()
def folders(tmp_path, monkeypatch) -> dict[str, Path]:
    """A fake release of a preset "toy", an empty package folder, configured folders and a user cache."""
    paths = {name: tmp_path / name for name in ("package", "configured_a", "configured_b", "cache")}
    release = ReleasedWeights("toy.pt", hashlib.sha256(_CONTENT).hexdigest(), "file:///nonexistent/toy.pt", "MIT")
    monkeypatch.setitem(pretrained.RELEASED_WEIGHTS, "toy", release)
    monkeypatch.setattr(pretrained, "PACKAGE_WEIGHTS_DIR", paths["package"])
    monkeypatch.setenv(WEIGHTS_DIR_ENV, os.pathsep.join([str(paths["configured_a"]), str(paths["configured_b"])]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(paths["cache"]))
    monkeypatch.delenv(DOWNLOAD_ENV, raising=False)
    return paths


def _put(folder: Path, content: bytes = _CONTENT) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "toy.pt"
    path.write_bytes(content)
    return path


def test_search_order_package_then_configured_then_cache(folders):
    assert weight_search_dirs() == [folders["package"], folders["configured_a"], folders["configured_b"],
                                    folders["cache"] / "asdlab" / "weights"]
    cached = _put(folders["cache"] / "asdlab" / "weights")
    assert find_pretrained_weights("toy") == cached
    configured = _put(folders["configured_b"])
    assert find_pretrained_weights("toy") == configured
    packaged = _put(folders["package"])
    assert find_pretrained_weights("toy") == packaged
    assert resolve_weights("toy", PRETRAINED) == str(packaged)


def test_a_file_with_the_wrong_hash_is_an_error_not_skipped(folders):
    _put(folders["configured_b"])
    bad = _put(folders["configured_a"], b"other bytes")
    with pytest.raises(CheckpointError, match=f"{bad}: sha256 .* is not the released toy.pt"):
        find_pretrained_weights("toy")


def test_nothing_found_names_the_folders_and_the_ways_out(folders, monkeypatch):
    calls = []
    monkeypatch.setattr(pretrained, "download_mn04_weights", lambda *a, **k: calls.append((a, k)))
    with pytest.raises(CheckpointError) as info:
        find_pretrained_weights("toy")
    message = str(info.value)
    assert "toy.pt not found" in message and str(folders["configured_a"]) in message
    assert WEIGHTS_DIR_ENV in message and f"{DOWNLOAD_ENV}=1" in message
    assert calls == []  # never downloads unless asked


def test_download_only_when_asked(folders, monkeypatch):
    def fake_download(directory, *, url, sha256):
        return _put(Path(directory))

    monkeypatch.setattr(pretrained, "download_mn04_weights", fake_download)
    assert find_pretrained_weights("toy", allow_download=True) == folders["cache"] / "asdlab" / "weights" / "toy.pt"
    (folders["cache"] / "asdlab" / "weights" / "toy.pt").unlink()
    monkeypatch.setenv(DOWNLOAD_ENV, "1")
    assert find_pretrained_weights("toy").is_file()
    (folders["cache"] / "asdlab" / "weights" / "toy.pt").unlink()
    with pytest.raises(CheckpointError, match="not found"):
        find_pretrained_weights("toy", allow_download=False)


def test_paths_pass_through_and_unknown_presets_fail(folders, tmp_path):
    assert resolve_weights("toy", None) is None
    assert resolve_weights("toy", tmp_path / "own.pt") == tmp_path / "own.pt"
    with pytest.raises(CheckpointError, match="eat-base: no released weights known"):
        find_pretrained_weights("eat-base")
    with pytest.raises(CheckpointError, match="no released weights known"):
        build_backbone("eat-tiny", weights=PRETRAINED)


def test_pretrained_mn04_loads_strictly_from_a_configured_folder(shared_dir, monkeypatch):
    folder = shared_dir / "models" / "efficientat-mn04"
    if not (folder / MN04_FILENAME).is_file():
        pytest.skip(f"{folder / MN04_FILENAME} is missing from ../shared")
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(folder))
    backbone = build_backbone("mobilenet-mn04", weights=PRETRAINED, pooling="band-mean", embed_layer=10)
    reference = load_mn04_weights(folder / MN04_FILENAME)
    for key, value in reference.state_dict().items():
        assert torch.equal(backbone.encoder.state_dict()[key], value), key
    assert not backbone.training and backbone.embed_dim == 256
