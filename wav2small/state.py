"""Training state without pickle: nested dicts, lists and tuples of tensors, numpy arrays and plain
values, saved as one safetensors file (every array) and one JSON file (everything else).

Loading such a state reads numbers and text only, so a state file placed in a run folder by
someone else cannot run code (a pickled ``state.pt`` could). A state is a folder, written
atomically: both files appear together or not at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_directory

TENSORS_FILE = "tensors.safetensors"
TREE_FILE = "state.json"


def _pack(value, tensors: dict, path: str):
    """``value`` as JSON, its tensors and arrays moved into ``tensors`` under their path. Every JSON
    object written is one of {"$dict": ...}, {"$items": ...}, {"$tuple": ...}, {"$tensor": ...},
    {"$array": ...}, so reading back is unambiguous."""
    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().cpu().contiguous().clone()
        return {"$tensor": path}
    if isinstance(value, np.ndarray):
        tensors[path] = torch.from_numpy(np.ascontiguousarray(value).copy())
        return {"$array": path}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {"$dict": {k: _pack(v, tensors, f"{path}/{k}") for k, v in value.items()}}
        return {"$items": [[_pack(k, tensors, f"{path}/key{i}"), _pack(v, tensors, f"{path}/{i}")]
                           for i, (k, v) in enumerate(value.items())]}
    if isinstance(value, tuple):
        return {"$tuple": [_pack(v, tensors, f"{path}/{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_pack(v, tensors, f"{path}/{i}") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"training state: cannot store {type(value).__name__} at {path} without pickle")


def _unpack(value, tensors: dict):
    if isinstance(value, list):
        return [_unpack(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        raise ValueError(f"unknown entry {sorted(value)[:3]}")
    (kind, content), = value.items()
    if kind == "$dict":
        return {k: _unpack(v, tensors) for k, v in content.items()}
    if kind == "$items":
        return {_unpack(k, tensors): _unpack(v, tensors) for k, v in content}
    if kind == "$tuple":
        return tuple(_unpack(v, tensors) for v in content)
    if kind == "$tensor":
        return tensors[content]
    if kind == "$array":
        return tensors[content].numpy()
    raise ValueError(f"unknown entry {kind!r}")


def save_state(folder, state) -> Path:
    """Write ``state`` into ``folder`` (replaced whole, atomically); returns ``folder``."""
    from safetensors.torch import save_file

    tensors = {}
    tree = _pack(state, tensors, "state")
    with atomic_directory(folder) as tmp:
        save_file(tensors, str(tmp / TENSORS_FILE))
        (tmp / TREE_FILE).write_text(json.dumps(tree))
    return Path(folder)


def load_state(folder):
    """Read a state written by :func:`save_state`; ValueError naming the folder if it is not one."""
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        tensors = load_file(str(folder / TENSORS_FILE))
        return _unpack(json.loads((folder / TREE_FILE).read_text()), tensors)
    except FileNotFoundError as error:
        raise ValueError(f"{folder}: incomplete training state ({Path(error.filename or '').name} is missing)") from None
    except (ValueError, KeyError, TypeError, OSError) as error:
        raise ValueError(f"{folder}: unreadable training state ({type(error).__name__}: {error})") from None
    except Exception as error:  # safetensors reports a malformed file with its own error type
        raise ValueError(f"{folder}: unreadable training state ({type(error).__name__}: {error})") from None


def read_pickled_state(path):
    """A ``state.pt`` of an older wav2small, read with ``torch.load(weights_only=True)``: only
    tensors, containers, numbers and the numpy types of an RNG state may be rebuilt, so the file
    cannot run code. For converting a trusted old run; ValueError if the file holds anything else."""
    import pickle
    import re

    allowed = [np.ndarray, np.dtype, type(np.dtype(np.uint32)), _numpy_reconstruct()]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        what = f"it would call {found.group(1)}" if found else f"{type(error).__name__}: {str(error).strip()[:200]}"
        raise ValueError(f"{path}: refused to load this pickled training state ({what}); only tensors, numbers "
                         "and random-generator states are read from a pickle") from None


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct
