"""Exponential moving average of the model weights (optional, ``train.ema``).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class ModelEMA:
    """A shadow copy of a model updated as ``ema = d * ema + (1 - d) * weights`` after every
    optimiser step, with the warm-up ``d = min(decay, (1 + n) / (10 + n))`` (``n`` updates so
    far) so early averages are not dominated by the random initialisation. Buffers (batch-norm
    statistics) are copied. When EMA is on, evaluation and ``best.pt`` use the EMA weights.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = float(decay)
        self.updates = 0

    def current_decay(self) -> float:
        """The decay used by the next :meth:`update`."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the current weights of ``model`` (same architecture) into the average."""
        d = self.current_decay()
        self.updates += 1
        params = dict(model.named_parameters())
        for name, p in self.module.named_parameters():
            p.mul_(d).add_(params[name].detach(), alpha=1 - d)
        buffers = dict(model.named_buffers())
        for name, b in self.module.named_buffers():
            b.copy_(buffers[name])

    def state_dict(self) -> dict[str, Any]:
        """``{"model": state dict, "updates": n, "decay": d}`` (plain types)."""
        return {"model": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.module.load_state_dict(state["model"])
        self.updates = int(state["updates"])
        self.decay = float(state["decay"])
