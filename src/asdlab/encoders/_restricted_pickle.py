"""A restricted unpickler for torch / fairseq checkpoints: tensors and plain containers only.

Used by `encoders/checkpoints.py` (the only module that reads weight files). Every class or
function outside a short allowlist becomes an inert `StubObject`; names that only serve to run
code are refused with a `CheckpointError`.
"""

from __future__ import annotations

import collections
import os
import pickle
import types
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from asdlab.errors import CheckpointError

__all__ = ["StubObject", "read_pickle_checkpoint"]

# Restricted unpickling. `torch.load(weights_only=True)` refuses fairseq files: their `cfg`, `args` and `extra_state`
# hold omegaconf / fairseq / argparse / numpy objects outside its allowlist, and it cannot skip
# them. A plain `torch.load(weights_only=False)` would import those modules and run whatever a
# file's `__reduce__` names. So we hand `torch.load` our own `pickle_module`: torch still rebuilds
# tensors from the zip archive (its wrapper resolves the storage classes), while our `find_class`
# returns real objects only for the allowlist below, refuses names that only serve to run code,
# and replaces every other class or function by an inert `StubObject` subclass that imports
# nothing and runs nothing.


class StubObject:
    """Inert stand-in for an object of a class the checkpoint reader does not import.

    Calling, constructing or restoring a stub only records its arguments (`stub_args`,
    `stub_state`, `stub_items`); nothing else runs.
    """

    stub_module = ""
    stub_name = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> StubObject:
        self = super().__new__(cls)
        object.__setattr__(self, "stub_args", args)
        object.__setattr__(self, "stub_state", None)
        object.__setattr__(self, "stub_items", [])
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # arguments already kept by __new__
        pass

    def __setstate__(self, state: Any) -> None:
        object.__setattr__(self, "stub_state", state)

    def __setitem__(self, key: Any, value: Any) -> None:  # dict subclasses (SETITEMS)
        self.stub_items.append((key, value))

    def append(self, item: Any) -> None:  # list subclasses (APPENDS)
        self.stub_items.append(item)

    def extend(self, items: Any) -> None:
        self.stub_items.extend(items)

    def __repr__(self) -> str:
        return f"<stub {self.stub_module}.{self.stub_name}>"


_STUBS: dict[tuple[str, str], type[StubObject]] = {}


def _stub_class(module: str, name: str) -> type[StubObject]:
    key = (module, name)
    if key not in _STUBS:
        _STUBS[key] = type(f"Stub_{name}", (StubObject,), {"stub_module": module, "stub_name": name})
    return _STUBS[key]


def _latin1_bytes(text: Any, encoding: str = "latin1") -> bytes:
    # Protocol-2 pickles store bytes as `_codecs.encode(str, "latin1")`; allow that use only.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CheckpointError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    # Protocol 0/1 pickles build plain objects through copyreg._reconstructor; only stubs here.
    if isinstance(cls, type) and issubclass(cls, StubObject):
        return cls(state)
    raise CheckpointError(f"refusing copyreg._reconstructor for {cls!r}")


def _rebuild_from_type_v2(func: Any, new_type: Any, args: tuple, state: Any) -> Any:
    # Tensors carrying Python attributes are pickled through this; rebuild plain tensors only.
    if func not in _TENSOR_REBUILDERS or new_type not in (torch.Tensor, nn.Parameter):
        raise CheckpointError(f"refusing tensor rebuild through {func!r} as {new_type!r}")
    return func(*args)


_TENSOR_REBUILDERS = {
    torch._utils._rebuild_tensor,
    torch._utils._rebuild_tensor_v2,
    torch._utils._rebuild_tensor_v3,
    torch._utils._rebuild_parameter,
    torch._utils._rebuild_parameter_with_state,
}

_ALLOWED: dict[tuple[str, str], Any] = {
    **{("torch._utils", f.__name__): f for f in _TENSOR_REBUILDERS},
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Size"): torch.Size,
    ("torch", "Tensor"): torch.Tensor,
    ("torch.nn.parameter", "Parameter"): nn.Parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _latin1_bytes,
    ("copyreg", "_reconstructor"): _reconstructor,
    **{
        ("builtins", t.__name__): t
        for t in (set, frozenset, list, tuple, dict, int, float, bool, complex, str, bytes, bytearray, slice, range)
    },
}

# Modules whose names only appear in a checkpoint to run code (os.system, builtins.eval, ...).
# Stubs would already make them harmless; refusing gives the user a clear message instead.
_REFUSED_ROOTS = frozenset(
    "builtins __builtin__ os posix nt posixpath ntpath subprocess _posixsubprocess sys importlib "
    "runpy shutil socket ctypes code codeop pty pickle _pickle marshal types functools operator io "
    "_io webbrowser multiprocessing signal threading _thread asyncio inspect pdb bdb timeit tempfile "
    "pathlib codecs _codecs platform commands popen2 pydoc trace profile cProfile zipimport pkgutil "
    "site glob urllib http ftplib smtplib telnetlib dill cloudpickle joblib copyreg torch".split()
)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED.get((module, name))
        if allowed is not None:
            return allowed
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module.split(".")[0] in _REFUSED_ROOTS:
            raise CheckpointError(f"refusing to unpickle {module}.{name}: not allowed in a checkpoint")
        return _stub_class(module, name)


def _restricted_load(file: Any, **kwargs: Any) -> Any:
    return _RestrictedUnpickler(file, **kwargs).load()


# torch.load only needs `Unpickler`, `load` and `__name__` from its pickle_module.
_PICKLE_MODULE = types.ModuleType("asdlab_restricted_pickle")
_PICKLE_MODULE.Unpickler = _RestrictedUnpickler
_PICKLE_MODULE.load = _restricted_load


def read_pickle_checkpoint(path: str | os.PathLike) -> Any:
    """Read a torch / fairseq pickle (`.pt`, `pytorch_model.bin`) onto the CPU, safely.

    Tensors are rebuilt by torch; allowlisted containers are real; every other class is a
    `StubObject`.

    Raises:
        CheckpointError: the file is unreadable or names a global that only serves to run code.
    """
    path = Path(path)
    try:
        # mmap avoids reading optimiser states of big fairseq files; only zip archives support it.
        return torch.load(
            path, map_location="cpu", pickle_module=_PICKLE_MODULE, weights_only=False, mmap=zipfile.is_zipfile(path)
        )
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot read checkpoint: {error}") from error
