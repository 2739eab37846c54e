"""Shared fixtures: repo paths, the shared data root, small hand-made configurations."""

import os
from pathlib import Path

import numpy as np
import pytest

import frontier_jax  # noqa: F401  (switches on x64 before any test builds arrays)

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"


def shared_data_root() -> Path:
    """Where ../shared/data lives (FRONTIER_SHARED_DATA overrides)."""
    return Path(os.environ.get("FRONTIER_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def rng():
    return np.random.default_rng(0)
