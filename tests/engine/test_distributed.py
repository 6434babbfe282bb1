"""Data parallelism: samplers, cross-rank batch norm, and a 2-process torchrun run vs 1 process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tdsa.config import dump_config
from tdsa.engine.distributed import GlobalBatchSampler, ShardSampler, epoch_permutation
from tdsa.engine.trainer import train
from tdsa.runfiles import TIME_KEYS

from .conftest import REPO, tiny_config


def test_global_batches_are_split_across_ranks_like_one_process() -> None:
    n, batch = 23, 6
    one = list(GlobalBatchSampler(n, batch, seed=5, epoch=2))
    ranks = [list(GlobalBatchSampler(n, batch, seed=5, epoch=2, rank=r, world_size=3))
             for r in range(3)]
    perm = epoch_permutation(n, 5, 2)
    assert one == perm[: (n // batch) * batch], "incomplete last global batch dropped"
    for step in range(n // batch):
        merged = [i for r in ranks for i in r[step * 2 : step * 2 + 2]]
        assert merged == one[step * batch : (step + 1) * batch]
    resumed = list(GlobalBatchSampler(n, batch, seed=5, epoch=2, start_step=2))
    assert resumed == one[2 * batch :]
    assert epoch_permutation(n, 5, 3) != perm


def test_eval_shards_cover_every_index_exactly_once() -> None:
    for n in (0, 1, 7, 20):
        for world in (1, 2, 3, 4):
            seen = [i for r in range(world) for i in ShardSampler(n, r, world)]
            assert seen == list(range(n))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_with_the_same_global_batch(
    tiny_root: Path, tmp_path: Path
) -> None:
    """Run in float64 (``train.amp=fp64``), so the comparison does not depend on the CPU's kernels.

    Same samples, same augmentations, same masks, batch-norm statistics over the global
    batch: only the order of the sums differs (the all-reduce of the gradients and of the
    batch-norm moments). In float32 that order alone moved the weights by up to 5e-6 after 8
    steps on AVX-512 kernels and by up to 2.6e-3 on AVX2 ones (``ATEN_CPU_CAPABILITY=avx2``,
    ``ONEDNN_MAX_CPU_ISA=AVX2``; 1.3e-4 on an AVX2-only EPYC): a float32 tolerance is a
    property of one CPU. In float64 the unit roundoff is 2**-53 instead of 2**-24 (~5e8 times
    smaller): the largest weight difference measured 3.4e-14 (AVX-512) and 4.9e-14 (AVX2).
    The tolerance, 1e-9 absolute and relative, keeps four orders of headroom above that and
    stays far below what a wrong reduction produces (the float32 batch-norm moments of a
    float64 run alone moved the weights by 2e-9 and the running variances by 9e-7). Plain SGD
    at lr 1e-3 for 8 steps, as before.
    """
    cfg = tiny_config(tiny_root, "train.epochs=2", "loss.ramp_epochs=0", "optim.lr=0.001",
                      "optim.head_lr=0.001", "optim.momentum=0", "optim.weight_decay=0",
                      "train.amp=fp64", "train.channels_last=false")
    single = train(cfg, tmp_path / "one")
    cfg_path = tmp_path / "c.yaml"
    dump_config(cfg, cfg_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "tdsa", "train", "--config", str(cfg_path), "--out", str(tmp_path / "two")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    one_w, two_w = _weights(tmp_path / "one/last.pt"), _weights(tmp_path / "two/last.pt")
    assert one_w.keys() == two_w.keys()
    for k, v in one_w.items():
        if v.is_floating_point():
            assert v.dtype == torch.float64, k
            torch.testing.assert_close(two_w[k], v, atol=1e-9, rtol=1e-9, msg=k)
        else:
            assert torch.equal(two_w[k], v), k
    two_rows = torch.load(tmp_path / "two/last.pt", weights_only=True)["metrics"]
    for a, b in zip(single["metrics"], two_rows, strict=True):
        assert a["test_images"] == b["test_images"] == 20
        assert a["test_top1"] == b["test_top1"]
        for k, v in a.items():
            if k == "precision":
                assert b[k] == v == "fp64"
            elif k not in TIME_KEYS:
                assert b[k] == pytest.approx(v, rel=1e-9, abs=1e-12), k
    assert not list((tmp_path / "two").glob("*.tmp")), "only rank 0 writes"
