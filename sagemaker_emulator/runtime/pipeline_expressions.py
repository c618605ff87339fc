"""Evaluating a pipeline's expressions when a step is launched: ``Get``, ``Std:Join``, ``Std:JsonGet``, conditions.

``{"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}`` is a path over the
step's ``Describe*`` response (what SageMaker calls the step's properties);
a list member is picked by index or by its name (``Outputs['train']`` is the
output whose ``OutputName`` is ``train``, ``FinalMetricDataList['validation:auc']``
the metric so named). ``Std:JsonGet`` reads a JSON file from the emulator's
S3: a step's property file (``<output S3Uri>/<FilePath>``) or an ``S3Uri``.
A value that cannot be resolved fails the step that needed it, saying which.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from .pipeline_definition import parse_path


class StepError(Exception):
    """The step fails with this reason (an expression it needs could not be evaluated)."""


def coerce_parameter(declared: dict[str, Any], value: Any) -> Any:
    """A parameter's value in its declared type (``StartPipelineExecution`` sends every value as a string)."""
    kind, name = declared["Type"], declared["Name"]
    try:
        if kind == "Integer":
            return int(str(value))
        if kind == "Float":
            return float(value)
        if kind == "Boolean":
            if isinstance(value, bool):
                return value
            if str(value).lower() not in ("true", "false"):
                raise ValueError(value)
            return str(value).lower() == "true"
    except ValueError:
        raise ValueError(f"Value {value!r} of parameter {name} is not a valid {kind}.") from None
    return str(value)


def walk(document: Any, tokens: list[str | int], label: str) -> Any:
    """Follow ``tokens`` through ``document``; a list is indexed by position or by a member's name."""
    value = document
    for token in tokens:
        if isinstance(value, list) and isinstance(token, str):
            value = _named(value, token, label)
        elif isinstance(value, list) and isinstance(token, int) and -len(value) <= token < len(value):
            value = value[token]
        elif isinstance(value, dict) and isinstance(token, str) and token in value:
            value = value[token]
        else:
            raise StepError(f"{label} is undefined: no {token!r} there.")
    return value


def _named(items: list[Any], key: str, label: str) -> Any:
    for item in items:
        if isinstance(item, dict) and any(k.endswith("Name") and v == key for k, v in item.items()):
            return item
    raise StepError(f"{label} is undefined: no list member named {key!r}.")


class Evaluator:
    """Evaluates expressions for one step launch of one execution."""

    def __init__(self, parameters: dict[str, Any], variables: dict[str, Any],
                 properties: Callable[[str], dict[str, Any]], property_file: Callable[[str, str], str],
                 read_s3: Callable[[str], bytes]) -> None:
        self.parameters = parameters
        self.variables = variables
        self.properties = properties
        self.property_file = property_file
        self.read_s3 = read_s3

    def resolve(self, value: Any) -> Any:
        """``value`` with every expression in it replaced by its value (nested steps of a condition excepted)."""
        if isinstance(value, dict):
            if len(value) == 1:
                (key, body), = value.items()
                if key == "Get":
                    return self.get(body)
                if key == "Std:Join":
                    return self.join(body)
                if key == "Std:JsonGet":
                    return self.json_get(body)
            return {k: v if k in ("IfSteps", "ElseSteps") else self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def get(self, target: str) -> Any:
        head, _, rest = target.partition(".")
        if head == "Parameters":
            return self.parameters[rest]
        if head == "Execution":
            if rest not in self.variables:
                raise StepError(f"Execution.{rest} is undefined for this step.")
            return self.variables[rest]
        step, _, path = rest.partition(".")
        return walk(self.properties(step), parse_path(path), f"Steps.{rest}")

    def join(self, body: dict[str, Any]) -> str:
        values = [self.resolve(v) for v in body.get("Values") or []]
        return str(body.get("On", "")).join(as_text(v) for v in values)

    def json_get(self, body: dict[str, Any]) -> Any:
        ref = body.get("PropertyFile")
        if ref is not None:
            step, name = re.fullmatch(r"Steps\.([^.]+)\.PropertyFiles\.(.+)", ref["Get"]).groups()  # type: ignore
            uri = self.property_file(step, name)
        else:
            uri = as_text(self.resolve(body["S3Uri"]))
        try:
            document = json.loads(self.read_s3(uri))
        except ValueError:
            raise StepError(f"Contents of file {uri} are not in valid JSON format.") from None
        return walk(document, parse_path(body["Path"]), f"JsonGet path '{body['Path']}' in {uri}")

    # ------------------------------------------------------------ conditions
    def condition(self, item: dict[str, Any]) -> bool:
        kind = item.get("Type")
        if kind == "Not":
            return not self.condition(item["Condition"])
        if kind == "Or":
            return any(self.condition(c) for c in item.get("Conditions") or [])
        if kind == "In":
            query = self.resolve(item["QueryValue"])
            return any(_equal(query, self.resolve(v)) for v in item.get("Values") or [])
        left, right = self.resolve(item.get("LeftValue")), self.resolve(item.get("RightValue"))
        if kind == "Equals":
            return _equal(left, right)
        compare = {"GreaterThan": lambda a, b: a > b, "GreaterThanOrEqualTo": lambda a, b: a >= b,
                   "LessThan": lambda a, b: a < b, "LessThanOrEqualTo": lambda a, b: a <= b}.get(str(kind))
        if compare is None:
            raise StepError(f"Condition of type {kind} is not supported.")
        try:
            return bool(compare(_number(left), _number(right)))
        except (TypeError, ValueError):
            raise StepError(f"Condition {kind} cannot compare {left!r} with {right!r}.") from None


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        raise TypeError(value)
    return float(value) if isinstance(value, str) else value


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, (int, float)) and isinstance(right, (int, float)) and not isinstance(left, bool):
        return float(left) == float(right)
    return left == right


def as_text(value: Any) -> str:
    """How a value reads inside a string (``Std:Join``, hyperparameters): booleans as JSON writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

