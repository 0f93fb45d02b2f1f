"""Shared fixtures: real embedded services on a temporary SQLite file, with cheap password hashing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tenancy.bootstrap import Services, build
from tenancy.config import Settings

from helpers import FAST_HASHING, file_logging, make_settings

__all__ = ["FAST_HASHING", "make_settings"]

# The real servers (tenancy serve, SMTP, the PayFast stand-in) as fixtures for every suite.
pytest_plugins = ["servers"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "home")


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build(settings)
    yield built
    built.close()


@pytest.fixture
def log_dir(tmp_path: Path) -> Iterator[Path]:
    """File logging into a temporary directory, as `tenancy serve` and `tenancy worker` log."""
    with file_logging(tmp_path / "logs") as directory:
        yield directory
