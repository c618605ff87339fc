"""Tags of any SageMaker resource, by ARN: AddTags, ListTags, DeleteTags."""

from __future__ import annotations

from typing import Any

from ...protocol.errors import invalid
from ..context import Context
from .common import SageMakerBase, tag_dict


class TagOperations(SageMakerBase):
    def _require_arn(self, arn: str) -> None:
        if self.emulator.state.kind_of_arn(arn) is None:
            raise invalid(f"Resource {arn} does not exist.")

    def AddTags(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        self._require_arn(params["ResourceArn"])
        self.emulator.state.add_tags(params["ResourceArn"], tag_dict(params["Tags"]))
        return {"Tags": params["Tags"]}

    def ListTags(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        self._require_arn(params["ResourceArn"])
        tags = [{"Key": k, "Value": v} for k, v in self.emulator.state.tags(params["ResourceArn"]).items()]
        return {"Tags": tags}

    def DeleteTags(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        self._require_arn(params["ResourceArn"])
        self.emulator.state.remove_tags(params["ResourceArn"], params["TagKeys"])
        return {}
