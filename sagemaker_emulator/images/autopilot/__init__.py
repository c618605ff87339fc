"""Autopilot's ENSEMBLING mode: AutoGluon-Tabular trained as a training job and served as its candidates.

What runs where:

* the AutoML job (``runtime.automl``) analyses and splits the data in the emulator, then starts one
  training job of the ``autogluon-training`` image whose program is ``python -m
  sagemaker_emulator.images.autopilot train`` (``train.py``), in the image's own environment
  (``images.environments.AUTOGLUON``: autogluon.tabular, LightGBM, XGBoost — never the kernel's);
* the training program fits a ``TabularPredictor`` on the training split with the validation split as
  its tuning data (a few model families, each a candidate, and AutoGluon's weighted ensemble of them),
  scores every model on the validation split with Autopilot's metrics and writes ``candidates.json``;
* each candidate deploys as one ``autogluon-inference`` container (``model_server.autogluon``) whose
  ``SAGEMAKER_AUTOML_CANDIDATE_MODEL`` names the model of the predictor it answers with.

This module holds the names both sides share; it imports nothing heavy.
"""

from __future__ import annotations

#: Autopilot's objective metric → AutoGluon's ``eval_metric``
EVAL_METRICS = {
    "Accuracy": "accuracy", "AUC": "roc_auc", "BalancedAccuracy": "balanced_accuracy", "F1": "f1",
    "F1macro": "f1_macro", "Precision": "precision", "PrecisionMacro": "precision_macro", "Recall": "recall",
    "RecallMacro": "recall_macro", "LogLoss": "log_loss", "MAE": "mean_absolute_error",
    "MSE": "mean_squared_error", "R2": "r2", "RMSE": "root_mean_squared_error",
}
#: metrics where lower is better (Autopilot's ``FinalAutoMLJobObjectiveMetric.Type`` is then ``Minimize``)
MINIMIZED = frozenset({"LogLoss", "MAE", "MSE", "RMSE", "InferenceLatency"})
#: Autopilot's problem types → AutoGluon's
PROBLEM_TYPES = {"BinaryClassification": "binary", "MulticlassClassification": "multiclass",
                 "Regression": "regression"}
#: the metrics each candidate reports (``CandidateProperties.CandidateMetrics``), by problem type
CANDIDATE_METRICS = {
    "BinaryClassification": ("Accuracy", "AUC", "BalancedAccuracy", "F1", "LogLoss", "Precision", "Recall",
                             "InferenceLatency"),
    "MulticlassClassification": ("Accuracy", "BalancedAccuracy", "F1macro", "LogLoss", "PrecisionMacro",
                                 "RecallMacro", "InferenceLatency"),
    "Regression": ("MAE", "MSE", "R2", "RMSE", "InferenceLatency"),
}
#: AutoGluon's model families, in the order candidates are added (``MaxCandidates`` takes the first ones)
FAMILIES = ("GBM", "XGB", "RF", "XT", "LR", "KNN")
#: the container environment naming a candidate's model inside the predictor
CANDIDATE_MODEL_ENV = "SAGEMAKER_AUTOML_CANDIDATE_MODEL"
#: the file beside the predictor telling the server the feature columns and labels
SCHEMA_FILE = "autopilot.json"
PREDICTOR_DIR = "autogluon"
#: the best candidate's answers on the validation split, beside ``candidates.json`` in the output data
PREDICTIONS_FILE = "validation_predictions.csv"
#: the keys a classification candidate can answer with (``SAGEMAKER_INFERENCE_SUPPORTED``)
CLASSIFICATION_KEYS = ("predicted_label", "probability", "probabilities", "labels")
