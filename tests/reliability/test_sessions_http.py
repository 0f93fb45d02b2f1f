"""Sessions through the real `tenancy serve` process: signing out, a password reset, and a reused
refresh token really end what they should; CSRF tokens are bound to the session and every form
post must name this site (scheme, host and port)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tenancy.bootstrap import Services, build

from helpers import make_settings, pay, work
from servers import RunningServer, cli_env, free_port, plain_http_server, start_server, stop_server, tenancy

PASSWORD = "Right-Passw0rd!"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("sessions-home")
    env = cli_env(home, TENANCY_PORT=str(free_port()), TENANCY_PAYFAST_MODE="offline", TENANCY_WORKERS="0")
    running = start_server(home, env)
    yield running
    stop_server(running)
    assert "Traceback" not in running.log_text()


def offline_services(home: Path) -> Services:
    return build(make_settings(home, payfast_mode="offline"))


def provisioned_customer(server: RunningServer, name: str) -> str:
    """A provisioned customer with a permanent password, made in the server's own stores."""
    email = f"{name[:40].replace('_', '-')}@example.com".lower()
    services = offline_services(server.home)
    try:
        pay(services, email)
        work(services)
        services.identity.set_password(email, PASSWORD, permanent=True)
    finally:
        services.close()
    return email


@pytest.fixture
def customer(live: RunningServer, request: pytest.FixtureRequest) -> str:
    return provisioned_customer(live, request.node.name)


