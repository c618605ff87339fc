"""Write the kernel environment's three files from ``constraints/sagemaker-distribution.toml``.

Why one source: ``pyproject.toml`` (what pip resolves for anyone who installs the project),
``environment.yml`` (what a conda or Studio user creates) and ``constraints/kernel.txt`` (the exact
versions ``make setup`` holds pip to) must name the same versions, those of the SageMaker
Distribution image that Studio's kernel runs. Three hand-kept copies drift; one table and a
generator do not, and ``--check`` (run by tests/test_kernel_env.py) says when a file was edited
by hand.

Usage::

    python tools/kernel_env.py           # rewrite the three files from the table
    python tools/kernel_env.py --check   # exit 1 naming the files that differ from it; write nothing
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = Path("constraints/sagemaker-distribution.toml")
CONSTRAINTS = Path("constraints/kernel.txt")
ENVIRONMENT = Path("environment.yml")
PYPROJECT = Path("pyproject.toml")
GROUPS = ("main", "dev", "kernel")
FIX_COMMAND = "python tools/kernel_env.py"
WIDTH = 116
_KEYS = {"smd", "pin", "spec", "group", "why"}
_VERSION = re.compile(r"^\d+(\.\d+)+$")


class SourceError(ValueError):
    """The table is inconsistent: the message names the package and the rule it breaks."""


@dataclass(frozen=True)
class Package:
    """One package: the image's version, ours when it differs, and where pyproject lists it."""

    name: str
    group: str
    smd: str | None = None
    pin: str | None = None
    spec: str | None = None
    why: str | None = None

    @property
    def exact(self) -> str | None:
        """The version constraints/kernel.txt holds pip to (None: not held)."""
        if self.pin:
            return self.pin
        return self.smd if self.spec is None else None

    @property
    def requirement(self) -> str:
        """pyproject's requirement: the given spec, else the pin's minor series (as the image's env.in ranges are)."""
        return self.name + (self.spec if self.spec is not None else minor_series(self.exact or ""))

    @property
    def deviation(self) -> str | None:
        """Why this package is not at the image's version, in one line (None: it is, or the image lacks it)."""
        if self.smd is None or self.exact == self.smd:
            return None
        ours = f"{self.pin}" if self.pin else f"{self.spec}"
        return f"{self.name}: image has {self.smd}, we use {ours}: {self.why}"


@dataclass(frozen=True)
class Source:
    """The parsed table: the release it follows, the Python we run on, and the packages."""

    release: str
    release_python: str
    package_list: str
    requires_python: str
    conda_python: str
    packages: tuple[Package, ...]

    def group(self, *groups: str) -> list[Package]:
        return sorted((p for p in self.packages if p.group in groups), key=lambda p: p.name)

    @property
    def title(self) -> str:
        return f"SageMaker Distribution {self.release}"


def minor_series(version: str) -> str:
    """``2.3.3`` → ``>=2.3.3,<2.4``: that release and its patches, never the next minor."""
    if not _VERSION.match(version):
        raise SourceError(f"{version!r} is not a release version (digits and dots)")
    major, minor = version.split(".")[:2]
    return f">={version},<{major}.{int(minor) + 1}"


def _package(name: str, fields: dict) -> Package:
    unknown = set(fields) - _KEYS
    if unknown:
        raise SourceError(f"{name}: unknown keys {sorted(unknown)} (allowed: {sorted(_KEYS)})")
    package = Package(name=name, **fields)
    if package.group not in GROUPS:
        raise SourceError(f"{name}: group must be one of {GROUPS}, not {package.group!r}")
    if package.pin and not (package.smd and package.why):
        raise SourceError(f"{name}: a pin replaces the image's version: give `smd` and `why`")
    if package.smd is None and package.spec is None:
        raise SourceError(f"{name}: a package the image lacks needs a `spec`")
    if package.smd and package.spec is not None and not package.why:
        raise SourceError(f"{name}: not held to the image's {package.smd}: say `why`")
    if package.exact is None and package.group == "kernel":
        raise SourceError(f"{name}: a kernel-group package exists only as a constraint: it needs a version")
    for version in (package.smd, package.pin):
        if version is not None:
            minor_series(version)
    return package


def load(path: Path) -> Source:
    """Parse and validate the table; every inconsistency is a SourceError naming the package."""
    data = tomllib.loads(path.read_text())
    dist, python = data["distribution"], data["python"]
    packages = tuple(_package(name, dict(fields)) for name, fields in data["packages"].items())
    return Source(release=dist["release"], release_python=dist["python"], package_list=dist["package_list"],
                  requires_python=python["requires"], conda_python=python["conda"], packages=packages)


