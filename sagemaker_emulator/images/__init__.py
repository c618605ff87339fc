"""Local re-implementations of the SageMaker container images (training and serving programs)."""
