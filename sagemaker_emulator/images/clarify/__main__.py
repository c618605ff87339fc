"""``python -m sagemaker_emulator.images.clarify``: one Clarify processing job, as the container runs it.

Steps, in the order the SageMaker documentation gives: read and check the configuration and the
dataset; create the shadow endpoint if the analysis needs predictions; pre-training bias;
post-training bias; Kernel SHAP; delete the endpoint; write ``analysis.json``, the local SHAP values
(``explanations_shap/out.csv``), the baseline (``explanations_shap/baseline.csv``) and the report
(``report.ipynb``, ``report.html``) to ``/opt/ml/processing/output``. A failure prints the reason as
the last line and exits 1 (the job's ``FailureReason`` ends with it).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from .config import AnalysisConfigError, load


def _base() -> Path:
    return Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))


def run() -> None:
    processing = _base() / "processing"
    analysis = load(processing / "input" / "config", processing / "input" / "data")
    out = processing / "output"
    out.mkdir(parents=True, exist_ok=True)
    methods = analysis.methods
    print(f"Analysis: {', '.join(m for m in methods if m != 'report')} on {len(analysis.data)} rows, "
          f"{len(analysis.features)} features", flush=True)
    result: dict[str, Any] = {"version": "1.0"}
    needs_model = "post_training_bias" in methods or "shap" in methods
    from . import analyses

    if "pre_training_bias" in methods:
        started = time.perf_counter()
        result["pre_training_bias_metrics"] = analyses.bias(analysis, "pre")
        print(f"Pre-training bias metrics computed in {time.perf_counter() - started:.2f} s", flush=True)
    if needs_model:
        from .predictor import ShadowEndpoint

        with ShadowEndpoint(analysis.config.get("predictor") or {}) as endpoint:
            if "post_training_bias" in methods:
                scores = endpoint.scores(analysis.data[analysis.features].to_numpy())
                result["post_training_bias_metrics"] = analyses.bias(
                    analysis, "post", analyses.predicted_labels(scores, analysis))
                print("Post-training bias metrics computed", flush=True)
            if "shap" in methods:
                started = time.perf_counter()
                explanations, local, baseline = analyses.kernel_shap(analysis, endpoint.scores)
                result["explanations"] = explanations
                folder = out / "explanations_shap"
                folder.mkdir(exist_ok=True)
                if analysis.methods["shap"].get("save_local_shap_values", True):
                    local.to_csv(folder / "out.csv", index=False)
                import pandas as pd

                pd.DataFrame(baseline, columns=analysis.features).to_csv(folder / "baseline.csv", index=False)
                print(f"Kernel SHAP computed in {time.perf_counter() - started:.2f} s "
                      f"({endpoint.calls} endpoint calls, {endpoint.seconds:.2f} s in them)", flush=True)
    (out / "analysis.json").write_text(json.dumps(result, indent=2))
    if "report" in methods:
        from .report import write_report

        write_report(out, result, methods["report"])
    print("Analysis complete", flush=True)


def main() -> int:
    try:
        run()
    except AnalysisConfigError as exc:
        print(f"ClientError: {exc}", flush=True)
        return 1
    except Exception as exc:  # noqa: BLE001 - the job fails with the reason as its last log line
        traceback.print_exc()
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        print(f"AlgorithmError: {type(exc).__name__}: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
