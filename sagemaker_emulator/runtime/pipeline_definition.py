"""A pipeline definition (schema ``2020-12-01``) read, checked and turned into a DAG.

SageMaker checks a definition when the pipeline is created or updated: JSON,
step names unique, known step types, every ``DependsOn`` and every
``{"Get": "Steps.<name>…"}`` naming a step of the pipeline, parameters that
exist, JSON paths that parse, no cycle. Each failure is a
``ValidationException`` with a one-line message; ``parse`` raises
``DefinitionError`` and the control plane turns it into that.

The DAG has an edge for every explicit ``DependsOn``, every property
reference (``Get Steps.X``, ``Std:JsonGet`` over X's property file) and from
a ``Condition`` step to the steps of its ``IfSteps``/``ElseSteps`` (which are
nested inside the condition's ``Arguments`` and belong to it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = "2020-12-01"
#: the step types the local engine runs, each a real job or resource of the emulator
RUNNABLE = ("Training", "Processing", "Transform", "Tuning", "Model", "CreateModel", "RegisterModel",
            "Condition", "Fail")
#: types SageMaker knows that the local emulator cannot run (said in the error, not refused as unknown)
NOT_LOCAL = ("Lambda", "Callback", "QualityCheck", "ClarifyCheck", "EMR", "EMRServerless", "AutoML",
             "EndpointConfig", "Endpoint", "InferenceComponent", "Lineage", "Job", "Cleanup", "ForEach",
             "BedrockCustomModel", "BedrockCustomModelDeployment", "BedrockProvisionedModelThroughput",
             "BedrockModelImport", "NotebookJob")
PARAMETER_TYPES = ("String", "Integer", "Float", "Boolean")
EXECUTION_VARIABLES = ("PipelineExecutionId", "PipelineExecutionArn", "PipelineName", "PipelineArn",
                       "StartDateTime", "CurrentDateTime", "TrainingJobName", "ProcessingJobName")
EXPRESSIONS = ("Get", "Std:Join", "Std:JsonGet")
_DURATION = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")
#: seconds per unit of an ISO 8601 duration (a month is 30 days, a year 365: SageMaker does not say)
_UNITS = (365 * 86400, 30 * 86400, 7 * 86400, 86400, 3600, 60, 1)
_PATH_TOKEN = re.compile(r"""\.?([A-Za-z_][A-Za-z0-9_\-:]*)|\[(-?\d+)\]|\[(['"])(.*?)\3\]""")


class DefinitionError(ValueError):
    """The definition breaks a rule SageMaker checks; the message says which and where."""


def parse_path(path: str) -> list[str | int]:
    """``a.b[0]['k']`` → ``["a", "b", 0, "k"]`` (a leading ``$.`` is allowed); a path that does not parse
    raises ``DefinitionError`` naming it."""
    text = path[2:] if path.startswith("$.") else path
    tokens: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = _PATH_TOKEN.match(text, pos)
        if match is None or (pos == 0 and text.startswith(".")):
            raise DefinitionError(f"Invalid JSON path '{path}': cannot parse it at position {pos}.")
        name, index, _, key = match.groups()
        tokens.append(name if name is not None else int(index) if index is not None else key)
        pos = match.end()
    if not tokens:
        raise DefinitionError(f"Invalid JSON path '{path}': it is empty.")
    return tokens


def expire_seconds(text: str | None) -> float:
    """``CacheConfig.ExpireAfter`` (ISO 8601, e.g. ``P30D``, ``PT1H``) in seconds; none given: no expiry."""
    if not text:
        return float("inf")
    match = _DURATION.fullmatch(text)
    if match is None or text in ("P", "PT") or text.endswith("T"):
        raise DefinitionError(f"CacheConfig ExpireAfter '{text}' is not an ISO 8601 duration (e.g. P30D, PT1H).")
    return float(sum(int(v or 0) * unit for v, unit in zip(match.groups(), _UNITS, strict=True)))


@dataclass
class Step:
    name: str
    type: str
    arguments: dict[str, Any]
    raw: dict[str, Any]
    #: the condition step (and branch, "If"/"Else") this step is nested in, if any
    branch_of: tuple[str, str] | None = None
    depends_on: set[str] = field(default_factory=set)


@dataclass
class Definition:
    text: str
    document: dict[str, Any]
    parameters: dict[str, dict[str, Any]]
    steps: dict[str, Step]

    def order(self) -> list[str]:
        """Step names in a topological order (the order the definition lists them, where it allows)."""
        done: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for dep in sorted(self.steps[name].depends_on, key=list(self.steps).index):
                visit(dep)
            done.append(name)

        for name in self.steps:
            visit(name)
        return done


def parse(text: str) -> Definition:
    """Read and check a definition; the DAG it describes, or ``DefinitionError``."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise DefinitionError(f"The pipeline definition is not valid JSON: {exc}.") from None
    if not isinstance(document, dict):
        raise DefinitionError("The pipeline definition must be a JSON object.")
    if document.get("Version") != SCHEMA_VERSION:
        raise DefinitionError(f"Unsupported pipeline definition Version {document.get('Version')!r}; "
                              f"the supported version is {SCHEMA_VERSION}.")
    parameters = _parameters(document.get("Parameters") or [])
    if not isinstance(document.get("Steps"), list) or not document["Steps"]:
        raise DefinitionError("The pipeline definition must have a non-empty Steps list.")
    steps: dict[str, Step] = {}
    _collect(document["Steps"], steps, None)
    for step in steps.values():
        _link(step, steps, parameters)
    definition = Definition(text, document, parameters, steps)
    _check_acyclic(definition)
    return definition


def _parameters(items: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(items, list):
        raise DefinitionError("Parameters must be a list.")
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        name = item.get("Name") if isinstance(item, dict) else None
        if not name:
            raise DefinitionError("Every parameter needs a Name.")
        if name in out:
            raise DefinitionError(f"Parameter name {name} is used more than once.")
        if item.get("Type") not in PARAMETER_TYPES:
            raise DefinitionError(f"Parameter {name} has Type {item.get('Type')!r}; expected one of "
                                  f"{', '.join(PARAMETER_TYPES)}.")
        out[name] = item
    return out


def _collect(items: list[Any], steps: dict[str, Step], branch: tuple[str, str] | None) -> None:
    for raw in items:
        if not isinstance(raw, dict) or not raw.get("Name") or not raw.get("Type"):
            raise DefinitionError("Every step needs a Name and a Type.")
        name, kind = raw["Name"], raw["Type"]
        if name in steps:
            raise DefinitionError(f"Step name {name} is used more than once; step names must be unique.")
        if kind in NOT_LOCAL:
            raise DefinitionError(f"Step {name} has Type {kind}, which the local emulator does not run (it runs "
                                  f"{', '.join(RUNNABLE)}).")
        if kind not in RUNNABLE:
            raise DefinitionError(f"Step {name} has an unknown Type {kind!r}.")
        arguments = raw.get("Arguments") or {}
        if not isinstance(arguments, dict):
            raise DefinitionError(f"Arguments of step {name} must be a JSON object.")
        expire_seconds((raw.get("CacheConfig") or {}).get("ExpireAfter"))
        steps[name] = Step(name, kind, arguments, raw, branch)
        if kind == "Condition":
            if not arguments.get("Conditions"):
                raise DefinitionError(f"Condition step {name} needs at least one entry in Conditions.")
            _collect(arguments.get("IfSteps") or [], steps, (name, "If"))
            _collect(arguments.get("ElseSteps") or [], steps, (name, "Else"))


def references(value: Any) -> list[tuple[str, Any]]:
    """Every ``Get`` target and ``Std:JsonGet`` in ``value``, as ``("Get", path)``/``("JsonGet", body)``."""
    found: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        if "Get" in value and len(value) == 1:
            found.append(("Get", value["Get"]))
            return found
        if "Std:JsonGet" in value and len(value) == 1:
            found.append(("JsonGet", value["Std:JsonGet"]))
        for key, item in value.items():
            if key not in ("IfSteps", "ElseSteps"):
                found.extend(references(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(references(item))
    return found


def _link(step: Step, steps: dict[str, Step], parameters: dict[str, dict[str, Any]]) -> None:
    """The step's dependencies, each reference checked against the pipeline."""
    for dep in step.raw.get("DependsOn") or []:
        if dep not in steps:
            raise DefinitionError(f"Step {step.name} depends on {dep}, which is not a step of this pipeline.")
        step.depends_on.add(dep)
    if step.branch_of:
        step.depends_on.add(step.branch_of[0])
    for kind, target in references(step.arguments):
        if kind == "JsonGet":
            _check_json_get(step, target, steps)
            continue
        if not isinstance(target, str):
            raise DefinitionError(f"Step {step.name}: a Get must name a property as a string.")
        head, _, rest = target.partition(".")
        if head == "Parameters":
            if rest not in parameters:
                raise DefinitionError(f"Step {step.name} refers to parameter {rest}, which is not defined.")
        elif head == "Execution":
            if rest not in EXECUTION_VARIABLES:
                raise DefinitionError(f"Step {step.name} refers to an unknown execution variable {rest}.")
        elif head == "Steps":
            name, _, path = rest.partition(".")
            if name not in steps:
                raise DefinitionError(f"Step {step.name} refers to step {name}, which is not a step of this "
                                      "pipeline.")
            if name == step.name:
                raise DefinitionError(f"Step {step.name} refers to its own properties.")
            if path:
                parse_path(path)
            step.depends_on.add(name)
        else:
            raise DefinitionError(f"Step {step.name}: Get {target!r} must start with Parameters., Execution. or "
                                  "Steps.")


def _check_json_get(step: Step, body: Any, steps: dict[str, Step]) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("Path"), str):
        raise DefinitionError(f"Step {step.name}: Std:JsonGet needs a Path string.")
    parse_path(body["Path"])
    ref = body.get("PropertyFile")
    if ref is None:
        if "S3Uri" not in body:
            raise DefinitionError(f"Step {step.name}: Std:JsonGet needs a PropertyFile or an S3Uri.")
        return
    target = ref.get("Get", "") if isinstance(ref, dict) else ""
    match = re.fullmatch(r"Steps\.([^.]+)\.PropertyFiles\.(.+)", target)
    if match is None:
        raise DefinitionError(f"Step {step.name}: Std:JsonGet PropertyFile must be "
                              "{\"Get\": \"Steps.<step>.PropertyFiles.<name>\"}.")
    source, name = match.groups()
    if source not in steps:
        raise DefinitionError(f"Step {step.name} refers to step {source}, which is not a step of this pipeline.")
    files = [f.get("PropertyFileName") for f in steps[source].raw.get("PropertyFiles") or []]
    if name not in files:
        raise DefinitionError(f"Step {step.name} reads property file {name}, which step {source} does not define.")
    step.depends_on.add(source)


def _check_acyclic(definition: Definition) -> None:
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = trail[trail.index(name):] + [name]
            raise DefinitionError(f"The pipeline has a cycle: {' -> '.join(cycle)}.")
        state[name] = 1
        for dep in sorted(definition.steps[name].depends_on):
            visit(dep, trail + [name])
        state[name] = 2

    for name in definition.steps:
        visit(name, [])
