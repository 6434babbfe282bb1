"""The files the package ships beside its code: the configs (and ablation grids) and the
committed results that the book's chapters read.

In a checkout of the repository they are its top-level ``configs/`` and ``results/``
folders; an installed wheel carries the same files as ``tdsa/configs/`` and
``tdsa/results/`` (``pyproject.toml`` maps those folders into the package). Either way
:func:`resource_root` is the folder that holds ``configs/`` and ``results/``, and a config
can be named instead of given by path: ``synthetic_tdsa`` is
``<root>/configs/synthetic_tdsa.yaml``, ``ablations/levers`` a grid.
"""

from __future__ import annotations

from pathlib import Path

from tdsa.errors import ConfigError, DataError

__all__ = ["config_path", "resolve_config", "resource_root", "results_path", "shipped_configs"]

_PACKAGE = Path(__file__).resolve().parent
_SUFFIXES = (".yaml", ".yml")


def resource_root(package: str | Path | None = None) -> Path:
    """The folder holding ``configs/`` and ``results/``: the repository root when ``package``
    (default: the imported ``tdsa``) sits in a checkout, else the installed package itself.

    Raises :class:`tdsa.errors.DataError` when neither holds a ``configs/`` folder.
    """
    package = _PACKAGE if package is None else Path(package).resolve()
    checkout = package.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "configs").is_dir():
        return checkout
    if (package / "configs").is_dir():
        return package
    raise DataError(f"no configs/ folder beside {package} (a checkout) or in it (an installed "
                    "wheel): reinstall tdsa")


def shipped_configs(root: str | Path | None = None) -> list[str]:
    """The names of the shipped configs, e.g. ``synthetic_tdsa``, ``ablations/levers``."""
    folder = (resource_root() if root is None else Path(root)) / "configs"
    return sorted(p.relative_to(folder).with_suffix("").as_posix()
                  for p in folder.rglob("*") if p.suffix in _SUFFIXES and p.is_file())


def config_path(name: str, root: str | Path | None = None) -> Path:
    """The file of the shipped config ``name`` (``synthetic_tdsa``, ``ablations/levers``; a
    ``.yaml`` suffix or a leading ``configs/`` is accepted). An unknown name raises
    :class:`tdsa.errors.ConfigError` listing the shipped names.
    """
    base = resource_root() if root is None else Path(root)
    stem = name.removeprefix("configs/")
    for suffix in _SUFFIXES:
        stem = stem.removesuffix(suffix)
    for suffix in _SUFFIXES:
        path = base / "configs" / f"{stem}{suffix}"
        if path.is_file():
            return path
    raise ConfigError(f"unknown config name {name!r}: shipped configs are "
                      f"{', '.join(shipped_configs(base))} (or give the path of a YAML file)")


def resolve_config(ref: str | Path) -> Path:
    """A config reference as a file: an existing path as it is; a name without a ``.yaml``
    suffix (:func:`config_path`) or a path relative to the resource root or its configs
    (``configs/synthetic_tdsa.yaml``, ``synthetic_tdsa.yaml``) as the shipped file. A missing
    path is returned as it is, for the caller's "config file not found" message; an unknown
    name raises :class:`tdsa.errors.ConfigError` listing the shipped names.
    """
    path = Path(ref)
    if path.is_file() or path.is_absolute():
        return path
    if path.suffix not in _SUFFIXES:
        return config_path(str(ref))
    try:
        root = resource_root()
    except DataError:
        return path
    for shipped in (root / path, root / "configs" / path):
        if shipped.is_file():
            return shipped
    return path


def results_path(name: str = "", root: str | Path | None = None) -> Path:
    """A committed results file or folder, e.g. ``results_path("levers.csv")``; with no name,
    the results folder itself. The path may not exist (a reader names it in its error).
    """
    base = resource_root() if root is None else Path(root)
    return base / "results" / name if name else base / "results"
