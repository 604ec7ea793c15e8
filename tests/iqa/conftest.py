"""Session-wide replica sets (read-only by convention: copy before modifying)."""
from __future__ import annotations

import pytest

from . import replicas


@pytest.fixture(scope="session")
def replica_root(tmp_path_factory):
    return replicas.build_all(tmp_path_factory.mktemp("iqa") / "benchmarks")
