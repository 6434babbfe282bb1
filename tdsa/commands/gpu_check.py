"""``make gpu-check`` (``python -m tdsa.commands.gpu_check [--out DIR] [--dry-run]``): the GPU
paths, in one run of at most a few minutes on one GPU, with no download.

1. ``pytest -m cuda tests/cuda``: TDSALoss under bf16 and fp16 autocast against the float64
   CPU reference, channels_last, ``torch.compile``, and a 2-epoch synthetic AMP training that
   stops after epoch 1 and resumes bit-exactly. The pytest summary goes to ``gpu-check.txt``.
2. ``tdsa bench --device cuda`` at the published shapes (full-width ``tdsa_vgg16`` at 224, batch
   32; ``tdsa_resnet50``, with 1x1 adapters and widened, at 448, batch 16): step time and
   images/s CE vs TDSA, the loss head's fraction of a step, peak memory
   (``max_memory_allocated``), into ``bench-gpu.json``.

Both files go to ``results/`` (``--out``). Without CUDA (or with ``--dry-run``) the CUDA tests
skip with a reason, and the benchmarks run at tiny shapes on the CPU into
``_build/gpu-check/bench-gpu-dryrun.json``: a check that the script works (``make test`` runs
it), not a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from tdsa.experiments.bench import STEP_NETWORKS, run_benchmarks

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests" / "cuda"
GPU_BENCHES = ("loss", "step", "memory")
PYTEST_TIMEOUT_S = 360


def main(argv: list[str] | None = None) -> int:
    """Run the CUDA tests, then the GPU benchmarks (or their CPU dry run); returns pytest's
    exit status (0 when every CUDA test passed or skipped)."""
    parser = argparse.ArgumentParser(prog="python -m tdsa.commands.gpu_check",
                                     description=__doc__)
    parser.add_argument("--out", type=Path, help="folder for the outputs (default: see above)")
    parser.add_argument(
        "--dry-run", action="store_true", help="hide the GPU: CUDA tests skip, tiny CPU bench"
    )
    args = parser.parse_args(argv)
    if not TESTS.is_dir():
        print(f"gpu-check: {TESTS} not found: run it from a clone of the repository",
              file=sys.stderr)
        return 2
    cuda = torch.cuda.is_available() and not args.dry_run
    out = args.out or (REPO / ("results" if cuda else "_build/gpu-check"))
    out.mkdir(parents=True, exist_ok=True)

    env = dict(os.environ)
    if args.dry_run:
        env["CUDA_VISIBLE_DEVICES"] = ""
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", str(TESTS), "-q", "-rs",
           "-p", "no:cacheprovider"]
    print("gpu-check: " + " ".join(cmd[2:]), flush=True)
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=PYTEST_TIMEOUT_S)
        report, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (
            exc.stdout or "")
        report = f"{partial}\npytest stopped after {PYTEST_TIMEOUT_S} s\n"
        rc = 124
    device = torch.cuda.get_device_name(0) if cuda else "no CUDA device (dry run)"
    (out / "gpu-check.txt").write_text(f"device: {device}\ntorch: {torch.__version__}\n"
                                       f"$ {' '.join(cmd[2:])}\n{report}")
    print(report.rstrip().splitlines()[-1] if report.strip() else "(no pytest output)")
    print(f"wrote {out / 'gpu-check.txt'}")

    if cuda:
        result = run_benchmarks(GPU_BENCHES, device="cuda")
        path = out / "bench-gpu.json"
    else:
        print("gpu-check: the GPU benchmarks need CUDA; running their tiny CPU dry run instead")
        result = run_benchmarks(GPU_BENCHES, device="cpu", quick=True, repeats=1)
        path = out / "bench-gpu-dryrun.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for name, *_ in STEP_NETWORKS:
        row = result["step"][name]
        rate = (f", images/s CE {row['ce_images_per_s']:.1f} TDSA {row['tdsa_images_per_s']:.1f}"
                if "ce_images_per_s" in row else "")
        print(f"{name} {row['input']} px batch {row['batch']}: TDSA/CE {row['ratio']:.3f}{rate}")
    print(f"loss head fraction {result['loss_head_fraction']:.4f}, peak memory TDSA/CE "
          f"{result['peak_mem_ratio']:.3f} ({result['memory']['tdsa_peak_mb']:.0f} MB)")
    print(f"wrote {path}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