def _comment(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, WIDTH - len(indent), initial_indent=f"{indent}# ", subsequent_indent=f"{indent}#   ",
                         break_on_hyphens=False, break_long_words=False)


def _header(source: Source, what: str) -> list[str]:
    return _comment(f"{what} Written by tools/kernel_env.py from {SOURCE} ({source.title}, whose kernel runs "
                    f"Python {source.release_python}; ours {source.requires_python}): edit that file, not this one.")


def render_constraints(source: Source) -> str:
    """Every held package at its exact version; deviations from the image as comments beside them."""
    lines = _header(source, f"The versions of {source.title} for the packages this project shares with it. "
                            "`make setup` installs with `pip install -c constraints/kernel.txt -e '.[dev]'`.")
    lines.append(f"# image's package list: {source.package_list}")
    for package in sorted(source.packages, key=lambda p: p.name):
        if package.exact:
            lines.append(f"{package.name}=={package.exact}")
    deviations = [p.deviation for p in sorted(source.packages, key=lambda p: p.name) if p.deviation]
    if deviations:
        lines.append("")
        lines.append("# Where we differ from the image:")
        for deviation in deviations:
            lines += _comment(deviation)
    return "\n".join(lines) + "\n"


def render_environment(source: Source) -> str:
    """conda-forge Python plus pip at the same exact versions, then the project itself (as `make setup`)."""
    lines = _header(source, "Conda / SageMaker Studio environment, at the kernel versions of the packages this "
                            "project shares with the image; pip installs the rest and the project itself.")
    lines += ["name: sagemaker-immersion-day", "channels:", "  - conda-forge", "dependencies:",
              f"  - python={source.conda_python}", "  - pip", "  - pip:"]
    for package in source.group("main", "kernel"):
        requirement = f"{package.name}=={package.exact}" if package.exact else package.requirement
        lines.append(f"      - {requirement}")
    lines.append("      - -e .")
    return "\n".join(lines) + "\n"


def _array(packages: list[Package], source: Source) -> str:
    lines = _comment(f"written by tools/kernel_env.py from {SOURCE} ({source.title}): edit that file", "    ")
    for package in packages:
        if package.deviation:
            lines += _comment(package.deviation, "    ")
        lines.append(f'    "{package.requirement}",')
    return "\n".join(lines) + "\n"


def _replace_array(text: str, key: str, body: str) -> str:
    pattern = re.compile(rf"^({re.escape(key)} = \[\n)(.*?)(^\])", re.MULTILINE | re.DOTALL)
    if len(pattern.findall(text)) != 1:
        raise SourceError(f"{PYPROJECT}: expected exactly one `{key} = [` ... `]` block")
    return pattern.sub(lambda m: m.group(1) + body + m.group(3), text)


def render_pyproject(source: Source, current: str) -> str:
    """``current`` with requires-python and the two dependency arrays rewritten; everything else kept."""
    text = re.sub(r'^requires-python = ".*"$', f'requires-python = "{source.requires_python}"', current,
                  flags=re.MULTILINE)
    text = _replace_array(text, "dependencies", _array(source.group("main"), source))
    return _replace_array(text, "dev", _array(source.group("dev"), source))


def expected(root: Path = ROOT) -> dict[Path, str]:
    """Each generated file (relative path) → the text the table says it must have."""
    source = load(root / SOURCE)
    return {
        CONSTRAINTS: render_constraints(source),
        ENVIRONMENT: render_environment(source),
        PYPROJECT: render_pyproject(source, (root / PYPROJECT).read_text()),
    }


def stale(root: Path = ROOT) -> list[Path]:
    """The generated files whose text differs from the table's (or that are missing)."""
    return [path for path, text in expected(root).items()
            if not (root / path).is_file() or (root / path).read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 naming files that differ; write nothing")
    parser.add_argument("--root", type=Path, default=ROOT, help="the project's root (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.check:
        differing = stale(args.root)
        for path in differing:
            print(f"{path}: differs from {SOURCE} (fix with: {FIX_COMMAND})", file=sys.stderr)
        return 1 if differing else 0
    for path, text in expected(args.root).items():
        target = args.root / path
        if not target.is_file() or target.read_text() != text:
            target.write_text(text)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
