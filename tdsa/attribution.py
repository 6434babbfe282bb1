"""Attribution maps: where a network's evidence for a class lies, as ``[B, h, w]`` maps.

Grad-CAM (own torch code or ``pytorch-grad-cam``) and CAM, and the two map operations they
share with the drawings of :mod:`tdsa.viz`: min-max normalising and resizing a map. They give
CE-trained models (which have no class channels) maps that the localisation metrics of
:mod:`tdsa.metrics` score beside the TDSA channel maps; :mod:`tdsa.viz` draws them.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tdsa.errors import ConfigError
from tdsa.models.base import TdsaNet
from tdsa.validation import check_choice

__all__ = ["cam_maps", "grad_cam", "gradcam_maps", "normalize_map", "resize_map"]


def normalize_map(heat: Tensor) -> Tensor:
    """Min-max rescale the last two dimensions of ``heat`` to ``[0, 1]`` (a constant map -> 0).
    """
    heat = torch.as_tensor(heat).detach().float()
    lo = heat.amin(dim=(-2, -1), keepdim=True)
    hi = heat.amax(dim=(-2, -1), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (heat - lo) / span.clamp(min=1e-12), torch.zeros_like(heat))


def resize_map(heat: Tensor, size: tuple[int, int], mode: str = "bilinear") -> Tensor:
    """Resize maps ``[..., h, w]`` to ``size = (H, W)`` (``"bilinear"`` or ``"nearest"``).

    Book: chapter 2, *A short training run and its per-class channels*.
    """
    heat = torch.as_tensor(heat).detach().float()
    if heat.dim() < 2:
        raise ValueError(f"heat must be [..., h, w], got shape {list(heat.shape)}")
    lead = heat.shape[:-2]
    flat = heat.reshape(-1, 1, *heat.shape[-2:])
    kw = {"align_corners": False} if mode == "bilinear" else {}
    out = F.interpolate(flat, size=tuple(size), mode=mode, **kw)
    return out.reshape(*lead, *size)


BACKENDS = ("auto", "package", "torch")


class _HighTap(nn.Module):
    """``model``'s logits computed through an identity module on the high-level features,
    so hooks on ``tap`` see the high-level tap and its gradient."""

    def __init__(self, model: TdsaNet) -> None:
        super().__init__()
        self.model = model
        self.tap = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.model.forward_head(self.tap(self.model.forward_features(x)["high"]))


def _target_module(model: nn.Module, layer: str | nn.Module) -> tuple[nn.Module, nn.Module]:
    """``(module to run, module whose output is the target layer)``."""
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise ConfigError(f"layer {type(layer).__name__} is not a submodule of the model")
        return model, layer
    if layer != "high":
        raise ConfigError(
            f"layer must be 'high' (the high-level feature tap) or a submodule of the model, "
            f"got {layer!r}"
        )
    if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
        raise ValueError(
            "layer='high' needs a model with forward_features(x)['high'] and forward_head(high); "
            "pass the target submodule instead"
        )
    wrapper = _HighTap(cast(TdsaNet, model))  # duck-typed: it has both methods (checked above)
    return wrapper, wrapper.tap


def _check_inputs(images: Tensor, targets: Tensor) -> Tensor:
    if images.dim() != 4:
        raise ValueError(f"images must be [B, 3, H, W], got shape {list(images.shape)}")
    targets = torch.as_tensor(targets).reshape(-1).long()
    if targets.numel() != images.shape[0]:
        raise ValueError(f"targets must have B={images.shape[0]} elements, got {targets.numel()}")
    return targets


def grad_cam(
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    layer: str | nn.Module = "high",
    *,
    size: tuple[int, int] | None = None,
) -> Tensor:
    """Grad-CAM in plain torch: ``ReLU(sum_c mean_hw(d score / d A_c) * A_c)``, ``[B, h, w]``.

    ``A`` is the output of ``layer`` (``"high"``: the high-level feature tap of a tdsa
    model; or any submodule), ``score`` the logit of each sample's ``targets`` class. With
    ``size = (H, W)`` the maps are min-max normalised, bilinearly resized and normalised
    again, as ``pytorch-grad-cam`` does; else they are raw, at the layer's resolution. The
    model is run in eval mode and left in its previous mode.
    """
    targets = _check_inputs(images, targets)
    runner, module = _target_module(model, layer)
    captured: list[Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: captured.append(out))
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            logits = runner(images)
            acts = captured[-1]
            score = logits.gather(1, targets.to(logits.device).unsqueeze(1)).sum()
            (grads,) = torch.autograd.grad(score, acts)
    finally:
        handle.remove()
        model.train(was_training)
    weights = grads.mean(dim=(-2, -1), keepdim=True)
    cam = torch.relu((weights * acts).sum(dim=1)).detach()
    if size is not None:
        cam = normalize_map(resize_map(normalize_map(cam), size))
    return cam


def cam_maps(features: Tensor, weight: Tensor, targets: Tensor) -> Tensor:
    """Plain CAM (Zhou et al. 2016) for a GAP + linear head: ``sum_c W[y, c] * F_c``.

    ``features`` ``[B, C, h, w]`` are the maps before global average pooling, ``weight``
    ``[K, C]`` the linear classifier's weight. Returns ``[B, h, w]`` (un-normalised).
    """
    if features.dim() != 4 or weight.dim() != 2 or weight.shape[1] != features.shape[1]:
        raise ValueError(
            f"features must be [B, C, h, w] and weight [K, C] with the same C, got "
            f"{list(features.shape)} and {list(weight.shape)}"
        )
    targets = torch.as_tensor(targets).reshape(-1).long().to(weight.device)
    w = weight[targets]  # [B, C]
    return torch.einsum("bc,bchw->bhw", w.to(features.dtype), features).detach()


def _package_gradcam(
    runner: nn.Module, module: nn.Module, images: Tensor, targets: Tensor
) -> Tensor:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    outs: Any
    with GradCAM(model=runner, target_layers=[module]) as cam:
        outs = cam(input_tensor=images, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    return torch.from_numpy(outs).float()


def gradcam_maps(
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    layer: str | nn.Module = "high",
    *,
    backend: str = "auto",
) -> Tensor:
    """Grad-CAM maps ``[B, H, W]`` in ``[0, 1]`` at the image resolution.

    ``backend="package"`` uses ``pytorch-grad-cam`` (pip ``grad-cam``) with the model's
    forward wrapped so the target layer is the high-level feature tap (``layer="high"``) or
    the given submodule; ``"torch"`` uses :func:`grad_cam`; ``"auto"`` the package when it
    is installed. Both give the same maps. The model is left in its previous mode.

    Book: chapter 6, *Grad-CAM of the cross-entropy model beside them*.
    """
    backend = check_choice("backend", backend, BACKENDS)
    targets = _check_inputs(images, targets)
    size = (images.shape[-2], images.shape[-1])
    if backend == "auto":
        try:
            import pytorch_grad_cam  # noqa: F401
        except ImportError:
            backend = "torch"
        else:
            backend = "package"
    if backend == "torch":
        return grad_cam(model, images, targets, layer, size=size)
    runner, module = _target_module(model, layer)
    was_training = model.training
    try:
        return _package_gradcam(runner, module, images, targets)
    finally:
        model.train(was_training)

