"""Benchmarks: ``python -m tdsa bench [loss|step|data|memory ...] [--json FILE]``.

Every comparison runs side by side in one process (memory: one fresh process per arm), with
warm-up and the median of several timed repeats, arms interleaved so that a noisy shared
machine slows both alike. Targets (issue "Evidence beyond the paper"): ``loss_head_fraction``
<= 0.03, ``step_ratio_tdsa_over_ce`` <= 1.05, ``data_speedup_over_pil`` >= 1.5,
``peak_mem_ratio`` <= 1.15.

Book: chapter 7, *Reproducing the paper on a GPU* (what the numbers mean on a GPU).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tdsa.errors import ConfigError
from tdsa.losses import TDSALoss
from tdsa.models import create_model

BENCHES = ("loss", "step", "data", "memory")
TARGETS = {
    "loss_head_fraction": ("<=", 0.03),
    "step_ratio_tdsa_over_ce": ("<=", 1.05),
    "data_speedup_over_pil": (">=", 1.5),
    "peak_mem_ratio": ("<=", 1.15),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device):
    """AMP on a GPU (bf16 where supported, else fp16); fp32 on the CPU."""
    if device.type != "cuda":
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def time_interleaved(
    fns: dict[str, Callable[[], None]], device: torch.device, *, warmup: int, repeats: int
) -> dict[str, float]:
    """Median wall time (ms) of each function after warm-up, calls interleaved A B, B A, A B ...
    (the order flips every repeat so that neither arm always runs first)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for rep in range(repeats):
        for name in names if rep % 2 == 0 else reversed(names):
            fn = fns[name]
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


class _StepArm:
    """One training step (forward, loss, backward, SGD update) with CE or the TDSA loss."""

    def __init__(self, model: torch.nn.Module, mode: str, x: torch.Tensor, y: torch.Tensor):
        self.model, self.mode, self.x, self.y = model, mode, x, y
        self.device = x.device
        self.criterion = TDSALoss(model.num_classes, xi_mid=model.xi[0], xi_high=model.xi[1])
        self.opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        self.generator = torch.Generator(device=self.device).manual_seed(0)

    def __call__(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        with _autocast(self.device):
            if self.mode == "ce":
                loss = F.cross_entropy(self.model(self.x), self.y)
            else:
                feats = self.model.forward_features(self.x)
                logits = self.model.forward_head(feats["high"])
                loss = self.criterion(
                    logits, feats["mid"], feats["high"], self.y, generator=self.generator
                )["total"]
        loss.backward()
        self.opt.step()


def _model_and_batch(
    name: str, num_classes: int, size: int, batch: int, device: torch.device, **kw: Any
) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = create_model(name, num_classes, input_size=size, **kw).to(device).train()
    x = torch.randn(batch, 3, size, size, device=device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch,), device=device)
    return model, x, y


def bench_loss(
    device: torch.device, *, num_classes: int, size: int, batch: int, warmup: int, repeats: int
) -> dict[str, Any]:
    """The loss head alone (gate + both channel-constraint stages + CE, forward + backward) vs a
    full ``tdsa_vgg16`` TDSA training step on the same shapes."""
    model, x, y = _model_and_batch("tdsa_vgg16", num_classes, size, batch, device)
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model.forward_head(feats["high"])
    mid0, high0, logits0 = feats["mid"].detach(), feats["high"].detach(), logits.detach()
    criterion = TDSALoss(num_classes)
    generator = torch.Generator(device=device).manual_seed(0)

    def head() -> None:
        mid = mid0.clone().requires_grad_()
        high = high0.clone().requires_grad_()
        lg = logits0.clone().requires_grad_()
        with _autocast(device):
            out = criterion(lg, mid, high, y, generator=generator)
        out["total"].backward()

    step = _StepArm(model, "tdsa", x, y)
    ms = time_interleaved({"head": head, "step": step}, device, warmup=warmup, repeats=repeats)
    return {
        "shapes": {"mid": list(mid0.shape), "high": list(high0.shape)},
        "head_ms": ms["head"],
        "step_ms": ms["step"],
        "loss_head_fraction": ms["head"] / ms["step"],
    }


