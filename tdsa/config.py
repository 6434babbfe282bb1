"""Run configuration: nested dataclasses, YAML load/dump and dotted command-line overrides.

A config has seven sections (``data``, ``model``, ``loss``, ``optim``, ``schedule``,
``train``, ``runtime``). YAML files name only what differs from the defaults below; the
resolved config (every field, ``model.num_classes`` filled in from the dataset) is written
to ``config.yaml`` in the run folder. Overrides look like ``optim.lr=0.01``; the value is
parsed with ``yaml.safe_load`` and checked against the field's type. An unknown key or a
value of the wrong type is a :class:`tdsa.errors.ConfigError` that names it (and, for an
unknown key, the closest valid one).

Book: chapter 7, *The reference recipe*.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tdsa.errors import ConfigError
from tdsa.resources import resolve_config
from tdsa.validation import DEFAULT_XI, check_choice, check_int, check_number, check_xi

_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
AMP_MODES = ("auto", "none", "fp64", "bf16", "fp16")
EVAL_TEST = ("every_epoch", "final", "never")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine", "constant")
MAX_STAGE_CHANNELS = 65536  # num_classes x xi per stage: NABirds at xi 9 needs 4,995


@dataclass
class DataConfig:
    """Dataset, transforms and loader workers.

    ``synthetic`` holds the keyword arguments of :func:`tdsa.data.synthetic.generate`, used
    when ``dataset`` is ``synthetic``, ``generate`` is true and ``root`` does not exist yet
    (``num_classes``, ``train_per_class``, ``val_per_class``, ``seed``, ...; ``unique_part``,
    default null, names a fine part's attribute, ``eye_ring`` or ``beak_tip``, of which each
    class then has a value of its own); with ``generate`` an existing root must have been
    generated with them.
    ``options`` are extra keyword arguments of :func:`tdsa.data.build_dataset`.
    ``train_split`` is the split trained on; ``val_split`` (null = none), when set, is
    evaluated after every epoch and selects ``best.pt`` (the synthetic data's ``val``, or
    ``val`` with ``train_split: train_minus_val`` for a carve-out of a real dataset's train).
    """

    dataset: str = "synthetic"
    root: str = "data/synthetic"
    regime: str = "scratch"
    image_size: int = 224
    resize: int | None = None
    workers: int = 2
    generate: bool = False
    synthetic: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    train_split: str = "train"
    val_split: str | None = None


@dataclass
class ModelConfig:
    """The network: a :func:`tdsa.models.create_model` name, ``xi = [xi_mid, xi_high]``,
    ``pretrained`` (false, true or a local state-dict path) and builder ``options``
    (``width``, ``head``, ``adapter``, ``input_size``; ``input_size`` defaults to
    ``data.image_size``). ``num_classes`` null means "from the dataset".
    """

    name: str = "tdsa_vgg16"
    num_classes: int | None = None
    xi: list[int] = field(default_factory=lambda: list(DEFAULT_XI))
    pretrained: bool | str = False
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class LossConfig:
    """Weights of the TDSA loss (all four 0 = cross-entropy only) and its options.

    ``ramp_epochs`` ramps the auxiliary terms in linearly from 0 to 1 over that many epochs
    (0 = full weight from the first step, as published).
    """

    alpha_mid: float = 1.5
    beta_mid: float = 15.0
    alpha_high: float = 1.5
    beta_high: float = 15.0
    top_down: bool = True
    keep_mid: int | None = None
    keep_high: int | None = None
    div_temperature: float = 1.0
    ramp_epochs: float = 0.0


@dataclass
class OptimConfig:
    """Optimiser (``sgd`` or ``adamw``); ``head_lr`` is the learning rate of the classifier
    head's parameters (null = ``lr``).
    """

    name: str = "sgd"
    lr: float = 0.1
    head_lr: float | None = None
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8


@dataclass
class ScheduleConfig:
    """Learning-rate schedule: ``step`` (``milestones`` in epochs, or every ``step_size``
    epochs, times ``gamma``), ``cosine`` (to ``min_lr_factor`` x lr) or ``constant``, after
    ``warmup_epochs`` of linear warm-up. ``per_iteration`` updates the rate every optimiser
    step (epoch milestones still fall on epoch boundaries); false updates it once per epoch.
    """

    name: str = "step"
    milestones: list[int] = field(default_factory=list)
    step_size: int | None = None
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    min_lr_factor: float = 0.0
    per_iteration: bool = True


@dataclass
class TrainConfig:
    """The training loop. ``batch_size`` is the global batch of one optimiser step (over
    all processes and accumulation steps). ``grad_clip`` 0 = off. ``amp`` (auto, none = fp32,
    fp64 = float64 throughout for numerical checks, bf16, fp16) and ``channels_last`` (true,
    false, auto) are resolved per device by
    :func:`tdsa.engine.precision.resolve_precision`: auto is bf16 + channels_last where the
    hardware has native bf16, fp16 on a GPU without it, fp32 on other CPUs. ``eval_test``:
    ``every_epoch`` (the field's practice), ``final`` (the last epoch only) or ``never``
    (tuning runs); the last two need ``data.val_split``, which then selects the best epoch.
    """

    epochs: int = 300
    batch_size: int = 32
    eval_batch_size: int | None = None
    accum_steps: int = 1
    amp: str = "auto"
    channels_last: bool | str = "auto"
    compile: bool = False
    grad_clip: float = 0.0
    ema: bool = False
    ema_decay: float = 0.9998
    eval_test: str = "every_epoch"


@dataclass
class RuntimeConfig:
    """Seed, device and run-time switches.

    ``device`` is ``auto`` (CUDA when available), ``cpu`` or ``cuda``. ``progress`` null shows
    tqdm bars on a terminal or in a Jupyter kernel (never with the CLI's ``--quiet``).
    ``sync_bn`` null = on when more than one process.
    ``stop_after_epoch`` ends the run cleanly (``last.pt`` saved, resumable) after that epoch:
    for sessions with a time limit, such as Colab.
    """

    seed: int = 0
    device: str = "auto"
    deterministic: bool = True
    threads: int | None = None
    progress: bool | None = None
    tensorboard: bool = False
    sync_bn: bool | None = None
    stop_after_epoch: int | None = None


@dataclass
class Config:
    """A whole run: the seven sections.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists, not tuples) for YAML and checkpoints.
        """
        return copy.deepcopy(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config",
                  overrides: Iterable[str] = ()) -> Config:
        """Build a config from a nested mapping (missing keys keep defaults), apply the dotted
        ``overrides`` (see :func:`apply_overrides`) and validate the result, once.
        """
        cfg = cls()
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a mapping of sections, got {_tname(data)}")
        for section, values in data.items():
            sec = _section(cfg, str(section), source)
            if values is None:
                continue
            if not isinstance(values, Mapping):
                raise ConfigError(
                    f"{source}: section {section!r} must be a mapping of keys, "
                    f"got {_tname(values)}"
                )
            for key, value in values.items():
                _set_field(sec, f"{section}.{key}", str(key), value, source)
        overrides = list(overrides)
        for item in overrides:
            _override(cfg, item)
        cfg.validate(f"{source} with overrides" if overrides else source)
        return cfg

    def validate(self, source: str = "config") -> None:
        """Check value ranges and choices; raise ConfigError naming the key.
        """
        with _named(source):
            self._check_values()
        d, tr = self.data, self.train
        if tr.channels_last not in (True, False, "auto"):
            raise _invalid(source, "train.channels_last", tr.channels_last,
                           "true, false or auto")
        if not (self.runtime.device in ("auto", "cpu", "cuda")
                or self.runtime.device.startswith("cuda:")):
            raise _invalid(source, "runtime.device", self.runtime.device,
                           "auto, cpu, cuda or cuda:N")
        if tr.eval_test != "every_epoch" and not d.val_split:
            raise ConfigError(
                f"{source}: train.eval_test={tr.eval_test!r} needs data.val_split "
                f"(the split that selects the best epoch when test is not read every epoch)")
        if d.val_split and d.val_split in (d.train_split, "test"):
            raise ConfigError(
                f"{source}: data.val_split={d.val_split!r} is invalid: expected a split "
                f"other than data.train_split={d.train_split!r} and 'test'")
        self._check_relations(source)

    def _check_values(self) -> None:
        """Each key on its own: integer and number ranges (numbers finite) and choices."""
        d, m, lo, op, sc, tr, rt = (self.data, self.model, self.loss, self.optim, self.schedule,
                                    self.train, self.runtime)
        check_int("data.image_size", d.image_size, low=1)
        check_int("data.workers", d.workers, low=0)
        check_xi(m.xi, lo.top_down, name="model.xi", top_down_name="loss.top_down")
        check_choice("optim.name", op.name, OPTIMIZERS)
        check_choice("schedule.name", sc.name, SCHEDULES)
        check_choice("train.amp", tr.amp, AMP_MODES)
        check_choice("train.eval_test", tr.eval_test, EVAL_TEST)
        for key, count in (("train.epochs", tr.epochs), ("train.batch_size", tr.batch_size),
                           ("train.accum_steps", tr.accum_steps)):
            check_int(key, count, low=1)
        optional = {"model.num_classes": m.num_classes, "schedule.step_size": sc.step_size,
                    "train.eval_batch_size": tr.eval_batch_size, "runtime.threads": rt.threads,
                    "runtime.stop_after_epoch": rt.stop_after_epoch, "data.resize": d.resize}
        for key, value in optional.items():
            if value is not None:
                check_int(key, value, low=1)
        positive: dict[str, float | None] = {
            "optim.lr": op.lr, "optim.head_lr": op.head_lr, "optim.eps": op.eps,
            "schedule.gamma": sc.gamma, "loss.div_temperature": lo.div_temperature}
        for key, number in positive.items():
            if number is not None:
                check_number(key, number, low=0.0, open_low=True)
        non_negative = {"optim.weight_decay": op.weight_decay, "train.grad_clip": tr.grad_clip,
                        "schedule.warmup_epochs": sc.warmup_epochs,
                        "loss.ramp_epochs": lo.ramp_epochs,
                        **{f"loss.{k}": getattr(lo, k)
                           for k in ("alpha_mid", "beta_mid", "alpha_high", "beta_high")}}
        for key, value in non_negative.items():
            check_number(key, value, low=0.0)
        check_number("optim.momentum", op.momentum, 0.0, 1.0, open_high=True)
        check_number("train.ema_decay", tr.ema_decay, 0.0, 1.0, open_high=True)
        check_number("schedule.min_lr_factor", sc.min_lr_factor, 0.0, 1.0)

    def _check_relations(self, source: str) -> None:
        """The betas and the milestones, and the constraints between fields (keep <= xi, a
        bounded channel count, batch vs accumulation; the gate's xi ratio is
        :func:`~tdsa.validation.check_xi`'s): all before anything is built."""
        op, sc, tr = self.optim, self.schedule, self.train
        if len(op.betas) != 2 or not all(0 <= b < 1 for b in op.betas):
            raise _invalid(source, "optim.betas", op.betas, "two numbers in [0, 1)")
        if list(sc.milestones) != sorted(set(sc.milestones)) or any(v < 1 for v in sc.milestones):
            raise _invalid(source, "schedule.milestones", sc.milestones,
                           "strictly increasing epoch numbers >= 1")
        self._check_channels(source)
        if tr.batch_size % tr.accum_steps:
            raise ConfigError(
                f"{source}: train.batch_size={tr.batch_size} is invalid: expected a multiple of "
                f"train.accum_steps={tr.accum_steps}"
            )

    def _check_channels(self, source: str) -> None:
        """The channel count per stage and ``keep_* <= xi``."""
        m, lo = self.model, self.loss
        xi_mid, xi_high = m.xi
        for key, value in (("model.xi[0] (xi_mid)", xi_mid), ("model.xi[1] (xi_high)", xi_high)):
            if value > MAX_STAGE_CHANNELS:
                raise _invalid(source, key, value,
                               f"at most {MAX_STAGE_CHANNELS} channels per stage")
        if m.num_classes is not None and m.num_classes * xi_mid > MAX_STAGE_CHANNELS:
            raise ConfigError(
                f"{source}: model.num_classes x model.xi[0] = {m.num_classes} x {xi_mid} = "
                f"{m.num_classes * xi_mid} mid-level channels; at most {MAX_STAGE_CHANNELS} "
                f"channels per stage are allowed (lower model.xi)"
            )
        for key, keep, xi in (("loss.keep_mid", lo.keep_mid, xi_mid),
                              ("loss.keep_high", lo.keep_high, xi_high)):
            if keep is not None and not 1 <= keep <= xi:
                raise _invalid(source, key, keep, f"an integer in [1, {xi}] (model.xi={m.xi}) "
                               "or null")


@contextlib.contextmanager
def _named(source: str) -> Iterator[None]:
    """Prefix the ConfigError of a :mod:`tdsa.validation` check with ``source``."""
    try:
        yield
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _invalid(source: str, key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{source}: {key}={value!r} is invalid: expected {expected}")


def _tname(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _closest(name: str, valid: Iterable[str]) -> str:
    valid = list(valid)
    match = difflib.get_close_matches(name, valid, n=1, cutoff=0.0)
    return f"did you mean {match[0]!r}? " if match else ""


def _section(cfg: Config, name: str, source: str) -> Any:
    names = [f.name for f in dataclasses.fields(cfg)]
    if name not in names:
        raise ConfigError(
            f"{source}: unknown section {name!r}; {_closest(name, names)}"
            f"valid sections: {', '.join(names)}"
        )
    return getattr(cfg, name)


def _field_types(obj: Any) -> dict[str, Any]:
    return typing.get_type_hints(type(obj))


def _set_field(sec: Any, dotted: str, key: str, value: Any, source: str) -> None:
    types_ = _field_types(sec)
    if key not in types_:
        section = dotted.split(".", 1)[0]
        valid = [f"{section}.{k}" for k in types_]
        raise ConfigError(
            f"{source}: unknown key {dotted!r}; {_closest(dotted, valid)}"
            f"valid keys of {section!r}: {', '.join(types_)}"
        )
    setattr(sec, key, _coerce(value, types_[key], dotted, source))


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """``value`` checked against the annotation ``tp`` (ints accepted for floats)."""
    ok, out = _match(value, tp)
    if not ok:
        raise ConfigError(
            f"{source}: {key}={value!r} has the wrong type: expected {_describe(tp)}, "
            f"got {_tname(value)}"
        )
    return out


def _match(value: Any, tp: Any) -> tuple[bool, Any]:
    if tp is Any:
        return True, copy.deepcopy(value)
    if tp is type(None):
        return value is None, None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, out = _match(value, arg)
            if ok:
                return True, out
        return False, None
    if origin is list:
        if not isinstance(value, list | tuple):
            return False, None
        (item,) = typing.get_args(tp)
        items = [_match(v, item) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if origin is dict:
        return isinstance(value, Mapping), copy.deepcopy(dict(value)) if isinstance(
            value, Mapping
        ) else None
    return _match_scalar(value, tp)


def _match_scalar(value: Any, tp: Any) -> tuple[bool, Any]:
    """``bool``, ``int`` (not a bool), ``float`` (an int, or a YAML 1.1 ``1e-3`` string) and
    ``str``."""
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            return True, float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok, float(value) if ok else None
    if tp is str:
        return isinstance(value, str), value
    raise TypeError(f"unsupported config annotation {tp!r}")


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> Config:
    """Read a YAML config file (missing keys keep their defaults), apply the dotted
    ``overrides`` (see :func:`apply_overrides`) and validate the result. ``path`` is a file, or
    the name of a config shipped with the package (``synthetic_tdsa``, ``ablations/levers``:
    see :func:`tdsa.resources.config_path`).

    Book: chapter 4, *Two configs: the loss, and what each arm chose on val*.
    """
    path = resolve_config(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None
    return Config.from_dict({} if data is None else data, source=str(path), overrides=overrides)


def dump_config(cfg: Config, path: str | Path | None = None) -> str:
    """The config as YAML text; also written to ``path`` when given.

    Book: chapter 4, *What a run folder holds*.
    """
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def apply_overrides(cfg: Config, overrides: Iterable[str]) -> Config:
    """A copy of ``cfg`` with dotted ``key=value`` overrides applied and validated.

    ``section.key=value`` sets a field; for mapping fields ``section.key.sub=value`` sets one
    entry (e.g. ``data.synthetic.num_classes=4``). Values are parsed with ``yaml.safe_load``.

    Book: chapter 4, *Two configs: the loss, and what each arm chose on val*.
    """
    out = copy.deepcopy(cfg)  # the only config the overrides change is this function's own
    for item in overrides:
        _override(out, item)
    out.validate("override")
    return out


def _override(cfg: Config, item: str) -> None:
    """Apply one ``key=value`` override to ``cfg`` (a config its caller has just made)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form section.key=value")
    dotted, raw = item.split("=", 1)
    dotted = dotted.strip()
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    parts = dotted.split(".")
    if len(parts) < 2:
        raise ConfigError(
            f"override {item!r}: expected section.key=value (e.g. optim.lr=0.01), "
            f"got key {dotted!r}"
        )
    sec = _section(cfg, parts[0], "override")
    if len(parts) == 2:
        _set_field(sec, dotted, parts[1], value, "override")
        return
    head = ".".join(parts[:2])
    types_ = _field_types(sec)
    if parts[1] not in types_ or typing.get_origin(types_[parts[1]]) is not dict:
        if parts[1] not in types_:
            _set_field(sec, head, parts[1], value, "override")
        raise ConfigError(
            f"override {item!r}: {head} is not a mapping, so {dotted!r} cannot be set; "
            f"use {head}=VALUE"
        )
    target = getattr(sec, parts[1])
    for sub in parts[2:-1]:
        target = target.setdefault(sub, {})
        if not isinstance(target, dict):
            raise ConfigError(f"override {item!r}: {dotted!r} goes through a non-mapping")
    target[parts[-1]] = value
