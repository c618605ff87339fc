"""The SageMaker control plane: one class per resource family, combined here into the service.

Each operation is a method named after it (``CreateTrainingJob``) holding only
behaviour; validation of patterns, enums, lengths and types happens generically
from the botocore model before a handler runs. Records are stored in the shape
``Describe*`` returns; work is handed to the runtime.
"""

from __future__ import annotations

from .automl import AutoMLOperations
from .hosting import HostingOperations
from .mlflow_servers import TrackingServerOperations
from .monitoring import MonitoringOperations
from .pipelines import PipelineOperations
from .processing import ProcessingOperations
from .registry import RegistryOperations
from .tags import TagOperations
from .training import TrainingOperations
from .transform import TransformOperations
from .tuning import TuningOperations

__all__ = ["SageMaker"]


class SageMaker(TrainingOperations, ProcessingOperations, TuningOperations, TransformOperations, HostingOperations,
                TagOperations, MonitoringOperations, RegistryOperations, PipelineOperations,
                TrackingServerOperations, AutoMLOperations):
    """Amazon SageMaker as the emulator provides it (``TrackingServerOperations`` includes MLflow Apps)."""
