"""The architecture registry: every network family, built by name.

A family registers a builder with :func:`register`::

    @register("cnn", input_kinds=("image",), summary="stacked conv blocks")
    def build_cnn(input_spec, num_outputs, *, filters=32, ...): ...

Builders take the :class:`InputSpec` of the (already preprocessed) network
input, the number of outputs and keyword-only hyperparameters, and return an
uncompiled ``keras.Model``. Hyperparameters are validated against the
builder's signature, so ``model.depth=3`` is checked before anything is built.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from typing import Any, Callable, Mapping

import keras

from dlsuite.errors import DlsuiteError
from dlsuite.registry import Registry

INPUT_KINDS = ("image", "sequence", "tokens", "tabular", "waveform", "text")  # text: raw strings, shape ()


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """What a network receives, after the task's preprocessing.

    Attributes:
        kind: one of ``INPUT_KINDS``.
        shape: per-example shape, without the batch dimension.
        dtype: dtype of the network input.
        vocab_size: number of token ids (``tokens`` inputs only).
    """

    kind: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"
    vocab_size: int | None = None

    def __post_init__(self):
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"input kind {self.kind!r} is not one of {INPUT_KINDS}")
        object.__setattr__(self, "shape", tuple(self.shape))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A registered family: its builder and the input kinds it accepts.

    Attributes:
        preprocessor: for a family that brings its own input preprocessing (a
            pretrained encoder's tokenizer): ``(hparams, **task_arguments) -> layer``
            turning raw inputs into what the builder takes; ``None`` when the task's
            own preprocessing serves.
        train_defaults: ``train.*`` settings the family trains best with (a
            pretrained encoder's fine-tuning recipe), applied under the user's own.
    """

    name: str
    builder: Callable[..., keras.Model]
    input_kinds: tuple[str, ...]
    summary: str
    preprocessor: Callable[..., keras.layers.Layer] | None = None
    train_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def hparams(self) -> dict[str, Any]:
        """Keyword-only hyperparameters of the builder and their defaults."""
        params = inspect.signature(self.builder).parameters.values()
        return {
            p.name: p.default
            for p in params
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "output_activation"
        }


ARCHITECTURES: Registry[Architecture] = Registry("architecture", "dlsuite list architectures")


def register(
    name: str,
    *,
    input_kinds: tuple[str, ...],
    summary: str,
    preprocessor: Callable[..., keras.layers.Layer] | None = None,
    train_defaults: Mapping[str, Any] | None = None,
) -> Callable:
    """Decorator registering a builder under ``name`` (see :class:`Architecture` for the rest)."""
    unknown = set(input_kinds) - set(INPUT_KINDS)
    if unknown:
        raise ValueError(f"unknown input kinds {sorted(unknown)} for {name!r}")

    def wrap(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        family = Architecture(name, builder, tuple(input_kinds), summary, preprocessor, dict(train_defaults or {}))
        ARCHITECTURES.register(name, family)
        return builder

    return wrap


def get(name: str) -> Architecture:
    return ARCHITECTURES.get(name)


def names() -> list[str]:
    return ARCHITECTURES.names()


def check_hparams(name: str, hparams: dict[str, Any]) -> None:
    """Raise a clear error for a hyperparameter the family does not take, or of the wrong type."""
    valid = get(name).hparams()
    for key, value in hparams.items():
        if key not in valid:
            close = difflib.get_close_matches(key, list(valid), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise DlsuiteError(
                f"architecture {name!r} has no hyperparameter {key!r}.{hint} "
                f"Valid: {', '.join(f'{k} (default {v!r})' for k, v in sorted(valid.items()))}; "
                "set them with --set model.<name>=<value>."
            )
        expected = _kind_of(valid[key])
        if expected and value is not None and not _is_kind(value, expected):
            raise DlsuiteError(
                f"model.{key}={value!r} must be {expected} (architecture {name!r}, default {valid[key]!r})."
            )


def _kind_of(default: Any) -> str | None:
    """What a hyperparameter's default says its values are (``None``: anything goes)."""
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "a whole number"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, (list, tuple)) and all(isinstance(v, (int, float)) for v in default):
        return "a list of numbers, or one number"
    return None


def _is_kind(value: Any, kind: str) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "true or false":
        return isinstance(value, bool)
    if kind == "a whole number":
        return number and float(value).is_integer()
    if kind == "a number":
        return number
    if kind == "a string":
        return isinstance(value, str)
    if isinstance(value, (list, tuple)):
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    return number


def build(
    name: str,
    input_spec: InputSpec,
    num_outputs: int,
    output_activation: str | None = "softmax",
    **hparams: Any,
) -> keras.Model:
    """Build the network registered as ``name``.

    Args:
        name: registered family name (``dlsuite list architectures``).
        input_spec: what the network receives.
        num_outputs: width of the output layer.
        output_activation: activation of the output layer (``None`` for logits).
        **hparams: family hyperparameters (see the builder's signature).

    Returns:
        An uncompiled ``keras.Model``.
    """
    arch = get(name)
    if input_spec.kind not in arch.input_kinds:
        raise DlsuiteError(
            f"architecture {name!r} takes {', '.join(arch.input_kinds)} inputs, not {input_spec.kind}; "
            f"choose one that does (`dlsuite list architectures`)."
        )
    check_hparams(name, hparams)
    return arch.builder(input_spec, num_outputs, output_activation=output_activation, **hparams)
