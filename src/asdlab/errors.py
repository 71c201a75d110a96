"""Exceptions a user can trigger. Every message names the file, key or argument at fault."""

__all__ = [
    "AsdlabError",
    "DataError",
    "AudioError",
    "ConfigError",
    "CheckpointError",
    "EvaluationError",
    "NotFittedError",
]


class AsdlabError(Exception):
    """Base class of every error asdlab raises on purpose."""


class DataError(AsdlabError):
    """A dataset root, file name or metadata file is not what it should be."""


class AudioError(DataError):
    """One audio file cannot be used (unreadable, empty, silent, NaN, wrong rate, ...).

    Attributes:
        path: the offending file, so batch jobs can report it and go on.
    """

    def __init__(self, path, problem: str):
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class ConfigError(AsdlabError):
    """A configuration file, key or value is invalid."""


class CheckpointError(AsdlabError):
    """A checkpoint does not fit the model (missing, unexpected or mis-shaped keys)."""


class EvaluationError(AsdlabError):
    """Score or ground-truth files are missing or do not line up."""


class NotFittedError(AsdlabError, ValueError):
    """A backend or model was used before `fit`."""
