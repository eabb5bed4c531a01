"""The Task contract: what is specific to one task, and nothing else.

The runner (``tasks/runner.py``) drives every task through the same flow:
load -> adapt preprocessing on train -> build under the strategy -> fit ->
evaluate -> export -> verify. A task module subclasses :class:`Task`, fills in
the abstract methods and registers itself with :func:`register`.
"""

from __future__ import annotations

import abc
import copy
from typing import Any, Callable, ClassVar, Iterator, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from dlsuite.architectures import InputSpec
from dlsuite.architectures import build as build_architecture
from dlsuite.data.splits import Splits
from dlsuite.distribute import STRATEGIES
from dlsuite.optimization import OPTIMIZERS, SCHEDULES
from dlsuite.registry import Registry

# name -> (function, input signature); the first is served as serving_default.
Endpoints = dict[str, tuple[Callable[..., dict[str, tf.Tensor]], Sequence[tf.TensorSpec]]]


def common_defaults() -> dict[str, Any]:
    """Sections every task shares; tasks override values, never the shape."""
    return {
        "task": "",
        "architecture": "",
        "strategy": "auto",
        "seed": 0,
        "data": {
            "dataset": "",
            "path": None,
            "data_dir": None,
            "download": True,
            "val_fraction": 0.1,
            "test_fraction": 0.2,
            "augment": False,
            "cache": True,
            "shuffle_buffer": 100000,
        },
        "model": {},
        "train": {
            "epochs": 30,
            "batch_size": 64,
            "learning_rate": 0.001,
            "optimizer": "adam",
            "lr_schedule": "constant",
            "warmup_fraction": 0.1,
            "weight_decay": None,
            "early_stopping_patience": 10,
            "steps_per_execution": None,
            "jit_compile": None,
            "deterministic": True,
            "verbose": None,
        },
        "distribute": {"devices": None, "logical_cpus": 0, "tpu": None},
        "export": {"root": "saved_models", "verify": True},
        "run": {"root": "runs"},
    }


