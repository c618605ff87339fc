"""IAM: just enough to describe the local execution role and what it may do.

The SDK asks IAM for the role's path after STS names it (``GetRole``) and,
before training, simulates the role's permissions
(``SimulatePrincipalPolicy``). The local role may do everything; other roles
do not exist here, and asking for them fails as on AWS with ``NoSuchEntity``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from ..config import ROLE_NAME, ROLE_PATH
from ..protocol.errors import ServiceError
from .base import Service
from .context import Context
from .sts import ROLE_ID

TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Principal": {"Service": "sagemaker.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }],
}
CREATED = 1704067200.0  # 2024-01-01, fixed: the role is part of the emulator, not of a session


class IAM(Service):
    name = "iam"

    def GetRole(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        if params["RoleName"] != ROLE_NAME:
            raise _no_such_role(params["RoleName"])
        return {"Role": {
            "Path": ROLE_PATH,
            "RoleName": ROLE_NAME,
            "RoleId": ROLE_ID,
            "Arn": f"arn:aws:iam::{ctx.account_id}:role{ROLE_PATH}{ROLE_NAME}",
            "CreateDate": CREATED,
            "AssumeRolePolicyDocument": quote(json.dumps(TRUST_POLICY)),
            "Description": "Execution role of the local SageMaker emulator",
            "MaxSessionDuration": 3600,
        }}

    def SimulatePrincipalPolicy(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        source = params["PolicySourceArn"]
        if not source.endswith(f"role{ROLE_PATH}{ROLE_NAME}") and not source.endswith(f"role/{ROLE_NAME}"):
            raise _no_such_role(source.rsplit("/", 1)[-1])
        resources = params.get("ResourceArns") or ["*"]
        results = [
            {"EvalActionName": action, "EvalResourceName": resources[0], "EvalDecision": "allowed",
             "MatchedStatements": [], "MissingContextValues": []}
            for action in params["ActionNames"]
        ]
        return {"EvaluationResults": results, "IsTruncated": False}


def _no_such_role(name: str) -> ServiceError:
    return ServiceError("NoSuchEntity", f"The role with name {name} cannot be found.", 404)
