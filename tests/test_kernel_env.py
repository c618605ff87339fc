"""The kernel environment: one table, three generated files that agree, and an installed venv that matches them.

Studio's kernel runs the SageMaker Distribution image; ``constraints/sagemaker-distribution.toml``
holds its versions of the packages we share with it, and ``tools/kernel_env.py`` writes
``pyproject.toml``'s dependency lists, ``environment.yml`` and ``constraints/kernel.txt`` from it.
These tests regenerate in memory and compare, check the rules of the table, and check that the
interpreter running them was installed with the constraints (as ``make setup`` does).
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tools import kernel_env
from tools.kernel_env import SourceError

ROOT = Path(__file__).resolve().parents[1]
GENERATED = (kernel_env.CONSTRAINTS, kernel_env.ENVIRONMENT, kernel_env.PYPROJECT)


def pins() -> dict[str, Version]:
    """constraints/kernel.txt as {canonical name: exact version}."""
    result = {}
    for line in (ROOT / kernel_env.CONSTRAINTS).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"{line}: constraints pin exact versions"
            result[canonicalize_name(requirement.name)] = Version(spec.version)
    return result


def pyproject_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / kernel_env.PYPROJECT).read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def test_generated_files_match_the_table() -> None:
    stale = kernel_env.stale(ROOT)
    assert not stale, f"{[str(p) for p in stale]} differ from {kernel_env.SOURCE}: run {kernel_env.FIX_COMMAND}"


def test_every_pin_satisfies_pyproject() -> None:
    pinned = pins()
    for requirement in pyproject_requirements():
        name = canonicalize_name(requirement.name)
        if name in pinned:
            assert requirement.specifier.contains(pinned[name]), f"{requirement} excludes the pin {pinned[name]}"


def test_environment_yml_installs_the_pins() -> None:
    lines = [line.strip()[2:] for line in (ROOT / kernel_env.ENVIRONMENT).read_text().splitlines()
             if line.startswith("      - ")]
    listed = {canonicalize_name(Requirement(line).name): Requirement(line) for line in lines if line != "-e ."}
    for name, version in pins().items():
        if name in listed:
            assert str(listed[name].specifier) == f"=={version}"
    assert lines[-1] == "-e ."


def test_known_bad_releases_are_kept_out() -> None:
    """ipykernel 7.0-7.3 can hang a notebook run (ipykernel#1554); IPython 9 removed what public notebooks import."""
    pinned = pins()
    assert pinned["ipykernel"] >= Version("7.4") or pinned["ipykernel"] < Version("7")
    assert pinned["ipython"] < Version("9")
    assert pinned["pandas"] < Version("3")


def test_this_interpreter_was_installed_with_the_constraints() -> None:
    """What `make setup` (pip install -c constraints/kernel.txt) gives; a stale venv is fixed by `make setup`."""
    wrong = {}
    for name, version in pins().items():
        try:
            installed = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = f"{installed} (constraint {version})"
    assert not wrong, f"installed versions differ from {kernel_env.CONSTRAINTS}: {wrong}; run make setup"


@pytest.mark.filterwarnings("ignore:Importing display from IPython.core.display is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:'DataFrame.swapaxes' is deprecated:FutureWarning")  # np.split on pandas 2.3
def test_public_notebook_idioms_work_as_in_studio() -> None:
    """The Immersion Day's split and display import, exactly as its notebooks write them."""
    from IPython.core.display import display  # removed in IPython 9

    df = pd.DataFrame({"y": range(10), "x": range(10)})
    train, validation, test = np.split(df.sample(frac=1, random_state=1729), [int(0.7 * len(df)), int(0.9 * len(df))])
    assert all(isinstance(part, pd.DataFrame) for part in (train, validation, test))
    assert [len(part) for part in (train, validation, test)] == [7, 2, 1]
    assert callable(display)


# --------------------------------------------------------------------------- the generator itself


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the table and the three files it writes."""
    for path in (kernel_env.SOURCE, *GENERATED):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    return tmp_path


def test_check_names_a_hand_edited_file_and_the_tool_repairs_it(project: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    constraints = project / kernel_env.CONSTRAINTS
    constraints.write_text(constraints.read_text().replace("pandas==2.3.3", "pandas==3.1.1"))
    (project / kernel_env.ENVIRONMENT).unlink()

    assert kernel_env.main(["--check", "--root", str(project)]) == 1
    err = capsys.readouterr().err
    assert f"{kernel_env.CONSTRAINTS}: differs" in err and f"{kernel_env.ENVIRONMENT}: differs" in err
    assert str(kernel_env.PYPROJECT) not in err

    assert kernel_env.main(["--root", str(project)]) == 0
    assert kernel_env.main(["--check", "--root", str(project)]) == 0
    assert "pandas==2.3.3" in constraints.read_text()


def test_a_new_version_in_the_table_reaches_all_three_files(project: Path) -> None:
    source = project / kernel_env.SOURCE
    source.write_text(source.read_text().replace('pandas = { smd = "2.3.3"', 'pandas = { smd = "2.3.4"'))
    kernel_env.main(["--root", str(project)])
    assert "pandas==2.3.4\n" in (project / kernel_env.CONSTRAINTS).read_text()
    assert "      - pandas==2.3.4\n" in (project / kernel_env.ENVIRONMENT).read_text()
    pyproject = (project / kernel_env.PYPROJECT).read_text()
    assert '    "pandas>=2.3.4,<2.4",\n' in pyproject
    assert pyproject.replace("2.3.4", "2.3.3") == (ROOT / kernel_env.PYPROJECT).read_text()  # nothing else moved


@pytest.mark.parametrize(("entry", "message"), [
    ('x = { smd = "1.0.0", pin = "1.0.1", group = "main" }', "x: a pin replaces the image's version: give `smd`"),
    ('x = { group = "main" }', "x: a package the image lacks needs a `spec`"),
    ('x = { smd = "1.0.0", spec = ">=2", group = "main" }', "x: not held to the image's 1.0.0: say `why`"),
    ('x = { smd = "1.0.0", group = "extra" }', "x: group must be one of ('main', 'dev', 'kernel'), not 'extra'"),
    ('x = { smd = "1.0.0", group = "main", note = "?" }', "x: unknown keys ['note']"),
    ('x = { smd = "1.0rc1", group = "main" }', "'1.0rc1' is not a release version"),
    ('x = { spec = ">=1", group = "kernel" }', "x: a kernel-group package exists only as a constraint"),
])
def test_inconsistent_table_entries_are_refused(tmp_path: Path, entry: str, message: str) -> None:
    source = tmp_path / "table.toml"
    source.write_text('[distribution]\nrelease = "1"\npython = "3.12"\npackage_list = "p"\n'
                      f'[python]\nrequires = ">=3.11"\nconda = "3.11"\n[packages]\n{entry}\n')
    with pytest.raises(SourceError) as raised:
        kernel_env.load(source)
    assert str(raised.value).startswith(message)


def test_minor_series_follows_the_images_own_ranges() -> None:
    assert kernel_env.minor_series("2.3.3") == ">=2.3.3,<2.4"
    assert kernel_env.minor_series("26.4.0") == ">=26.4.0,<26.5"
