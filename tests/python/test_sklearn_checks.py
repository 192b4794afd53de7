"""scikit-learn's own estimator checks."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from fraudcore import AutoEncoder, IsolationForest, KNNDetector, LocalOutlierFactor

STANDARD = IsolationForest(n_estimators=20)
EXTENDED = IsolationForest(n_estimators=20, extension_level=1)


def expected_failed_checks(estimator):
    """Checks skipped, each with its reason. Only the extended forest skips one."""
    if getattr(estimator, "extension_level", 0) > 0:
        return {
            "check_fit2d_1feature": (
                "extension_level=1 needs hyperplanes through 2 features; on 1-feature "
                "data fit rightly raises 'extension_level must be [0, 0]'. The "
                "standard forest (extension_level=0) passes this check."
            )
        }
    return {}


NEIGHBOR_DETECTORS = [
    LocalOutlierFactor(),
    LocalOutlierFactor(novelty=True, contamination=0.1, algorithm="brute"),
    KNNDetector(),
    KNNDetector(novelty=True, method="median", p=1),
]
AUTOENCODERS = [AutoEncoder(epochs=3), AutoEncoder(epochs=2, activation="tanh", dtype="float64")]


@parametrize_with_checks(
    [STANDARD, EXTENDED, *NEIGHBOR_DETECTORS, *AUTOENCODERS],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
