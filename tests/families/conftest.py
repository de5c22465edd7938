"""Shared fixtures of the per-family tests: one folder for the models the modules build (family_builders)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def models_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("families")
