"""Run configuration: task defaults, then a YAML file, then ``--set`` overrides.

A configuration is a plain nested ``dict``. Its shape is fixed by the task's
defaults: a key that is not in the defaults is an error naming the valid keys,
and a value must have the type of the default it replaces (an ``int`` may stand
for a ``float``; a ``None`` default takes any value). Keys listed in
``choices`` must take one of the listed values. The ``model`` section is
free-form: it holds architecture hyperparameters, which the architecture
registry checks against the builder's signature.
"""

from __future__ import annotations

import copy
import difflib
import math
import os
from typing import Any, Callable, Iterable, Mapping

import yaml

from dlsuite.errors import DlsuiteError

FREE_FORM_SECTIONS = ("model",)


def resolve(
    defaults: Mapping[str, Any],
    config_file: str | os.PathLike | None = None,
    overrides: Iterable[str] = (),
    choices: Mapping[str, Iterable[Any]] | None = None,
) -> dict[str, Any]:
    """Layer a YAML file and ``key.sub=value`` overrides on top of ``defaults``.

    Args:
        defaults: the task's default configuration (not modified).
        config_file: optional YAML file holding a partial configuration.
        overrides: strings ``"section.key=value"``; values are parsed as YAML.
        choices: dotted key -> allowed values.

    Returns:
        The resolved configuration, a new nested dict.
    """
    cfg = copy.deepcopy(dict(defaults))
    if config_file is not None:
        merge(cfg, load_yaml(config_file), source=str(config_file))
    for item in overrides:
        key, value = parse_override(item)
        merge(cfg, nest(key, value), source=f"--set {item}")
    check_choices(cfg, choices or {})
    return cfg


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise DlsuiteError(f"config file {path} does not exist; pass the path of a YAML file.") from None
    except UnicodeDecodeError as e:
        raise DlsuiteError(f"config file {path} is not UTF-8 text (byte {e.start}); save it as UTF-8 YAML.") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise DlsuiteError(f"config file {path} is not valid YAML{where}: {getattr(e, 'problem', e)}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DlsuiteError(f"config file {path} must hold a mapping of sections (like `train:`), not {type(data).__name__}.")
    return data


def parse_override(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise DlsuiteError(f"--set {item!r} must look like key.sub=value, e.g. --set train.epochs=5.")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def nest(dotted: str, value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out


def merge(cfg: dict[str, Any], update: Mapping[str, Any], source: str, prefix: str = "") -> None:
    """Merge ``update`` into ``cfg`` in place, checking keys and types."""
    for key, value in update.items():
        dotted = f"{prefix}{key}"
        if prefix.rstrip(".") in FREE_FORM_SECTIONS:
            cfg[key] = value
            continue
        if key not in cfg:
            raise DlsuiteError(unknown_key_message(dotted, cfg, prefix, source))
        current = cfg[key]
        if isinstance(current, dict):
            if not isinstance(value, Mapping):
                raise DlsuiteError(
                    f"{source}: {dotted!r} is a section (keys: {', '.join(sorted(current)) or 'free-form'}); "
                    f"set one of its keys, e.g. {dotted}.<key>=value."
                )
            merge(current, value, source, prefix=f"{dotted}.")
        elif isinstance(value, Mapping) and value:
            raise DlsuiteError(
                f"{source}: {dotted!r} is a setting, not a section (it has no key {next(iter(value))!r}); "
                f"give it a value, e.g. {dotted}=<value>."
            )
        else:
            cfg[key] = coerce(dotted, value, current, source)


def unknown_key_message(dotted: str, cfg: Mapping[str, Any], prefix: str, source: str) -> str:
    valid = sorted(f"{prefix}{k}" for k in cfg)
    close = difflib.get_close_matches(dotted, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"{source}: unknown config key {dotted!r}.{hint} Valid keys here: {', '.join(valid)}."


def _yaml11_float(value: Any) -> Any:
    """``1e-4`` as a number: YAML 1.1 (PyYAML) reads exponents without a dot as strings."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        if math.isfinite(number):
            return number
    return value


def coerce(dotted: str, value: Any, default: Any, source: str) -> Any:
    """Check ``value`` against the type of ``default``; return it (ints widen to float)."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        value = _yaml11_float(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
        if ok and not math.isfinite(value):
            raise DlsuiteError(f"{source}: {dotted!r} must be a finite number, got {value!r}.")
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
        value = list(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise DlsuiteError(
            f"{source}: {dotted!r} must be {type(default).__name__} like the default ({default!r}), "
            f"got {value!r} ({type(value).__name__})."
        )
    return value


def get(cfg: Mapping[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def check_choices(cfg: Mapping[str, Any], choices: Mapping[str, Iterable[Any]]) -> None:
    for dotted, allowed in choices.items():
        allowed = list(allowed)
        value = get(cfg, dotted)
        if value not in allowed:
            close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise DlsuiteError(
                f"{dotted}={value!r} is not valid.{hint} Valid values: {', '.join(map(str, allowed))}."
            )


# Settings every task shares that only make sense in a range: key -> (accepts the value, what it must be).
# ``None`` passes (the settings that may be unset).
RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": (lambda v: v >= 0, "a non-negative integer"),
    "train.epochs": (lambda v: v >= 1, "at least 1"),
    "train.batch_size": (lambda v: v >= 1, "at least 1"),
    "train.learning_rate": (lambda v: math.isfinite(v) and v > 0, "a positive number"),
    "train.warmup_fraction": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "train.weight_decay": (lambda v: math.isfinite(v) and v >= 0, "a non-negative number"),
    "train.early_stopping_patience": (lambda v: v >= 0, "at least 0"),
    "train.steps_per_execution": (lambda v: v >= 1, "at least 1"),
    "data.val_fraction": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "data.test_fraction": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "data.shuffle_buffer": (lambda v: v >= 1, "at least 1"),
    "distribute.logical_cpus": (lambda v: v >= 0, "at least 0"),
}


def check_ranges(cfg: Mapping[str, Any], ranges: Mapping[str, tuple[Callable[[Any], bool], str]] = RANGES) -> None:
    """Raise a clear error for a setting outside its range (``train.epochs=-1`` would train nothing)."""
    for dotted, (accepts, what) in ranges.items():
        try:
            value = get(cfg, dotted)
        except KeyError:
            continue
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):  # a key whose default is None
            raise DlsuiteError(f"{dotted}={value!r} must be a number ({what}), not {type(value).__name__}.")
        if not accepts(value):
            raise DlsuiteError(f"{dotted}={value!r} is out of range: it must be {what}.")
    split = (get(cfg, "data.val_fraction") or 0) + (get(cfg, "data.test_fraction") or 0)
    if split >= 1:
        raise DlsuiteError(
            f"data.val_fraction + data.test_fraction = {split:g} leaves nothing to train on; keep their sum below 1."
        )


def save(cfg: Mapping[str, Any], path: str | os.PathLike) -> None:
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(dict(cfg), f, sort_keys=False)


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"epochs": 5}}`` -> ``{"train.epochs": 5}``."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value and dotted not in FREE_FORM_SECTIONS:
            out.update(flatten(value, prefix=f"{dotted}."))
        else:
            out[dotted] = value
    return out
