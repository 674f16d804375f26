"""Distillation training: a student learns the teacher outputs of a label store, replaying every
labelled view bit for bit from the packed audio cache; one process, or DDP when run under torchrun.

A run directory holds ``config.json`` (the run's settings), ``log.csv`` (every step's loss, every
validation), ``state/`` (weights, optimizer, scheduler, RNG, EMA, step, as safetensors + JSON: no
pickle; written atomically) and the loadable model folders ``last/`` and ``best/`` (best mean
validation CCC). Running the same command again resumes from ``state/`` and continues the same
run; one run folder takes one training at a time, and a restart clears what a kill left behind.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import json
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .atomic import atomic_directory, atomic_path, recover_directory, remove_temporaries, write_json
from .cache import AudioCache, build_audio_cache, wait_for_audio_cache
from .contract import LABELS, SAMPLING_RATE
from .distributed import Processes, process_group
from .holdout import VALIDATION_SALT, held_out
from .locks import file_lock
from .metrics import concordance_cc
from .models import Student
from .options import TrainConfig
from .runners import load_student
from .state import load_state, read_pickled_state, save_state
from .store import LabelStore
from .views import render_view, view_files

STATE_DIR = "state"
#: The pickled training state of wav2small before 0.2: never loaded unless converted on request.
PICKLED_STATE_FILE = "state.pt"
LOG_FILE = "log.csv"
CONFIG_FILE = "config.json"
LOG_COLUMNS = ["step", "epoch", "loss", "mse", "lr", "clips_per_s",
               *[f"valid_{k}" for k in LABELS], "valid_mean"]
# Settings that may differ when a run is resumed: they change how fast it runs, not what it learns.
_RESUMABLE_CHANGES = {"workers", "threads", "progress", "device", "cache_dir", "compile"}


# the objective


def concordance_loss(prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """1 - CCC per column of (B, K) tensors over the batch (population moments), averaged over K."""
    pm, tm = prediction.mean(0), target.mean(0)
    pv, tv = prediction.var(0, unbiased=False), target.var(0, unbiased=False)
    covariance = ((prediction - pm) * (target - tm)).mean(0)
    ccc = 2 * covariance / (pv + tv + (pm - tm) ** 2 + eps)
    return 1 - ccc.mean()


def distillation_loss(prediction: torch.Tensor, target: torch.Tensor, ccc_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, mse): loss = (1 - ccc_weight) * MSE + ccc_weight * (1 - CCC)."""
    mse = nn.functional.mse_loss(prediction, target)
    if ccc_weight == 0:
        return mse, mse
    return (1 - ccc_weight) * mse + ccc_weight * concordance_loss(prediction, target), mse


def weighted_distillation_loss(prediction: torch.Tensor, targets: torch.Tensor, weights, ccc_weight: float
                               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, mse) of one prediction (B, 3) against several targets (B, T, 3): the sum over t of
    ``weights[t] * distillation_loss(prediction, targets[:, t])`` (mse weighted alike). A term of
    weight 0 is not computed at all, so its targets have no influence (even when not finite)."""
    loss = mse = prediction.new_zeros(())
    for t, weight in enumerate(weights):
        if weight:
            term, term_mse = distillation_loss(prediction, targets[:, t], ccc_weight)
            loss, mse = loss + weight * term, mse + weight * term_mse
    return loss, mse


def lr_factor(step: int, *, warmup: int, total: int, min_ratio: float) -> float:
    """Multiplier of the peak learning rate: linear warm-up over ``warmup`` steps, then cosine to ``min_ratio``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


# the data


def view_length(params: dict) -> int:
    """Samples of a rendered view, from its parameters."""
    if "samples" in params:
        return int(params["samples"])
    return int(round(params["end"] * SAMPLING_RATE)) - int(round(params["start"] * SAMPLING_RATE))


class ViewDataset(torch.utils.data.Dataset):
    """Rows of a label store as (waveform (N,) float32, targets float32), each view rendered from
    the audio cache exactly as the teacher heard it; a row's targets are (3,), or (T, 3) for a
    loss of several terms (:func:`loss_targets`)."""

    def __init__(self, params: list[str], targets: np.ndarray, cache: AudioCache):
        self.params = params
        self.targets = np.ascontiguousarray(targets, dtype=np.float32)
        self.cache = cache
        self.lengths = np.array([view_length(json.loads(p)) for p in params], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.params)

    def __getitem__(self, i: int):
        audio = render_view(self.params[i], source=self.cache.read)
        return torch.from_numpy(audio), torch.from_numpy(self.targets[i])


