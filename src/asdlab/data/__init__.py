"""Clip records, the DCASE file-name grammar, dataset indexing, metadata CSVs and audio loading.

Nothing here imports torch; only `data/dataset.py` may.
"""

from asdlab.data.audio import Fit, LoadedClips, fit_length, load_audio, load_clips
from asdlab.data.filenames import parse_clip_name
from asdlab.data.index import SplitSummary, format_summary, index_dataset, summarize_records
from asdlab.data.metadata import (
    apply_attribute_tables,
    load_attribute_correspondences,
    load_attribute_tables,
    read_attribute_correspondence,
    read_attributes_csv,
    read_eval_data_list,
    reveal_attributes,
    reveal_eval_labels,
)
from asdlab.data.records import NO_ATTRIBUTE, ClipRecord, Domain, Label, Layout, Split, parse_attribute_string

__all__ = [
    "ClipRecord",
    "Domain",
    "Label",
    "Layout",
    "Split",
    "NO_ATTRIBUTE",
    "parse_attribute_string",
    "parse_clip_name",
    "index_dataset",
    "SplitSummary",
    "summarize_records",
    "format_summary",
    "read_attributes_csv",
    "read_eval_data_list",
    "read_attribute_correspondence",
    "load_attribute_tables",
    "load_attribute_correspondences",
    "apply_attribute_tables",
    "reveal_attributes",
    "reveal_eval_labels",
    "Fit",
    "fit_length",
    "load_audio",
    "LoadedClips",
    "load_clips",
]
