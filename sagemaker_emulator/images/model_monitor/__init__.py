"""The Model Monitor analyzer (``sagemaker-model-monitor-analyzer``), run locally as a processing job.

SageMaker's analyzer is a Spark/Deequ container. This one honours the same
contract — the environment variables the SDK and the monitoring service set
(``dataset_format``, ``dataset_source``, ``output_path``, ``baseline_*``,
``record_preprocessor_script`` …), the files it reads (CSV, JSON Lines,
Parquet, captured JSON Lines) and the files it writes (``statistics.json``,
``constraints.json``, ``constraint_violations.json`` in the documented shape)
— computed with pandas, numpy and scipy. One difference, said in its log: its
statistics and drift distances are exact, where Deequ's KLL sketches are
approximate.
"""
