"""The data benchmark: the package's decode and augmentation against torchvision with PIL."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


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
            x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
            draw.ellipse(
                (x0, y0, x0 + 40, y0 + 30), fill=tuple(int(v) for v in rng.integers(0, 255, 3))
            )
        folder = root / "train" / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        img.save(folder / f"{i:05d}.jpg", quality=90)
    for c in range(classes):
        (root / "test" / f"class{c}").mkdir(parents=True, exist_ok=True)


def _images_per_second(dataset: Any, repeats: int) -> float:
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

    from tdsa.config import DataConfig
    from tdsa.data import from_config

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
            data = DataConfig(dataset="imagefolder", root=str(root), regime=regime,
                              image_size=size, resize=512 if size == 448 else None)
            ours = from_config(data, "train", train=True)
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
