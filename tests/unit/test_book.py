"""tdsa.experiments.book and tdsa.resources: the folders the notebooks use and the runs they share.

The expected overrides are those the chapters computed in their own cells before the cells
moved into the package (chapters 2/3 and 4/6, less ``runtime.progress=false``): a run folder
trained by an earlier version of the book must still be the run the chapter opens.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tdsa.config import load_config
from tdsa.errors import ConfigError, DataError
from tdsa.experiments import book
from tdsa.resources import (
    config_path,
    resolve_config,
    resource_root,
    results_path,
    shipped_configs,
)

REPO = Path(__file__).resolve().parents[2]


def _data(name: str) -> str:
    return f"data.root={REPO / 'data' / name}"


SHORT = {  # chapters 2 and 3, configs/smoke.yaml
    "smoke": [_data("synthetic-book-smoke"), "data.synthetic.num_classes=4",
              "data.synthetic.train_per_class=8", "data.synthetic.val_per_class=4",
              "data.synthetic.test_per_class=4", "data.synthetic.image_size=48",
              "data.image_size=48", "train.epochs=1", "runtime.seed=0"],
    "cpu": [_data("synthetic-book-cpu"), "data.synthetic.num_classes=6",
            "data.synthetic.train_per_class=30", "data.synthetic.test_per_class=10",
            "data.synthetic.image_size=64", "data.image_size=64", "train.epochs=8",
            "runtime.seed=0"],
    "gpu": ["data.dataset=cub", _data("CUB_200_2011"), "data.generate=false",
            "model.options.width=1.0", "data.workers=4", "data.image_size=224",
            "train.epochs=30", "runtime.seed=0"],
}
TRAINING = {  # chapters 4 and 6, configs/synthetic_{arm}.yaml (gpu: the scratch recipe)
    "smoke": ["runtime.seed=0", _data("synthetic-book-smoke"), "data.synthetic.num_classes=4",
              "data.synthetic.train_per_class=8", "data.synthetic.val_per_class=4",
              "data.synthetic.test_per_class=4",
              "data.synthetic.image_size=48", "data.image_size=48", "data.workers=0",
              "train.batch_size=8", "train.epochs=2", "schedule.warmup_epochs=0.6",
              "loss.ramp_epochs=0.6667"],
    "cpu": ["runtime.seed=0", _data("synthetic")],
    "gpu": ["runtime.seed=0", "data.dataset=cub", _data("CUB_200_2011")],
}


@pytest.mark.parametrize("profile", book.PROFILES)
def test_short_run_of_chapters_2_and_3(profile: str) -> None:
    plan = book.run_plan("channel_constraint", profile)
    assert plan.config == REPO / "configs" / "smoke.yaml"
    assert plan.overrides == SHORT[profile]
    assert plan.run_dir == REPO / "runs" / "book" / profile / "channel_constraint-seed0"


@pytest.mark.parametrize("profile", book.PROFILES)
@pytest.mark.parametrize("arm", ["ce", "tdsa"])
def test_training_runs_of_chapters_4_and_6(profile: str, arm: str) -> None:
    plan = book.run_plan("training", profile, arm=arm)
    name = f"cub_vgg16_{arm}_scratch" if profile == "gpu" else f"synthetic_{arm}"
    assert plan.config == REPO / "configs" / f"{name}.yaml"
    assert plan.overrides == TRAINING[profile]
    assert plan.run_dir == REPO / "runs" / "book" / profile / f"training-{arm}-seed0"


def test_epochs_seed_root_dataset_and_runs_root(tmp_path: Path) -> None:
    plan = book.run_plan("training", "cpu", arm="ce", seed=3, epochs=10, root="/d/x",
                         runs_root=tmp_path)
    assert plan.overrides == ["runtime.seed=3", "data.root=/d/x", "train.epochs=10",
                              "schedule.warmup_epochs=3", "loss.ramp_epochs=3.333"]
    assert plan.run_dir == tmp_path / "cpu" / "training-ce-seed3"
    gpu = book.run_plan("training", "gpu", dataset="aircraft", epochs=5)
    assert gpu.overrides == ["runtime.seed=0", "data.dataset=aircraft",
                             _data("aircraft"), "train.epochs=5"], "no warm-up scaling on gpu"
    short = book.run_plan("channel_constraint", "smoke", epochs=4, seed=1, runs_root="~/r")
    assert short.overrides[-2:] == ["train.epochs=4", "runtime.seed=1"]
    assert short.run_dir == Path.home() / "r" / "smoke" / "channel_constraint-seed1"


def test_every_plan_resolves_to_a_valid_config() -> None:
    from tdsa.config import apply_overrides

    for profile in book.PROFILES:
        for plan in (book.run_plan("channel_constraint", profile),
                     *(book.run_plan("training", profile, arm=a) for a in ("ce", "tdsa"))):
            cfg = apply_overrides(load_config(plan.config), plan.overrides)
            assert cfg.runtime.seed == 0


def test_bad_profile_run_and_arm() -> None:
    with pytest.raises(ValueError, match=r"profile must be one of \['cpu', 'gpu', 'smoke'\], "
                                         r"got 'fast'"):
        book.run_plan("training", "fast")
    with pytest.raises(ValueError, match=r"run must be one of .*'channel_constraint'"):
        book.run_plan("chapter9", "cpu")
    with pytest.raises(ValueError, match=r"arm must be one of \['ce', 'tdsa'\], got 'mc'"):
        book.run_plan("training", "cpu", arm="mc")


def test_load_or_train_loads_a_complete_run_without_training(tmp_path: Path) -> None:
    plan = book.RunPlan(tmp_path / "missing.yaml", [], tmp_path / "run")
    plan.run_dir.mkdir()
    assert not plan.complete()
    (plan.run_dir / "best.pt").write_bytes(b"")
    (plan.run_dir / "summary.json").write_text('{"final_top1": 12.5}')
    assert plan.complete()
    assert book.load_or_train(plan) == {"final_top1": 12.5}, "no training: the config is absent"


def test_folders_in_a_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert book.repo_root() == REPO
    assert book.data_root() == REPO / "data"
    assert book.default_runs_root() == REPO / "runs" / "book"
    assert book.dataset_root("cub") == REPO / "data" / "CUB_200_2011"
    assert book.dataset_root("flowers102") == REPO / "data" / "flowers102"
    assert book.dataset_root("cub", "x/y") == Path("x/y")
    assert results_path("levers.csv") == REPO / "results" / "levers.csv"
    assert results_path() == REPO / "results"


def _installed(tmp_path: Path) -> Path:
    package = tmp_path / "site-packages" / "tdsa"
    (package / "configs" / "ablations").mkdir(parents=True)
    (package / "configs" / "smoke.yaml").write_text("train: {epochs: 1}\n")
    (package / "configs" / "ablations" / "levers.yaml").write_text("base: smoke\n")
    (package / "results").mkdir()
    return package


def test_resource_root_of_a_checkout_and_of_an_installed_copy(tmp_path: Path) -> None:
    checkout = tmp_path / "clone"
    (checkout / "tdsa").mkdir(parents=True)
    (checkout / "configs").mkdir()
    (checkout / "pyproject.toml").write_text("[project]\nname = 'tdsa'\n")
    assert resource_root(checkout / "tdsa") == checkout
    package = _installed(tmp_path)
    assert resource_root(package) == package, "the wheel's tdsa/configs, not site-packages"
    assert shipped_configs(package) == ["ablations/levers", "smoke"]
    assert config_path("smoke", package) == package / "configs" / "smoke.yaml"
    assert config_path("configs/ablations/levers.yaml", package) == (
        package / "configs" / "ablations" / "levers.yaml")
    with pytest.raises(DataError, match=r"no configs/ folder .*reinstall tdsa"):
        resource_root(tmp_path / "elsewhere" / "tdsa")


def test_installed_copy_outside_a_checkout(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    import tdsa.resources

    package = _installed(tmp_path)
    monkeypatch.setattr(tdsa.resources, "_PACKAGE", package)
    monkeypatch.chdir(tmp_path)
    assert book.repo_root() is None
    assert book.data_root() == tmp_path / "data"
    assert book.default_runs_root() == tmp_path / "runs" / "book"
    assert results_path("synthetic.csv") == package / "results" / "synthetic.csv"
    assert resolve_config("smoke") == package / "configs" / "smoke.yaml"
    assert resolve_config("configs/smoke.yaml") == package / "configs" / "smoke.yaml"


def test_load_config_by_name_and_by_path(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    by_name = load_config("synthetic_tdsa")
    assert by_name == load_config(REPO / "configs" / "synthetic_tdsa.yaml")
    assert load_config("synthetic_tdsa.yaml").model == by_name.model, "relative to the root"
    assert "ablations/levers" in shipped_configs() and "smoke" in shipped_configs()
    with pytest.raises(ConfigError) as info:
        load_config("synthetic_tdsaa")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("unknown config name 'synthetic_tdsaa': shipped configs are ")
    assert "synthetic_ce, " in message and "ablations/levers, " in message
    with pytest.raises(ConfigError, match=r"^config file not found: nope/missing\.yaml$"):
        load_config("nope/missing.yaml")
    local = tmp_path / "synthetic_tdsa.yaml"
    local.write_text("train: {epochs: 3}\n")
    assert load_config("synthetic_tdsa.yaml").train.epochs == 3, "an existing path wins"


def test_ablate_grid_by_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tdsa.experiments.grid import load_grid

    monkeypatch.chdir(tmp_path)
    grid = load_grid("ablations/synthetic")
    assert grid.path == REPO / "configs" / "ablations" / "synthetic.yaml"
    assert grid.base == REPO / "configs" / "synthetic_n40_tdsa.yaml", "base found in the configs"


def test_train_help_says_what_config_accepts() -> None:
    done = subprocess.run([sys.executable, "-m", "tdsa", "train", "--help"], capture_output=True,
                          text=True, check=True)
    text = re.sub(r"\s+", " ", done.stdout)
    assert "a YAML file, or the name of a config shipped with tdsa (e.g. synthetic_tdsa" in text


def test_wheel_lists_every_package() -> None:
    """pyproject.toml names the packages (configs/ and results/ are mapped into the wheel):
    a new subpackage of tdsa/ must be added there, or the wheel would lack it."""
    tomllib = pytest.importorskip("tomllib")
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    on_disk = {".".join(p.parent.relative_to(REPO).parts)
               for p in (REPO / "tdsa").rglob("__init__.py")}
    assert on_disk | {"tdsa.configs", "tdsa.results"} == listed