def collate_views(items):
    """Stack views into (B, N) and (B, 3). Views of unequal length (short files labelled whole)
    are cut to the shortest of the batch; batches are formed so that this is rare and small."""
    n = min(len(audio) for audio, _ in items)
    return torch.stack([audio[:n] for audio, _ in items]), torch.stack([target for _, target in items])


class LengthBatches(torch.utils.data.Sampler):
    """Batches of row indices for one process: each epoch a seeded shuffle, then batches of
    views of equal length (the leftovers sorted by length, so a mixed batch cuts little), batch
    order shuffled, and every ``world``-th batch from ``rank`` on. Every rank gets the same count.

    ``set_epoch(epoch, skip)`` selects the epoch and skips its first ``skip`` batches (resume).
    """

    def __init__(self, lengths, batch_size: int, *, seed: int = 0, rank: int = 0, world: int = 1, shuffle: bool = True):
        self.lengths = np.asarray(lengths)
        self.batch_size, self.seed, self.rank, self.world, self.shuffle = batch_size, seed, rank, world, shuffle
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0):
        self.epoch, self.skip = epoch, skip

    def batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths)) if self.shuffle else np.argsort(self.lengths, kind="stable")
        full, pending = [], {}
        for i in order.tolist():
            group = pending.setdefault(int(self.lengths[i]), [])
            group.append(i)
            if len(group) == self.batch_size:
                full.append(pending.pop(int(self.lengths[i])))
        rest = sorted((i for group in pending.values() for i in group), key=lambda i: self.lengths[i])
        # a batch of one has no batch statistics (BatchNorm, CCC): such a leftover waits for the next epoch
        full += [rest[k : k + self.batch_size] for k in range(0, len(rest), self.batch_size) if len(rest) - k > 1]
        if self.shuffle:
            full = [full[k] for k in rng.permutation(len(full))]
        usable = len(full) - len(full) % self.world  # DDP: every rank takes the same number of steps
        return full[:usable][self.rank :: self.world]

    def __iter__(self):
        yield from self.batches()[self.skip :]

    def __len__(self) -> int:
        return len(self.batches()) - self.skip


def exact_length_batches(lengths, batch_size: int, *, rank: int = 0, world: int = 1) -> list[list[int]]:
    """Validation batches: only views of identical length together (nothing is cut), this rank's share."""
    order = np.argsort(lengths, kind="stable").tolist()
    batches, current = [], []
    for i in order:
        if current and (len(current) == batch_size or lengths[i] != lengths[current[0]]):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches[rank::world]


def training_loader(dataset: ViewDataset, sampler: LengthBatches, *, workers: int, pin_memory: bool = False):
    """DataLoader rendering views in ``workers`` processes (0 = in this one), batches from ``sampler``."""
    # its own generator: making an iterator (each epoch, each resume) must not move the global RNG (dropout)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers, collate_fn=collate_views,
                                       persistent_workers=workers > 0, pin_memory=pin_memory, generator=torch.Generator())


# the run


def _targets(frame, target: str, members: list[str]) -> np.ndarray:
    if target == "combined":
        columns = list(LABELS)
    else:
        columns = [f"{target}.{k}" for k in LABELS]
        if any(c not in frame.columns for c in columns):
            raise ValueError(f"target {target!r} is not a teacher of this label store; choose 'combined' or one of {members}")
    return frame[columns].to_numpy(np.float32)


def check_member_weights(member_weights: dict, members: list[str], store) -> None:
    """ValueError naming the store unless every member of ``member_weights`` is a teacher of it."""
    unknown = [m for m in member_weights if m not in members]
    if unknown:
        raise ValueError(f"{store}: member weights for {', '.join(map(repr, unknown))}, but the teachers of this label store "
                         f"are {members}; use those names (e.g. --member-weight {members[0]}=1)")


def clean_rows(frame, store="label store") -> np.ndarray:
    """For every row, the position of its clip's clean crop (view 0: same file, start and end);
    ValueError when clips of the store have no clean-crop row."""
    keys = list(zip(frame["file"], frame["start"], frame["end"]))
    views = frame["view"].to_numpy()
    clean = {key: i for i, (key, view) in enumerate(zip(keys, views)) if view == 0}
    missing = {key for key in keys if key not in clean}
    if missing:
        file, start, end = sorted(missing)[0]
        raise ValueError(f"{store}: {len(missing)} clips have no clean-crop (view 0) labels, e.g. {file} {start:g}-{end:g} s; "
                         "the clean-crop target (clean_target_weight) needs the teacher's output on each clip's clean crop")
    return np.array([clean[key] for key in keys], dtype=np.int64)


