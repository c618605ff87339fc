"""The training environment a framework container shows to a script-mode entry point.

User scripts are written against the ``SM_*`` variables and the CLI arguments
that the AWS training toolkit derives from ``/opt/ml/input/config``; a script
that works here must work unchanged on SageMaker, so this module rebuilds the
same values (same JSON encodings, same quirks such as ``True`` for a boolean
CLI value) with every path rooted at the local stand-in for ``/opt/ml``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("sagemaker-training-toolkit")

BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
DEFAULT_BASE_DIR = "/opt/ml"

SAGEMAKER_PREFIX = "sagemaker_"
PROGRAM_PARAM = "sagemaker_program"
SUBMIT_DIR_PARAM = "sagemaker_submit_directory"
REGION_PARAM = "sagemaker_region"
LOG_LEVEL_PARAM = "sagemaker_container_log_level"
JOB_NAME_PARAM = "sagemaker_job_name"
S3_OUTPUT_PARAM = "sagemaker_s3_output"
# Removed from the user's hyperparameters and not reported as framework params either.
RESERVED_HYPERPARAMETERS = frozenset(
    {
        PROGRAM_PARAM,
        SUBMIT_DIR_PARAM,
        "sagemaker_enable_cloudwatch_metrics",
        REGION_PARAM,
        LOG_LEVEL_PARAM,
        JOB_NAME_PARAM,
        "default_user_module_name",
        "_tuning_objective_metric",
        S3_OUTPUT_PARAM,
    }
)
DEFAULT_HOST = "algo-1"
DEFAULT_GROUP = "homogeneousCluster"


@dataclass(frozen=True)
class Paths:
    """The ``/opt/ml`` tree, rooted wherever the runtime staged it."""

    base: Path

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Paths:
        return cls(Path(environ.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR).absolute())

    @property
    def code(self) -> Path:
        return self.base / "code"

    @property
    def model(self) -> Path:
        return self.base / "model"

    @property
    def input(self) -> Path:
        return self.base / "input"

    @property
    def input_config(self) -> Path:
        return self.input / "config"

    @property
    def input_data(self) -> Path:
        return self.input / "data"

    @property
    def output(self) -> Path:
        return self.base / "output"

    @property
    def output_data(self) -> Path:
        return self.output / "data"

    @property
    def output_intermediate(self) -> Path:
        return self.output / "intermediate"

    def channel(self, name: str) -> Path:
        return self.input_data / name


def decode_hyperparameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-decode each value, keeping the raw string when it is not JSON.

    The SDK's framework estimators JSON-encode every value (``"\\"train.py\\""``)
    while ModelTrainer sends plain strings (``"train.py"``); both must decode to
    the same thing, exactly as the toolkit does it.
    """
    decoded: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            decoded[key] = json.loads(value)
        except (ValueError, TypeError):
            logger.debug(
                "Failed to parse hyperparameter %s value %s to Json.\nReturning the value itself", key, value
            )
            decoded[key] = value
    return decoded