def bench_step(
    device: torch.device,
    *,
    num_classes: int,
    size: int,
    batch: int,
    warmup: int,
    repeats: int,
    resnet_size: int,
    resnet_batch: int,
) -> dict[str, Any]:
    """Training-step time CE vs TDSA on the same network: ``tdsa_vgg16`` and ``tdsa_resnet50``
    (1x1 adapters)."""
    out: dict[str, Any] = {}
    for name, sz, bs in (
        ("tdsa_vgg16", size, batch),
        ("tdsa_resnet50", resnet_size, resnet_batch),
    ):
        model, x, y = _model_and_batch(name, num_classes, sz, bs, device)
        arms = {mode: _StepArm(model, mode, x, y) for mode in ("ce", "tdsa")}
        ms = time_interleaved(arms, device, warmup=warmup, repeats=repeats)
        out[name] = {
            "input": sz,
            "batch": bs,
            "ce_ms": ms["ce"],
            "tdsa_ms": ms["tdsa"],
            "ratio": ms["tdsa"] / ms["ce"],
        }
    out["step_ratio_tdsa_over_ce"] = out["tdsa_vgg16"]["ratio"]
    return out


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def _memory_arm(mode: str, num_classes: int, size: int, batch: int, queue: mp.Queue) -> None:
    """Child process: peak memory added by training steps of one arm on the CPU (ru_maxrss is a
    high-water mark, so a fresh process per arm measures only that arm)."""
    model, x, y = _model_and_batch("tdsa_vgg16", num_classes, size, batch, torch.device("cpu"))
    arm = _StepArm(model, mode, x, y)
    before = _rss_bytes()
    for _ in range(2):
        arm()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    queue.put(peak - before)


def bench_memory(
    device: torch.device, *, num_classes: int, size: int, batch: int
) -> dict[str, Any]:
    """Peak memory of a TDSA step vs a CE step on ``tdsa_vgg16`` (CUDA: max allocated; CPU: the
    resident-set high-water mark a step adds, each arm in its own process)."""
    peaks: dict[str, int] = {}
    if device.type == "cuda":
        model, x, y = _model_and_batch("tdsa_vgg16", num_classes, size, batch, device)
        for mode in ("ce", "tdsa"):
            arm = _StepArm(model, mode, x, y)
            arm()
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            arm()
            torch.cuda.synchronize(device)
            peaks[mode] = torch.cuda.max_memory_allocated(device) - base
    else:
        ctx = mp.get_context("spawn")
        for mode in ("ce", "tdsa"):
            queue = ctx.Queue()
            proc = ctx.Process(target=_memory_arm, args=(mode, num_classes, size, batch, queue))
            proc.start()
            peaks[mode] = queue.get(timeout=1800)
            proc.join()
    return {
        "ce_peak_mb": peaks["ce"] / 2**20,
        "tdsa_peak_mb": peaks["tdsa"] / 2**20,
        "peak_mem_ratio": peaks["tdsa"] / peaks["ce"],
    }


