"""constraints.txt pins every dependency, and the environment the tests run in is the pinned
one: fingerprints (ORB keypoints above all) change with OpenCV's version, and a matcher
compares keypoints made by ingest with keypoints made for a query."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]


def pins() -> dict[str, Version]:
    out = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line}"
            out[canonicalize_name(name)] = Version(version)
    return out


def requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        wanted.extend(extra)
    found = [Requirement(text) for text in wanted]
    return [r for r in found if canonicalize_name(r.name) != canonicalize_name(project["name"])]


def test_every_dependency_of_every_extra_is_pinned_within_what_pyproject_allows() -> None:
    pinned = pins()
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is not in constraints.txt"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {requirement.name} {pinned[name]}, "
            f"outside pyproject.toml's {requirement.specifier}"
        )


def test_the_installed_packages_are_the_pinned_versions() -> None:
    wrong = []
    for name, version in pins().items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            continue  # an extra this environment did not install
        if installed != version:
            wrong.append(f"{name} {installed} (pinned {version})")
    assert not wrong, "installed without constraints.txt: " + ", ".join(wrong)
