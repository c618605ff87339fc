"""How ``smdebug_xgboost_trial/`` and its ``.expected.json`` were made: by smdebug 1.0.34 itself.

Run in a separate environment (smdebug needs NumPy 1 and protobuf 3.20):
``pip install smdebug==1.0.34 'numpy<2' 'pandas<2.3' requests psutil 'setuptools<70' xgboost==2.1.4``,
then ``python make_smdebug_trial.py`` in this folder. The tests compare the emulator's writer, its
rule evaluator's reader and ``helpers.debugger`` with these files.
"""

import json

import numpy as np
import xgboost as xgb
from smdebug import SaveConfig
from smdebug.trials import create_trial
from smdebug.xgboost import Hook

COLLECTIONS = ["metrics", "hyperparameters", "feature_importance", "average_shap", "trees", "predictions", "labels"]

rng = np.random.default_rng(0)
X = rng.normal(size=(40, 3))
y = (X[:, 0] + rng.normal(scale=0.5, size=40) > 0).astype(float)
dtrain, dval = xgb.DMatrix(X[:30], label=y[:30]), xgb.DMatrix(X[30:], label=y[30:])
params = {"objective": "binary:logistic", "max_depth": 2, "eta": 0.5, "eval_metric": "logloss"}
hook = Hook(out_dir="smdebug_xgboost_trial", save_config=SaveConfig(save_interval=2), include_collections=COLLECTIONS,
            hyperparameters=params, train_data=dtrain, validation_data=dval)
xgb.train(params, dtrain, num_boost_round=4, evals=[(dtrain, "train"), (dval, "validation")], callbacks=[hook])
hook._cleanup()
trial = create_trial("smdebug_xgboost_trial")
expected = {name: {str(step): trial.tensor(name).value(step).tolist() for step in trial.tensor(name).steps()}
            for name in trial.tensor_names()}
with open("smdebug_xgboost_trial.expected.json", "w") as handle:
    json.dump(expected, handle, indent=0)