def _write_jpegs(root: Path, count: int, size: tuple[int, int], classes: int = 4) -> None:
    """Photo-like JPEGs (smooth gradients, shapes and noise) in ImageFolder layout root/train."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(count):
        base = (np.sin(xx / rng.uniform(20, 60)) + np.cos(yy / rng.uniform(20, 60))) * 60 + 128
        arr = np.stack([base + rng.normal(0, 12, base.shape) for _ in range(3)], axis=-1)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(6):
            x0, y0 = rng.integers(0, w - 40), rng.integers(0, h - 40)
            draw.ellipse(
                (x0, y0, x0 + 40, y0 + 30), fill=tuple(int(v) for v in rng.integers(0, 255, 3))
            )
        folder = root / "train" / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        img.save(folder / f"{i:05d}.jpg", quality=90)
    for c in range(classes):
        (root / "test" / f"class{c}").mkdir(parents=True, exist_ok=True)


def _images_per_second(dataset: torch.utils.data.Dataset, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(len(dataset)):
            dataset[i]
        rates.append(len(dataset) / (time.perf_counter() - t0))
    return statistics.median(rates)


def bench_data(*, images: int, source_size: tuple[int, int], repeats: int) -> dict[str, Any]:
    """The data pipeline (decode + augment, one process) in images/s against a plain
    torchvision ``ImageFolder`` + PIL pipeline with the same augmentations."""
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    from tdsa.data import build_dataset, build_transforms

    plain = {
        ("scratch", 224): T.Compose(
            [
                T.Resize((224, 224)),
                T.RandomCrop(224, padding=4),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                T.Normalize([0.5] * 3, [0.5] * 3),
            ]
        ),
        ("pretrained", 448): T.Compose(
            [
                T.Resize(512),
                T.RandomCrop(448),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
            ]
        ),
    }
    out: dict[str, Any] = {"source_size": list(source_size), "images": images}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write_jpegs(root, images, source_size)
        for (regime, size), transform in plain.items():
            ours = build_dataset(
                "imagefolder",
                root,
                "train",
                transform=build_transforms(
                    regime, size, train=True, resize=512 if size == 448 else None
                ),
            )
            baseline = ImageFolder(str(root / "train"), transform=transform)
            ours_ips = _images_per_second(ours, repeats)
            base_ips = _images_per_second(baseline, repeats)
            out[f"{regime}_{size}"] = {
                "tdsa_images_per_s": ours_ips,
                "pil_images_per_s": base_ips,
                "speedup": ours_ips / base_ips,
            }
    out["data_speedup_over_pil"] = out["scratch_224"]["speedup"]
    return out


def run_benchmarks(
    which: tuple[str, ...] = BENCHES,
    *,
    device: str = "auto",
    quick: bool = False,
    repeats: int | None = None,
    warmup: int = 1,
) -> dict[str, Any]:
    """Run the chosen benchmarks and return one JSON-ready dict (the keys of ``TARGETS`` at the
    top level). ``quick`` uses tiny shapes: it exercises the code, its numbers mean nothing.

    Book: chapter 7, *Reproducing the paper on a GPU*.
    """
    dev = torch.device(
        "cuda"
        if device == "auto" and torch.cuda.is_available()
        else ("cpu" if device == "auto" else device)
    )
    on_gpu = dev.type == "cuda"
    if quick:
        shape = {"num_classes": 4, "size": 64, "batch": 2}
        resnet = {"resnet_size": 64, "resnet_batch": 2}
        data = {"images": 8, "source_size": (160, 120)}
    else:
        shape = {"num_classes": 200, "size": 224, "batch": 32 if on_gpu else 8}
        resnet = {"resnet_size": 448, "resnet_batch": 16 if on_gpu else 2}
        data = {"images": 64, "source_size": (500, 375)}
    reps = repeats or (2 if quick else 6)
    result: dict[str, Any] = {
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if on_gpu else platform.processor(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "amp": "bf16/fp16 autocast + channels_last" if on_gpu else "off (fp32 on CPU)",
        "settings": {**shape, **resnet, **data, "repeats": reps, "warmup": warmup, "quick": quick},
    }
    if "loss" in which:
        result["loss"] = bench_loss(dev, **shape, warmup=warmup, repeats=reps)
        result["loss_head_fraction"] = result["loss"]["loss_head_fraction"]
    if "step" in which:
        result["step"] = bench_step(dev, **shape, **resnet, warmup=warmup, repeats=reps)
        result["step_ratio_tdsa_over_ce"] = result["step"]["step_ratio_tdsa_over_ce"]
    if "data" in which:
        result["data"] = bench_data(**data, repeats=reps)
        result["data_speedup_over_pil"] = result["data"]["data_speedup_over_pil"]
    if "memory" in which:
        result["memory"] = bench_memory(dev, **shape)
        result["peak_mem_ratio"] = result["memory"]["peak_mem_ratio"]
    result["targets_met"] = {
        key: (result[key] <= bound if op == "<=" else result[key] >= bound)
        for key, (op, bound) in TARGETS.items()
        if key in result
    }
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "which",
        nargs="*",
        metavar="BENCH",
        help=f"benchmarks to run, from {', '.join(BENCHES)} (default: all)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--repeats", type=int, help="timed repeats per arm (median is reported)")
    parser.add_argument(
        "--threads", type=int, help="CPU threads for torch (default: torch's own choice)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per arm first")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny shapes: checks that the benchmarks run, numbers mean nothing",
    )


def run(args: argparse.Namespace) -> int:
    unknown = sorted(set(args.which) - {*BENCHES, "all"})
    if unknown:
        raise ConfigError(
            f"unknown benchmark {unknown[0]!r}: expected one of {', '.join(BENCHES)}, all"
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    which = BENCHES if not args.which or "all" in args.which else tuple(dict.fromkeys(args.which))
    result = run_benchmarks(
        which, device=args.device, quick=args.quick, repeats=args.repeats, warmup=args.warmup
    )
    for key, (op, bound) in TARGETS.items():
        if key in result:
            status = "ok" if result["targets_met"][key] else "MISSED"
            print(f"{key:26s} {result[key]:8.4f}   target {op} {bound}   {status}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
