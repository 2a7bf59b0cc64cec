"""Packaging stays declared the way current setuptools wants: every fixture Lake project directory is listed as a
(data-only) package, so it ships and no setuptools warning guesses about it (issue 12, item 4)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_fixture_lake_directory_is_a_listed_package_and_the_license_is_an_spdx_string() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = {name for name in config["tool"]["setuptools"]["packages"] if name.startswith("leanworker.fixtures.lake")}
    on_disk = {"leanworker." + os.path.relpath(root, ROOT).replace(os.sep, ".")
               for root, _, _ in os.walk(ROOT / "fixtures" / "lake")}
    assert listed == on_disk, f"add to pyproject.toml packages: {sorted(on_disk - listed)}; drop: {sorted(listed - on_disk)}"
    assert isinstance(config["project"]["license"], str)