def split_hyperparameters(decoded: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split into (user hyperparameters, ``sagemaker_*``/reserved parameters)."""
    user: dict[str, Any] = {}
    sagemaker: dict[str, Any] = {}
    for key, value in decoded.items():
        if key in RESERVED_HYPERPARAMETERS or key.startswith(SAGEMAKER_PREFIX):
            sagemaker[key] = value
        else:
            user[key] = value
    return user, sagemaker


def _as_text(value: Any) -> str:
    """``str()`` as the toolkit applies it to CLI values (``None`` becomes empty)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin1")
    return str(value)


def to_cmd_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """``--key value`` pairs in sorted key order; one-letter keys get a single dash.

    Values are ``str()`` of the decoded value (so ``true`` arrives as ``True``),
    and mappings are flattened to ``k1=v1,k2=v2`` — all toolkit behaviour that
    argparse-based user scripts already account for.
    """
    args: list[str] = []
    for key in sorted(hyperparameters):
        name = _as_text(key)
        args.append(("--" if len(name) > 1 else "-") + name if name else "")
        value = hyperparameters[key]
        if isinstance(value, Mapping):
            args.append(",".join(f"{k}={v}" for k, v in sorted(value.items())))
        else:
            args.append(_as_text(value))
    return args


def to_env_vars(mapping: Mapping[str, Any]) -> dict[str, str]:
    """``SM_<KEY>`` names; strings as-is, everything else compact sorted JSON."""

    def encode(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bytes):
            return value.decode("latin1")
        if isinstance(value, str):
            return value
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    return {f"SM_{str(key).upper()}": encode(value) for key, value in mapping.items() if key}


def _read_json(path: Path, default: Any) -> Any:
    """Missing config files get a default so a hand-staged base dir still runs."""
    if not path.exists():
        return default
    return json.loads(path.read_text(encoding="utf-8") or "null") or default


@dataclass
class TrainingEnvironment:
    """A snapshot of everything the toolkit's ``Environment`` exposes."""

    paths: Paths
    hyperparameters: dict[str, Any]
    sagemaker_parameters: dict[str, Any]
    resource_config: dict[str, Any]
    input_data_config: dict[str, Any]
    environ: Mapping[str, str] = field(repr=False)
    num_cpus: int = field(default_factory=lambda: os.cpu_count() or 1)

    @classmethod
    def load(cls, paths: Paths, environ: Mapping[str, str]) -> TrainingEnvironment:
        raw_hps = _read_json(paths.input_config / "hyperparameters.json", {})
        user, sagemaker = split_hyperparameters(decode_hyperparameters(raw_hps))
        resource_config = _read_json(
            paths.input_config / "resourceconfig.json",
            {"current_host": DEFAULT_HOST, "hosts": [DEFAULT_HOST]},
        )
        input_data_config = _read_json(paths.input_config / "inputdataconfig.json", {})
        return cls(paths, user, sagemaker, resource_config, input_data_config, environ)

    # -- values derived from the config files, named as the toolkit names them --

    @property
    def current_host(self) -> str:
        return str(self.resource_config.get("current_host", DEFAULT_HOST))

    @property
    def hosts(self) -> list[str]:
        return list(self.resource_config.get("hosts", [self.current_host]))

    @property
    def current_instance_type(self) -> str:
        return str(self.resource_config.get("current_instance_type", "local"))

    @property
    def current_instance_group(self) -> str:
        return str(self.resource_config.get("current_group_name", DEFAULT_GROUP))

    @property
    def network_interface_name(self) -> str:
        return str(self.resource_config.get("network_interface_name", "eth0"))

    @property
    def user_entry_point(self) -> str | None:
        program = self.environ.get("SAGEMAKER_PROGRAM") or self.sagemaker_parameters.get(PROGRAM_PARAM)
        return None if program is None else str(program)

    @property
    def module_name(self) -> str | None:
        entry = self.user_entry_point
        return entry[:-3] if entry and entry.endswith(".py") else entry

    @property
    def module_dir(self) -> str:
        return str(self.sagemaker_parameters.get(SUBMIT_DIR_PARAM, self.paths.code))

    @property
    def log_level(self) -> int:
        try:
            return int(self.sagemaker_parameters.get(LOG_LEVEL_PARAM, logging.INFO))
        except (TypeError, ValueError):
            return logging.INFO

    @property
    def framework_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.sagemaker_parameters.items() if k not in RESERVED_HYPERPARAMETERS}

    @property
    def channel_input_dirs(self) -> dict[str, str]:
        return {name: str(self.paths.channel(name)) for name in self.input_data_config}

    @property
    def region(self) -> str:
        return str(
            self.sagemaker_parameters.get(REGION_PARAM)
            or self.environ.get("AWS_REGION")
            or self.environ.get("AWS_DEFAULT_REGION")
            or ""
        )

    def _instance_groups(self) -> list[dict[str, Any]]:
        return list(self.resource_config.get("instance_groups", []))

    def _distribution_instance_groups(self) -> list[str]:
        explicit = self.framework_params.get("sagemaker_distribution_instance_groups")
        if explicit is not None:
            return list(explicit)
        distributed = any(
            self.framework_params.get(flag)
            for flag in (
                "sagemaker_mpi_enabled",
                "sagemaker_parameter_server_enabled",
                "sagemaker_distributed_dataparallel_enabled",
                "sagemaker_pytorch_ddp_enabled",
                "sagemaker_pytorch_xla_multi_worker_enabled",
                "sagemaker_multi_worker_mirrored_strategy_enabled",
                "sagemaker_torch_distributed_enabled",
            )
        )
        return [self.current_instance_group] if distributed else []

    def training_env(self) -> dict[str, Any]:
        """The ``SM_TRAINING_ENV`` document: every public property of the toolkit's Environment."""
        groups = self._instance_groups()
        dist_groups = self._distribution_instance_groups()
        if groups:
            dist_hosts = [
                h for g in groups if g.get("instance_group_name") in dist_groups for h in g["hosts"]
            ]
        else:
            dist_hosts = list(self.hosts)
        group_hosts = next(
            (list(g["hosts"]) for g in groups if g.get("instance_group_name") == self.current_instance_group),
            [],
        )
        master = dist_hosts[0] if dist_hosts else self.hosts[0]
        mp_parameters = self.environ.get("SM_HP_MP_PARAMETERS")
        return {
            "additional_framework_parameters": self.framework_params,
            "channel_input_dirs": self.channel_input_dirs,
            "current_host": self.current_host,
            "current_instance_group": self.current_instance_group,
            "current_instance_group_hosts": group_hosts,
            "current_instance_type": self.current_instance_type,
            "distribution_hosts": dist_hosts,
            "distribution_instance_groups": dist_groups,
            "framework_module": self.environ.get("SAGEMAKER_TRAINING_MODULE"),
            "hosts": self.hosts,
            "hyperparameters": self.hyperparameters,
            "input_config_dir": str(self.paths.input_config),
            "input_data_config": self.input_data_config,
            "input_dir": str(self.paths.input),
            "instance_groups": [g.get("instance_group_name") for g in groups],
            "instance_groups_dict": {g.get("instance_group_name"): g for g in groups},
            "is_hetero": len(groups) > 1,
            "is_master": self.current_host == master,
            "is_modelparallel_enabled": bool(mp_parameters and mp_parameters != "{}"),
            "is_smddpmprun_installed": False,
            "is_smddprun_installed": False,
            "job_name": self.environ.get("TRAINING_JOB_NAME"),
            "log_level": self.log_level,
            "master_hostname": master,
            "model_dir": str(self.paths.model),
            "module_dir": self.module_dir,
            "module_name": self.module_name,
            "network_interface_name": self.network_interface_name,
            "num_cpus": self.num_cpus,
            "num_gpus": 0,
            "num_neurons": 0,
            "output_data_dir": str(self.paths.output_data),
            "output_dir": str(self.paths.output),
            "output_intermediate_dir": str(self.paths.output_intermediate),
            "resource_config": self.resource_config,
            "topology": list(self.resource_config.get("topology", [])),
            "user_entry_point": self.user_entry_point,
        }

    def cmd_args(self) -> list[str]:
        """The user's hyperparameters as the entry point's command-line arguments."""
        return to_cmd_args(self.hyperparameters)

    def env_vars(self) -> dict[str, str]:
        """Every ``SM_*`` variable the toolkit exports, plus the few plain ones it sets."""
        env = self.training_env()
        values: dict[str, Any] = {
            "hosts": env["hosts"],
            "network_interface_name": env["network_interface_name"],
            "hps": self.hyperparameters,
            "user_entry_point": env["user_entry_point"],
            "framework_params": env["additional_framework_parameters"],
            "resource_config": env["resource_config"],
            "input_data_config": env["input_data_config"],
            "output_data_dir": env["output_data_dir"],
            "channels": sorted(self.channel_input_dirs),
            "current_host": env["current_host"],
            "current_instance_type": env["current_instance_type"],
            "current_instance_group": env["current_instance_group"],
            "current_instance_group_hosts": env["current_instance_group_hosts"],
            "instance_groups": env["instance_groups"],
            "instance_groups_dict": env["instance_groups_dict"],
            "distribution_instance_groups": env["distribution_instance_groups"],
            "is_hetero": env["is_hetero"],
            "module_name": env["module_name"],
            "log_level": env["log_level"],
            "framework_module": env["framework_module"],
            "input_dir": env["input_dir"],
            "input_config_dir": env["input_config_dir"],
            "output_dir": env["output_dir"],
            "num_cpus": env["num_cpus"],
            "num_gpus": env["num_gpus"],
            "num_neurons": env["num_neurons"],
            "model_dir": env["model_dir"],
            "module_dir": env["module_dir"],
            "training_env": env,
            "user_args": self.cmd_args(),
            "output_intermediate_dir": env["output_intermediate_dir"],
        }
        if env["topology"]:
            values["topology"] = env["topology"]
        for name, path in self.channel_input_dirs.items():
            values[f"channel_{name}"] = path
        for key, value in self.hyperparameters.items():
            values[f"hp_{key}"] = value
        result = to_env_vars(values)
        # The toolkit also exports these un-prefixed; some framework code reads them.
        result["SAGEMAKER_JOB_NAME"] = str(self.sagemaker_parameters.get(JOB_NAME_PARAM, ""))
        result["CURRENT_HOST"] = self.current_host
        result["SAGEMAKER_REGION"] = self.region
        return result
