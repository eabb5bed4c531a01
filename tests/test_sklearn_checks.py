"""scikit-learn's own estimator checks, run on every estimator with small, fast settings.

The checks that an estimator cannot pass by design are listed, each with its reason, in the
estimator's ``SKLEARN_EXPECTED_FAILURES`` (they run and are expected to fail).
"""

import pytest
from sklearn.utils import estimator_checks
from sklearn.utils.estimator_checks import parametrize_with_checks

from dlsuite.estimators import AnomalyDetector, FraudDetector, ImageClassifier, SentimentClassifier, SpeechRecognizer

# One or two small dense layers, a few epochs: each check fits in about a second.
ESTIMATORS = [
    AnomalyDetector(epochs=2, batch_size=32, early_stopping_patience=2, hparams={"hidden_units": [8], "latent_dim": 2}),
    FraudDetector(epochs=3, learning_rate=0.01, early_stopping_patience=3, hparams={"hidden_units": [16]}),
    ImageClassifier(architecture="mlp", epochs=3, learning_rate=0.01, early_stopping_patience=3, augment=False,
                    hparams={"hidden_units": [16]}),
    SpeechRecognizer(architecture="cnn", sample_rate=1000, duration=0.25, epochs=3, learning_rate=0.01,
                     early_stopping_patience=3, hparams={"filters": 4, "blocks": 1}),
]


def expected_failures(estimator) -> dict[str, str]:
    return getattr(estimator, "SKLEARN_EXPECTED_FAILURES", {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failures)
def test_scikit_learn_checks(estimator, check):
    check(estimator)


# SentimentClassifier takes a sequence of texts (its tags say so), which scikit-learn's data-driven
# checks cannot generate; the API checks that need no data still apply.
@pytest.mark.parametrize("check", [
    estimator_checks.check_estimator_cloneable, estimator_checks.check_estimator_repr,
    estimator_checks.check_no_attributes_set_in_init, estimator_checks.check_valid_tag_types,
    estimator_checks.check_estimator_tags_renamed, estimator_checks.check_parameters_default_constructible,
    estimator_checks.check_get_params_invariance, estimator_checks.check_set_params,
], ids=lambda check: check.__name__)
def test_sentiment_classifier_api_checks(check):
    check("SentimentClassifier", SentimentClassifier())
