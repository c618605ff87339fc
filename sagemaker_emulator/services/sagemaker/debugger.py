"""A training job's SageMaker Debugger fields, checked and completed at ``CreateTrainingJob``.

``DebugHookConfig`` says where the hook writes (a path under ``/opt/ml`` in the container) and where
its tensors go (``S3OutputPath``); ``DebugRuleConfigurations`` name the rules evaluated beside the job.
A job with rules and no hook configuration gets one writing under its ``OutputDataConfig.S3OutputPath``
(the rules need tensors to read; the SageMaker Python SDK always sent one with its rules).
The runtime's side is ``runtime/debug_output.py`` and ``runtime/rules.py``.
"""

from __future__ import annotations

import time
from typing import Any

from ...protocol.errors import invalid
from ...runtime.container import container_path

RULE_ROOT = "/opt/ml/processing"


def debugger_fields(params: dict[str, Any]) -> dict[str, Any]:
    """The Debugger fields of the job's record (``DebugHookConfig``, ``DebugRuleEvaluationStatuses``)."""
    hook = params.get("DebugHookConfig")
    rules = params.get("DebugRuleConfigurations") or []
    if hook is None and not rules:
        return {}
    if hook is None:
        hook = {"S3OutputPath": params["OutputDataConfig"]["S3OutputPath"]}
    local = hook.get("LocalPath")
    if local is not None and container_path(local) is None:
        raise invalid(f"DebugHookConfig.LocalPath '{local[:256]}' must be an absolute path under /opt/ml/.")
    names = [rule["RuleConfigurationName"] for rule in rules]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise invalid(f"RuleConfigurationName must be unique within DebugRuleConfigurations; "
                      f"{', '.join(repeated)} is used more than once.")
    for rule in rules:
        path = rule.get("LocalPath")
        normal = None if path is None else container_path(path, RULE_ROOT)
        if path is not None and (normal is None or normal == RULE_ROOT):
            raise invalid(f"LocalPath '{path[:256]}' of rule {rule['RuleConfigurationName']} must be a path under "
                          f"{RULE_ROOT}/.")
    fields: dict[str, Any] = {"DebugHookConfig": hook}
    if rules:
        now = time.time()
        fields["DebugRuleEvaluationStatuses"] = [
            {"RuleConfigurationName": name, "RuleEvaluationStatus": "InProgress", "LastModifiedTime": now}
            for name in names]
    return fields
