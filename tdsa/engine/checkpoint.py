"""Checkpoints: atomic writes, safe loading, RNG capture and model rebuilding.

A checkpoint is a dict of plain types (tensors, numbers, strings, lists, dicts) so that it
loads with ``torch.load(weights_only=True)``: ``model``, ``optimizer``, ``scheduler``,
``scaler``, ``ema``, ``epoch`` (completed epochs), ``batch`` (batches done in the next epoch
when interrupted mid-epoch, else 0), ``partial`` (that epoch's running sums), ``metrics``
(one dict per epoch), ``best``, ``config`` (plain dict), ``num_classes``, ``version`` and
``rng`` (torch, CUDA, numpy, python, mask generator and the data-loader seed scheme).

Book: chapter 4, *What a run folder holds*.
"""

from __future__ import annotations

import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from tdsa import __version__
from tdsa.config import Config
from tdsa.errors import CheckpointError, ConfigError
from tdsa.models import create_model_from_config
from tdsa.models.base import TdsaNet
from tdsa.models.pretrained import load_state_strict, torch_load_error

FORMAT_VERSION = 1
REQUIRED_KEYS = ("model", "epoch", "config", "version")
LOADER_SEED_SCHEME = (
    "shuffle: SeedSequence([seed, epoch]); augmentation of sample i: torch seed "
    "((seed * 1000003 + epoch) * 10000019 + i) mod 2**63"
)


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace``.

    A crash during the write leaves any previous file at ``path`` intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a tdsa checkpoint with ``weights_only=True``; CheckpointError if it is missing,
    unreadable or not a tdsa checkpoint.

    Book: chapter 4, *What a run folder holds*.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise CheckpointError(f"cannot read checkpoint {path}: {torch_load_error(path, exc)}"
                              ) from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} is not a tdsa checkpoint (a {type(ckpt).__name__})")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(
            f"{path} is not a tdsa checkpoint: missing key(s) {', '.join(missing)}"
        )
    return ckpt


def checkpoint_config(ckpt: dict[str, Any], path: str | Path) -> Config:
    """The :class:`~tdsa.config.Config` stored in a checkpoint.
    """
    try:
        return Config.from_dict(ckpt["config"], source=f"{path} (stored config)")
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None


def check_compatible(ckpt: dict[str, Any], stored: Config, cfg: Config, num_classes: int,
                     path: str | Path) -> None:
    """Raise CheckpointError saying what differs when ``ckpt`` (its config read as ``stored``)
    was trained with another model, ``xi``, model options or class count than ``cfg`` /
    ``num_classes``.
    """
    diffs = []
    if int(ckpt.get("num_classes", stored.model.num_classes or -1)) != num_classes:
        diffs.append(
            f"num_classes {ckpt.get('num_classes', stored.model.num_classes)} in the "
            f"checkpoint vs {num_classes} now"
        )
    for key in ("name", "xi", "options"):
        old, new = getattr(stored.model, key), getattr(cfg.model, key)
        if old != new:
            diffs.append(f"model.{key} {old!r} in the checkpoint vs {new!r} now")
    if diffs:
        raise CheckpointError(f"checkpoint {path} does not fit this run: {'; '.join(diffs)}")


# The config keys that may differ between a run folder's last.pt and the command resuming it
# (they change how the run is executed or shown, not what it computes). train.epochs may only
# grow; everything else must match, or the resume is refused.
RESUME_MAY_CHANGE = (
    "train.epochs",
    "runtime.stop_after_epoch",
    "runtime.threads",
    "runtime.progress",
    "runtime.device",
    "runtime.tensorboard",
    "data.workers",
)


