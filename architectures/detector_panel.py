"""``auto``: several detectors trained side by side by one ``fit``; one of them is then chosen.

No unsupervised detector wins on every table (ADBench, Han et al. 2022), so the anomaly task's
``auto`` does not bet on one: a :class:`DetectorPanel` holds several detectors (by default
``robust_autoencoder``, ``ae_ensemble``, ``deep_svdd`` and the dense ``autoencoder``), trains
them together on the same batches (their objectives summed; their weights are disjoint, so each
learns as it would alone), and scores with the one selected after training. The selection is the
anomaly task's (``tasks/anomaly.py``, :func:`select_detector` there): by the validation labels
when there are some, else by a label-free rule on the training rows. The choice is a weight of
the model, so the saved model and the export score with the chosen detector.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import tensorflow as tf
from keras import ops

from dlsuite.architectures.custom_steps import CustomStepModel, scale_for_replicas, split_batch
from dlsuite.architectures.deep_svdd import CENTRE_BATCHES, batches_of
from dlsuite.architectures.registry import InputSpec, build, register
from dlsuite.errors import DlsuiteError

CANDIDATES = ("robust_autoencoder", "ae_ensemble", "deep_svdd", "autoencoder")


@keras.saving.register_keras_serializable(package="dlsuite")
class DetectorPanel(CustomStepModel):
    """Detectors trained together; ``anomaly_score`` is the selected one's.

    ``call(x)`` returns every detector's score, ``[batch, detectors]``. ``fit`` first lets each
    detector that needs it initialize from the data (Deep SVDD's centre), then minimizes the
    sum of their objectives; it logs ``loss`` (the sum) and ``<detector>_loss`` for each.

    Args:
        detectors: models with ``anomaly_score``, ``detector_loss``, ``validation_loss`` and
            ``update_statistics``, named distinctly.
        **kwargs: ``keras.Model`` arguments.
    """

    def __init__(self, detectors: Sequence[keras.Model], **kwargs: Any):
        super().__init__(**kwargs)
        self.detectors = list(detectors)
        self.detector_names = [d.name for d in self.detectors]
        if len(set(self.detector_names)) != len(self.detector_names):
            raise ValueError(f"detector names must differ, got {self.detector_names}")
        self.selected = self.add_weight(
            shape=(), initializer="zeros", trainable=False, aggregation="only_first_replica", name="selected",
            dtype="int32",
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.detector_trackers = [keras.metrics.Mean(name=f"{n}_loss") for n in self.detector_names]
        self.built = True

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.loss_tracker, *self.detector_trackers]

    @property
    def selected_name(self) -> str:
        """The name of the detector that scores."""
        return self.detector_names[int(self.selected.numpy())]

    def select(self, name: str) -> None:
        """Score with the detector called ``name`` from now on."""
        if name not in self.detector_names:
            raise DlsuiteError(
                f"no detector {name!r} in this panel; it holds {', '.join(self.detector_names)}."
            )
        self.selected.assign(self.detector_names.index(name))

    def call(self, inputs: Any, training: bool = False) -> Any:
        x = ops.cast(inputs, "float32")
        return ops.stack([ops.cast(d.anomaly_score(x), "float32") for d in self.detectors], axis=1)

    def anomaly_score(self, x: Any) -> Any:
        """The selected detector's anomaly score.

        Args:
            x: a batch of rows.

        Returns:
            float32 tensor ``[batch]``.
        """
        return ops.take(self(x), self.selected, axis=1)

    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, **kwargs: Any) -> Any:
        """``keras.Model.fit``, after each detector's own initialization from ``x`` (if it has one)."""
        needing = [d for d in self.detectors if callable(getattr(d, "initialize", None))]
        if needing:
            batches = batches_of(x, batch_size, CENTRE_BATCHES)
            for detector in needing:
                detector.initialize(batches)
        return super().fit(x, y, batch_size=batch_size, **kwargs)

    def _log(self, losses: Sequence[Any], batch_size: Any) -> dict[str, Any]:
        self.loss_tracker.update_state(ops.sum(ops.stack(losses)), sample_weight=batch_size)
        for tracker, loss in zip(self.detector_trackers, losses):
            tracker.update_state(loss, sample_weight=batch_size)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data: Any) -> dict[str, Any]:
        x, _ = split_batch(data)
        with tf.GradientTape() as tape:
            losses = [d.detector_loss(x) for d in self.detectors]
            scaled = self.optimizer.scale_loss(scale_for_replicas(ops.sum(ops.stack(losses))))
        gradients = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        for detector in self.detectors:
            detector.update_statistics(x)
        return self._log(losses, ops.shape(x)[0])

    def test_step(self, data: Any) -> dict[str, Any]:
        x, _ = split_batch(data)
        return self._log([d.validation_loss(x) for d in self.detectors], ops.shape(x)[0])

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "detectors": [keras.saving.serialize_keras_object(d) for d in self.detectors],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "DetectorPanel":
        config = dict(config)
        config["detectors"] = [keras.saving.deserialize_keras_object(d) for d in config["detectors"]]
        return cls(**config)


@register(
    "auto",
    input_kinds=("tabular",),
    summary="panel of tabular detectors trained together; the anomaly task keeps one: by validation "
    "labels if any, else by agreement with the panel's consensus on the training rows",
)
def build_auto(
    input_spec: InputSpec,
    num_outputs: int,
    *,
    output_activation: str | None = None,
    detectors: Sequence[str] = CANDIDATES,
    ensemble_members: int = 8,
) -> DetectorPanel:
    """Builds a panel of detectors, each with its default hyperparameters.

    Args:
        input_spec: ``tabular`` ``[F]`` rows (the anomaly task flattens windows).
        num_outputs: passed on to each detector's builder (they ignore it).
        output_activation: ignored.
        detectors: registered tabular detector names (``autoencoder`` is its dense variant).
        ensemble_members: autoencoders in the ``ae_ensemble`` detector.

    Returns:
        An uncompiled :class:`DetectorPanel` named ``"auto"``.
    """
    del output_activation
    names = [detectors] if isinstance(detectors, str) else list(detectors)
    unknown = [n for n in names if n not in CANDIDATES]
    if not names or unknown or len(set(names)) != len(names):
        raise DlsuiteError(
            f"auto detectors must be distinct names from {', '.join(CANDIDATES)}, got {names}; "
            "set them with --set 'model.detectors=[...]'."
        )
    extra = {"ae_ensemble": {"members": ensemble_members}}
    return DetectorPanel(
        [build(n, input_spec, num_outputs, None, **extra.get(n, {})) for n in names], name="auto"
    )
