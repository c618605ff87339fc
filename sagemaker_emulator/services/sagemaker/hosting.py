"""SageMaker hosting control plane: models, endpoint configurations and endpoints.

A mixin of the ``SageMaker`` service: each operation is a method named after
it. Records are stored in their ``Describe*`` shape; the processes behind an
endpoint belong to ``runtime.hosting.EndpointManager``.
"""

from __future__ import annotations

import time
from typing import Any

from ...images.registry import resolve, supported_images_text
from ...protocol.errors import invalid
from ..context import Context
from .common import SageMakerBase, resource_arn, tag_dict
from .registry import resolve_model_packages


def check_containers(params: dict[str, Any]) -> None:
    """A model of several ``Containers`` (an inference pipeline): one way to name them, unique host names,
    and in ``Direct`` mode a ``ContainerHostname`` on each, since requests choose a container by it."""
    containers = params.get("Containers") or []
    if params.get("PrimaryContainer") and containers:
        raise invalid("Specify either PrimaryContainer or Containers, not both.")
    named = [c["ContainerHostname"] for c in containers if c.get("ContainerHostname")]
    if len(set(named)) != len(named):
        raise invalid("ContainerHostname must be unique within the containers of a model.")
    mode = (params.get("InferenceExecutionConfig") or {}).get("Mode")
    if mode == "Direct" and len(named) != len(containers):
        raise invalid("ContainerHostname must be specified for every container when the InferenceExecutionConfig "
                      "mode is Direct.")