def api_login(live: RunningServer, email: str, password: str = PASSWORD) -> dict[str, str]:
    response = httpx.post(f"{live.base_url}/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    return tokens


def my_tenant(live: RunningServer, id_token: str) -> int:
    return httpx.get(f"{live.base_url}/tenants/me", headers={"Authorization": f"Bearer {id_token}"}).status_code


def browser(live: RunningServer) -> httpx.Client:
    # A browser names the page's site in Origin on every form post.
    return httpx.Client(base_url=live.base_url, headers={"Origin": live.base_url})


def csrf_token_in(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def page_sign_in(client: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    token = csrf_token_in(client.get("/auth/login").text)
    return client.post("/auth/login/form", data={"csrf_token": token, "email": email, "password": password})


@pytest.fixture(scope="module")
def live_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server on plain http (cookies without Secure), so httpx keeps and sends its cookies."""
    with plain_http_server(tmp_path_factory.mktemp("sessions-http-home")) as running:
        yield running


@pytest.fixture
def page_customer(live_http: RunningServer, request: pytest.FixtureRequest) -> str:
    return provisioned_customer(live_http, request.node.name)


# --- The API -------------------------------------------------------------------------------------


def test_after_signing_out_the_id_token_and_the_refresh_token_stop_working(
    live: RunningServer, customer: str
) -> None:
    tokens = api_login(live, customer)
    assert my_tenant(live, tokens["id_token"]) == 200

    signed_out = httpx.post(f"{live.base_url}/auth/logout", json={"refresh_token": tokens["refresh_token"]})

    assert signed_out.status_code == 204
    assert my_tenant(live, tokens["id_token"]) == 401
    refreshed = httpx.post(f"{live.base_url}/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401
    # Signing in again works at once, and its token counts.
    assert my_tenant(live, api_login(live, customer)["id_token"]) == 200


def test_each_refresh_token_works_once_and_a_reused_one_ends_its_family(live: RunningServer, customer: str) -> None:
    first = api_login(live, customer)
    rotated = httpx.post(f"{live.base_url}/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert my_tenant(live, second["id_token"]) == 200

    replayed = httpx.post(f"{live.base_url}/auth/refresh", json={"refresh_token": first["refresh_token"]})
    after_replay = httpx.post(f"{live.base_url}/auth/refresh", json={"refresh_token": second["refresh_token"]})

    assert replayed.status_code == 401
    # Whoever holds the newer token (the owner or the thief) must sign in again too.
    assert after_replay.status_code == 401


def test_signing_out_everywhere_ends_the_browser_sessions_too(live_http: RunningServer, page_customer: str) -> None:
    with browser(live_http) as client:
        assert page_sign_in(client, page_customer).status_code in {200, 303}
        assert client.get("/account").status_code == 200
        tokens = api_login(live_http, page_customer)

        signed_out = httpx.post(
            f"{live_http.base_url}/auth/logout", json={"refresh_token": tokens["refresh_token"], "everywhere": True}
        )
        account = client.get("/account", follow_redirects=False)

    assert signed_out.status_code == 204
    assert account.status_code == 303
    assert account.headers["location"].startswith("/auth/login")


def test_a_logout_without_a_refresh_token_is_a_clear_400(live: RunningServer) -> None:
    response = httpx.post(f"{live.base_url}/auth/logout", json={"everywhere": True})

    assert response.status_code == 400
    assert "refresh_token" in response.json()["detail"]


# --- The pages -----------------------------------------------------------------------------------


def test_after_signing_out_the_old_cookie_opens_nothing(live_http: RunningServer, page_customer: str) -> None:
    with browser(live_http) as client:
        page_sign_in(client, page_customer)
        cookies = dict(client.cookies)
        assert client.get("/account").status_code == 200
        token = csrf_token_in(client.get("/account").text)
        signed_out = client.post("/auth/logout", data={"csrf_token": token}, follow_redirects=False)
        confirmation = client.get(signed_out.headers["location"])

    with httpx.Client(base_url=live_http.base_url, cookies=cookies) as stolen:
        replayed = stolen.get("/account", follow_redirects=False)

    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/auth/login?signed_out=1"
    assert "You are signed out." in confirmation.text
    assert replayed.status_code == 303
    assert replayed.headers["location"].startswith("/auth/login")


def test_a_password_reset_ends_every_session_and_token(live_http: RunningServer, page_customer: str) -> None:
    tokens = api_login(live_http, page_customer)
    with browser(live_http) as signed_in, browser(live_http) as resetting:
        page_sign_in(signed_in, page_customer)
        assert signed_in.get("/account").status_code == 200
        forgot_token = csrf_token_in(resetting.get("/auth/forgot").text)
        resetting.post("/auth/forgot", data={"csrf_token": forgot_token, "email": page_customer})
        services = offline_services(live_http.home)
        try:
            mail = next(m for m in services.mailer.outbox(page_customer) if "reset code" in m.subject)
        finally:
            services.close()
        code = re.search(r"Your reset code: (\d+)", mail.text).group(1)  # type: ignore[union-attr]
        page = resetting.get(f"/auth/reset?email={page_customer}").text
        form = {
            "csrf_token": csrf_token_in(page),
            "email": page_customer,
            "code": code,
            "new_password": "Brand-New-Passw0rd!",
            "confirm_password": "Brand-New-Passw0rd!",
        }
        reset = resetting.post("/auth/reset", data=form, follow_redirects=False)
        account = signed_in.get("/account", follow_redirects=False)

    assert reset.status_code == 303
    assert account.status_code == 303
    assert my_tenant(live_http, tokens["id_token"]) == 401
    refreshed = httpx.post(f"{live_http.base_url}/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401


def test_removing_an_operator_with_the_cli_ends_their_console_session_and_tokens(live_http: RunningServer) -> None:
    operator = "removed-ops@example.com"
    added = tenancy(live_http.env, "ops", "add-operator", operator)
    assert added.returncode == 0, added.stderr
    services = offline_services(live_http.home)
    try:
        services.identity.set_password(operator, PASSWORD, permanent=True)
    finally:
        services.close()
    tokens = api_login(live_http, operator)
    with browser(live_http) as client:
        signed_in = page_sign_in(client, operator)
        assert (signed_in.status_code, signed_in.headers["location"]) == (303, "/ops")
        assert client.get("/ops").status_code == 200
        # No API route takes an operator's ID token (each needs a tenant); their refresh token works.
        rotated = httpx.post(f"{live_http.base_url}/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert rotated.status_code == 200, rotated.text

        removed = tenancy(live_http.env, "ops", "remove-operator", operator)
        console = client.get("/ops", follow_redirects=False)

    assert removed.returncode == 0, removed.stderr
    # The session itself is over (sign in again), not only refused by the console's role check.
    assert console.status_code == 303
    assert console.headers["location"].startswith("/auth/login")
    refreshed = httpx.post(
        f"{live_http.base_url}/auth/refresh", json={"refresh_token": rotated.json()["refresh_token"]}
    )
    assert refreshed.status_code == 401


def test_a_planted_csrf_cookie_does_not_pass_for_a_signed_in_browser(
    live_http: RunningServer, page_customer: str
) -> None:
    with browser(live_http) as client:
        page_sign_in(client, page_customer)
        # An attacker who can plant a cookie sets the CSRF cookie and posts the same value.
        client.cookies.set("tenancy_csrf", "A" * 43)
        forged = client.post("/auth/logout", data={"csrf_token": "A" * 43}, follow_redirects=False)
        still_signed_in = client.get("/account")

    assert forged.status_code == 403
    assert still_signed_in.status_code == 200


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "without naming this site"),
        ({"Origin": "null"}, "without naming this site"),
        ({"Origin": "https://evil.example"}, "from another site"),
        ({"Referer": "https://evil.example/page"}, "from another site"),
    ],
    ids=["no-origin", "null-origin", "other-site", "other-referer"],
)
def test_a_form_post_that_does_not_name_this_site_is_refused(
    live_http: RunningServer, headers: dict[str, str], reason: str
) -> None:
    with httpx.Client(base_url=live_http.base_url) as client:
        token = csrf_token_in(client.get("/auth/login").text)
        response = client.post(
            "/auth/login/form", data={"csrf_token": token, "email": "x@example.com", "password": "p"}, headers=headers
        )

    assert response.status_code == 403
    assert reason in response.text


def test_the_origin_must_match_scheme_and_port_not_only_the_host(live_http: RunningServer) -> None:
    host_port = live_http.base_url.removeprefix("http://")
    host = host_port.split(":")[0]
    answers = []
    for origin in (f"https://{host_port}", f"http://{host}:1", f"http://{host}"):
        with httpx.Client(base_url=live_http.base_url) as client:
            token = csrf_token_in(client.get("/auth/login").text)
            answers.append(
                client.post(
                    "/auth/login/form",
                    data={"csrf_token": token, "email": "x@example.com", "password": "p"},
                    headers={"Origin": origin},
                ).status_code
            )
        with httpx.Client(base_url=live_http.base_url) as client:
            token = csrf_token_in(client.get("/auth/login").text)
            good = client.post(
                "/auth/login/form",
                data={"csrf_token": token, "email": "x@example.com", "password": "p"},
                headers={"Referer": f"{live_http.base_url}/auth/login"},
            )

    assert answers == [403, 403, 403]
    assert good.status_code == 401  # past CSRF: the (unknown) account is what refuses it