def loss_targets(frame, config: TrainConfig, members: list[str], store="label store") -> tuple[np.ndarray, list[float], list[str]]:
    """The targets of the training loss: ((N, T, 3) float32, T weights summing to 1, T names).

    By default one term: the store's combined (ensemble) output, or the member ``config.target``.
    With ``config.member_weights``, one term per member, weighted (normalised to sum 1). With
    ``config.clean_target_weight`` c > 0, each term is split in two: the teacher's output on the view
    the student hears (weight 1 - c) and on the clean crop of the same clip (weight c), the pairing
    of a teacher that saw the augmentation with one that did not (tolerant and tough teachers).
    """
    if config.member_weights:
        check_member_weights(config.member_weights, members, store)
        total = float(sum(config.member_weights.values()))
        names, weights = list(config.member_weights), [w / total for w in config.member_weights.values()]
        y = np.stack([_targets(frame, name, members) for name in names], axis=1)
    else:
        names, weights = [config.target], [1.0]
        y = _targets(frame, config.target, members)[:, None]
    c = config.clean_target_weight
    if c:
        y = np.concatenate([y, y[clean_rows(frame, store)]], axis=1)
        names = [f"{n} (view)" for n in names] + [f"{n} (clean crop)" for n in names]
        weights = [(1 - c) * w for w in weights] + [c * w for w in weights]
    return np.ascontiguousarray(y, dtype=np.float32), weights, names


def channels_last_is_faster(model: nn.Module) -> bool:
    """Whether ``model`` trains faster with channels-last tensors: when its full (not depthwise,
    not 1x1) convolutions have 16 channels or more.

    Measured with bench/train_throughput.py on a 2-core AVX-512 CPU: channels-last trains
    MobileNetV3-small 1.5x, MobileNetV4-conv-small 1.3x and wav2small-72k (33 channels) 1.4x
    faster, but the 13-channel wav2small 1.2x slower (fewer channels than a vector holds).
    """
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups == 1 and m.kernel_size != (1, 1)]
    return bool(convs) and min(m.out_channels for m in convs) >= 16


def build_student(config: TrainConfig, device="cpu") -> Student:
    """The student of a run, on ``device``, in train mode, in its faster memory layout (the model
    and its checkpoint are the same either way)."""
    model, _ = load_student(config.student, options=config.student_options)
    layout = torch.channels_last if channels_last_is_faster(model) else torch.contiguous_format
    return model.to(device, memory_format=layout).train()


def build_optimizer(model: nn.Module, config: TrainConfig):
    """AdamW (weight decay on kernels and matrices only) and its warm-up + cosine schedule."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in trainable if p.dim() < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=config.lr)
    warmup = config.warmup_steps if config.warmup_steps is not None else config.steps // 20
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(
        s, warmup=warmup, total=config.steps, min_ratio=config.min_lr_ratio))
    return optimizer, schedule


def train_step(net: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer, schedule, *, ccc_weight: float,
               grad_clip: float, weights=(1.0,)) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a batch (x (B, N) waveforms, y (B, 3) targets, or (B, T, 3) targets of
    the T ``weights`` of :func:`weighted_distillation_loss`); returns (loss, mse)."""
    targets = y[:, None] if y.dim() == 2 else y
    loss, mse = weighted_distillation_loss(net(x).float(), targets, weights, ccc_weight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], grad_clip)
    optimizer.step()
    schedule.step()
    return loss.detach(), mse.detach()


def _save_model_dir(model: Student, directory: Path, info: dict) -> None:
    """Replace ``directory`` by a freshly written model folder (written aside, then swapped in)."""
    with atomic_directory(directory) as tmp:
        model.save_pretrained(tmp)
        (tmp / "training.json").write_text(json.dumps(info, indent=2) + "\n")


def _read_log(path: Path, upto: int) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if int(row["step"]) <= upto]


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@torch.no_grad()
def _update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):  # BatchNorm statistics: follow the model
        e.copy_(b)


