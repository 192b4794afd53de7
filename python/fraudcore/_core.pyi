"""Type stub for fraudcore's native extension (cpp/bindings/)."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FORMAT_VERSION: int

class ModelFormatError(ValueError):
    """A model file is truncated, corrupted, or newer than this fraudcore."""

MAX_ABS_AMOUNT: float
MIN_ABS_AMOUNT: float

def available_cores() -> int: ...
def resolve_n_threads(n_jobs: int) -> int: ...
def pack_envelope(kind: str, metadata: bytes, body: bytes) -> bytes: ...
def unpack_envelope(data: bytes) -> tuple[int, str, bytes, bytes]: ...
def crc32(data: bytes) -> int: ...
def dense_gemm_isa() -> str: ...
def factorize_strings(
    columns: Sequence[npt.NDArray[np.object_]], n_threads: int
) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.object_]] | None]: ...

class IsolationForestModel:
    def __init__(self) -> None: ...
    def fit(
        self,
        X: npt.NDArray[np.floating],
        n_estimators: int,
        max_samples: int,
        max_features: int,
        bootstrap: bool,
        extension_level: int,
        seed: int,
        n_threads: int,
    ) -> None: ...
    def score_samples(
        self, X: npt.NDArray[np.floating], n_threads: int
    ) -> npt.NDArray[np.float64]: ...
    def mean_path_length(
        self, X: npt.NDArray[np.floating], n_threads: int
    ) -> npt.NDArray[np.float64]: ...
    def feature_contributions(
        self, X: npt.NDArray[np.floating], n_threads: int
    ) -> npt.NDArray[np.float64]: ...
    def serialize(self) -> bytes: ...
    @staticmethod
    def deserialize(data: bytes) -> IsolationForestModel: ...
    def export_tree(self, t: int) -> dict[str, npt.NDArray]: ...
    @property
    def fitted(self) -> bool: ...
    @property
    def n_features(self) -> int: ...
    @property
    def n_estimators(self) -> int: ...
    @property
    def max_samples(self) -> int: ...
    @property
    def extension_level(self) -> int: ...
    @property
    def n_nodes(self) -> int: ...

class NeighborIndex:
    """Exact k-nearest-neighbour index (the engine behind the neighbour detectors)."""

    def __init__(self) -> None: ...
    def fit(
        self,
        X: npt.NDArray[np.floating],
        p: float = 2.0,
        algorithm: str = "auto",
        leaf_size: int = 30,
        k_hint: int = 5,
    ) -> None: ...
    def kneighbors(
        self, X: npt.NDArray[np.floating], k: int, n_threads: int = 1
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]: ...
    def kneighbors_fitted(
        self, k: int, n_threads: int = 1
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]: ...
    @property
    def algorithm(self) -> str: ...
    @property
    def n_rows(self) -> int: ...
    @property
    def n_features(self) -> int: ...
    @staticmethod
    def kernel_isa() -> str: ...
    @staticmethod
    def supported_isas() -> list[str]: ...
    @staticmethod
    def use_isa(isa: str) -> None: ...

class LocalOutlierFactorModel:
    def __init__(self) -> None: ...
    def fit(
        self,
        X: npt.NDArray[np.floating],
        n_neighbors: int,
        p: float,
        algorithm: str,
        leaf_size: int,
        n_threads: int,
    ) -> None: ...
    def score_samples(
        self, X: npt.NDArray[np.floating], n_threads: int
    ) -> npt.NDArray[np.float64]: ...
    @property
    def negative_outlier_factor(self) -> npt.NDArray[np.float64]: ...
    @property
    def local_reachability_density(self) -> npt.NDArray[np.float64]: ...
    @property
    def n_neighbors(self) -> int: ...
    @property
    def algorithm(self) -> str: ...
    @property
    def n_rows(self) -> int: ...
    @property
    def n_features(self) -> int: ...
    @property
    def p(self) -> float: ...
    @property
    def leaf_size(self) -> int: ...
    def neighbor_deviations(
        self, X: npt.NDArray[np.floating], n_threads: int
    ) -> npt.NDArray[np.float64]: ...
    def serialize(self) -> bytes: ...
    @staticmethod
    def deserialize(data: bytes) -> LocalOutlierFactorModel: ...

class KNNDetectorModel:
    def __init__(self) -> None: ...
    def fit(
        self,
        X: npt.NDArray[np.floating],
        n_neighbors: int,
        method: int,
        p: float,
        algorithm: str,
        leaf_size: int,
        n_threads: int,
    ) -> None: ...
    def distances(self, X: npt.NDArray[np.floating], n_threads: int) -> npt.NDArray[np.float64]: ...
    @property
    def fitted_distances(self) -> npt.NDArray[np.float64]: ...
    @property
    def n_neighbors(self) -> int: ...
    @property
    def algorithm(self) -> str: ...
    @property
    def n_rows(self) -> int: ...
    @property
    def n_features(self) -> int: ...
    @property
    def p(self) -> float: ...
    @property
    def leaf_size(self) -> int: ...
    @property
    def method(self) -> int: ...
    def serialize(self) -> bytes: ...
    @staticmethod
    def deserialize(data: bytes) -> KNNDetectorModel: ...

class AutoEncoderModel:
    def __init__(self) -> None: ...
    def initialize(
        self,
        X: npt.NDArray[np.floating],
        layers: Sequence[int],
        activation: int,
        dropout: float,
        l2: float,
        learning_rate: float,
        batch_size: int,
        float64: bool,
        seed: int,
        standardize: bool,
    ) -> None: ...
    def train_epoch(self, X: npt.NDArray[np.floating], n_threads: int) -> float: ...
    def row_errors(
        self, X: npt.NDArray[np.floating], n_threads: int
    ) -> npt.NDArray[np.float64]: ...
    def value_errors(
        self, X: npt.NDArray[np.floating], n_threads: int
    ) -> npt.NDArray[np.float64]: ...
    def layer(self, l: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
    def serialize(self) -> bytes: ...
    @staticmethod
    def deserialize(data: bytes) -> AutoEncoderModel: ...
    @property
    def epochs_trained(self) -> int: ...
    @property
    def input_mean(self) -> npt.NDArray[np.float64]: ...
    @property
    def input_scale(self) -> npt.NDArray[np.float64]: ...
    @property
    def n_features(self) -> int: ...
    @property
    def settings(self) -> dict[str, object]: ...

class IpRangeTable:
    def __init__(self, lower: npt.ArrayLike, upper: npt.ArrayLike) -> None: ...
    def __len__(self) -> int: ...
    def find_all(self, ips: npt.ArrayLike, n_threads: int) -> npt.NDArray[np.int64]: ...

class FeatureConfig:
    windows_ns: list[int]
    night_start_hour: int
    night_end_hour: int
    spike_sigmas: float
    has_quantity: bool
    has_invoice: bool
    has_country: bool
    has_device: bool
    has_ip: bool
    has_signup: bool
    def __init__(self) -> None: ...
    def validate(self) -> None: ...
    def feature_names(self) -> list[str]: ...

def build_features(
    config: FeatureConfig,
    entity: npt.NDArray[np.int64] | None,
    time_ns: npt.NDArray[np.int64],
    amount: npt.NDArray[np.float64],
    quantity: npt.NDArray[np.float64] | None,
    invoice: npt.NDArray[np.int64] | None,
    country: npt.NDArray[np.int64] | None,
    device: npt.NDArray[np.int64] | None,
    ip: npt.NDArray[np.int64] | None,
    signup_ns: npt.NDArray[np.int64] | None,
    has_signup_time: npt.NDArray[np.uint8] | None,
    n_threads: int,
) -> npt.NDArray[np.float64]: ...
def quantile_map(
    X: npt.NDArray[np.float64], grid: npt.NDArray[np.float64], n_threads: int
) -> npt.NDArray[np.float64]: ...

class FeatureStateModel:
    def __init__(self, config: FeatureConfig) -> None: ...
    @property
    def names(self) -> list[str]: ...
    @property
    def n_entities(self) -> int: ...
    @property
    def config(self) -> FeatureConfig: ...
    def update(
        self,
        keys: list[str],
        entity: int,
        time_ns: int,
        amount: float,
        quantity: float,
        invoice: int,
        country: int,
        device: int,
        ip: int,
        signup_ns: int,
        has_signup_time: bool,
    ) -> dict[str, float]: ...
    def update_many(
        self,
        entity: npt.NDArray[np.int64] | None,
        time_ns: npt.NDArray[np.int64],
        amount: npt.NDArray[np.float64],
        quantity: npt.NDArray[np.float64] | None,
        invoice: npt.NDArray[np.int64] | None,
        country: npt.NDArray[np.int64] | None,
        device: npt.NDArray[np.int64] | None,
        ip: npt.NDArray[np.int64] | None,
        signup_ns: npt.NDArray[np.int64] | None,
        has_signup_time: npt.NDArray[np.uint8] | None,
    ) -> npt.NDArray[np.float64]: ...
    def serialize(self) -> bytes: ...
    @staticmethod
    def deserialize(data: bytes) -> FeatureStateModel: ...

class TreeEnsembleModel:
    def __init__(
        self,
        n_features: int,
        baseline: float,
        tree_begin: npt.NDArray[np.int64],
        feature: npt.NDArray[np.int32],
        threshold: npt.NDArray[np.float64],
        left: npt.NDArray[np.int32],
        right: npt.NDArray[np.int32],
        value: npt.NDArray[np.float64],
        cover: npt.NDArray[np.float64],
        missing_left: npt.NDArray[np.uint8],
    ) -> None: ...
    def decision_function(
        self, X: npt.NDArray[np.floating], n_threads: int
    ) -> npt.NDArray[np.float64]: ...
    def contributions(
        self, X: npt.NDArray[np.floating], n_threads: int
    ) -> npt.NDArray[np.float64]: ...
    def serialize(self) -> bytes: ...
    @staticmethod
    def deserialize(data: bytes) -> TreeEnsembleModel: ...
    def export_nodes(self) -> dict[str, npt.NDArray]: ...
    @property
    def n_features(self) -> int: ...
    @property
    def n_trees(self) -> int: ...
    @property
    def baseline(self) -> float: ...
    @property
    def expected_value(self) -> float: ...

class OnlineScoringModel:
    def __init__(
        self,
        grid: npt.NDArray[np.float64],
        models: list[
            IsolationForestModel | LocalOutlierFactorModel | KNNDetectorModel | AutoEncoderModel
        ],
        quantile_input: Sequence[bool],
        training_sorted: Sequence[npt.NDArray[np.float64]],
        normalization: Sequence[int],
        a: Sequence[float],
        b: Sequence[float],
        normal_tables: Sequence[npt.NDArray[np.float64] | None],
        weights: Sequence[float],
        reference: npt.NDArray[np.float64],
        supervised: TreeEnsembleModel | None,
        threshold: float,
    ) -> None: ...
    def score(
        self,
        x: npt.NDArray[np.float64],
        log_x: npt.NDArray[np.float64],
        quantile_x: npt.NDArray[np.float64],
    ) -> tuple[float, ...]: ...
    @property
    def n_features(self) -> int: ...
    @property
    def n_detectors(self) -> int: ...
