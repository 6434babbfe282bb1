"""Loading weights into a tdsa model: torchvision ImageNet weights or a local state dict."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, cast

import torch
import torchvision
from torch import nn

from tdsa.data.spec import IMAGENET_MEAN, IMAGENET_STD
from tdsa.errors import CheckpointError, ConfigError
from tdsa.models.base import TdsaNet

log = logging.getLogger("tdsa.models")


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did: ``kind`` is ``"tdsa"`` (strict, whole model) or
    ``"torchvision"`` (trunk tensors matched by name and shape).
    """

    source: str
    kind: str
    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    not_loaded: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One paragraph: counts, then the skipped tensors with the reason."""
        text = (
            f"loaded {len(self.loaded)} tensors from {self.source} ({self.kind} format); "
            f"{len(self.not_loaded)} model tensors keep their initialisation"
        )
        if self.skipped:
            text += "; skipped: " + ", ".join(f"{k} ({why})" for k, why in self.skipped.items())
        return text


def load_pretrained(model: TdsaNet, source: bool | str | PathLike[str]) -> LoadReport:
    """Load weights into ``model`` and attach the report as ``model.pretrained_report``.

    ``True``: the torchvision ImageNet weights named in ``model.default_cfg
    ["torchvision_weights"]`` (downloaded or from the torch hub cache), matched by name and
    shape; an offline download raises a CheckpointError that says to pass a path instead.
    A path: a tdsa state dict (keys ``head.*``; or a checkpoint dict with a ``model``
    entry), loaded strictly, or a torchvision backbone state dict, matched as for ``True``.
    Files are read with ``torch.load(..., weights_only=True)``. After a torchvision load,
    ``default_cfg`` mean/std become ImageNet's.
    """
    cfg = getattr(model, "default_cfg", {})
    if source is True:
        weights_name = cfg.get("torchvision_weights")
        if not weights_name:
            raise ConfigError(
                f"{cfg.get('architecture', type(model).__name__)} has no torchvision weights: "
                "pass pretrained=<path to a state dict> instead"
            )
        weights = torchvision.models.get_weight(weights_name)
        try:
            state = weights.get_state_dict(progress=True, check_hash=True)
        except (OSError, RuntimeError) as exc:
            raise CheckpointError(
                f"could not download the torchvision weights {weights_name} "
                f"({type(exc).__name__}: {exc}); if this machine is offline, save them "
                "elsewhere with torch.save(<torchvision model>.state_dict(), PATH) and "
                "pass pretrained=PATH (a local state dict) instead"
            ) from exc
        report = _load_torchvision(model, state, weights_name)
    elif isinstance(source, str | PathLike):
        path = Path(source)
        state = _read_state_dict(path)
        if any(k.startswith("head.") for k in state):
            report = _load_tdsa(model, state, str(path))
        else:
            report = _load_torchvision(model, state, str(path))
    else:
        raise ConfigError(
            f"pretrained must be False, True or a path to a state dict, got {source!r}"
        )
    log.info("%s", report.summary())
    cast(Any, model).pretrained_report = report  # not declared by TdsaNet: base knows no loading
    return report


def torch_load_error(path: str | PathLike[str], exc: BaseException) -> str:
    """Why ``torch.load(path, weights_only=True)`` failed, in words: a file that is not a
    ``torch.save`` file at all (text, an image, empty) is called so.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as err:
        return str(err.strerror or err)
    if not head:
        return "an empty file (0 bytes), not a torch checkpoint"
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # zip (torch >= 1.6) or legacy pickle
        return (f"not a torch checkpoint or state dict (a torch.save file starts with a zip or "
                f"pickle header; this one starts with {head!r})")
    text = str(exc).strip()
    if isinstance(exc, pickle.UnpicklingError) and "weights_only" in text.lower():
        return "it holds objects other than tensors and plain containers (refused: weights only)"
    return text.splitlines()[0] if text else type(exc).__name__


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"pretrained weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types (KeyError for a text file) on junk
        raise CheckpointError(f"model.pretrained: cannot read {path}: "
                              f"{torch_load_error(path, exc)}") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise CheckpointError(
            f"{path} is not a state dict (a mapping of names to tensors, or a checkpoint "
            "with a 'model' entry)"
        )
    return dict(obj)


def load_state_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """``model.load_state_dict(state)`` that turns missing or unexpected keys and shape
    mismatches into one :class:`CheckpointError` naming the first few and the model.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k} {list(v.shape)} in the file vs {list(own[k].shape)} in the model"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        problems = []
        if wrong:
            problems.append(f"shape mismatch: {'; '.join(wrong[:3])}")
        if missing:
            problems.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        arch = getattr(model, "default_cfg", {}).get("architecture", type(model).__name__)
        raise CheckpointError(
            f"{source} holds weights that do not fit {arch} "
            f"(num_classes={getattr(model, 'num_classes', '?')}, xi={getattr(model, 'xi', '?')})"
            f": {', '.join(problems)}"
        )
    model.load_state_dict(state, strict=True)


def _load_tdsa(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> LoadReport:
    load_state_strict(model, state, source)
    return LoadReport(source=source, kind="tdsa", loaded=list(state))


def _load_torchvision(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str
) -> LoadReport:
    """Copy every module whose tensors all match by name and shape; skip the rest."""
    own = model.state_dict()
    by_module: dict[str, list[str]] = {}
    for key in state:
        by_module.setdefault(key.rpartition(".")[0], []).append(key)
    matched: dict[str, torch.Tensor] = {}
    skipped: dict[str, str] = {}
    for keys in by_module.values():
        absent = [k for k in keys if k not in own]
        bad = [k for k in keys if k in own and state[k].shape != own[k].shape]
        if absent:
            skipped.update({k: "not in the model" for k in keys})
        elif bad:
            k = bad[0]
            why = f"module shape mismatch: {k} {list(state[k].shape)} vs {list(own[k].shape)}"
            skipped.update(dict.fromkeys(keys, why))
        else:
            matched.update({k: state[k] for k in keys})
    arch = getattr(model, "default_cfg", {}).get("architecture", type(model).__name__)
    if not matched:
        raise CheckpointError(
            f"no tensor in {source} fits {arch}: expected a tdsa state dict (with 'head.*' "
            "keys) or a torchvision backbone state dict of the same architecture and width"
        )
    model.load_state_dict(matched, strict=False)
    cfg = getattr(model, "default_cfg", None)
    if isinstance(cfg, dict):
        cfg["mean"], cfg["std"] = IMAGENET_MEAN, IMAGENET_STD
    return LoadReport(
        source=source,
        kind="torchvision",
        loaded=list(matched),
        skipped=skipped,
        not_loaded=[k for k in own if k not in matched],
    )
