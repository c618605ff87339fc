"""A local SageMaker emulator: real AWS wire protocols on loopback, jobs as local processes."""

__version__ = "0.1.0"
