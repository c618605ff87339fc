"""The model registry: model package groups and the model packages (versions) they hold.

A group is a name; each ``CreateModelPackage`` into it makes the next version
(1, 2, …, never reused after a delete) with ARN ``model-package/<group>/<n>``.
Versions start ``PendingManualApproval`` unless told otherwise; every change
of ``ModelApprovalStatus`` is appended to the package's approval history
(kept with the record, as SageMaker keeps it for Studio's activity view and
its EventBridge events). ``CreateModel`` resolves ``ModelPackageName``
containers through ``package_containers`` below: only an ``Approved``
version can be deployed, as the SageMaker Developer Guide says.
"""

from __future__ import annotations

import time
from typing import Any

from ...config import ROLE_NAME, SESSION_NAME
from ...protocol.errors import invalid
from ..context import Context
from ..listing import list_records
from .common import SageMakerBase, resource_arn, tag_dict

GROUP = "ModelPackageGroup"
PACKAGE = "ModelPackage"
PENDING = "PendingManualApproval"
#: what ``ListModelPackages`` returns for each package (versioned ones carry no ``ModelPackageName``)
SUMMARY_FIELDS = ("ModelPackageName", "ModelPackageGroupName", "ModelPackageVersion", "ModelPackageArn",
                  "ModelPackageDescription", "CreationTime", "ModelPackageStatus", "ModelApprovalStatus",
                  "ModelLifeCycle", "ModelPackageRegistrationType")
GROUP_FIELDS = ("ModelPackageGroupName", "ModelPackageGroupArn", "ModelPackageGroupDescription", "CreationTime",
                "ModelPackageGroupStatus")


def user_context(ctx: Context) -> dict[str, Any]:
    """``CreatedBy``/``LastModifiedBy``: the caller's identity, as STS reports it to the emulator's clients."""
    return {"IamIdentity": {"Arn": f"arn:aws:sts::{ctx.account_id}:assumed-role/{ROLE_NAME}/{SESSION_NAME}",
                            "PrincipalId": f"AROA{ctx.account_id}:{SESSION_NAME}"}}


def name_of(name_or_arn: str, kind: str) -> str:
    """``ArnOrName`` members: the name part of ``arn:…:<kind>/<name>``, or the name itself."""
    marker = f":{kind}/"
    return name_or_arn.split(marker, 1)[1] if name_or_arn.startswith("arn:") and marker in name_or_arn \
        else name_or_arn


def find_package(state: Any, name_or_arn: str) -> dict[str, Any] | None:
    """A package by name (unversioned) or ARN (any): ARNs are matched case-insensitively, as SageMaker's are
    (it writes them in lower case; a client may keep the group's own spelling)."""
    if name_or_arn.startswith("arn:"):
        found = state.kind_of_arn(name_or_arn.lower())
        return state.get(PACKAGE, found[1]) if found and found[0] == PACKAGE else None
    record = state.get(PACKAGE, name_or_arn)
    return record if record is not None and "ModelPackageVersion" not in record else None


