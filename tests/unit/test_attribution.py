"""Attribution maps: Grad-CAM against its definition and ``pytorch-grad-cam``, CAM, and the
map normalising they share with the drawings."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tdsa.attribution import cam_maps, grad_cam, gradcam_maps, normalize_map


def test_normalize_map_min_max_and_constant():
    heat = torch.tensor([[[1.0, 3.0], [2.0, 5.0]], [[7.0, 7.0], [7.0, 7.0]]])
    out = normalize_map(heat)
    assert out[0].tolist() == [[0.0, 0.5], [0.25, 1.0]]
    assert out[1].tolist() == [[0.0, 0.0], [0.0, 0.0]]


class TinyTdsa(nn.Module):
    """A small two-tap network with the tdsa model interface (3 classes, xi = (3, 1))."""

    num_classes = 3
    xi = (3, 1)

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Sequential(nn.Conv2d(3, 9, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.high = nn.Sequential(nn.Conv2d(9, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3))

    def forward_features(self, x):
        mid = self.stem(x)
        return {"mid": mid, "high": self.high(mid)}

    def forward_head(self, high):
        return self.head(high)

    def forward(self, x):
        return self.forward_head(self.forward_features(x)["high"])


def _slow_grad_cam(model, images, targets):
    """Grad-CAM from its definition, one image at a time with .backward()."""
    maps = []
    for x, t in zip(images, targets.tolist(), strict=True):
        high = model.forward_features(x[None])["high"]
        high.retain_grad()
        model.forward_head(high)[0, t].backward()
        a, g = high[0].detach(), high.grad[0]
        cam = sum(g[c].mean() * a[c] for c in range(a.shape[0]))
        maps.append(torch.clamp(cam, min=0))
    return torch.stack(maps)


def test_grad_cam_matches_definition_and_package():
    pytest.importorskip("pytorch_grad_cam")
    model = TinyTdsa().train()
    g = torch.Generator().manual_seed(2)
    images = torch.randn(3, 3, 16, 16, generator=g)
    targets = torch.tensor([0, 2, 1])
    raw = grad_cam(model, images, targets)
    assert raw.shape == (3, 4, 4)
    assert model.training  # mode restored
    model.eval()
    assert torch.allclose(raw, _slow_grad_cam(model, images, targets), atol=1e-6)
    assert raw.amax(dim=(-2, -1)).gt(0).all()  # the comparison is not between zero maps
    model.train()
    ours = gradcam_maps(model, images, targets, backend="torch")
    theirs = gradcam_maps(model, images, targets, backend="package")
    assert model.training
    assert ours.shape == theirs.shape == (3, 16, 16)
    assert torch.allclose(ours, theirs, atol=2e-3)
    # A module target (the package's usual interface) gives the same maps as the tap.
    module_maps = gradcam_maps(model, images, targets, layer=model.high, backend="package")
    assert torch.allclose(module_maps, theirs, atol=1e-5)


def test_cam_maps_match_gap_linear_logits():
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(2, 5, 3, 4, generator=g)
    fc = nn.Linear(5, 7)
    targets = torch.tensor([6, 1])
    cams = cam_maps(feats, fc.weight, targets)
    # The mean of the CAM is the GAP-linear logit without the bias.
    logits = fc(feats.mean(dim=(-2, -1))) - fc.bias
    assert torch.allclose(cams.mean(dim=(-2, -1)), logits[[0, 1], targets], atol=1e-6)
    ref = torch.stack(
        [
            sum(fc.weight[t, c] * feats[b, c] for c in range(5))
            for b, t in enumerate(targets.tolist())
        ]
    )
    assert torch.allclose(cams, ref, atol=1e-6)


def test_gradcam_rejects_bad_layer_and_backend():
    model = TinyTdsa()
    x, y = torch.zeros(1, 3, 16, 16), torch.tensor([0])
    with pytest.raises(ValueError, match="layer must be 'high'"):
        grad_cam(model, x, y, layer="mid")
    with pytest.raises(ValueError, match="not a submodule"):
        grad_cam(model, x, y, layer=nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match="backend='cuda' is invalid: expected one of"):
        gradcam_maps(model, x, y, backend="cuda")
