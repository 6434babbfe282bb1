"""Loader workers and the decode cache change no number: a run with two worker processes
(which read the pixels the main process cached before starting them) ends bit-identical to one
that decodes in the main process."""

from __future__ import annotations

import json

import torch

from tdsa.engine import train
from tdsa.engine.checkpoint import load_checkpoint

from .conftest import tiny_config

TIMES = ("epoch_time", "eval_time", "images_per_s")


def _rows(run) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMES} for r in rows]


def test_two_workers_and_the_cache_give_the_same_run(tiny_root, tmp_path):
    runs = {}
    for workers in (0, 2):
        runs[workers] = tmp_path / f"w{workers}"
        train(tiny_config(tiny_root, f"data.workers={workers}", "train.epochs=2"),
              runs[workers])
    assert _rows(runs[0]) == _rows(runs[2])
    a = load_checkpoint(runs[0] / "last.pt")["model"]
    b = load_checkpoint(runs[2] / "last.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
