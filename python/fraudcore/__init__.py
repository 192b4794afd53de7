"""fraudcore: fraud and anomaly detection with a native C++ core.

Estimators follow scikit-learn's conventions (``fit`` / ``score_samples`` /
``decision_function`` / ``predict``, ``get_params``, pickle) and run their hot
loops in C++ (Eigen, OpenMP) with the GIL released.
"""

from importlib.metadata import PackageNotFoundError, version

from fraudcore import metrics, plots
from fraudcore._core import ModelFormatError
from fraudcore._persistence import load
from fraudcore.autoencoder import AutoEncoder
from fraudcore.detector import FraudDetector
from fraudcore.features import FeatureState, build_features
from fraudcore.iforest import IsolationForest
from fraudcore.knn import KNNDetector
from fraudcore.lof import LocalOutlierFactor
from fraudcore.online import OnlineScorer
from fraudcore.schema import Schema

try:
    __version__ = version("fraudcore")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "AutoEncoder",
    "FeatureState",
    "FraudDetector",
    "IsolationForest",
    "KNNDetector",
    "LocalOutlierFactor",
    "ModelFormatError",
    "OnlineScorer",
    "Schema",
    "__version__",
    "build_features",
    "load",
    "metrics",
    "plots",
]
