"""asdlab: anomalous machine sound detection (DCASE Task 2) in plain PyTorch."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("asdlab")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
