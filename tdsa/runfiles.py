"""The files a training run writes and what reads them back: ``metrics.jsonl`` and
``metrics.csv`` (one row per epoch), ``summary.json``, and the one-line form of an epoch's row.

``metrics.jsonl`` and ``metrics.csv`` (and optional TensorBoard) are rewritten whole from the
run's metrics list after every epoch (atomically), so after a resume they hold exactly the
epochs of the checkpoint the run continued from. :func:`read_metrics` reads the rows back (the
plots of :mod:`tdsa.viz` and the book use it); :func:`format_epoch_line` is the line the trainer
logs per epoch through the ``tdsa`` logger.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tdsa.errors import ConfigError, DataError

__all__ = ["TIME_KEYS", "MetricsWriter", "format_epoch_line", "read_metrics", "write_summary"]

TIME_KEYS = ("epoch_time", "eval_time", "images_per_s")
"""The fields of an epoch record that measure the machine, not the run."""


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class MetricsWriter:
    """Writes one row per epoch to ``metrics.jsonl`` and ``metrics.csv`` in ``out_dir``, and to
    TensorBoard (``out_dir/tb``) when ``tensorboard`` is true (needs the ``tensorboard``
    package, imported only then).

    The trainer's rows hold ``epoch``, ``lr``, ``lr_head``, ``aux_scale``, ``train_<term>``
    for each loss term (``total``, ``ce``, ``dis_mid``, ``div_mid``, ``dis_high``,
    ``div_high``) and ``train_top1``, the mean gradient norms ``grad_norm/mid``,
    ``grad_norm/high``, ``grad_norm/head`` and ``grad_norm/total`` (see
    :mod:`tdsa.engine.step`; rows written before they were recorded lack them, and their cells
    in the CSV are empty), ``epoch_time``, ``images_per_s``, ``precision``, then ``val_*`` and
    ``test_*`` (``top1``, ``top5``, ``loss``, ``images``) for the splits read and
    ``eval_time``.
    """

    def __init__(self, out_dir: str | Path, *, tensorboard: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError(
                    "runtime.tensorboard=true needs the tensorboard package "
                    "(pip install tensorboard)"
                ) from None
            self.tb = SummaryWriter(str(self.out_dir / "tb"))

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """Rewrite both files from ``rows``; send the last row to TensorBoard."""
        jsonl = "".join(json.dumps(r, sort_keys=False) + "\n" for r in rows)
        _write_text(self.out_dir / "metrics.jsonl", jsonl)
        fields: list[str] = []
        for r in rows:
            fields += [k for k in r if k not in fields]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        _write_text(self.out_dir / "metrics.csv", buf.getvalue())
        if self.tb is not None and rows:
            last = rows[-1]
            for k, v in last.items():
                if isinstance(v, int | float) and k != "epoch":
                    self.tb.add_scalar(k, v, last["epoch"])
            self.tb.flush()

    def close(self) -> None:
        """Close the TensorBoard writer, if any."""
        if self.tb is not None:
            self.tb.close()


def read_metrics(run: str | Path) -> list[dict[str, Any]]:
    """The per-epoch records of a run: ``run/metrics.jsonl`` (or that file itself).

    Raises :class:`tdsa.errors.DataError` naming the file (and line) when it is missing or
    not JSON lines.

    Book: chapter 4, *Train, or load the finished runs*.
    """
    path = Path(run)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        raise DataError(f"no metrics file: {path} (expected a run folder with metrics.jsonl)")
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise DataError(f"{path}:{n}: not a JSON object ({exc})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{n}: expected a JSON object per line, got {line[:40]!r}")
        records.append(record)
    if not records:
        raise DataError(f"{path}: no records (expected one JSON object per epoch)")
    return records


def write_summary(run_dir: str | Path, summary: dict[str, Any]) -> None:
    """Write ``summary`` to ``run_dir/summary.json`` (indented JSON), without its per-epoch
    ``metrics``: ``metrics.jsonl`` holds those."""
    record = {k: v for k, v in summary.items() if k != "metrics"}
    (Path(run_dir) / "summary.json").write_text(json.dumps(record, indent=2) + "\n",
                                                encoding="utf-8")


def format_epoch_line(row: dict[str, Any], epochs: int,
                      terms: Sequence[str] = ("dis_mid", "div_mid", "dis_high", "div_high")
                      ) -> str:
    """The one-line summary of an epoch's metrics ``row`` (as written to ``metrics.jsonl``):
    epoch/epochs, the training loss (total, ce and the auxiliary ``terms``), train and test
    top-1 (and val top-1 when there is a val split), learning rate, seconds (training +
    evaluation), images per second and the precision
    when the row has one. For example ``epoch 2/16  loss 1.234 (ce 1.100 div_mid 0.009)
    train 55.0%  test 48.3%  lr 5.00e-02  61.2 s + 3.1 s test  102 img/s  bf16+channels_last``.
    """
    losses = " ".join(f"{k} {row[f'train_{k}']:.3f}" for k in ("ce", *terms)
                      if f"train_{k}" in row)
    parts = [
        f"epoch {row['epoch']}/{epochs}",
        f"loss {row['train_total']:.3f} ({losses})",
        f"train {row['train_top1']:.1f}%",
    ]
    parts += [f"{split} {row[f'{split}_top1']:.1f}%" for split in ("val", "test")
              if f"{split}_top1" in row]
    lr = f"lr {row['lr']:.2e}"
    if row.get("lr_head", row["lr"]) != row["lr"]:
        lr += f" (head {row['lr_head']:.2e})"
    parts.append(lr)
    seconds = f"{row['epoch_time']:.1f} s"
    if "eval_time" in row:
        read = "val + test" if "val_top1" in row and "test_top1" in row else (
            "val" if "val_top1" in row else "test")
        seconds += f" + {row['eval_time']:.1f} s {read}"
    parts += [seconds, f"{row['images_per_s']:.0f} img/s"]
    if row.get("precision"):
        parts.append(str(row["precision"]))
    return "  ".join(parts)
