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
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d

from dlsuite.errors import InvalidInputError


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

        def given(cast: Any, value: Any) -> Any:  # None: the architecture's or task's default
            return None if value is None else cast(value)

        overrides = {
            "architecture": self.architecture,
            "seed": int(self.random_state),
            "strategy": "default",
            "train.epochs": given(int, self.epochs),
            "train.batch_size": given(int, self.batch_size),
            "train.learning_rate": given(float, self.learning_rate),
            "train.early_stopping_patience": int(self.early_stopping_patience),
            "train.verbose": int(self.verbose),
            "model": dict(self.hparams or {}),
            **{f"data.{k}": v for k, v in data.items()},
        }
        return runner.resolve_config(self.task_name, values=overrides)

    def _train(self, task: Any, cfg: dict[str, Any], splits: Any) -> Any:
        from dlsuite.tasks import runner

        strategy = runner.make_strategy(cfg)
        with tempfile.TemporaryDirectory(prefix="dlsuite-fit-") as work:  # gone after fit: nothing to resume from
            return runner.fit(task, cfg, splits, Path(work), strategy, resumable=False)


class ClassifierEstimator(ClassifierMixin, TaskEstimator):
    """A classifier over a task pipeline: labels to ids, a validation holdout, argmax predictions.

    Subclasses implement ``fit`` (with :meth:`_encode_labels` and :meth:`_holdout`)
    and ``predict_proba``.
    """

    def _require_y(self, y: Any) -> None:
        """Before anything else in ``fit``: a classifier needs labels."""
        if y is None:
            raise InvalidInputError(f"{type(self).__name__} requires y to be passed, but the target y is None.")

    def _encode_labels(self, y: Any, num_examples: int, what: str = "examples") -> np.ndarray:
        """Set ``classes_`` and return each label's index in it."""
        y = column_or_1d(y, warn=True)  # a [n, 1] column warns, as scikit-learn's classifiers do
        if num_examples != len(y):
            raise InvalidInputError(f"X has {num_examples} {what} but y has {len(y)} labels.")
        check_classification_targets(y)
        self.classes_, ids = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise InvalidInputError("y holds one class only; a classifier needs at least two.")
        return ids

    def _holdout(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(train, validation) indices: ``validation_fraction`` held out for early stopping, stratified when possible."""
        _, counts = np.unique(ids, return_counts=True)
        stratify = ids if counts.min() >= 2 and self.validation_fraction * len(ids) >= len(counts) else None
        return train_test_split(
            np.arange(len(ids)), test_size=self.validation_fraction, random_state=self.random_state, stratify=stratify
        )

    def _array_splits(self, features: np.ndarray, ids: np.ndarray, metadata: dict[str, Any]) -> Any:
        """Splits over in-memory arrays; the validation part doubles as test (fit never evaluates)."""
        import tensorflow as tf

        from dlsuite.data.splits import Splits

        train, val = self._holdout(ids)
        data = lambda idx: tf.data.Dataset.from_tensor_slices((features[idx], ids[idx]))  # noqa: E731
        return Splits(
            data(train), data(val), data(val),
            {
                "class_names": [str(c) for c in self.classes_],
                "input_shape": list(features.shape[1:]),
                "input_dtype": "float32",
                "source": "arrays",
                "num_examples": {"train": len(train), "val": len(val), "test": len(val)},
                **metadata,
            },
        )

    def predict(self, X: Any) -> np.ndarray:
        best = self.predict_proba(X).argmax(axis=1)  # first: it raises NotFittedError before fit
        return self.classes_[best]


class ImageClassifier(ClassifierEstimator):
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

    # scikit-learn's checks fit on tables of 2-13 columns, which are not square images; with
    # image_shape unset these fail with the error a user gets (pass image_shape=(h, w, c)).
    SKLEARN_EXPECTED_FAILURES: ClassVar[dict[str, str]] = {
        check: "its rows (2-13 values) are not square images; image_shape is needed"
        for check in (
            "check_estimators_dtypes", "check_dtype_object", "check_pipeline_consistency", "check_estimators_nan_inf",
            "check_estimators_pickle", "check_f_contiguous_array_estimator", "check_classifier_data_not_an_array",
            "check_classifiers_one_label", "check_classifiers_classes", "check_classifiers_train",
            "check_classifiers_regression_target", "check_supervised_y_2d", "check_methods_sample_order_invariance",
            "check_methods_subset_invariance", "check_fit2d_1sample", "check_fit_score_takes_y",
            "check_dict_unchanged", "check_estimators_overwrite_params", "check_fit_idempotent",
            "check_fit_check_is_fitted", "check_n_features_in", "check_dont_overwrite_parameters",
            "check_fit2d_predict1d", "check_estimators_fit_returns_self", "check_readonly_memmap_input",
        )
    }

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
        X = check_array(X, dtype=np.float32, allow_nd=True, input_name="X")  # numbers, finite, dense, not empty
        if X.ndim == 2:
            shape = self.image_shape
            if shape is None:
                side = math.isqrt(X.shape[1])
                if side * side != X.shape[1]:
                    raise InvalidInputError(
                        f"X has {X.shape[1]} values per row, not a square image; pass image_shape=(h, w, c)."
                    )
                shape = (side, side, 1)
            if math.prod(shape) != X.shape[1]:
                raise InvalidInputError(f"image_shape {tuple(shape)} does not hold {X.shape[1]} values per row.")
            X = X.reshape((-1, *shape))
        elif X.ndim == 3:
            X = X[..., None]
        elif X.ndim != 4:
            raise InvalidInputError(f"X must be (n, h*w*c), (n, h, w) or (n, h, w, c), got shape {X.shape}.")
        if fitting:
            self.n_features_in_ = int(np.prod(X.shape[1:]))
        elif X.shape[1:] != tuple(self.model_.input_shape[1:]):
            raise InvalidInputError(
                f"X has {int(np.prod(X.shape[1:]))} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input (images of shape {X.shape[1:]}; fitted on "
                f"{self.model_.input_shape[1:]})."
            )
        return X

    def fit(self, X: Any, y: Any) -> "ImageClassifier":
        self._require_y(y)
        images = self._images(X, fitting=True)
        splits = self._array_splits(images, self._encode_labels(y, len(images)), {})
        task, cfg = self._task_config(augment=bool(self.augment))
        self.model_ = self._train(task, cfg, splits)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        return np.asarray(self.model_.predict(self._images(X), batch_size=256, verbose=0))


class SentimentClassifier(ClassifierEstimator):
    """Text classifier over raw strings, trained by the sentiment pipeline.

    Args:
        architecture: a sentiment architecture (``lstm``, ``gru``, ``rnn``,
            ``transformer``, ``cnn``, ``transfer``, ``mlp`` over TF-IDF n-grams, or
            ``bert``, a pretrained encoder: ``hparams={"preset": "minilm"}`` after
            ``dlsuite fetch minilm``, or a Hugging Face BERT folder).
        epochs: maximum training epochs (early stopping on a validation split);
            ``None``: the architecture's recommendation (bert: 3), else the task's 10.
        batch_size: examples per batch (``None``: bert 32, else 64).
        learning_rate: peak learning rate (``None``: bert 5e-5 with AdamW, warm-up and
            linear decay; else Adam at the task's 0.003).
        validation_fraction: share of the training data held out for early stopping.
        early_stopping_patience: epochs without validation improvement before stopping.
        max_tokens: vocabulary size of the ``TextVectorization`` layer.
        sequence_length: tokens per text (``None``: the 99th percentile of the training texts;
            bert: the 99.9th percentile of their WordPiece ids, a multiple of 16).
        ngrams: n-gram order of the ``mlp`` bag of words.
        word_vectors: a GloVe/word2vec file or ``.npz`` the token embedding starts from
            (its width must equal ``hparams["embedding_dim"]``; see README "Sentiment analysis").
        freeze_word_vectors: keep the pretrained embedding fixed while training.
        word_vectors_vocabulary: also add the vectors file's first N words that training lacks
            to the vocabulary.
        hparams: architecture hyperparameters (``dlsuite list architectures``).
        random_state: seed for the split, initialization and shuffling.
        verbose: Keras ``fit`` verbosity (0 silent, 1 progress bar, 2 one line per epoch).

    Attributes:
        classes_: class labels seen in ``fit``.
        model_: the fitted Keras model (raw strings in, class probabilities out).
        cleaning_: what ``fit`` did to the texts (``non_utf8_replaced``, ``empty_dropped``).
    """

    task_name = "sentiment"

    def __init__(
        self,
        architecture: str = "lstm",
        epochs: int | None = None,
        batch_size: int | None = None,
        learning_rate: float | None = None,
        validation_fraction: float = 0.1,
        early_stopping_patience: int = 3,
        max_tokens: int = 20000,
        sequence_length: int | None = None,
        ngrams: int = 2,
        word_vectors: str | None = None,
        freeze_word_vectors: bool = False,
        word_vectors_vocabulary: int = 0,
        hparams: dict | None = None,
        random_state: int = 0,
        verbose: int = 0,
    ):
        self.architecture = architecture
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.early_stopping_patience = early_stopping_patience
        self.max_tokens = max_tokens
        self.sequence_length = sequence_length
        self.ngrams = ngrams
        self.word_vectors = word_vectors
        self.freeze_word_vectors = freeze_word_vectors
        self.word_vectors_vocabulary = word_vectors_vocabulary
        self.hparams = hparams
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # a sequence of texts, not a numeric table
        tags.input_tags.one_d_array = True
        tags.input_tags.string = True
        return tags

    @staticmethod
    def _texts(X: Any) -> list[Any]:
        """A 1-D list/array/Series of strings (or a single-column 2-D array) as a list."""
        if isinstance(X, (str, bytes)):
            raise InvalidInputError("X must be a sequence of texts, not a single string; wrap it in a list.")
        X = np.asarray(X, dtype=object)
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        if X.ndim != 1:
            raise InvalidInputError(f"X must be a 1-D sequence of texts, got shape {X.shape}.")
        return X.tolist()

    def fit(self, X: Any, y: Any) -> "SentimentClassifier":
        self._require_y(y)
        texts = self._texts(X)
        ids = self._encode_labels(y, len(texts), "texts")
        splits = self._splits(texts, ids, *self._holdout(ids))
        self.cleaning_ = splits.metadata["cleaning"]
        task, cfg = self._task_config(
            max_tokens=int(self.max_tokens),
            sequence_length=None if self.sequence_length is None else int(self.sequence_length),
            ngrams=int(self.ngrams),
            word_vectors=None if self.word_vectors is None else str(self.word_vectors),
            freeze_word_vectors=bool(self.freeze_word_vectors),
            word_vectors_vocabulary=int(self.word_vectors_vocabulary),
        )
        self.model_ = self._train(task, cfg, splits)
        return self

    def _splits(self, texts: list[Any], ids: np.ndarray, train: np.ndarray, val: np.ndarray) -> Any:
        """Cleaned train/val splits (val doubles as test: the runner only trains on them)."""
        import tensorflow as tf

        from dlsuite.data.splits import Splits
        from dlsuite.data.text import clean_texts

        parts, cleaning = {}, {}
        for name, idx in (("train", train), ("val", val)):
            t, y, counts = clean_texts([texts[i] for i in idx], ids[idx], f"X ({name} part)")
            parts[name] = tf.data.Dataset.from_tensor_slices((t, y.astype(np.int64)))
            cleaning = {k: cleaning.get(k, 0) + v for k, v in counts.items()}
            if name == "train" and len(np.unique(y)) < len(self.classes_):
                raise InvalidInputError("after dropping empty texts, some class has no training example left.")
        return Splits(
            parts["train"], parts["val"], parts["val"],
            {
                "class_names": [str(c) for c in self.classes_],
                "input_shape": [],
                "input_dtype": "string",
                "source": "arrays",
                "cleaning": cleaning,
            },
        )

    def predict_proba(self, X: Any) -> np.ndarray:
        import tensorflow as tf

        check_is_fitted(self, "model_")
        texts = [t if isinstance(t, (str, bytes)) else "" if t is None else str(t) for t in self._texts(X)]
        ds = tf.data.Dataset.from_tensor_slices(np.array(texts, dtype=object)).batch(256)
        return np.concatenate([np.asarray(self.model_(batch, training=False)) for batch in ds])


from sklearn.base import OutlierMixin  # noqa: E402  (kept with the class that uses it)


class AnomalyDetector(OutlierMixin, TaskEstimator):
    """Unsupervised outlier detector over arrays, trained by the anomaly pipeline.

    Follows scikit-learn's outlier detectors (``IsolationForest``): ``score_samples`` is
    higher for more normal examples, ``decision_function`` is negative for outliers,
    ``predict`` gives 1 (normal) or -1 (anomaly). As in PyOD, ``threshold_`` is the
    ``(1 - contamination)`` quantile of the detector's anomaly scores on the training data and
    ``decision_scores_`` holds those scores (higher = more unusual).

    Args:
        architecture: a detector family: ``autoencoder``, ``som``, ``rbm``, ``forecaster`` (windows), or for
            rows ``deep_svdd``, ``robust_autoencoder``, ``ae_ensemble`` or ``auto`` (label-free choice).
        hparams: its hyperparameters (``{"variant": "lstm"}``; ``dlsuite list architectures``).
        contamination: expected share of anomalies in the training data, in (0, 0.5].
        epochs: maximum training epochs (early stopping on a validation part).
        batch_size: examples per batch.
        learning_rate: Adam learning rate.
        validation_fraction: share of ``X`` held out for early stopping (the last part of windows).
        early_stopping_patience: epochs without validation improvement before stopping.
        random_state: seed of the split, initialization and shuffling.
        verbose: Keras ``fit`` verbosity.

    Attributes:
        model_: the fitted Keras model (raw rows or windows in, anomaly scores out).
        threshold_: scores above it are anomalies.
        offset_: ``-threshold_`` (``decision_function = score_samples - offset_``).
        decision_scores_: anomaly scores of the training examples the detector learned from.
        n_features_in_: values per row (rows) or channels per point (windows) seen in ``fit``.
    """

    task_name = "anomaly"

    def __init__(
        self,
        architecture: str = "autoencoder",
        hparams: dict | None = None,
        contamination: float = 0.1,
        epochs: int = 30,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        validation_fraction: float = 0.1,
        early_stopping_patience: int = 5,
        random_state: int = 0,
        verbose: int = 0,
    ):
        self.architecture = architecture
        self.hparams = hparams
        self.contamination = contamination
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.early_stopping_patience = early_stopping_patience
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing values are imputed with the training mean
        return tags

    def _features(self, X: Any, fitting: bool = False) -> np.ndarray:
        from dlsuite.data.anomaly_data import min_fit_examples

        fraction = self.validation_fraction
        fewest = min_fit_examples(fraction) if fitting and 0 < fraction < 1 else 1
        # scikit-learn's own checks: numbers only (NaN allowed), no sparse matrices, no empty arrays.
        try:
            X = check_array(
                X, dtype=np.float32, ensure_all_finite="allow-nan", allow_nd=True, ensure_min_samples=fewest,
                input_name="X",
            )
        except ValueError as e:
            if "could not convert" not in str(e):
                raise
            raise InvalidInputError(f"X must hold numbers (NaN for missing); encode text columns first ({e}).") from e
        if X.ndim not in (2, 3):
            raise InvalidInputError(f"X must be [n, features] rows or [n, window, channels] windows, got shape {X.shape}.")
        if fitting:
            self.n_features_in_ = int(X.shape[-1])
            self.input_shape_ = tuple(int(d) for d in X.shape[1:])
        elif tuple(X.shape[1:]) != self.input_shape_:
            raise InvalidInputError(
                f"X has {X.shape[-1]} features, but {type(self).__name__} is expecting {self.n_features_in_} features "
                f"as input (examples of shape {tuple(X.shape[1:])}; fitted on {self.input_shape_})."
            )
        return X

    def fit(self, X: Any, y: Any = None) -> "AnomalyDetector":
        """Learn normal behaviour from ``X`` (``y`` is ignored: unsupervised)."""
        from dlsuite.data.anomaly_data import fit_arrays
        from dlsuite.tasks.anomaly import score_layer
        from dlsuite.thresholds import contamination_threshold

        features = self._features(X, fitting=True)
        splits = fit_arrays(features, validation_fraction=self.validation_fraction, seed=int(self.random_state))
        task, cfg = self._task_config(train_on="all")
        cfg["threshold"].update(method="contamination", contamination=float(self.contamination))
        self.model_ = self._train(task, cfg, splits)
        self.decision_scores_ = self._anomaly_scores(features)
        # As scikit-learn's detectors do, ``contamination`` is the share of the rows given to fit that
        # fit_predict flags (the task's threshold saw its training part only); the model carries it too.
        self.threshold_ = contamination_threshold(self.decision_scores_, float(self.contamination))
        score_layer(self.model_).threshold = self.threshold_
        self.offset_ = -self.threshold_
        return self

    def _anomaly_scores(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model_.predict(X, batch_size=512, verbose=0), np.float64).reshape(-1)

    def score_samples(self, X: Any) -> np.ndarray:
        """The opposite of the anomaly score: higher = more normal."""
        check_is_fitted(self, "model_")
        return -self._anomaly_scores(self._features(X))

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for anomalies, positive for normal examples."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """1 for normal examples, -1 for anomalies (score above ``threshold_``)."""
        return np.where(self.decision_function(X) < 0, -1, 1)


class SpeechRecognizer(ClassifierEstimator):
    """Spoken-word classifier over waveform arrays, trained by the speech pipeline.

    Args:
        architecture: a speech architecture (``cnn``, ``resnet``, ``crnn``, ``lstm``, ``gru``, ``transformer``).
        sample_rate: rate of the waveforms in ``X`` (Hz).
        duration: seconds every clip is padded or cropped to.
        features: ``"log_mel"`` or ``"mfcc"`` front-end.
        epochs: maximum training epochs (early stopping on a validation split).
        batch_size: examples per batch.
        learning_rate: Adam learning rate.
        validation_fraction: share of the training data held out for early stopping.
        early_stopping_patience: epochs without validation improvement before stopping.
        augment: SpecAugment masking and background-noise mixing of training batches.
        hparams: architecture hyperparameters (``dlsuite list architectures``).
        random_state: seed for the split, initialization and shuffling.
        verbose: Keras ``fit`` verbosity.

    Attributes:
        classes_: class labels seen in ``fit``.
        model_: the fitted Keras model (waveforms ``[n, samples]`` in, class probabilities out).
        num_samples_: samples per clip the model takes (``sample_rate * duration``); clips of
            any length are padded or cropped to it.
        n_features_in_: columns of ``X`` in ``fit`` when ``X`` was an array (not a list of clips).
    """

    task_name = "speech"

    SKLEARN_EXPECTED_FAILURES: ClassVar[dict[str, str]] = {
        "check_n_features_in_after_fitting": "clips of any length are padded or cropped, so other widths are valid",
        "check_classifiers_train": "a log-mel spectrogram of a 2-5 sample 'clip' keeps too little of the blobs' classes",
    }

    def __init__(
        self,
        architecture: str = "cnn",
        sample_rate: int = 8000,
        duration: float = 1.0,
        features: str = "log_mel",
        epochs: int = 15,
        batch_size: int = 64,
        learning_rate: float = 2e-3,
        validation_fraction: float = 0.1,
        early_stopping_patience: int = 5,
        augment: bool = False,
        hparams: dict | None = None,
        random_state: int = 0,
        verbose: int = 0,
    ):
        self.architecture = architecture
        self.sample_rate = sample_rate
        self.duration = duration
        self.features = features
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.early_stopping_patience = early_stopping_patience
        self.augment = augment
        self.hparams = hparams
        self.random_state = random_state
        self.verbose = verbose

    def _waveforms(self, X: Any) -> np.ndarray:
        from dlsuite.data.audio import standardize

        if not isinstance(X, (list, tuple)):  # clips of different lengths come as a list
            X = check_array(X, dtype=np.float32, input_name="X")  # [n, samples]: numbers, finite, dense, not empty
        return standardize(X, sample_rate=int(self.sample_rate), duration=float(self.duration))

    def fit(self, X: Any, y: Any) -> "SpeechRecognizer":
        from dlsuite.data.spectrogram import FEATURE_TYPES

        self._require_y(y)
        if self.features not in FEATURE_TYPES:
            raise InvalidInputError(f"features must be one of {', '.join(FEATURE_TYPES)}, got {self.features!r}.")
        clips = self._waveforms(X)
        splits = self._array_splits(
            clips, self._encode_labels(y, len(clips), "clips"),
            {"sample_rate": int(self.sample_rate), "num_samples": int(clips.shape[1])},
        )
        task, cfg = self._task_config(augment=bool(self.augment), sample_rate=int(self.sample_rate),
                                      duration=float(self.duration))
        cfg["features"]["type"] = self.features
        if isinstance(X, np.ndarray) or hasattr(X, "shape"):
            self.n_features_in_ = int(np.shape(X)[1])
        self.num_samples_ = int(clips.shape[1])
        self.model_ = self._train(task, cfg, splits)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        return np.asarray(self.model_.predict(self._waveforms(X), batch_size=256, verbose=0))


class FraudDetector(ClassifierEstimator):
    """Binary fraud classifier over a table, trained by the fraud pipeline.

    ``X`` is a DataFrame (numeric and text columns; text is one-hot encoded, missing values
    are imputed) or a numeric array. The decision threshold is chosen on a validation part
    of ``X`` by cost or by a target precision/recall, as in ``dlsuite run fraud``.

    Args:
        architecture: ``mlp``, ``rbfn``, ``dbn`` or ``autoencoder`` (trained on legitimate rows only).
        imbalance: ``none``, ``class_weight``, ``focal``, ``resample`` or ``gan``.
        threshold_method: ``cost``, ``precision`` or ``recall``.
        threshold_target: the precision or recall to reach (``precision`` / ``recall`` methods).
        false_negative_cost: cost of a missed fraud (``cost`` method).
        false_positive_cost: cost of a false alarm (``cost`` method).
        epochs: maximum training epochs (early stopping on the validation part).
        batch_size: examples per batch.
        learning_rate: Adam learning rate.
        validation_fraction: share of ``X`` held out for early stopping and the threshold
            (the latest rows when ``time_column`` is set, else a stratified random part).
        early_stopping_patience: epochs without validation improvement before stopping.
        hparams: architecture hyperparameters (``dlsuite list architectures``).
        time_column: a column of ``X`` with timestamps, used for the split and not as a feature.
        categorical_columns: integer columns to one-hot encode instead of normalizing.
        max_categories: the most distinct values a text column may have.
        random_state: seed for the split, initialization and shuffling.
        verbose: Keras ``fit`` verbosity.

    Attributes:
        classes_: the two labels seen in ``fit``; ``classes_[1]`` is fraud.
        model_: the fitted Keras model (a dict of raw columns in, fraud probability out).
        threshold_: fraud probabilities at or above it are predicted as fraud.
        feature_names_in_: the feature columns (DataFrame input).
        n_features_in_: number of columns of ``X`` seen in ``fit``.
    """

    task_name = "fraud"

    SKLEARN_EXPECTED_FAILURES: ClassVar[dict[str, str]] = {
        "check_classifiers_train": "predict applies threshold_ (chosen by cost or target), not argmax of predict_proba",
    }

    def __init__(
        self,
        architecture: str = "mlp",
        imbalance: str = "class_weight",
        threshold_method: str = "cost",
        threshold_target: float = 0.9,
        false_negative_cost: float = 20.0,
        false_positive_cost: float = 1.0,
        epochs: int = 30,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        validation_fraction: float = 0.2,
        early_stopping_patience: int = 5,
        hparams: dict | None = None,
        time_column: str | None = None,
        categorical_columns: tuple = (),
        max_categories: int = 100,
        random_state: int = 0,
        verbose: int = 0,
    ):
        self.architecture = architecture
        self.imbalance = imbalance
        self.threshold_method = threshold_method
        self.threshold_target = threshold_target
        self.false_negative_cost = false_negative_cost
        self.false_positive_cost = false_positive_cost
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.early_stopping_patience = early_stopping_patience
        self.hparams = hparams
        self.time_column = time_column
        self.categorical_columns = categorical_columns
        self.max_categories = max_categories
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # imputed with the training mean
        tags.input_tags.string = True  # text columns are categories
        tags.classifier_tags.multi_class = False  # legitimate vs fraud
        return tags

    @staticmethod
    def _frame(X: Any) -> "Any":
        import pandas as pd

        if isinstance(X, pd.DataFrame):
            if X.empty:
                raise InvalidInputError(f"X is an empty table (shape {X.shape}); it needs rows and columns.")
            return X.reset_index(drop=True).rename(columns=str)
        # Arrays: dense, 2-D, not empty; text and NaN stay (categories and missing values).
        X = check_array(X, dtype=None, ensure_all_finite="allow-nan", input_name="X")
        return pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])

    def fit(self, X: Any, y: Any) -> "FraudDetector":
        from dlsuite import config
        from dlsuite.tasks.fraud import fields_of, frame_splits

        self._require_y(y)
        df = self._frame(X)
        ids = self._encode_labels(y, len(df), "rows")
        if len(self.classes_) != 2:
            raise InvalidInputError(
                f"Only binary classification is supported: y must hold two classes (legitimate, fraud), "
                f"got {len(self.classes_)}."
            )
        self.n_features_in_ = int(df.shape[1])
        if hasattr(X, "columns"):
            self.feature_names_in_ = np.asarray(df.columns, dtype=object)
        label = "__label__"
        splits = frame_splits(
            df.assign(**{label: ids}), label_column=label, time_column=self.time_column,
            categorical_columns=list(self.categorical_columns), max_categories=int(self.max_categories),
            val_fraction=float(self.validation_fraction), test_fraction=None, seed=int(self.random_state), source="X",
        )
        task, cfg = self._task_config(max_categories=int(self.max_categories))
        settings = {
            "imbalance.method": self.imbalance,
            "threshold.method": self.threshold_method,
            "threshold.target": float(self.threshold_target),
            "cost.false_negative": float(self.false_negative_cost),
            "cost.false_positive": float(self.false_positive_cost),
        }
        for dotted, value in settings.items():
            config.merge(cfg, config.nest(dotted, value), source=f"FraudDetector {dotted.replace('.', '_')}")
        config.check_choices(cfg, task.choices())
        self.model_ = self._train(task, cfg, splits)
        self.fields_ = fields_of(splits.metadata)
        self.threshold_ = float(splits.metadata["threshold"])
        return self

    def _fraud_probability(self, X: Any) -> np.ndarray:
        from dlsuite.tasks.fraud import fraud_probability, rows_to_fields

        check_is_fitted(self, "model_")
        df = self._frame(X)
        if not hasattr(self, "feature_names_in_") and df.shape[1] != self.n_features_in_:
            raise InvalidInputError(
                f"X has {df.shape[1]} features, but {type(self).__name__} is expecting {self.n_features_in_} "
                "features as input."
            )
        return np.asarray(fraud_probability(self.model_, rows_to_fields(df, self.fields_)), np.float64)

    def decision_function(self, X: Any) -> np.ndarray:
        """Positive where a row is predicted fraud: its fraud probability's margin over ``threshold_``.

        The margin is taken from the float just below ``threshold_`` so that a probability equal
        to the threshold (flagged, as in serving) gets a positive value, as scikit-learn requires.
        """
        return self._fraud_probability(X) - np.nextafter(self.threshold_, -np.inf)

    def predict_proba(self, X: Any) -> np.ndarray:
        p = self._fraud_probability(X)
        return np.stack([1.0 - p, p], axis=1)

    def predict(self, X: Any) -> np.ndarray:
        """``classes_[1]`` (fraud) where the probability reaches ``threshold_``, else ``classes_[0]``."""
        fraud = self.decision_function(X) > 0
        return self.classes_[fraud.astype(np.int64)]
