"""STS: who am I? Answered as an assumed SageMaker execution role in the local account.

The SDK's ``get_execution_role()`` and ``Session().default_bucket()`` start
from ``GetCallerIdentity``; answering as an assumed role makes them work
unchanged outside SageMaker, exactly as they do inside Studio.
"""

from __future__ import annotations

from typing import Any

from ..config import ROLE_NAME, SESSION_NAME
from .base import Service
from .context import Context

ROLE_ID = "AROAEMULATORLOCAL0001"


class STS(Service):
    name = "sts"

    def GetCallerIdentity(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "UserId": f"{ROLE_ID}:{SESSION_NAME}",
            "Account": ctx.account_id,
            "Arn": f"arn:aws:sts::{ctx.account_id}:assumed-role/{ROLE_NAME}/{SESSION_NAME}",
        }
