"""scikit-learn estimators over the task pipelines.

Each estimator is thin: ``fit`` turns arrays into :class:`~dlsuite.data.splits.Splits`,
builds the task's configuration from the estimator's parameters and calls the
same :func:`dlsuite.tasks.runner.fit` that ``dlsuite run`` uses. Parameters are
only stored in ``__init__``; what ``fit`` learns ends in an underscore. Fitted
estimators pickle (Keras 3 models pickle through the ``.keras`` format) and
``sklearn.base.clone`` gives an unfitted copy.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from dlsuite.errors import DlsuiteError


class TaskEstimator(BaseEstimator):
    """Shared machinery: configuration from parameters, training through the runner.

    Subclasses set ``task_name``, accept their hyperparameters in ``__init__``
    (``architecture``, ``epochs``, ``batch_size``, ``learning_rate``,
    ``validation_fraction``, ``early_stopping_patience``, ``hparams``,
    ``random_state``, ``verbose`` at least) and turn ``X`` into features.
    """

    task_name: ClassVar[str]

    def _task_config(self, **data: Any) -> tuple[Any, dict[str, Any]]:
        from dlsuite.tasks import runner

        overrides = {
            "architecture": self.architecture,
            "seed": int(self.random_state),
            "strategy": "default",
            "train.epochs": int(self.epochs),
            "train.batch_size": int(self.batch_size),
            "train.learning_rate": float(self.learning_rate),
            "train.early_stopping_patience": int(self.early_stopping_patience),
            "train.verbose": int(self.verbose),
            "model": dict(self.hparams or {}),
            **{f"data.{k}": v for k, v in data.items()},
        }
        return runner.resolve_config(self.task_name, values=overrides)

    def _train(self, task: Any, cfg: dict[str, Any], splits: Any) -> Any:
        from dlsuite.tasks import runner

        strategy = runner.make_strategy(cfg)
        with tempfile.TemporaryDirectory(prefix="dlsuite-fit-") as work:
            return runner.fit(task, cfg, splits, Path(work), strategy)


class ImageClassifier(ClassifierMixin, TaskEstimator):
    """Image classifier over arrays, trained by the image_classification pipeline.

    Args:
        architecture: an image architecture (``cnn``, ``resnet``, ``inception``, ``mlp``).
        epochs: maximum training epochs (early stopping on a validation split).
        batch_size: examples per batch.
        learning_rate: Adam learning rate.
        validation_fraction: share of the training data held out for early stopping.
        early_stopping_patience: epochs without validation improvement before stopping.
        augment: random translation (up to 10%) of training batches.
        hparams: architecture hyperparameters (``dlsuite list architectures``).
        image_shape: ``(height, width, channels)`` to reshape flat rows to (e.g.
            ``(8, 8, 1)`` for ``load_digits().data``); ``None`` infers square
            grayscale images from flat rows.
        random_state: seed for the split, initialization and shuffling.
        verbose: Keras ``fit`` verbosity (0 silent, 1 progress bar, 2 one line per epoch).

    Attributes:
        classes_: class labels seen in ``fit``.
        model_: the fitted Keras model (raw pixels in, class probabilities out).
        n_features_in_: number of values per example seen in ``fit``.
    """

    task_name = "image_classification"

    def __init__(
        self,
        architecture: str = "cnn",
        epochs: int = 100,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        validation_fraction: float = 0.1,
        early_stopping_patience: int = 20,
        augment: bool = True,
        hparams: dict | None = None,
        image_shape: tuple[int, int, int] | None = None,
        random_state: int = 0,
        verbose: int = 0,
    ):
        self.architecture = architecture
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.early_stopping_patience = early_stopping_patience
        self.augment = augment
        self.hparams = hparams
        self.image_shape = image_shape
        self.random_state = random_state
        self.verbose = verbose

    def _images(self, X: Any, fitting: bool = False) -> np.ndarray:
        X = np.asarray(X)
        if X.dtype == object or not np.issubdtype(X.dtype, np.number):
            raise DlsuiteError(f"X must hold numeric pixel values, got dtype {X.dtype}.")
        if X.ndim == 2:
            shape = self.image_shape
            if shape is None:
                side = math.isqrt(X.shape[1])
                if side * side != X.shape[1]:
                    raise DlsuiteError(
                        f"X has {X.shape[1]} values per row, not a square image; pass image_shape=(h, w, c)."
                    )
                shape = (side, side, 1)
            if math.prod(shape) != X.shape[1]:
                raise DlsuiteError(f"image_shape {tuple(shape)} does not hold {X.shape[1]} values per row.")
            X = X.reshape((-1, *shape))
        elif X.ndim == 3:
            X = X[..., None]
        elif X.ndim != 4:
            raise DlsuiteError(f"X must be (n, h*w*c), (n, h, w) or (n, h, w, c), got shape {X.shape}.")
        if fitting:
            self.n_features_in_ = int(np.prod(X.shape[1:]))
        elif X.shape[1:] != tuple(self.model_.input_shape[1:]):
            raise DlsuiteError(f"X images have shape {X.shape[1:]}, the model was fitted on {self.model_.input_shape[1:]}.")
        return X.astype(np.float32)

    def fit(self, X: Any, y: Any) -> "ImageClassifier":
        from dlsuite.data.splits import Splits
        import tensorflow as tf

        images = self._images(X, fitting=True)
        y = np.asarray(y)
        if len(images) != len(y):
            raise DlsuiteError(f"X has {len(images)} examples but y has {len(y)} labels.")
        check_classification_targets(y)
        self.classes_, ids = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise DlsuiteError("y holds a single class; a classifier needs at least two.")
        _, counts = np.unique(ids, return_counts=True)
        stratify = ids if counts.min() >= 2 and self.validation_fraction * len(ids) >= len(counts) else None
        train, val = train_test_split(
            np.arange(len(ids)), test_size=self.validation_fraction, random_state=self.random_state, stratify=stratify
        )
        data = lambda idx: tf.data.Dataset.from_tensor_slices((images[idx], ids[idx]))  # noqa: E731
        splits = Splits(
            data(train), data(val), data(val),
            {
                "class_names": [str(c) for c in self.classes_],
                "input_shape": list(images.shape[1:]),
                "input_dtype": "float32",
                "source": "arrays",
                "num_examples": {"train": len(train), "val": len(val), "test": len(val)},
            },
        )
        task, cfg = self._task_config(augment=bool(self.augment))
        self.model_ = self._train(task, cfg, splits)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        return np.asarray(self.model_.predict(self._images(X), batch_size=256, verbose=0))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
