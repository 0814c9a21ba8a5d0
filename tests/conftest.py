"""Shared fixtures.  Tests that need the real data in ``../shared`` use the ``shared_dir`` fixture (or the
``shared`` marker) and are skipped cleanly where it is absent.  Override the location with GRADTRACK_SHARED."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GRADTRACK_SHARED", REPO.parent / "shared"))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip(f"needs the shared data at {SHARED}/data (absent)")
    return SHARED


@pytest.fixture(scope="session")
def shared_data(shared_dir) -> Path:
    return shared_dir / "data"
