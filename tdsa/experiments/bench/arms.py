"""What the benchmarks time: one training step (:class:`StepArm`) of a seeded network on a
random batch, and the book's network and batch (``configs/synthetic_tdsa.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from tdsa.engine.build import Taps
from tdsa.engine.precision import Precision, autocast
from tdsa.errors import ConfigError
from tdsa.losses import TDSALoss
from tdsa.models import create_model
from tdsa.models.base import TdsaNet

BOOK_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "synthetic_tdsa.yaml"
"""The book's default config in the repository checkout (the book benchmarks read it)."""


class StepArm:
    """One training step (forward, loss, backward, optimiser update) in ``precision``.

    ``mode``: ``tdsa`` (the TDSA loss on both taps), ``ce`` (cross-entropy on the logits of the
    same network: ``forward_features`` computes both taps, as the trainer does for a CE
    config), ``ce_mid`` (``ce`` plus ``0 * sum(mid)``: the mid tap's backward runs, as in
    ``tdsa``, without the loss head) or ``ce_logits`` (cross-entropy through ``model(x)``,
    which skips the mid tap).
    """

    def __init__(
        self,
        model: TdsaNet,
        mode: str,
        x: torch.Tensor,
        y: torch.Tensor,
        precision: Precision,
        taps: torch.nn.Module | None = None,
    ):
        self.model, self.mode, self.x, self.y, self.precision = model, mode, x, y, precision
        self.taps = taps if taps is not None else Taps(model)
        self.device = x.device
        self.criterion = TDSALoss(model.num_classes, xi_mid=model.xi[0], xi_high=model.xi[1])
        self.opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        self.generator = torch.Generator(device=self.device).manual_seed(0)

    def __call__(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision.amp):
            if self.mode == "ce_logits":
                loss = F.cross_entropy(self.model(self.x), self.y)
            else:
                logits, mid, high = self.taps(self.x)
                if self.mode == "ce":
                    loss = F.cross_entropy(logits, self.y)
                elif self.mode == "ce_mid":
                    loss = F.cross_entropy(logits, self.y) + 0.0 * mid.float().sum()
                else:
                    loss = self.criterion(logits, mid, high, self.y, generator=self.generator)[
                        "total"
                    ]
        loss.backward()
        self.opt.step()


def model_and_batch(
    name: str,
    num_classes: int,
    size: int,
    batch: int,
    device: torch.device,
    precision: Precision,
    **kw: Any,
) -> tuple[TdsaNet, torch.Tensor, torch.Tensor]:
    """The network ``name`` (seed 0, training mode) and a random batch of ``batch`` images of
    ``size`` px with their labels, on ``device``, channels_last when ``precision`` says so."""
    torch.manual_seed(0)
    model = create_model(name, num_classes, input_size=size, **kw).to(device).train()
    x = torch.randn(batch, 3, size, size, device=device)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch,), device=device)
    return model, x, y


def book_setup(quick: bool) -> dict[str, Any]:
    """The book's default network and batch (configs/synthetic_tdsa.yaml); tiny when quick."""
    from tdsa.config import load_config

    if not BOOK_CONFIG.is_file():
        raise ConfigError(
            f"{BOOK_CONFIG}: not found (the book benchmarks read the repository's configs/)"
        )
    cfg = load_config(BOOK_CONFIG)
    setup = {
        "config": cfg,
        "name": cfg.model.name,
        "num_classes": int(cfg.data.synthetic["num_classes"]),
        "size": cfg.data.image_size,
        "batch": cfg.train.batch_size,
        "options": dict(cfg.model.options),
        "xi": tuple(cfg.model.xi),
    }
    if quick:
        setup.update(num_classes=4, size=32, batch=2)
    return setup


def book_arm(book: dict[str, Any], precision: Precision) -> StepArm:
    """A TDSA training step of the book's network and batch (:func:`book_setup`) on the CPU."""
    model, x, y = model_and_batch(
        book["name"],
        book["num_classes"],
        book["size"],
        book["batch"],
        torch.device("cpu"),
        precision,
        xi=book["xi"],
        **book["options"],
    )
    return StepArm(model, "tdsa", x, y, precision)