def _flatten(tree: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {f"{section}.{key}": value for section, keys in tree.items() for key, value in
            keys.items()}


def _same_root(a: Any, b: Any) -> bool:
    return isinstance(a, str) and isinstance(b, str) and os.path.abspath(a) == os.path.abspath(b)


def config_differences(stored: Config, cfg: Config) -> list[str]:
    """One line per config key in which ``cfg`` differs from the ``stored`` config of a run
    (``optim.lr: run has 0.001, command gives 0.05``), ignoring :data:`RESUME_MAY_CHANGE`
    (``train.epochs`` only when it grows), ``model.num_classes`` left to the dataset, and
    ``data.root`` spelt another way for the same folder.
    """
    old = _flatten(stored.to_dict())
    new = _flatten(cfg.to_dict())
    lines = []
    for key, b in new.items():
        a = old[key]
        if a == b or (key in RESUME_MAY_CHANGE and key != "train.epochs"):
            continue
        if key == "train.epochs" and isinstance(a, int) and isinstance(b, int) and b > a:
            continue
        if key == "model.num_classes" and b is None:
            continue
        if key == "data.root" and _same_root(a, b):
            continue
        note = " (train.epochs can only grow on resume)" if key == "train.epochs" else ""
        lines.append(f"{key}: run has {a!r}, command gives {b!r}{note}")
    return lines


def check_same_run(stored: Config, cfg: Config, path: str | Path) -> None:
    """Raise ConfigError, one line per differing key, unless ``cfg`` continues the run whose
    checkpoint at ``path`` stores the config ``stored`` (see :func:`config_differences`).
    """
    lines = config_differences(stored, cfg)
    if lines:
        raise ConfigError(
            f"{path} belongs to a run with another config; nothing was changed (start a new "
            f"run with another --out, or resume with the run's config):\n  " + "\n  ".join(lines)
        )


def check_output_dir(path: str | Path, option: str) -> None:
    """ConfigError unless ``path`` is a folder that exists and is writable, or can be created
    (its nearest existing ancestor is a writable folder). Writes nothing.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is an existing file, not a folder: choose a folder")
    probe = path.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{option} {path} cannot be created: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "the folder" if probe == path.absolute() else f"its parent {probe}"
        raise ConfigError(f"{option} {path}: {where} is not writable: choose another folder")


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP and/or ``torch.compile`` wrappers.
    """
    while True:
        if hasattr(model, "_orig_mod"):
            model = cast(nn.Module, model._orig_mod)  # torch.compile's wrapped module
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def load_model(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[TdsaNet, Config]:
    """Rebuild the model from a checkpoint's config and load its weights (eval mode).

    When the run used EMA, the EMA weights (the ones it evaluated) are loaded. Returns
    ``(model, config)``; ``config.model.num_classes`` is the trained class count.

    Book: chapter 6, *The two trained networks*.
    """
    return model_from_checkpoint(load_checkpoint(path, map_location), path, map_location)


def model_from_checkpoint(ckpt: dict[str, Any], path: str | Path,
                          map_location: str | torch.device = "cpu") -> tuple[TdsaNet, Config]:
    """:func:`load_model` of a checkpoint already read from ``path`` (by
    :func:`load_checkpoint`), for a caller that also needs its other contents."""
    cfg = checkpoint_config(ckpt, path)
    num_classes = int(ckpt.get("num_classes") or cfg.model.num_classes or 0)
    if num_classes < 1:
        raise CheckpointError(f"{path}: the checkpoint does not record its number of classes")
    cfg.model.num_classes = num_classes
    model = create_model_from_config(cfg, num_classes)
    state = ckpt["ema"]["model"] if ckpt.get("ema") else ckpt["model"]
    load_state_strict(model, state, str(path))
    model.to(map_location).eval()
    return model, cfg


def capture_rng(mask_generator: torch.Generator) -> dict[str, Any]:
    """Every RNG state as plain types (numpy's key as an int64 tensor, python's as a list).
    """
    # The global RandomState's MT19937 state, in the legacy tuple form.
    np_state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(np_state[0]),
            "key": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": int(py_state[0]),
            "state": [int(v) for v in py_state[1]],
            "gauss_next": py_state[2],
        },
        "mask_generator": mask_generator.get_state(),
        "loader_seed_scheme": LOADER_SEED_SCHEME,
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], mask_generator: torch.Generator) -> None:
    """Inverse of :func:`capture_rng`.
    """
    torch.set_rng_state(state["torch"].cpu())
    npst = state["numpy"]
    np.random.set_state(
        (
            npst["kind"],
            npst["key"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    mask_generator.set_state(state["mask_generator"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def new_checkpoint(**entries: Any) -> dict[str, Any]:
    """A checkpoint dict with ``version`` and ``format`` filled in.
    """
    return {"version": __version__, "format": FORMAT_VERSION, **entries}


@dataclass(frozen=True)
class ResumePoint:
    """A checkpoint to resume from, read once: where it was read (``path``), its contents
    (``state``) and its stored config, parsed once (``config``)."""

    path: Path
    state: dict[str, Any]
    config: Config

    @classmethod
    def read(cls, path: Path) -> ResumePoint:
        """Load the checkpoint at ``path`` and parse its config (CheckpointError if either
        fails)."""
        state = load_checkpoint(path)
        return cls(path, state, checkpoint_config(state, path))
