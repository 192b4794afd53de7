"""scikit-learn's own estimator checks."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from fraudcore import IsolationForest

STANDARD = IsolationForest(n_estimators=20)
EXTENDED = IsolationForest(n_estimators=20, extension_level=1)


def expected_failed_checks(estimator):
    """Checks skipped, each with its reason. The standard forest skips none."""
    if estimator.extension_level > 0:
        return {
            "check_fit2d_1feature": (
                "extension_level=1 needs hyperplanes through 2 features; on 1-feature "
                "data fit rightly raises 'extension_level must be [0, 0]'. The "
                "standard forest (extension_level=0) passes this check."
            )
        }
    return {}


@parametrize_with_checks([STANDARD, EXTENDED], expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
