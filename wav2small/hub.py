"""Resolve a model name to a local folder: a folder as given, or a Hugging Face hub id downloaded
and cached through huggingface_hub, failing fast with instructions when the hub cannot be reached.
"""

from __future__ import annotations

import os
from pathlib import Path


#: Files of which a model folder holds at least one: a checkpoint's config or weights, or an ONNX export.
MODEL_FOLDER_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "model.onnx")


class ModelNotFoundError(OSError):
    """A model folder or hub id that cannot be found or downloaded."""


def is_model_folder(path) -> bool:
    """Whether ``path`` is a folder holding a model (any of ``MODEL_FOLDER_FILES``). Such a folder is
    what a model string names, before any preset name or alias of the same spelling; a folder that
    holds no model (the package's own source folder ``wav2small/``, say) does not shadow them."""
    path = Path(path).expanduser()
    return path.is_dir() and any((path / name).is_file() for name in MODEL_FOLDER_FILES)


def local_copy(hub_id: str) -> str:
    """Where the offline message suggests putting a copy of ``hub_id``: under ``./models/``, never
    a folder named like the package or a preset in the working directory (``./wav2small`` would
    read as the preset name and sit where Python looks for the package)."""
    return f"./models/{hub_id.split('/')[-1]}"


def resolve_pretrained(name_or_path, *, allow_patterns=("*.json", "*.safetensors", "*.yaml", "*.txt"), require=()) -> Path:
    """Return a local folder for ``name_or_path`` (a folder, or a hub id such as ``audeering/wav2small``).

    A hub id is looked up in the local huggingface_hub cache first and downloaded only when missing.
    ``require``: glob patterns of which a cached copy must match at least one (e.g. weights, when
    an earlier call cached only config.json); otherwise it is downloaded again.
    Without network the error says how to use a local copy instead.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise ModelNotFoundError(f"{name}: no such model folder (and not a hub id of the form 'owner/name')")
    from huggingface_hub import snapshot_download

    try:
        cached = Path(snapshot_download(name, allow_patterns=list(allow_patterns), local_files_only=True))
        if not require or any(any(cached.glob(pattern)) for pattern in require):
            return cached
    except Exception:
        pass
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    try:
        return Path(snapshot_download(name, allow_patterns=list(allow_patterns)))
    except Exception as error:  # network down, repository missing, gated, ...
        raise ModelNotFoundError(
            f"{name}: could not download from the Hugging Face hub ({type(error).__name__}: {str(error).splitlines()[0][:200]}).\n"
            f"Without network, copy the model folder to this machine (on a connected one: "
            f"`hf download {name} --local-dir {local_copy(name)}`; `huggingface-cli download` before huggingface_hub 0.34) "
            "and pass that folder instead of the hub id."
        ) from None
