"""Script mode of the XGBoost / scikit-learn framework images, as the training toolkit runs it."""
