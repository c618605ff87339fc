"""Image environments: what the first job in an image tag pays to build its environment, and what later jobs pay.

Each distinct environment of ``sagemaker_emulator.images.environments`` is built into a fresh cache
directory, one after the other, exactly as a job builds it (``ImageEnvironments.ensure``: venv, pip
``--only-binary`` of the pinned releases, the runner link, the marker), then looked up again as a
later job does. pip's own download cache is left as it is (say in the report whether it was warm:
a first build on a new machine also downloads 60–250 MB of wheels).

    python benchmarks/bench_imageenvs.py [--only sagemaker-xgboost:1.7-1 …] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results" / "imageenvs.json"


def _size(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=False).stdout
    return int(out.split()[0]) if out else 0


def build_each(names: list[str] | None, log: Any = print) -> dict[str, Any]:
    from sagemaker_emulator.images.environments import ENVIRONMENTS
    from sagemaker_emulator.runtime.imageenvs import ImageEnvironments

    distinct = {env.requirements: env for env in ENVIRONMENTS.values()}
    results: dict[str, Any] = {}
    for env in distinct.values():
        if names and env.name not in names:
            continue
        cache = Path(tempfile.mkdtemp(prefix="bench-imageenvs-"))
        os.environ.pop("SAGEMAKER_EMULATOR_IMAGE_ENV_DIR", None)
        envs = ImageEnvironments(cache)
        lines: list[str] = []
        started = time.perf_counter()
        try:
            envs.ensure(env, lines.append)
            built = time.perf_counter() - started
            again = time.perf_counter()
            envs.ensure(env, lines.append)
            reuse = time.perf_counter() - again
            results[env.name] = {"build_seconds": round(built, 1), "reuse_seconds": reuse,
                                 "size_bytes": _size(envs.env_dir(env)), "requirements": list(env.requirements),
                                 "log_lines": len(lines), "ok": True}
        except Exception as exc:  # noqa: BLE001 - a build that fails is a result too
            results[env.name] = {"build_seconds": round(time.perf_counter() - started, 1), "ok": False,
                                 "error": f"{type(exc).__name__}: {exc}"[:500]}
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        log(f"{env.name}: {json.dumps(results[env.name])[:300]}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="environment names (e.g. sagemaker-xgboost:1.7-1)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    load = os.getloadavg()
    results = {"load_average_at_start": load, "environments": build_each(args.only)}
    results["load_average_at_end"] = os.getloadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
