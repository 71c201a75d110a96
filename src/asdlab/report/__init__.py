"""The static HTML report of a run: tables, ROC curves, score histograms, training curves, images.

matplotlib is an optional extra (`pip install 'asdlab[report]'`), imported only when a figure is drawn.
"""

from asdlab.report.figures import (
    TrainingLog,
    histogram_figure,
    read_training_log,
    require_matplotlib,
    roc_figure,
    save_figure,
    training_figure,
)
from asdlab.report.html import ReportImage, ReportSystem, ReportTable, read_thresholds, write_report
from asdlab.report.screenshot import find_browser, screenshot

__all__ = [
    "ReportSystem",
    "ReportTable",
    "ReportImage",
    "write_report",
    "read_thresholds",
    "roc_figure",
    "histogram_figure",
    "TrainingLog",
    "read_training_log",
    "training_figure",
    "save_figure",
    "require_matplotlib",
    "find_browser",
    "screenshot",
]
