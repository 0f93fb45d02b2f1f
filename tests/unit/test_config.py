"""Settings: defaults, comma lists, and the refusals that protect a live deployment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from tenancy.config import PAYFAST_SANDBOX_PASSPHRASE, PAYFAST_SOURCE_RANGES, PayfastMode, Settings


def test_defaults_are_the_embedded_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TENANCY_"):
            monkeypatch.delenv(name)
    settings = Settings()
    assert settings.backend.value == "local"
    assert settings.home == Path("./var")
    assert (settings.host, settings.port, settings.env) == ("127.0.0.1", 8000, "dev")
    assert settings.payfast_mode is PayfastMode.SANDBOX
    assert settings.payfast_merchant_id == "10000100"
    assert settings.passphrase == PAYFAST_SANDBOX_PASSPHRASE
    assert settings.payfast_source_ranges == PAYFAST_SOURCE_RANGES
    assert settings.effective_validate_url == "https://sandbox.payfast.co.za/eng/query/validate"
    assert settings.effective_login_url == "http://127.0.0.1:8000/auth/login"
    assert settings.email_from == "noreply@kimmyai.io"


def test_comma_separated_ranges_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENANCY_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1/32")
    monkeypatch.setenv("TENANCY_PAYFAST_SOURCE_RANGES", "197.97.145.144/28")
    settings = Settings()
    assert settings.trusted_proxies == ("10.0.0.0/8", "127.0.0.1/32")
    assert settings.payfast_source_ranges == ("197.97.145.144/28",)


def test_a_range_that_is_not_an_address_is_refused() -> None:
    with pytest.raises(ValidationError, match="not an IP address"):
        Settings(trusted_proxies=("not-a-network",))


def test_live_mode_refuses_the_public_sandbox_credentials() -> None:
    with pytest.raises(ValidationError, match="sandbox credentials"):
        Settings(payfast_mode="live", payfast_passphrase="my-own-passphrase")


def test_live_mode_refuses_to_run_without_a_passphrase() -> None:
    with pytest.raises(ValidationError, match="PASSPHRASE is required"):
        Settings(payfast_mode="live", payfast_merchant_id="123", payfast_merchant_key="k", payfast_passphrase="")


def test_live_mode_with_own_credentials_uses_the_live_validate_url() -> None:
    settings = Settings(
        payfast_mode="live", payfast_merchant_id="123", payfast_merchant_key="key", payfast_passphrase="secret-pass"
    )
    assert settings.effective_validate_url == "https://www.payfast.co.za/eng/query/validate"


def test_cli_refuses_live_sandbox_settings_in_one_line_without_the_secret(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TENANCY_PAYFAST_MODE": "live", "TENANCY_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "tenancy", "plans"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "sandbox credentials" in result.stderr
    assert PAYFAST_SANDBOX_PASSPHRASE not in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
