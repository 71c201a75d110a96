"""The exported detector: an embedding model, the normal training embeddings and the scoring settings.

A detector folder is self-contained and movable: `detector.json` (what to rebuild, the recipe, the
versions), `model/` (the encoder weights or fine-tuned model folder, when the backbone has any) and
`train_embeddings.npz`. Scoring a new recording embeds it and compares it with the training
embeddings of its machine and section (kNN by default), exactly as the experiment pipeline does.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from asdlab import __version__
from asdlab.data.index import index_dataset
from asdlab.data.records import ClipRecord
from asdlab.embeddings.extract import extract_embeddings
from asdlab.embeddings.table import EmbeddingTable
from asdlab.errors import CheckpointError, DataError
from asdlab.pipeline.backbones import BackboneSpec, load_backbone
from asdlab.pipeline.config_io import from_dict, to_dict
from asdlab.pipeline.scoring import ScoreSettings, ScoringResult, score_embeddings

__all__ = ["Detector", "save_detector", "load_detector", "DETECTOR_FILE"]

logger = logging.getLogger(__name__)

DETECTOR_FILE = "detector.json"
_FORMAT = "asdlab-detector"
_VERSION = 1
_TRAIN_FILE = "train_embeddings.npz"
_MODEL_DIR = "model"
_TRAINING_ONLY = ("last.ckpt", "*.tmp", "stage.json", "stage1", "cache")

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class Detector:
    """A fitted detector (see `load_detector`, `asdlab.fit`).

    Attributes:
        directory: where it is stored.
        backbone: how to build the embedding model (paths absolute).
        scoring: backend, normalisation and threshold settings.
        train: embeddings of the normal training clips, with their machine, section and domain.
        recipe: the recipe it was trained with.
        info: provenance (versions, configuration, data root).
    """

    directory: Path
    backbone: BackboneSpec
    scoring: ScoreSettings
    train: EmbeddingTable
    recipe: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def machines(self) -> list[tuple[str, str]]:
        """The (machine, section) pairs it can score."""
        return sorted(set(zip(self.train.machine.tolist(), self.train.section.tolist())))

    def embed(
        self, records: Sequence[ClipRecord], *, batch_size: int = 16, device: str = "cpu",
        progress: ProgressCallback | None = None,
    ) -> EmbeddingTable:
        """Embeddings of `records` with this detector's model (bad clips are logged and left out).

        Raises:
            DataError: none of the clips could be embedded.
        """
        backbone = load_backbone(self.backbone, device=device)
        result = extract_embeddings(
            records, backbone, sample_rate=backbone.sample_rate, batch_size=batch_size, device=device,
            progress=progress,
        )
        for failure in result.failures:
            logger.warning("skipped %s: %s", failure.path, failure.problem)
        return result.table

    def score(
        self,
        data_root: str | os.PathLike,
        out_dir: str | os.PathLike,
        *,
        batch_size: int = 16,
        device: str = "cpu",
        progress: ProgressCallback | None = None,
        scoring: ScoreSettings | None = None,
    ) -> ScoringResult:
        """Score every `test/` clip under a dataset root; write `anomaly_score_*` / `decision_result_*`.

        `scoring` replaces the detector's own scoring settings (another backend on the same embeddings).

        The root is any layout `index_dataset` reads, own recordings included (`<Machine>/test/*.wav`
        with arbitrary names: section "00", no label; the files list those names as they are).

        Clips of machines or sections the detector was not trained on are reported and skipped.
        When the test clips carry labels (file names with normal/anomaly and the domain), the
        official metric is computed too (`evaluation.csv`).

        Raises:
            DataError: no test clip of a known machine and section under `data_root`.
        """
        known = set(self.machines)
        records = index_dataset(data_root, splits=("test",))
        unknown = sorted({(r.machine, r.section) for r in records} - known)
        for machine, section in unknown:
            logger.warning("%s section %s: not in this detector (trained on %s); skipped", machine, section,
                           ", ".join(f"{m}/{s}" for m, s in sorted(known)))
        records = [r for r in records if (r.machine, r.section) in known]
        if not records:
            raise DataError(f"{data_root}: no test clips of the machines this detector knows ({sorted(known)})")
        test = self.embed(records, batch_size=batch_size, device=device, progress=progress)
        table = EmbeddingTable.concat([self.train, test])
        labelled = bool(((test.label == "normal") | (test.label == "anomaly")).all())
        settings = self.scoring if scoring is None else scoring
        return score_embeddings(table, out_dir, settings, ground_truth=data_root if labelled else None)


def save_detector(
    directory: str | os.PathLike,
    *,
    backbone: BackboneSpec,
    train: EmbeddingTable,
    scoring: ScoreSettings,
    recipe: str = "",
    info: dict[str, Any] | None = None,
) -> Detector:
    """Write a self-contained detector folder atomically (the model files are copied into it).

    Args:
        directory: destination; replaced if it exists.
        backbone: the embedding model (its weights file or model folder is copied).
        train: embeddings of the normal training clips (split "train").
        scoring: how test embeddings are scored against them.
        recipe: recipe name, for records.
        info: more provenance (configuration, versions, data root).
    """
    directory = Path(directory)
    if not (train.split == "train").all() or len(train) == 0:
        raise DataError("a detector is fitted on training clips only (split 'train'), and needs at least one")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        stored = backbone
        if backbone.model_dir is not None:
            # Only what the model needs: not the training checkpoint (optimiser state) or data caches.
            shutil.copytree(backbone.model_dir, staging / _MODEL_DIR,
                            ignore=shutil.ignore_patterns(*_TRAINING_ONLY))
            stored = BackboneSpec(**{**asdict(backbone), "model_dir": _MODEL_DIR, "weights": None})
        elif backbone.weights is not None:
            (staging / _MODEL_DIR).mkdir()
            name = Path(backbone.weights).name
            shutil.copy2(backbone.weights, staging / _MODEL_DIR / name)
            stored = BackboneSpec(**{**asdict(backbone), "weights": f"{_MODEL_DIR}/{name}"})
        train.save(staging / _TRAIN_FILE)
        record = {
            "format": _FORMAT,
            "version": _VERSION,
            "recipe": recipe,
            "backbone": to_dict(stored),
            "scoring": scoring.as_dict(),
            "machines": [f"{m}/{s}" for m, s in sorted(set(zip(train.machine.tolist(), train.section.tolist())))],
            "asdlab_version": __version__,
            "info": info or {},
        }
        (staging / DETECTOR_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n")
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            directory.rename(old)
            staging.rename(directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return load_detector(directory)


def load_detector(directory: str | os.PathLike) -> Detector:
    """Read a detector folder written by `save_detector` / `asdlab fit`.

    Raises:
        CheckpointError: not a detector folder, or written by an incompatible version.
    """
    directory = Path(directory)
    path = directory / DETECTOR_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{directory}: not a detector folder (no {DETECTOR_FILE}); create one with `asdlab fit`") from None
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from None
    if record.get("format") != _FORMAT:
        raise CheckpointError(f"{path}: not an asdlab detector description")
    if record.get("version") != _VERSION:
        raise CheckpointError(f"{path}: detector format version {record.get('version')}, this asdlab reads {_VERSION}")
    backbone = from_dict(BackboneSpec, record["backbone"], where=f"{path}: backbone").resolved(directory)
    scoring = from_dict(ScoreSettings, record["scoring"], where=f"{path}: scoring")
    train = EmbeddingTable.load(directory / _TRAIN_FILE)
    return Detector(directory=directory, backbone=backbone, scoring=scoring, train=train,
                    recipe=record.get("recipe", ""), info=record.get("info", {}))