@torch.no_grad()
def _predict(model: nn.Module, loader, *, device) -> tuple[np.ndarray, np.ndarray]:
    predictions, targets = [np.zeros((0, 3), np.float32)], [np.zeros((0, 3), np.float32)]
    was_training = model.training
    model.eval()
    for x, y in loader:
        predictions.append(model(x.to(device)).float().cpu().numpy())
        targets.append(y.numpy())
    model.train(was_training)
    return np.concatenate(predictions), np.concatenate(targets)


def train(config: TrainConfig) -> dict:
    """Run (or resume) a distillation training; returns a summary (steps, best step and CCC, speed).

    Example (it needs files or a download, so it is not run as a doctest)::

        train(TrainConfig(store="labels/msp", out="runs/w2s", steps=50000))
    """
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        with process_group(config.device) as processes, _run_folder(Path(config.out), main=processes.main):
            return _run(config, processes)  # DDP under torchrun (RANK set), else one process
    finally:
        torch.set_num_threads(threads)


def _resume_state(config: TrainConfig, out: Path) -> dict | None:
    config_path = out / CONFIG_FILE
    if (out / PICKLED_STATE_FILE).exists() and not (out / STATE_DIR).exists():
        raise ValueError(f"{out / PICKLED_STATE_FILE}: a training state in pickle format (older wav2small) is not loaded, "
                         "since a pickle can run code. If you trust it, convert it with `wav2small train ... --convert-state` "
                         "(reads tensors and numbers only); else delete it to start the run over")
    if not (out / STATE_DIR).exists():
        return None
    if config_path.exists():
        old = json.loads(config_path.read_text())
        new = dataclasses.asdict(config)
        defaults = dataclasses.asdict(TrainConfig(store=config.store, out=config.out))  # for settings added since the run began
        changed = [k for k in new if k not in _RESUMABLE_CHANGES and old.get(k, defaults[k]) != new[k]]
        if changed:
            raise ValueError(f"{out}: holds a run with other settings ({', '.join(f'{k}: {old.get(k)!r} there, {new[k]!r} now' for k in changed)}); "
                             "use another --out, or the same settings to resume")
    return load_state(out / STATE_DIR)


def convert_pickled_state(out) -> Path:
    """Turn the ``state.pt`` of a run made by an older wav2small into ``state/`` (read with
    ``torch.load(weights_only=True)``: tensors, numbers and RNG states only, so the file cannot run
    code) and rename the old file ``state.pt.converted``. For a run folder you trust."""
    out = Path(out)
    state = read_pickled_state(out / PICKLED_STATE_FILE)
    save_state(out / STATE_DIR, state)
    os.replace(out / PICKLED_STATE_FILE, out / f"{PICKLED_STATE_FILE}.converted")
    return out / STATE_DIR


@contextlib.contextmanager
def _run_folder(out: Path, *, main: bool):
    """Hold the run folder (one training at a time) and clear what a killed run left: temporary
    files and folders, and a model folder missing because of a kill in the middle of its swap."""
    if not main:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    with file_lock(out / ".lock", what=f"the training run {out}",
                   advice="two trainings in one folder would overwrite each other's checkpoints; wait for it, or use another --out"):
        for name in ("best", "last", STATE_DIR):
            recover_directory(out / name)
        remove_temporaries(out)
        yield


