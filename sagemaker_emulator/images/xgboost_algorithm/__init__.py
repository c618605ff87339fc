"""The built-in SageMaker XGBoost algorithm (``sagemaker-xgboost:1.7-1``, algorithm mode), locally.

Run as ``python -m sagemaker_emulator.images.xgboost_algorithm train`` with ``SAGEMAKER_BASE_DIR``
pointing at the instance directory (the stand-in for ``/opt/ml``).  Our own re-implementation of
the container's observable behaviour: hyperparameter and channel validation texts, data loading,
log and metric lines, early stopping, checkpoints, save-on-termination, k-fold mode, distributed
training and the success/failure files.

Modules, one job each:

* :mod:`.hyperparameters` - hyperparameter table and validation;
* :mod:`.channels` - channel and content-type validation;
* :mod:`.data` - channel files to ``DMatrix``;
* :mod:`.metrics` - metric names, ``METRIC_DEFINITIONS`` and ``MAXIMIZE`` for the tuner;
* :mod:`.custom_metrics` - the metrics the container computes in Python;
* :mod:`.callbacks` - metric lines, early stopping, checkpoints, save-on-termination;
* :mod:`.train` / :mod:`.cross_validation` - one training run / the ``_kfold`` mode;
* :mod:`.distributed` - multi-instance training over XGBoost's collective;
* :mod:`.job` - the job flow; :mod:`.environment` - paths; :mod:`.console` - output;
* :mod:`.errors` - error classes and the failure-file text; ``__main__`` - the trainer.
"""
