"""Running SageMaker work (jobs, endpoints) as local processes under the container contract."""