def _run(config: TrainConfig, processes: Processes) -> dict:
    from .progress import progress_bar

    rank, world, device, main, out = processes.rank, processes.world, processes.device, processes.main, Path(config.out)
    workers = config.workers if config.workers is not None else (4 if device.type == "cuda" else 0)
    state = _resume_state(config, out)  # before anything slow: a run with other settings fails at once
    if state is not None and state["step"] >= config.steps:
        if main:
            print(f"{out}: already trained for {state['step']} steps")
        return {"steps": state["step"], "best_step": state["best"]["step"], "best_valid_mean": state["best"]["valid_mean"],
                "out": str(out), "clips_per_s": None}
    store = LabelStore(config.store, allow_outside_paths=config.allow_outside_paths)
    metadata = store.metadata
    members = metadata.get("members", [])
    check_member_weights(config.member_weights, members, config.store)  # before reading anything large
    frame = store.read()
    if not len(frame):
        raise ValueError(f"{config.store}: the label store has no rows")
    targets = _targets(frame, config.target, members)  # what validation scores the student against
    loss_y, loss_weights, loss_names = loss_targets(frame, config, members, config.store)
    problems = np.array(store.view_problems(frame["params"]), dtype=object)
    unusable = problems != ""  # rows no view can be rendered from (implausible, or reading outside the store's folders)
    if main and unusable.any():
        reasons = list(dict.fromkeys(problems[unusable]))  # each problem once
        print(f"leaving out {int(unusable.sum())} rows of the label store whose views cannot be used:\n  " + "\n  ".join(reasons[:5])
              + (f"\n  ... and {len(reasons) - 5} more" if len(reasons) > 5 else ""))

    # audio: rank 0 builds the packed cache (or finds it), the others wait for it to appear; no
    # collective here, since building a large cache can outlast a process group's timeout
    cache_root = Path(config.cache_dir) if config.cache_dir else Path(config.store) / "audio-cache"
    cached = frame["params"][~unusable].tolist()
    if main:
        cache = build_audio_cache(cached, cache_root, dtype=config.cache_dtype, workers=max(2, workers), progress=config.progress)
    else:
        cache = wait_for_audio_cache(cached, cache_root, dtype=config.cache_dtype)
    # a view that reads an unreadable file (its own, its mixing partner's or its noise file) is left out
    unread = np.array([bool(cache.errors) and any(f in cache.errors for f in view_files(json.loads(p))) for p in frame["params"]],
                      dtype=bool) & ~unusable
    usable = ~unread & ~unusable
    if main and unread.any():
        print(f"leaving out {int(unread.sum())} rows whose views read {len(cache.errors)} files that could not be read "
              f"(listed in {cache.folder}/index.json)")

    validation = held_out(frame["file"], config.valid_fraction, salt=VALIDATION_SALT)
    is_valid = frame["file"].isin(validation).to_numpy()
    train_rows = np.flatnonzero(usable & ~is_valid)
    valid_rows = np.flatnonzero(usable & is_valid)
    if config.valid_limit and len(valid_rows) > config.valid_limit:
        valid_rows = valid_rows[: config.valid_limit]
    if not len(train_rows):
        raise ValueError(f"{config.store}: no rows left to train on")
    params = frame["params"].tolist()
    train_set = ViewDataset([params[i] for i in train_rows], loss_y[train_rows], cache)
    valid_set = ViewDataset([params[i] for i in valid_rows], targets[valid_rows], cache)

    # model, optimiser, schedule
    torch.manual_seed(config.seed)
    model = build_student(config, device)
    ema = copy.deepcopy(model).eval() if config.ema_decay else None
    optimizer, schedule = build_optimizer(model, config)

    step, best = 0, {"step": None, "valid_mean": -math.inf}
    if state is not None:
        model.load_state_dict(state["model"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["scheduler"])
        step, best = state["step"], state["best"]
        rng = state["rng"]
        if len(rng) == world:
            _set_rng_state(rng[rank])
    else:
        torch.manual_seed(config.seed + rank)  # dropout differs between ranks, initialisation did not
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / CONFIG_FILE, {**dataclasses.asdict(config), "world_size": world, "store_metadata": metadata}, default=str)
    net = model
    if config.compile:
        net = torch.compile(net, dynamic=False)  # one graph per clip length: dynamic shapes fail in inductor here
    net = processes.data_parallel(net)

    sampler = LengthBatches(train_set.lengths, config.batch_size, seed=config.seed, rank=rank, world=world)
    per_epoch = len(sampler)
    if per_epoch == 0:
        raise ValueError(f"fewer training rows ({len(train_set)}) than processes ({world})")
    loader = training_loader(train_set, sampler, workers=workers, pin_memory=device.type == "cuda")
    valid_batches = exact_length_batches(valid_set.lengths, config.batch_size, rank=rank, world=world)
    valid_loader = torch.utils.data.DataLoader(valid_set, batch_sampler=valid_batches, num_workers=min(workers, 1),
                                               collate_fn=collate_views, persistent_workers=workers > 0,
                                               generator=torch.Generator())  # leaves the global RNG (dropout) alone

    log_file = writer = None
    if main:  # the log keeps the rows up to the resumed step: a resumed run logs like an uninterrupted one
        kept = _read_log(out / LOG_FILE, step)
        with atomic_path(out / LOG_FILE) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, LOG_COLUMNS)
            writer.writeheader()
            writer.writerows(kept)
        log_file = open(out / LOG_FILE, "a", newline="")
        writer = csv.DictWriter(log_file, LOG_COLUMNS)
        cadence = (f"validating every {config.validation_interval} steps on {len(valid_set)} views of {len(validation)} held-out files"
                   if len(valid_set) else "no validation (nothing held out: the model goes to last/ only)")
        print(f"training {config.student} ({model.num_parameters():,} parameters) on {len(train_set)} views "
              f"({per_epoch} steps per epoch and process, {world} process{'es' if world > 1 else ''}); "
              f"{cadence}; audio cache {cache.folder} ({cache.seconds / 3600:.2f} h)")
        if len(loss_names) > 1:
            print("loss terms: " + ", ".join(f"{w:.3g} x {name}" for name, w in zip(loss_names, loss_weights)))

    def validate() -> dict:
        judge = ema if ema is not None else model
        predictions, truth = _predict(judge, valid_loader, device=device)
        if world > 1:
            gathered = processes.all_gather((predictions, truth))
            predictions = np.concatenate([p for p, _ in gathered])
            truth = np.concatenate([t for _, t in gathered])
        if len(truth) < 2:
            return {}
        ccc = concordance_cc(truth, predictions)
        return {**{f"valid_{k}": float(v) for k, v in zip(LABELS, ccc)}, "valid_mean": float(np.mean(ccc))}

    def checkpoint(result: dict):
        rng = processes.all_gather(_rng_state())
        if not main:
            return
        saved = ema if ema is not None else model
        info = {"step": step, "store": str(Path(config.store).resolve()), "target": config.target, **result}
        try:  # every write is atomic: a failure leaves the previous checkpoint whole
            if result and result["valid_mean"] > best["valid_mean"]:
                _save_model_dir(saved, out / "best", info)
                best.update(step=step, valid_mean=result["valid_mean"])
            _save_model_dir(saved, out / "last", info)
            save_state(out / STATE_DIR, {"step": step, "model": model.state_dict(), "ema": None if ema is None else ema.state_dict(),
                                         "optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict(), "rng": rng,
                                         "best": best, "world_size": world})
        except OSError as error:
            raise OSError(error.errno, f"{out}: writing the checkpoint of step {step} failed ({error.strerror or error}); "
                                       "the previous checkpoint is intact and the same command resumes from it") from None

    clips_per_step = config.batch_size * world
    bar = progress_bar(total=config.steps, initial=step, desc="train", unit="step", disable=not (main and config.progress), dynamic_ncols=True)
    speed, last_valid, started, tick = None, None, time.perf_counter(), time.perf_counter()
    first_step = step
    model.train()
    while step < config.steps:
        epoch, skip = divmod(step, per_epoch)
        sampler.set_epoch(epoch, skip)
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss, mse = train_step(net, x, y, optimizer, schedule, ccc_weight=config.ccc_weight, grad_clip=config.grad_clip,
                                   weights=loss_weights)
            if ema is not None:
                _update_ema(ema, model, config.ema_decay)
            step += 1
            now = time.perf_counter()
            rate = clips_per_step / max(now - tick, 1e-9)
            speed = rate if speed is None else 0.9 * speed + 0.1 * rate
            tick = now
            row = {"step": step, "epoch": epoch, "loss": f"{loss.item():.6f}", "mse": f"{mse.item():.6f}",
                   "lr": f"{schedule.get_last_lr()[0]:.3e}", "clips_per_s": f"{speed:.1f}"}
            if step % config.validation_interval == 0 or step == config.steps:
                result = validate()
                row.update({k: f"{v:.4f}" for k, v in result.items()})
                last_valid = result.get("valid_mean", last_valid)
                checkpoint(result)
                tick = time.perf_counter()  # the speed shown is training speed
            if main:
                writer.writerow(row)
                log_file.flush()
                bar.set_postfix(loss=f"{loss.item():.4f}", clips_s=f"{speed:.1f}",
                                valid_ccc="-" if last_valid is None else f"{last_valid:.3f}", refresh=False)
                bar.update(1)
            if step >= config.steps:
                break
    bar.close()
    seconds = time.perf_counter() - started
    if main:
        log_file.close()
        if best["step"] is None:  # nothing held out (valid_fraction 0), or too little to score
            print(f"done: {step} steps; no validation, so no best/: the model is in {out / 'last'}")
        else:
            print(f"done: {step} steps; best mean validation CCC {best['valid_mean']:.4f} at step {best['step']}; "
                  f"models in {out / 'best'} (best) and {out / 'last'} (last step)")
    return {"steps": step, "best_step": best["step"], "best_valid_mean": best["valid_mean"], "last_valid_mean": last_valid,
            "clips_per_s": (step - first_step) * clips_per_step / seconds, "out": str(out)}
