"""The exported detector: an embedding model, the normal training embeddings and the scoring settings.

A detector folder is self-contained and movable: `detector.json` (what to rebuild, the recipe, the
versions), `model/` (the encoder weights or fine-tuned model folder, when the backbone has any) and
`train_embeddings.npz`; `asdlab.detector_archive` packs it into one `.asdlab` file, which
`load_detector` reads too. Scoring a new recording embeds it and compares it with the training
embeddings of its machine and section (kNN by default), exactly as the experiment pipeline does.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from asdlab import __version__
from asdlab.backends.thresholds import decide
from asdlab.data.index import index_dataset
from asdlab.data.records import ClipRecord
from asdlab.embeddings.extract import ExtractionResult, embed_batch, extract_embeddings, resolve_device
from asdlab.embeddings.table import EmbeddingTable
from asdlab.encoders.backbone import Backbone
from asdlab.errors import AudioError, CheckpointError, DataError
from asdlab.pipeline.backbones import BackboneSpec, load_backbone
from asdlab.pipeline.config_io import from_dict, to_dict
from asdlab.pipeline.scoring import (
    MachineReference,
    ScoreSettings,
    ScoringResult,
    fit_machine_reference,
    score_embeddings,
)

__all__ = ["Detector", "ClipScore", "save_detector", "load_detector", "DETECTOR_FILE", "SCORING_BATCH_SIZE"]

logger = logging.getLogger(__name__)

DETECTOR_FILE = "detector.json"
_FORMAT = "asdlab-detector"
_VERSION = 1
_TRAIN_FILE = "train_embeddings.npz"
_MODEL_DIR = "model"
_TRAINING_ONLY = ("last.ckpt", "*.tmp", "stage.json", "stage1", "cache")

ProgressCallback = Callable[[int, int], None]

# Test clips are embedded one per forward pass: batched CPU kernels round differently by batch size
# (the two-branch CNN's embeddings move by up to 3e-7), and a clip's score must not depend on which
# other clips came with it (the CLI, the service, a folder with bad clips all give the same score).
# Measured on 2 CPU cores, one clip at a time is no slower for the two-branch CNN.
SCORING_BATCH_SIZE = 1


@dataclass(frozen=True)
class ClipScore:
    """One scored clip: its anomaly score, the decision at the machine's threshold, and where it ranks.

    Attributes:
        name: the clip's file name.
        machine / section: what it was scored as.
        score: anomaly score (higher = more anomalous), on the scale of the score files.
        threshold: the machine's decision threshold on that scale.
        decision: 1 (anomaly) when score > threshold, else 0 (`asdlab.backends.thresholds.decide`).
        percentile: percent of the machine's normal training clips (out-of-fold) scoring at or below it.
    """

    name: str
    machine: str
    section: str
    score: float
    threshold: float
    decision: int
    percentile: float


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
    # Built on first use and kept: the embedding model per device, the fitted reference per machine.
    _cache: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @property
    def machines(self) -> list[tuple[str, str]]:
        """The (machine, section) pairs it can score."""
        return sorted(set(zip(self.train.machine.tolist(), self.train.section.tolist())))

    @property
    def sample_rate(self) -> int:
        """Hz the model takes (clips at other rates are resampled)."""
        return self.model().sample_rate

    def model(self, device: str = "cpu") -> Backbone:
        """The waveform -> embedding `Backbone`, built once per device."""
        with self._lock:
            key = ("backbone", device)
            if key not in self._cache:
                self._cache[key] = load_backbone(self.backbone, device=device)
            return self._cache[key]

    def reference(self, machine: str, section: str) -> MachineReference:
        """The fitted backend, training scores and threshold of one (machine, section), computed once.

        Raises:
            DataError: the detector was not trained on that machine and section.
        """
        with self._lock:
            key = ("reference", machine, section)
            if key not in self._cache:
                rows = (self.train.machine == machine) & (self.train.section == section)
                if not rows.any():
                    raise DataError(f"{machine} section {section}: not in this detector (it knows "
                                    f"{', '.join(f'{m}/{s}' for m, s in self.machines)})")
                self._cache[key] = fit_machine_reference(
                    self.train.select(rows), self.scoring.new_backend, threshold_method=self.scoring.threshold,
                    normalization=self.scoring.normalization, n_folds=self.scoring.n_folds, seed=self.scoring.seed,
                )
            return self._cache[key]

    def fit_references(self) -> None:
        """Fit every (machine, section)'s scoring reference now instead of on first use.

        Raises:
            DataError: a machine whose training clips the backend cannot fit (too few clips), named.
        """
        for machine, section in self.machines:
            self.reference(machine, section)

    def resolve_section(self, machine: str, section: str | None = None) -> str:
        """`section`, or the machine's only section when None.

        Raises:
            DataError: an unknown machine or section, or None for a machine with several sections.
        """
        sections = sorted(s for m, s in self.machines if m == machine)
        if not sections:
            known = sorted({m for m, _ in self.machines})
            raise DataError(f"unknown machine {machine!r}: this detector knows {', '.join(known)}")
        if section is None:
            if len(sections) > 1:
                raise DataError(f"machine {machine!r} has sections {', '.join(sections)}: give one")
            return sections[0]
        if section not in sections:
            raise DataError(f"{machine} has no section {section!r}: it has {', '.join(sections)}")
        return section

    def embed(
        self, records: Sequence[ClipRecord], *, batch_size: int = SCORING_BATCH_SIZE, device: str = "auto",
        progress: ProgressCallback | None = None,
    ) -> EmbeddingTable:
        """Embeddings of `records` with this detector's model (bad clips are logged once each and left out);
        `device` "auto" is the GPU when there is one (bf16 there, fp32 on a CPU).

        Raises:
            DataError: none of the clips could be embedded.
        """
        return self._extract(records, batch_size=batch_size, device=device, progress=progress).table

    def _extract(self, records: Sequence[ClipRecord], *, batch_size: int, device: str,
                 progress: ProgressCallback | None) -> ExtractionResult:
        device = str(resolve_device(device))
        backbone = self.model(device)
        return extract_embeddings(
            records, backbone, sample_rate=backbone.sample_rate, batch_size=batch_size, device=device,
            progress=progress,
        )

    def score_waveforms(
        self, waves: Sequence[NDArray[np.float32]], names: Sequence[str], machine: str, section: str | None = None,
        *, device: str = "auto",
    ) -> list[ClipScore | AudioError]:
        """Score decoded clips (at `sample_rate`, e.g. from `asdlab.data.audio.decode_audio`) of one machine.

        Each clip is embedded alone, so its score equals the one `score` writes for the same file.

        Args:
            waves: (S,) float32 waveforms.
            names: their file names, for the results and messages.
            machine: machine type; section: its section, optional when the machine has only one.
            device: where the model runs ("auto" = the GPU when there is one, as `score`).

        Returns:
            Per clip, in order, a `ClipScore` or the `AudioError` saying why the model could not take it.

        Raises:
            DataError: unknown machine or section.
        """
        section = self.resolve_section(machine, section)
        reference = self.reference(machine, section)
        device = str(resolve_device(device))
        backbone = self.model(device)
        results: list[ClipScore | AudioError] = []
        for wave, name in zip(waves, names, strict=True):
            embedding, kept, failed = embed_batch([wave], backbone, device=device)
            if failed:
                results.append(AudioError(name, failed[0][1]))
                continue
            score = reference.score(embedding)
            results.append(ClipScore(
                name=name, machine=machine, section=section, score=float(score[0]), threshold=reference.threshold,
                decision=int(decide(score, reference.threshold)[0]), percentile=float(reference.percentile(score)[0]),
            ))
        return results

    def score(
        self,
        data_root: str | os.PathLike,
        out_dir: str | os.PathLike,
        *,
        batch_size: int = SCORING_BATCH_SIZE,
        device: str = "auto",
        progress: ProgressCallback | None = None,
        scoring: ScoreSettings | None = None,
    ) -> ScoringResult:
        """Score every `test/` clip under a dataset root; write `anomaly_score_*` / `decision_result_*`.

        `scoring` replaces the detector's own scoring settings (another backend on the same embeddings).

        The root is any layout `index_dataset` reads, own recordings included (`<Machine>/test/*.wav`
        with arbitrary names: section "00", no label; the files list those names as they are).

        Clips of machines or sections the detector was not trained on are reported and skipped, and so
        is every clip that cannot be used (unreadable, empty, silent, too short, ...), once each, with
        the reason; the result lists them in `skipped`. When the test clips carry labels (file names
        with normal/anomaly and the domain), the official metric is computed on the clips scored
        (`evaluation.csv`), with a warning naming how many labelled clips have no score.

        Raises:
            DataError: no test clip of a known machine and section under `data_root`, or none could be used.
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
        extraction = self._extract(records, batch_size=batch_size, device=device, progress=progress)
        test = extraction.table
        table = EmbeddingTable.concat([self.train, test])
        labelled = bool(((test.label == "normal") | (test.label == "anomaly")).all())
        settings = self.scoring if scoring is None else scoring
        result = score_embeddings(table, out_dir, settings, ground_truth=data_root if labelled else None,
                                  missing_scores="warn")
        return replace(result, skipped=tuple((str(f.path), f.problem) for f in extraction.failures))


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
    """Read a detector: a folder written by `save_detector` / `asdlab fit`, or a one-file `.asdlab` export.

    Raises:
        CheckpointError: not a detector, written by an incompatible version, or (a file) an archive
            member that is refused (see `asdlab.detector_archive.read_detector_archive`).
    """
    directory = Path(directory)
    if directory.is_file():
        from asdlab.detector_archive import read_detector_archive  # it imports this module

        return read_detector_archive(directory)
    path = directory / DETECTOR_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{directory}: not a detector folder (no {DETECTOR_FILE}) or .asdlab file; "
                              "create one with `asdlab fit`") from None
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
