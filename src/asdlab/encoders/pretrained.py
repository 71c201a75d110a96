"""Released weights known by name: `weights="pretrained"` finds a preset's file offline, checksum verified.

Where a preset's released file is looked for, in order:
1. the package's own `asdlab/weights/` folder (where a release may ship small MIT-licensed files);
2. the folders in the environment variable `ASDLAB_WEIGHTS_DIR` (separated like PATH);
3. the user cache, `$XDG_CACHE_HOME/asdlab/weights` (default `~/.cache/asdlab/weights`);
4. only when asked (`allow_download=True` or `ASDLAB_DOWNLOAD_WEIGHTS=1`): a download into the user cache.
A file found by name whose SHA-256 differs is an error, not skipped: it is the wrong file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from asdlab._io import sha256_file
from asdlab.encoders.checkpoints import MN04_FILENAME, MN04_SHA256, MN04_URL, download_mn04_weights
from asdlab.errors import CheckpointError

__all__ = [
    "PRETRAINED",
    "PACKAGE_WEIGHTS_DIR",
    "WEIGHTS_DIR_ENV",
    "DOWNLOAD_ENV",
    "ReleasedWeights",
    "RELEASED_WEIGHTS",
    "weight_search_dirs",
    "find_pretrained_weights",
    "resolve_weights",
]

PRETRAINED = "pretrained"  # the `weights` value that asks for a preset's released file
PACKAGE_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
WEIGHTS_DIR_ENV = "ASDLAB_WEIGHTS_DIR"
DOWNLOAD_ENV = "ASDLAB_DOWNLOAD_WEIGHTS"


@dataclass(frozen=True)
class ReleasedWeights:
    """One released weights file: its name, SHA-256, where it can be downloaded, and its licence."""

    filename: str
    sha256: str
    url: str
    licence: str


RELEASED_WEIGHTS: dict[str, ReleasedWeights] = {
    "mobilenet-mn04": ReleasedWeights(MN04_FILENAME, MN04_SHA256, MN04_URL, "MIT (EfficientAT)"),
}


def _user_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "asdlab" / "weights"


def weight_search_dirs() -> list[Path]:
    """The folders `find_pretrained_weights` looks in, in order (they need not exist)."""
    configured = [Path(p) for p in os.environ.get(WEIGHTS_DIR_ENV, "").split(os.pathsep) if p]
    return [PACKAGE_WEIGHTS_DIR, *configured, _user_cache()]


def _verified(path: Path, release: ReleasedWeights) -> Path:
    digest = sha256_file(path)
    if digest != release.sha256:
        raise CheckpointError(f"{path}: sha256 {digest} is not the released {release.filename} ({release.sha256}); "
                              "replace or remove the file")
    return path


def find_pretrained_weights(preset: str, *, allow_download: bool | None = None) -> Path:
    """The verified released weights file of `preset`, found offline or (when allowed) downloaded.

    Args:
        preset: encoder preset with released weights (`RELEASED_WEIGHTS`).
        allow_download: download into the user cache when no folder has the file; None = only when
            the environment variable `ASDLAB_DOWNLOAD_WEIGHTS` is 1.

    Raises:
        CheckpointError: no released weights for `preset`, a file with the wrong hash, or none found
            and no download allowed (the message lists where it looked and how to provide it).
        OSError: an allowed download failed.
    """
    release = RELEASED_WEIGHTS.get(preset)
    if release is None:
        known = ", ".join(sorted(RELEASED_WEIGHTS))
        raise CheckpointError(f"{preset}: no released weights known for weights={PRETRAINED!r} (known: {known}); "
                              "give the weights file's path instead")
    folders = weight_search_dirs()
    for folder in folders:
        candidate = folder / release.filename
        if candidate.is_file():
            return _verified(candidate, release)
    if allow_download is None:
        allow_download = os.environ.get(DOWNLOAD_ENV) == "1"
    if allow_download:
        return download_mn04_weights(_user_cache(), url=release.url, sha256=release.sha256)
    looked = ", ".join(str(f) for f in folders)
    raise CheckpointError(
        f"{preset}: {release.filename} not found (looked in {looked}). Put the file in one of these folders, "
        f"point {WEIGHTS_DIR_ENV} at its folder, give its path as the weights, or set {DOWNLOAD_ENV}=1 to "
        f"download it ({release.url}, {release.licence})"
    )


def resolve_weights(preset: str, weights: str | os.PathLike | None) -> str | os.PathLike | None:
    """`weights` unchanged, except `"pretrained"`, which becomes the path `find_pretrained_weights` finds."""
    if weights is not None and str(weights) == PRETRAINED:
        return str(find_pretrained_weights(preset))
    return weights