class Task(abc.ABC):
    """One task pipeline.

    Class attributes:
        name: CLI name, module name and ``saved_models/`` folder.
        summary: one line for ``dlsuite list tasks``.
        input_kind: what its networks receive (an ``INPUT_KINDS`` value).
        architectures: families this task offers; the first is the default.
        embedded_datasets: offline datasets shipped with dlsuite, name -> description.
        supporting_architectures: families the task uses for something other than its
            network, name -> what for (fraud: ``gan`` oversamples the rare class).
        reads_tfds: whether ``data.dataset`` may name a TensorFlow Datasets dataset.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    input_kind: ClassVar[str]
    architectures: ClassVar[tuple[str, ...]]
    embedded_datasets: ClassVar[Mapping[str, str]]
    supporting_architectures: ClassVar[Mapping[str, str]] = {}
    reads_tfds: ClassVar[bool] = True

    # -- configuration -------------------------------------------------------------
    def config_overrides(self) -> dict[str, Any]:
        """Task-specific defaults and extra keys, merged over :func:`common_defaults`."""
        return {}

    def default_config(self) -> dict[str, Any]:
        cfg = common_defaults()
        cfg["task"] = self.name
        cfg["architecture"] = self.architectures[0]
        cfg["data"]["dataset"] = next(iter(self.embedded_datasets))
        _deep_update(cfg, self.config_overrides())
        return cfg

    def choices(self) -> dict[str, Sequence[Any]]:
        return {
            "task": [self.name],
            "architecture": self.architectures,
            "strategy": STRATEGIES,
            "train.optimizer": OPTIMIZERS,
            "train.lr_schedule": SCHEDULES,
            "train.jit_compile": [None, True, False],
            "train.verbose": [None, 0, 1, 2],
        }

    # -- data and model ------------------------------------------------------------
    @abc.abstractmethod
    def load(self, cfg: Mapping[str, Any]) -> Splits:
        """The configured source as train/val/test splits of raw features."""

    @abc.abstractmethod
    def raw_input(self, splits: Splits) -> keras.KerasTensor:
        """``keras.Input`` for raw features, the input of the exported model."""

    @abc.abstractmethod
    def preprocessor(self, splits: Splits, cfg: Mapping[str, Any]) -> keras.layers.Layer:
        """Raw features -> network input, adapted on ``splits.train`` only."""

    def augmenter(
        self, splits: Splits, cfg: Mapping[str, Any], preprocessor: keras.layers.Layer
    ) -> keras.layers.Layer | None:
        """Random transform of preprocessed training batches (``data.augment``), or ``None``."""
        return None

    @abc.abstractmethod
    def network_input(self, splits: Splits) -> InputSpec:
        """What the network receives after preprocessing."""

    @abc.abstractmethod
    def head(self, splits: Splits) -> tuple[int, str | None]:
        """(number of outputs, output activation)."""

    def build_network(self, splits: Splits, cfg: Mapping[str, Any]) -> keras.Model:
        """The network (preprocessed input -> outputs), built inside the strategy scope.

        The default builds ``cfg["architecture"]`` over :meth:`network_input` with
        :meth:`head`; tasks whose networks need more (an autoencoder sized to its
        input) override it.
        """
        num_outputs, activation = self.head(splits)
        return build_architecture(cfg["architecture"], self.network_input(splits), num_outputs, activation, **cfg["model"])

    def training_examples(self, splits: Splits, cfg: Mapping[str, Any]) -> tf.data.Dataset:
        """The unbatched, raw training examples the pipeline batches (resampling goes here)."""
        return splits.train

    def fit_options(self, splits: Splits, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """Extra keyword arguments for ``model.fit`` (``class_weight``, for instance)."""
        return {}

    def pipeline_options(self, splits: Splits, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """Extra keyword arguments for :func:`dlsuite.data.pipeline.batched` of the train and val splits.

        Called after :meth:`preprocessor` (``length_buckets`` for token ids, for instance).
        """
        return {}

    def inference_model(
        self, raw_input: Any, preprocessor: keras.layers.Layer, network: keras.Model, splits: Splits
    ) -> keras.Model:
        """Raw features -> what the task serves from; the runner saves, evaluates and exports it."""
        return keras.Model(raw_input, network(preprocessor(raw_input)), name=f"{self.name}_{network.name}")

    def calibrate(self, model: keras.Model, splits: Splits, cfg: Mapping[str, Any]) -> None:
        """After training: learn what is not a weight (a decision threshold) into ``splits.metadata``.

        Whatever lands in ``splits.metadata`` reaches evaluation, the export's
        metadata asset and :meth:`serving_endpoints`.
        """

    @abc.abstractmethod
    def loss_and_metrics(self, splits: Splits, cfg: Mapping[str, Any]) -> tuple[Any, list[Any]]:
        """Loss and metrics for ``model.compile``."""

    # -- evaluation and serving -----------------------------------------------------
    @abc.abstractmethod
    def evaluate(self, model: keras.Model, splits: Splits, run_dir: str, batch_size: int) -> dict[str, Any]:
        """Task metrics on the test split; writes its plots into ``run_dir``."""

    @abc.abstractmethod
    def serving_endpoints(self, model: keras.Model, metadata: Mapping[str, Any]) -> Endpoints:
        """Signatures of the export over raw inputs; the first becomes ``serving_default``."""

    @abc.abstractmethod
    def verification_inputs(self, splits: Splits, metadata: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
        """endpoint name -> keyword arguments, to compare in-process and reloaded outputs."""

    @abc.abstractmethod
    def predict_inputs(self, inputs: Sequence[str], metadata: Mapping[str, Any]) -> tuple[str, dict[str, np.ndarray]]:
        """CLI ``predict`` arguments -> (signature name, its keyword arguments)."""

    @abc.abstractmethod
    def format_predictions(self, inputs: Sequence[str], outputs: Mapping[str, np.ndarray]) -> list[str]:
        """One printable line per CLI input."""

    def serving_batches(
        self, ds: tf.data.Dataset, metadata: Mapping[str, Any], batch_size: int
    ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        """An unbatched split as ``serving_default`` keyword arguments, batch by batch, with the labels.

        What scores another runtime of the export (TFLite) on the test split.

        Args:
            ds: an unbatched split of raw ``(features, label)`` examples.
            metadata: the export's metadata.
            batch_size: examples per batch.

        Returns:
            An iterator of ``(keyword arguments, labels)`` in NumPy.
        """
        raise NotImplementedError(f"task {self.name} does not feed its serving signature from a split.")

    def served_score(self, outputs: Mapping[str, np.ndarray], labels: np.ndarray) -> float | None:
        """The task's headline metric from ``serving_default`` outputs over a whole split.

        Args:
            outputs: output name -> values of every example, in split order.
            labels: the examples' labels, as :meth:`serving_batches` gives them.

        Returns:
            The metric, or ``None`` when the labels cannot define it (one class only).
        """
        raise NotImplementedError(f"task {self.name} does not score its serving outputs.")

    def list_datasets(self) -> list[tuple[str, str]]:
        return list(self.embedded_datasets.items())


def _deep_update(base: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


TASKS: Registry[Task] = Registry("task", "dlsuite list tasks")


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: register one instance of the task under its name."""
    TASKS.register(cls.name, cls())
    return cls
