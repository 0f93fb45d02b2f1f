"""Issue 11, through a real `tenancy serve` process: lookalike emails are refused (one spelling per
account), a wrong password tells nothing of the account's state, and TENANCY_HOME is private."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from servers import (
    MailCatcher,
    PayfastStandIn,
    RunningServer,
    cli_env,
    free_port,
    server_env,
    stop_server,
    tenancy,
)

KATE = "kate@example.com"
KELVIN_KATE = "\u212aate@example.com"  # KELVIN SIGN + "ate": NFKC and str.lower() both make it kate
PASSWORD = "Kate-Passw0rd!"
WRONG = "Wrong-Passw0rd!"


def _login(server: RunningServer, email: str, password: str) -> httpx.Response:
    return httpx.post(f"{server.base_url}/auth/login", json={"email": email, "password": password}, timeout=30)


def _confirmed_account(server: RunningServer, email: str, *, operator: bool = True) -> None:
    """An account with PASSWORD as its own password, made in the server's stores. An operator
    needs no tenant, so its sign-in ends in tokens."""
    services = server.services()
    try:
        roles = "operator" if operator else "tenant_admin"
        attributes = {"email": email, "email_verified": "true", "custom:roles": roles}
        if not operator:
            attributes["custom:tenant_id"] = "ten_aaaaaaaaaaaaaaaa"
        services.identity.create_user(email, attributes, "Temp-Passw0rd!")
        services.identity.set_password(email, PASSWORD, permanent=True)
    finally:
        services.close()


# --- one spelling per account -------------------------------------------------------------------


def test_a_kelvin_sign_email_does_not_sign_in_as_kate(server: RunningServer) -> None:
    _confirmed_account(server, KATE)
    assert "id_token" in _login(server, KATE, PASSWORD).json()  # the password is right

    refused = _login(server, KELVIN_KATE, PASSWORD)

    assert refused.status_code == 400, refused.text
    detail = refused.json()["detail"]
    assert "U+212A KELVIN SIGN" in detail
    assert "plain ASCII" in detail
    assert "token" not in refused.text
    # Case is the one difference that still names kate's account.
    assert "id_token" in _login(server, "KATE@Example.COM", PASSWORD).json()


def _cookies_of(response: httpx.Response) -> str:
    """The cookies a response sets, as a Cookie header (they are Secure, and this is plain HTTP)."""
    return "; ".join(header.split(";", 1)[0] for header in response.headers.get_list("set-cookie"))


def test_the_checkout_page_refuses_a_zero_width_email_with_a_clear_message(server: RunningServer) -> None:
    page = httpx.get(f"{server.base_url}/checkout", params={"plan": "professional"}, timeout=10)
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text

    form = {
        "csrf_token": match.group(1),
        "plan": "professional",
        "name": "Ada Lovelace",
        "email": "ada\u200b@example.com",  # a zero-width space after "ada"
    }
    # As a browser posts it: the page's cookies, and Origin naming this site.
    headers = {"Cookie": _cookies_of(page), "Origin": server.base_url}
    refused = httpx.post(f"{server.base_url}/checkout", data=form, headers=headers, timeout=10)

    assert refused.status_code == 400, refused.text
    assert "invisible character (U+200B ZERO WIDTH SPACE)" in refused.text
    assert 'id="simulate-form"' not in refused.text  # no payment form was made


def test_cli_email_selectors_refuse_a_lookalike_in_one_line(server: RunningServer) -> None:
    env = cli_env(server.home)
    # A tenant whose owner the Kelvin sign would name under lower(): "\u212aim-owner" -> "kim-owner".
    payload = '{"transactionId":"TXN-213000","email":"kim-owner@example.com","plan":"starter"}'
    assert tenancy(env, "provision", "--payload", payload).returncode == 0

    for arguments in (
        ("diagnose", "--email", KELVIN_KATE),
        ("ops", "add-operator", "kate\u200d@example.com"),
        ("members", "set-role", "TXN-213000", "\u212aim-owner@example.com", "viewer", "--dry-run"),
    ):
        result = tenancy(env, *arguments)
        assert result.returncode != 0, result.stdout
        assert "Traceback" not in result.stderr
        assert re.search(r"KELVIN SIGN|invisible character", result.stderr), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# --- a wrong password tells nothing of the account's state --------------------------------------


def _answer(response: httpx.Response) -> tuple[int, object, dict[str, str]]:
    headers = {name: value for name, value in response.headers.items() if name not in {"date"}}
    return response.status_code, response.json(), headers


def test_a_wrong_password_for_a_reset_required_account_is_answered_as_for_any_account(server: RunningServer) -> None:
    reset, plain = "reset-required@example.com", "plain@example.com"
    _confirmed_account(server, reset, operator=False)
    _confirmed_account(server, plain, operator=False)
    services = server.services()
    try:
        services.identity.reset_password(reset)
    finally:
        services.close()

    for_reset = _login(server, reset, WRONG)
    for_plain = _login(server, plain, WRONG)

    assert _answer(for_reset) == _answer(for_plain)
    assert for_reset.status_code == 401
    assert for_reset.json() == {"detail": "Incorrect email or password"}
    # Its owner, who knows the password, is still told what to do.
    assert _login(server, reset, PASSWORD).json() == {"detail": "Password reset required"}


# --- TENANCY_HOME is private ------------------------------------------------------------------


def _healthy(server: RunningServer) -> bool:
    try:
        return httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def fresh_home_server(
    tmp_path: Path, smtp_server: tuple[MailCatcher, int], payfast: PayfastStandIn
) -> Iterator[RunningServer]:
    """`tenancy serve` on a TENANCY_HOME that does not exist yet, started with no umask at all, so
    every mode in the home is the one the app asked for."""
    home = tmp_path / "data" / "home"
    env = server_env(home, free_port(), smtp_server[1], payfast.server_address[1])
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "tenancy", "serve"], env=env, stdout=log_file, stderr=subprocess.STDOUT, umask=0
        )
    running = RunningServer(f"http://127.0.0.1:{env['TENANCY_PORT']}", home, env, process, log_path)
    try:
        deadline = time.monotonic() + 30
        while not _healthy(running):
            assert process.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, "tenancy serve did not become healthy in 30 s"
            time.sleep(0.1)
        yield running
    finally:
        stop_server(running)
    assert "Traceback" not in log_path.read_text(errors="replace")


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_a_fresh_home_is_readable_by_its_owner_only(fresh_home_server: RunningServer) -> None:
    server = fresh_home_server
    # Something for every store to write: a sign-in that is refused is logged and counted.
    assert _login(server, "nobody@example.com", WRONG).status_code == 401
    home = server.home

    modes = {path.relative_to(home).as_posix(): stat.S_IMODE(path.stat().st_mode) for path in [home, *home.rglob("*")]}

    assert {"tenancy.db", "tenancy.db-wal", "tenancy.db-shm", "keys/signing-key.pem", "logs/app.log"} <= modes.keys()
    assert stat.S_IMODE(home.parent.stat().st_mode) == 0o700  # made by the app as well
    wrong = {name: oct(mode) for name, mode in modes.items() if mode != (0o700 if (home / name).is_dir() else 0o600)}
    assert wrong == {}
