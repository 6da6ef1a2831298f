"""requirements.lock pins every dependency pyproject names, with hashes, and this environment
was installed from it (`make install`), so a fresh machine gets what the suite was run with."""

from __future__ import annotations

import os
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _locked(name: str = "requirements.lock") -> dict[str, str]:
    text = (ROOT / name).read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9._-]+)==([^\s;]+)", text, flags=re.M))
    assert text.count("--hash=sha256:") >= len(pins)  # every pin carries its hashes
    return {name.lower().replace("_", "-"): version for name, version in pins.items()}


def test_every_dependency_and_dev_dependency_is_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in [*project["dependencies"], *project["optional-dependencies"]["dev"]]}
    assert wanted - set(_locked()) == set(), "run `make lock` after changing pyproject's dependencies"


def test_the_worker_image_lock_pins_the_runtime_dependencies_at_the_same_versions() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime, full = _locked("requirements-runtime.lock"), _locked()
    assert {_name(r) for r in project["dependencies"]} - set(runtime) == set()
    assert {n: v for n, v in runtime.items() if full.get(n) != v} == {}


@pytest.mark.skipif(bool(os.environ.get("PUSHSTREAM_TEST_LATEST")), reason="make test-latest runs on the newest allowed versions")
def test_the_installed_versions_are_the_locked_ones() -> None:
    mismatched = {}
    for name, version in _locked().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # platform-specific pins (e.g. colorama on Windows)
        if installed != version:
            mismatched[name] = (installed, version)
    assert not mismatched, f"installed vs locked: {mismatched}; reinstall with `make install`"
