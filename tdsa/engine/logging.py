"""Per-epoch metrics writers: ``metrics.jsonl``, ``metrics.csv`` and optional TensorBoard.

Both files are rewritten whole from the run's metrics list after every epoch (atomically),
so after a resume they hold exactly the epochs of the checkpoint the run continued from.

Book: chapter 4, *Full training*.
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


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class MetricsWriter:
    """Writes one row per epoch to ``metrics.jsonl`` and ``metrics.csv`` in ``out_dir``, and to
    TensorBoard (``out_dir/tb``) when ``tensorboard`` is true (needs the ``tensorboard``
    package, imported only then).

    Book: chapter 4, *Full training*.
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

    Book: chapter 4, *Full training*.
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