def package_containers(state: Any, container: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers a ``ContainerDefinition`` naming ``ModelPackageName`` stands for.

    Each is the package's inference container with the model's own ``Environment`` laid over it and
    ``ModelPackageName`` kept, so the runtime serves exactly what was registered.
    """
    ref = container["ModelPackageName"]
    package = find_package(state, ref)
    if package is None:
        raise invalid(f"ModelPackage {ref} does not exist.")
    if "ModelPackageVersion" in package and package.get("ModelApprovalStatus") != "Approved":
        raise invalid(f"Model package {package['ModelPackageArn']} has ModelApprovalStatus "
                      f"{package.get('ModelApprovalStatus')}; only an Approved model package version can be "
                      "deployed (approve it with UpdateModelPackage).")
    spec = package.get("InferenceSpecification") or {}
    wanted = container.get("InferenceSpecificationName")
    if wanted:
        named = [s for s in package.get("AdditionalInferenceSpecifications") or [] if s.get("Name") == wanted]
        if not named:
            raise invalid(f"InferenceSpecificationName {wanted} is not an inference specification of "
                          f"{package['ModelPackageArn']}.")
        spec = named[0]
    if not spec.get("Containers"):
        raise invalid(f"Model package {package['ModelPackageArn']} has no InferenceSpecification to deploy.")
    overlay = {k: v for k, v in container.items() if k not in ("ModelPackageName", "InferenceSpecificationName",
                                                                  "Environment")}
    out = []
    for item in spec["Containers"]:
        resolved = {k: v for k, v in item.items() if k in ("Image", "ModelDataUrl", "ModelDataSource",
                                                          "Environment", "ContainerHostname")}
        resolved.update(overlay)
        resolved["Environment"] = {**(item.get("Environment") or {}), **(container.get("Environment") or {})}
        resolved["ModelPackageName"] = package["ModelPackageArn"]
        out.append(resolved)
    return out


class RegistryOperations(SageMakerBase):
    """Model package groups and model packages."""

    # ------------------------------------------------------------ groups
    def CreateModelPackageGroup(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name = params["ModelPackageGroupName"]
        arn = resource_arn(ctx, "model-package-group", name)
        now = time.time()
        record = {**{k: v for k, v in params.items() if k != "Tags"}, "ModelPackageGroupArn": arn,
                  "CreationTime": now, "CreatedBy": user_context(ctx), "ModelPackageGroupStatus": "Completed",
                  "_next_version": 1}
        if not self.emulator.state.insert(GROUP, name.lower(), arn, now, record, tag_dict(params.get("Tags"))):
            raise invalid(f"Model Package Group already exists: {arn}")
        return {"ModelPackageGroupArn": arn}

    def _group(self, ctx: Context, name_or_arn: str) -> dict[str, Any]:
        """A group by name or ARN; group names are unique regardless of case, as their ARNs are."""
        name = name_of(name_or_arn, "model-package-group")
        record = self.emulator.state.get(GROUP, name.lower())
        if record is None:
            raise invalid(f"ModelPackageGroup {name} does not exist.")
        return record

    def DescribeModelPackageGroup(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._group(ctx, params["ModelPackageGroupName"])

    def ListModelPackageGroups(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        items, token = list_records(
            self.emulator.state.all(GROUP), params, name_field="ModelPackageGroupName", status_field="",
            summary=lambda r: {k: r[k] for k in GROUP_FIELDS if k in r},
            sort_fields={"Name": "ModelPackageGroupName"})
        return {"ModelPackageGroupSummaryList": items, "NextToken": token}

    def DeleteModelPackageGroup(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        group = self._group(ctx, params["ModelPackageGroupName"])
        name = group["ModelPackageGroupName"]
        if self._versions(name):
            raise invalid(f"Model Package Group {name} still has model packages; delete them "
                          "(DeleteModelPackage) before deleting the group.")
        self.emulator.state.delete(GROUP, name.lower())
        return {}

    def _versions(self, group_name: str) -> list[dict[str, Any]]:
        return [r for r in self.emulator.state.all(PACKAGE)
                if r.get("ModelPackageGroupName", "").lower() == group_name.lower() and "ModelPackageVersion" in r]

    # ------------------------------------------------------------ packages
    def CreateModelPackage(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        group_ref, name = params.get("ModelPackageGroupName"), params.get("ModelPackageName")
        if group_ref and name:
            raise invalid("Both ModelPackageName and ModelPackageGroupName are provided in the input. Cannot "
                          "determine which one to use.")
        if not group_ref and not name:
            raise invalid("Either ModelPackageGroupName (a model version) or ModelPackageName (an unversioned "
                          "model package) must be specified.")
        if not params.get("InferenceSpecification") and not params.get("SourceAlgorithmSpecification") \
                and not params.get("SourceUri"):
            raise invalid("InferenceSpecification, SourceAlgorithmSpecification or SourceUri must be specified.")
        self._check_inference(params.get("InferenceSpecification"))
        token = params.get("ClientToken")
        if token:
            for existing in self.emulator.state.all(PACKAGE):
                if existing.get("_client_token") == token:
                    return {"ModelPackageArn": existing["ModelPackageArn"]}
        now = time.time()
        record = {**{k: v for k, v in params.items() if k not in ("Tags", "ClientToken")},
                  "CreationTime": now, "LastModifiedTime": now, "CreatedBy": user_context(ctx),
                  "ModelPackageStatus": "Completed",
                  "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
                  "CertifyForMarketplace": bool(params.get("CertifyForMarketplace", False))}
        if token:
            record["_client_token"] = token
        if group_ref:
            record.update(self._next_version(ctx, group_ref))
            record.setdefault("ModelApprovalStatus", PENDING)
            record["_approval_history"] = [{"ModelApprovalStatus": record["ModelApprovalStatus"], "Time": now,
                                            "ChangedBy": record["CreatedBy"]}]
        else:
            if params.get("ModelApprovalStatus"):
                raise invalid("ModelApprovalStatus applies only to versioned model packages (ModelPackageGroupName).")
            record["ModelPackageArn"] = resource_arn(ctx, "model-package", name)
        key = record["ModelPackageArn"].split(":model-package/", 1)[1] if group_ref else name
        if not self.emulator.state.insert(PACKAGE, key, record["ModelPackageArn"], now, record,
                                          tag_dict(params.get("Tags"))):
            raise invalid(f"Model Package already exists: {record['ModelPackageArn']}")
        return {"ModelPackageArn": record["ModelPackageArn"]}

    def _next_version(self, ctx: Context, group_ref: str) -> dict[str, Any]:
        """Reserve the group's next version number (atomically: two creates never share one)."""
        group = self._group(ctx, group_ref)
        taken: list[int] = []

        def bump(record: dict[str, Any]) -> None:
            taken.append(int(record.get("_next_version", 1)))
            record["_next_version"] = taken[0] + 1

        self.emulator.state.modify(GROUP, group["ModelPackageGroupName"].lower(), bump)
        version = taken[0]
        name = group["ModelPackageGroupName"]
        return {"ModelPackageGroupName": name, "ModelPackageName": name, "ModelPackageVersion": version,
                "ModelPackageArn": resource_arn(ctx, "model-package", f"{name}/{version}")}

    @staticmethod
    def _check_inference(spec: dict[str, Any] | None) -> None:
        for container in (spec or {}).get("Containers") or []:
            if not container.get("Image"):
                raise invalid("Every container of InferenceSpecification needs an Image.")
            url = container.get("ModelDataUrl")
            if url is not None and not str(url).startswith("s3://"):
                raise invalid(f"ModelDataUrl {url} of InferenceSpecification must be an s3:// URI.")

    def _package(self, name_or_arn: str) -> dict[str, Any]:
        record = find_package(self.emulator.state, name_or_arn)
        if record is None:
            raise invalid(f"ModelPackage {name_or_arn} does not exist.")
        return record

    def DescribeModelPackage(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._package(params["ModelPackageName"])

    def UpdateModelPackage(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        package = self._package(params["ModelPackageArn"])
        versioned = "ModelPackageVersion" in package
        status = params.get("ModelApprovalStatus")
        if status and not versioned:
            raise invalid("ModelApprovalStatus applies only to versioned model packages.")
        removals = params.get("CustomerMetadataPropertiesToRemove") or []
        overlap = set(removals) & set(params.get("CustomerMetadataProperties") or {})
        if overlap:
            raise invalid(f"CustomerMetadataProperties keys {sorted(overlap)} cannot be both added and removed.")
        self._check_inference(params.get("InferenceSpecification"))
        now = time.time()
        who = user_context(ctx)

        def change(record: dict[str, Any]) -> None:
            if status and status != record.get("ModelApprovalStatus"):
                record["ModelApprovalStatus"] = status
                entry = {"ModelApprovalStatus": status, "Time": now, "ChangedBy": who}
                if params.get("ApprovalDescription"):
                    entry["ApprovalDescription"] = params["ApprovalDescription"]
                record.setdefault("_approval_history", []).append(entry)
            for key in ("ApprovalDescription", "InferenceSpecification", "SourceUri", "ModelCard",
                        "ModelLifeCycle", "ModelPackageRegistrationType"):
                if params.get(key) is not None:
                    record[key] = params[key]
            metadata = {**(record.get("CustomerMetadataProperties") or {}),
                        **(params.get("CustomerMetadataProperties") or {})}
            for key in removals:
                metadata.pop(key, None)
            if metadata or "CustomerMetadataProperties" in record:
                record["CustomerMetadataProperties"] = metadata
            if params.get("AdditionalInferenceSpecificationsToAdd"):
                record["AdditionalInferenceSpecifications"] = (
                    list(record.get("AdditionalInferenceSpecifications") or [])
                    + params["AdditionalInferenceSpecificationsToAdd"])
            record["LastModifiedTime"] = now
            record["LastModifiedBy"] = who

        key = package["ModelPackageArn"].split(":model-package/", 1)[1] if versioned else package["ModelPackageName"]
        self.emulator.state.modify(PACKAGE, key, change)
        return {"ModelPackageArn": package["ModelPackageArn"]}

    def DeleteModelPackage(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        package = self._package(params["ModelPackageName"])
        key = package["ModelPackageArn"].split(":model-package/", 1)[1] if "ModelPackageVersion" in package \
            else package["ModelPackageName"]
        self.emulator.state.delete(PACKAGE, key)
        return {}

    def ListModelPackages(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        """Versions of ``ModelPackageGroupName`` when given; else, by ``ModelPackageType``, unversioned packages
        (SageMaker's default), versioned ones or both."""
        records = self.emulator.state.all(PACKAGE)
        group_ref = params.get("ModelPackageGroupName")
        kind = params.get("ModelPackageType")
        if group_ref:
            group = self._group(ctx, group_ref)["ModelPackageGroupName"]
            records = [r for r in records if r.get("ModelPackageGroupName") == group and "ModelPackageVersion" in r]
        elif kind in (None, "Unversioned"):
            records = [r for r in records if "ModelPackageVersion" not in r]
        elif kind == "Versioned":
            records = [r for r in records if "ModelPackageVersion" in r]
        if params.get("ModelApprovalStatus"):
            records = [r for r in records if r.get("ModelApprovalStatus") == params["ModelApprovalStatus"]]
        records = [{**r, "_sort_name": f"{r.get('ModelPackageName', '')}/{r.get('ModelPackageVersion', 0):010d}"}
                   for r in records]
        items, token = list_records(
            records, params, name_field="ModelPackageName", status_field="",
            summary=self._package_summary, sort_fields={"Name": "_sort_name"})
        return {"ModelPackageSummaryList": items, "NextToken": token}

    @staticmethod
    def _package_summary(record: dict[str, Any]) -> dict[str, Any]:
        out = {k: record[k] for k in SUMMARY_FIELDS if k in record}
        if "ModelPackageVersion" in record:
            out.pop("ModelPackageName", None)  # SageMaker lists versions by ARN only
        return out



def resolve_model_packages(state: Any, params: dict[str, Any]) -> dict[str, Any]:
    """A ``CreateModel`` request with each ``ModelPackageName`` container replaced by the package's containers
    (a package of several containers makes the model a serial inference pipeline, as on SageMaker)."""
    out = dict(params)
    primary = params.get("PrimaryContainer")
    if primary and primary.get("ModelPackageName"):
        resolved = package_containers(state, primary)
        if len(resolved) == 1:
            out["PrimaryContainer"] = resolved[0]
        else:
            out.pop("PrimaryContainer")
            out["Containers"] = resolved
    if params.get("Containers"):
        out["Containers"] = [item for c in params["Containers"]
                             for item in (package_containers(state, c) if c.get("ModelPackageName") else [c])]
    return out
