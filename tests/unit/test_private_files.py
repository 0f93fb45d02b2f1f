"""Issue 11: TENANCY_HOME's contents are readable by their owner only: directories 0700, files
0600, made so when created whatever the umask, and older looser files tightened when opened."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import structlog

from tenancy.adapters.local.database import Database
from tenancy.adapters.local.signing_keys import SigningKeys
from tenancy.bootstrap import build
from tenancy.domain.model import Step
from tenancy.faults import FaultKind, FaultRule, _crash
from tenancy.logging_setup import ComponentLogFiles, configure_logging
from tenancy.private_files import private_directory

from helpers import make_settings

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """No umask at all, so every mode seen is the one the code asked for."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_a_new_home_its_database_and_key_are_private_whatever_the_umask(tmp_path: Path, open_umask: None) -> None:
    home = tmp_path / "new" / "home"
    services = build(make_settings(home))
    try:
        services.identity.create_user("kate@example.com", {"email": "kate@example.com"}, "TempPass123!")
        database = home / "tenancy.db"
        assert mode(tmp_path / "new") == mode(home) == 0o700
        assert mode(database) == 0o600
        # WAL mode: SQLite made these beside the database, with its mode.
        for companion in ("tenancy.db-wal", "tenancy.db-shm"):
            assert mode(home / companion) == 0o600, companion
        assert mode(home / "keys") == 0o700
        assert mode(home / "keys" / "signing-key.pem") == 0o600
    finally:
        services.close()


def test_log_files_and_their_directory_are_private_whatever_the_umask(tmp_path: Path, open_umask: None) -> None:
    home = tmp_path / "home"
    sink = ComponentLogFiles(home / "logs")

    sink(SimpleNamespace(name="tenancy.web"), "info", {"event": "hello", "email": "kate@example.com"})
    sink(SimpleNamespace(name="tenancy.payments"), "info", {"event": "itn"})

    assert mode(home) == mode(home / "logs") == 0o700
    assert sorted(path.name for path in (home / "logs").iterdir()) == ["app.log", "itn.log"]
    assert all(mode(path) == 0o600 for path in (home / "logs").iterdir())


def test_configured_logging_writes_private_files(
    tmp_path: Path, open_umask: None, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = structlog.get_config()
    logs = tmp_path / "home" / "logs"
    configure_logging("info", log_dir=logs)
    # Cached loggers would keep this test's sink for the tests after it (as in test_logs.py).
    structlog.configure(cache_logger_on_first_use=False)
    try:
        structlog.get_logger("tenancy.provisioning.worker").info("job_done", transaction_id="TXN-1")
        assert mode(logs / "provisioning.log") == 0o600
    finally:
        structlog.configure(**saved)


def test_files_an_older_version_left_readable_are_tightened(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    database = home / "tenancy.db"
    Database(database).close()
    for path in (database, home / "tenancy.db-wal"):
        path.touch()
        path.chmod(0o644)
    logs = home / "logs"
    logs.mkdir()
    logs.chmod(0o755)
    (logs / "app.log").write_text("")
    (logs / "app.log").chmod(0o640)
    keys = home / "keys"
    SigningKeys.load_or_create(keys)
    keys.chmod(0o755)
    (keys / "signing-key.pem").chmod(0o644)

    Database(database).close()
    ComponentLogFiles(logs)(SimpleNamespace(name="tenancy.web"), "info", {"event": "again"})
    SigningKeys.load_or_create(keys)

    assert mode(database) == 0o600
    assert mode(logs) == mode(keys) == 0o700
    assert mode(logs / "app.log") == 0o600
    assert mode(keys / "signing-key.pem") == 0o600
    # A home that already existed is the operator's choice of directory, and is left as it was.
    assert mode(home) == 0o755


def test_existing_parents_are_left_alone(tmp_path: Path, open_umask: None) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)

    private_directory(shared / "a" / "b")

    assert mode(shared) == 0o755
    assert mode(shared / "a") == mode(shared / "a" / "b") == 0o700


def test_a_fault_marker_is_private(tmp_path: Path, open_umask: None, monkeypatch: pytest.MonkeyPatch) -> None:
    class CrashError(Exception):
        pass

    def crash(code: int) -> None:
        raise CrashError(code)

    monkeypatch.setattr(os, "_exit", crash)
    home = tmp_path / "home"
    rule = FaultRule(FaultKind.CRASH_AFTER, Step.TENANT_RECORD, once=True)

    with pytest.raises(CrashError):
        _crash(rule, home, transaction_id="TXN-1")

    marker = home / "faults" / rule.marker_name
    assert marker.read_text() == "TXN-1\n"
    assert mode(home) == mode(home / "faults") == 0o700
    assert mode(marker) == 0o600
