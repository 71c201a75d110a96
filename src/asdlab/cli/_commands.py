"""Every `asdlab` subcommand's module and one-line help, and what the parsers show, without importing
torch or the pipeline: `asdlab --help` and each `asdlab COMMAND --help` start as fast as Python does.
Values copied from the library here are checked against it by tests/unit/cli/test_startup.py."""

from __future__ import annotations

from pathlib import Path

__all__ = ["COMMANDS", "shipped_recipes", "DEFAULT_RECIPE", "EAT_TARGET_FRAMES", "BACKENDS", "MACHINE_NAMES",
           "AUTO_RULES", "NORMALIZATIONS", "WEIGHTS_FILE"]

# module in asdlab.cli -> one-line help (the command is the module name with "-" for "_")
COMMANDS: dict[str, str] = {
    "synth": "write a synthetic DCASE-layout dataset of machine sounds",
    "evaluate": "official DCASE score of a folder of anomaly_score_*.csv files",
    "demo": "the main job: the paper's pipeline at CPU scale next to the two-branch CNN and a baseline",
    "score": "score test clips with a detector (MODEL_DIR DATA_ROOT) or an embeddings file: DCASE files",
    "ensemble": "fuse several scored systems (z-scores per machine), optionally with weights tuned on a dev set",
    "embed": "embed every clip of a dataset into one table (.npz) with a JSON metadata sidecar",
    "report": "write a static HTML report: score tables, ROC curves, histograms, training curves",
    "pseudo_label": "cluster the clips of machines without attributes into pseudo-attributes (Ward linkage)",
    "pretrain": "domain-adaptive self-supervised pre-training (EAT's UFO objective; TATS for BEATs) on machine sounds",
    "finetune": "fine-tune an encoder on machine-attribute classes (EAT, SSLAM, BEATs, the two-branch CNN or the AudioSet MobileNet)",
    "run": "run an experiment (data, DAP, pseudo-labels, fine-tuning, scoring, report) from a config",
    "fit": "train a detector on the normal train/ clips of a dataset root",
    "export": "write a detector as one .asdlab file that score, serve and load_detector accept",
    "serve": "serve a detector over HTTP: POST /v1/score, GET /v1/detector, /health, /metrics, a page at /",
}

DEFAULT_RECIPE = "mn04-arcface"  # asdlab.pipeline.fit.DEFAULT_RECIPE
EAT_TARGET_FRAMES = 1024  # asdlab.features.normalize.EAT_TARGET_FRAMES
BACKENDS = ("dads-knn", "density-knn", "domain-norm-knn", "kmeans", "knn", "mahalanobis", "smote-knn")  # backends.registry
MACHINE_NAMES = ("SynFan", "SynValve", "SynGear", "SynSlider", "SynPump", "SynBearing", "SynCompressor")  # data.synth
AUTO_RULES = ("silhouette", "calinski-harabasz", "jump", "gap", "elbow")  # asdlab.pseudo.count.AUTO_RULES
NORMALIZATIONS = ("none", "l2", "pca-whiten")  # asdlab.pseudo.ward.NORMALIZATIONS
WEIGHTS_FILE = "weights.json"  # asdlab.pipeline.ensemble.WEIGHTS_FILE


def shipped_recipes() -> list[str]:
    """Names of the recipes shipped with asdlab (as `asdlab.pipeline.experiment.list_recipes`)."""
    return sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "pipeline" / "recipes").glob("*.yaml"))
