"""ImageClassifier: the scikit-learn contract over the image pipeline."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from dlsuite import DlsuiteError
from dlsuite.estimators import ImageClassifier

QUICK = dict(architecture="mlp", epochs=4, early_stopping_patience=4)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)


@pytest.fixture(scope="module")
def fitted(digits):
    X_train, _, y_train, _ = digits
    labels = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    return ImageClassifier(**QUICK).fit(X_train, labels[y_train]), labels


def test_fit_predict_score_with_string_labels(fitted, digits):
    clf, labels = fitted
    _, X_test, _, y_test = digits
    assert list(clf.classes_) == sorted(labels)
    proba = clf.predict_proba(X_test)
    assert proba.shape == (len(X_test), 10) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert set(clf.predict(X_test)) <= set(labels)
    assert clf.score(X_test, labels[y_test]) > 0.5
    assert clf.n_features_in_ == 64


def test_clone_gives_an_unfitted_copy_with_the_same_params(fitted):
    clf, _ = fitted
    copy = clone(clf)
    assert copy.get_params() == clf.get_params()
    assert not hasattr(copy, "model_")


def test_pickle_round_trip_predicts_the_same(fitted, digits):
    clf, _ = fitted
    _, X_test, _, _ = digits
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(again.predict_proba(X_test), clf.predict_proba(X_test), atol=1e-6)


def test_grid_search_and_pipeline(digits):
    X_train, X_test, y_train, y_test = digits
    X_small, y_small = X_train[:400], y_train[:400]
    search = GridSearchCV(ImageClassifier(**QUICK), {"learning_rate": [1e-3, 3e-3]}, cv=2)
    search.fit(X_small, y_small)
    assert search.best_params_["learning_rate"] in (1e-3, 3e-3)
    assert len(search.cv_results_["mean_test_score"]) == 2
    pipe = Pipeline([("scale", FunctionTransformer(lambda X: X * (255.0 / 16.0))), ("clf", ImageClassifier(**QUICK))])
    pipe.fit(X_small, y_small)
    assert pipe.score(X_test, y_test) > 0.3


def test_bad_input_is_clear(fitted):
    clf, _ = fitted
    with pytest.raises(DlsuiteError, match="not a square image; pass image_shape"):
        ImageClassifier(**QUICK).fit(np.zeros((20, 10)), np.arange(20) % 2)
    with pytest.raises(DlsuiteError, match="one class only"):
        ImageClassifier(**QUICK).fit(np.zeros((20, 64)), np.zeros(20))
    with pytest.raises(DlsuiteError, match="X has .* features, but ImageClassifier is expecting"):
        clf.predict(np.zeros((2, 16, 16)))
    with pytest.raises(DlsuiteError, match="no hyperparameter 'depthh'"):
        ImageClassifier(architecture="resnet", hparams={"depthh": 2}).fit(np.zeros((20, 64)), np.arange(20) % 2)