class HostingOperations(SageMakerBase):
    """Models, endpoint configurations and endpoints."""

    # ------------------------------------------------------------ models
    def CreateModel(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name = params["ModelName"]
        params = resolve_model_packages(self.emulator.state, params)  # ModelPackageName → registered containers
        containers = ([params["PrimaryContainer"]] if params.get("PrimaryContainer") else []) + list(
            params.get("Containers") or [])
        if not containers:
            raise invalid("Either PrimaryContainer or Containers must be specified.")
        check_containers(params)
        for container in containers:
            if container.get("Image") and resolve(container["Image"]) is None:
                raise invalid(f"The emulator cannot serve the image {container['Image']}. "
                              f"{supported_images_text()}")
            url = container.get("ModelDataUrl")
            if url and not self._s3_object_exists(url):
                raise invalid(f"Could not find model data at {url}.")
        arn = resource_arn(ctx, "model", name)
        record = {**{k: v for k, v in params.items() if k != "Tags"}, "ModelArn": arn, "CreationTime": time.time()}
        tags = tag_dict(params.get("Tags"))
        if not self.emulator.state.insert("Model", name, arn, record["CreationTime"], record, tags):
            raise invalid(f'Cannot create already existing model "{arn}".')
        return {"ModelArn": arn}

    def _s3_object_exists(self, url: str) -> bool:
        from ...runtime.staging import StagingError, parse_s3_uri

        try:
            bucket, key = parse_s3_uri(url)
            self.emulator.s3.store.object_path(bucket, key)
        except (StagingError, Exception):  # noqa: BLE001 - any lookup failure means "not there"
            return False
        return True

    def DescribeModel(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._require("Model", params["ModelName"], "Could not find model \"{arn}\".", ctx, "model")

    def DeleteModel(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        self._require("Model", params["ModelName"], "Could not find model \"{arn}\".", ctx, "model")
        self.emulator.state.delete("Model", params["ModelName"])
        return {}

    def ListModels(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._list("Model", params, "Models", ("ModelName", "ModelArn", "CreationTime"))

    # ------------------------------------------------------------ endpoint configs
    def CreateEndpointConfig(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointConfigName"]
        names = [v["VariantName"] for v in params["ProductionVariants"]]
        if len(set(names)) != len(names):
            raise invalid("Variant names must be unique within an endpoint configuration.")
        variants = []
        for variant in params["ProductionVariants"]:
            if self.emulator.state.get("Model", variant["ModelName"]) is None:
                raise invalid(f"Could not find model \"{resource_arn(ctx, 'model', variant['ModelName'])}\".")
            serverless = variant.get("ServerlessConfig")
            if not serverless and not (variant.get("InstanceType") and variant.get("InitialInstanceCount")):
                raise invalid(f"Variant {variant['VariantName']}: InstanceType and InitialInstanceCount are "
                              "required unless ServerlessConfig is given.")
            variants.append({"InitialVariantWeight": 1.0, **variant})
        capture = params.get("DataCaptureConfig")
        if capture:
            if not capture.get("DestinationS3Uri", "").startswith("s3://"):
                raise invalid("DataCaptureConfig.DestinationS3Uri must be an s3:// URI.")
            if any(v.get("ServerlessConfig") for v in variants):
                raise invalid("DataCaptureConfig is not supported for serverless endpoints.")
        arn = resource_arn(ctx, "endpoint-config", name)
        record = {**{k: v for k, v in params.items() if k != "Tags"}, "ProductionVariants": variants,
                  "EndpointConfigArn": arn, "CreationTime": time.time()}
        tags = tag_dict(params.get("Tags"))
        if not self.emulator.state.insert("EndpointConfig", name, arn, record["CreationTime"], record, tags):
            raise invalid(f'Cannot create already existing endpoint configuration "{arn}".')
        return {"EndpointConfigArn": arn}

    def DescribeEndpointConfig(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._require("EndpointConfig", params["EndpointConfigName"],
                             "Could not find endpoint configuration \"{arn}\".", ctx, "endpoint-config")

    def DeleteEndpointConfig(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        self.DescribeEndpointConfig(ctx, params)
        self.emulator.state.delete("EndpointConfig", params["EndpointConfigName"])
        return {}

    def ListEndpointConfigs(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        fields = ("EndpointConfigName", "EndpointConfigArn", "CreationTime")
        return self._list("EndpointConfig", params, "EndpointConfigs", fields)

    # ------------------------------------------------------------ endpoints
    def CreateEndpoint(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        config = self.DescribeEndpointConfig(ctx, {"EndpointConfigName": params["EndpointConfigName"]})
        arn = resource_arn(ctx, "endpoint", name)
        now = time.time()
        record = {"EndpointName": name, "EndpointArn": arn, "EndpointConfigName": config["EndpointConfigName"],
                  "EndpointStatus": "Creating", "CreationTime": now, "LastModifiedTime": now}
        if not self.emulator.state.insert("Endpoint", name, arn, now, record, tag_dict(params.get("Tags"))):
            raise invalid(f'Cannot create already existing endpoint "{arn}".')
        self.emulator.endpoints.deploy(name, config)  # a deploy that cannot even start ends the endpoint Failed
        return {"EndpointArn": arn}

    def DescribeEndpoint(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        from ...runtime.endpoints import describe_capture, describe_variants

        record = self._require("Endpoint", params["EndpointName"], "Could not find endpoint \"{arn}\".", ctx,
                               "endpoint")
        config = self.emulator.state.get("EndpointConfig", record["EndpointConfigName"]) or {"ProductionVariants": []}
        models = {v["ModelName"]: self.emulator.state.get("Model", v["ModelName"]) or {}
                  for v in config["ProductionVariants"]}
        if record["EndpointStatus"] in ("InService", "Updating"):
            live = self.emulator.endpoints.get(record["EndpointName"])
            record["ProductionVariants"] = describe_variants(config, live, models)
            capture = describe_capture(config, live)
            if capture:
                record["DataCaptureConfig"] = capture
        return record

    def UpdateEndpoint(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        record = self.DescribeEndpoint(ctx, {"EndpointName": params["EndpointName"]})
        if record["EndpointStatus"] != "InService":
            raise invalid(f"Cannot update in-progress endpoint \"{record['EndpointArn']}\".")
        config = self.DescribeEndpointConfig(ctx, {"EndpointConfigName": params["EndpointConfigName"]})
        self.emulator.state.update("Endpoint", params["EndpointName"], EndpointStatus="Updating",
                                   LastModifiedTime=time.time())
        self.emulator.endpoints.deploy(params["EndpointName"], config)
        return {"EndpointArn": record["EndpointArn"]}

    def UpdateEndpointWeightsAndCapacities(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        record = self.DescribeEndpoint(ctx, {"EndpointName": params["EndpointName"]})
        live = self.emulator.endpoints.get(params["EndpointName"])
        if record["EndpointStatus"] != "InService" or live is None:
            raise invalid(f"Cannot update in-progress endpoint \"{record['EndpointArn']}\".")
        desired = params["DesiredWeightsAndCapacities"]
        unknown = [d["VariantName"] for d in desired if d["VariantName"] not in live.variants]
        if unknown:
            raise invalid(f"The variant name(s) [{', '.join(unknown)}] is/are not present.")
        weights: dict[str, float] = {}
        counts: dict[str, int] = {}
        for item in desired:
            name = item["VariantName"]
            if item.get("DesiredWeight") is not None:
                weights[name] = float(item["DesiredWeight"])
            count = item.get("DesiredInstanceCount")
            if count is not None and count != len(live.variants[name].instances):
                if live.variants[name].slots is not None:
                    raise invalid(f"Variant {name} is serverless; it has no instance count to change.")
                if count < 1:
                    raise invalid("DesiredInstanceCount must be at least 1 for a real-time endpoint variant.")
                counts[name] = int(count)
        live.set_weights(weights)
        if counts:
            self.emulator.endpoints.scale(params["EndpointName"], counts)
        else:
            self.emulator.state.update("Endpoint", params["EndpointName"], LastModifiedTime=time.time())
        return {"EndpointArn": record["EndpointArn"]}

    def DeleteEndpoint(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        self._require("Endpoint", params["EndpointName"], "Could not find endpoint \"{arn}\".", ctx, "endpoint")
        self.emulator.state.update("Endpoint", params["EndpointName"], EndpointStatus="Deleting")
        self.emulator.endpoints.delete(params["EndpointName"])
        self.emulator.state.delete("Endpoint", params["EndpointName"])
        return {}

    def ListEndpoints(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        fields = ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")
        return self._list("Endpoint", params, "Endpoints", fields, "EndpointStatus")

    # ------------------------------------------------------------ shared
    def _require(self, kind: str, name: str, message: str, ctx: Context, arn_kind: str) -> dict[str, Any]:
        record = self.emulator.state.get(kind, name)
        if record is None:
            raise invalid(message.format(arn=resource_arn(ctx, arn_kind, name)))
        return record

