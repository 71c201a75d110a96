"""Embeddings of many clips with their metadata: one (N, D) array plus per-clip columns.

NumPy only (no torch), so backends and reports can read it. Stored as one `.npz` file,
written atomically, with no pickled objects.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from asdlab._io import atomic_path
from asdlab.data.records import ClipRecord
from asdlab.errors import DataError

__all__ = ["EmbeddingTable"]

_COLUMNS = ("path", "machine", "section", "split", "label", "domain", "attributes")


@dataclass(frozen=True)
class EmbeddingTable:
    """Embeddings (N, D) and, for each row, the clip it came from.

    Missing labels / domains are stored as empty strings.
    """

    embeddings: NDArray[np.float32]
    path: NDArray[np.str_]
    machine: NDArray[np.str_]
    section: NDArray[np.str_]
    split: NDArray[np.str_]
    label: NDArray[np.str_]
    domain: NDArray[np.str_]
    attributes: NDArray[np.str_]

    def __post_init__(self) -> None:
        n = len(self.embeddings)
        if self.embeddings.ndim != 2:
            raise DataError(f"embeddings must be (N, D), got shape {self.embeddings.shape}")
        for name in _COLUMNS:
            if len(getattr(self, name)) != n:
                raise DataError(f"column {name!r} has {len(getattr(self, name))} rows, embeddings have {n}")

    def __len__(self) -> int:
        return len(self.embeddings)

    @property
    def filename(self) -> NDArray[np.str_]:
        """Base names, as the DCASE score files list them."""
        return np.array([os.path.basename(p) for p in self.path], dtype=np.str_)

    @classmethod
    def from_records(cls, records: list[ClipRecord], embeddings: NDArray[np.floating]) -> EmbeddingTable:
        """Build a table from clip records and their embeddings (same order)."""
        def column(values) -> NDArray[np.str_]:
            return np.array(["" if v is None else str(v) for v in values], dtype=np.str_)

        return cls(
            embeddings=np.asarray(embeddings, dtype=np.float32).reshape(len(records), -1),
            path=column(r.path for r in records),
            machine=column(r.machine for r in records),
            section=column(r.section for r in records),
            split=column(r.split for r in records),
            label=column(r.label for r in records),
            domain=column(r.domain for r in records),
            attributes=column(r.attributes for r in records),
        )

    @classmethod
    def concat(cls, tables: Sequence[EmbeddingTable]) -> EmbeddingTable:
        """Rows of several tables with the same embedding size, in order.

        Raises:
            DataError: no tables, or embedding sizes that differ.
        """
        if not tables:
            raise DataError("no embedding tables to concatenate")
        sizes = {t.embeddings.shape[1] for t in tables}
        if len(sizes) > 1:
            raise DataError(f"cannot concatenate embeddings of sizes {sorted(sizes)}")
        return cls(**{f.name: np.concatenate([getattr(t, f.name) for t in tables]) for f in fields(cls)})

    def select(self, mask: NDArray[np.bool_] | NDArray[np.integer]) -> EmbeddingTable:
        """Rows picked by a boolean mask or an index array."""
        return EmbeddingTable(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})

    def save(self, path: str | os.PathLike) -> None:
        """Write to `path` (.npz) atomically."""
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, **{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def load(cls, path: str | os.PathLike) -> EmbeddingTable:
        """Read a table written by `save`."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(**{f.name: data[f.name] for f in fields(cls)})
        except (OSError, KeyError, ValueError) as error:
            raise DataError(f"{path}: not an asdlab embeddings file ({error})") from error
