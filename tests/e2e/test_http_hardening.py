"""HTTP hardening as a client meets it, from a real `tenancy serve`: security headers on JSON answers
(the pages keep their own CSP), no `server` header, HSTS only behind an https public URL, /docs off
unless TENANCY_API_DOCS, and /metrics for loopback only while TENANCY_METRICS_TOKEN is unset."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from tenancy.web.headers import API_CONTENT_SECURITY_POLICY, HSTS
from tenancy.web.pages.security import CONTENT_SECURITY_POLICY as PAGE_CONTENT_SECURITY_POLICY

from helpers import wait_until
from servers import RunningServer, cli_env, free_port, start_server, stop_server

API_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "content-security-policy": API_CONTENT_SECURITY_POLICY,
}


def serve(tmp_path_factory: pytest.TempPathFactory, name: str, **extra: str) -> RunningServer:
    home = tmp_path_factory.mktemp(name)
    env = cli_env(
        home,
        TENANCY_PORT=str(free_port()),
        TENANCY_PAYFAST_MODE="offline",
        TENANCY_TRUSTED_PROXIES="127.0.0.1/32",
        **extra,
    )
    return start_server(home, env)


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The defaults: http, no metrics token, no API docs."""
    running = serve(tmp_path_factory, "plain-home")
    yield running
    stop_server(running)
    assert "Traceback" not in running.log_text()


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Served as https://tenancy.example.com (a TLS proxy in front), with the API docs asked for."""
    running = serve(
        tmp_path_factory, "https-home", TENANCY_PUBLIC_URL="https://tenancy.example.com", TENANCY_API_DOCS="true"
    )
    yield running
    stop_server(running)
    assert "Traceback" not in running.log_text()


def json_answers(server: RunningServer) -> dict[str, httpx.Response]:
    url = server.base_url
    return {
        "healthz": httpx.get(f"{url}/healthz"),
        "openapi": httpx.get(f"{url}/openapi.json"),
        "unauthenticated": httpx.get(f"{url}/tenants/me"),
        "not found": httpx.get(f"{url}/no/such/route"),
        "malformed": httpx.post(f"{url}/auth/login", json={"email": 1}),
        "metrics": httpx.get(f"{url}/metrics"),
    }


def test_json_answers_carry_the_security_headers(plain_server: RunningServer) -> None:
    for what, response in json_answers(plain_server).items():
        assert response.status_code in {200, 401, 404, 422}, what
        for name, value in API_HEADERS.items():
            assert response.headers.get(name) == value, (what, name, response.headers)


def test_pages_keep_their_own_content_security_policy(plain_server: RunningServer) -> None:
    page = httpx.get(f"{plain_server.base_url}/pricing")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == PAGE_CONTENT_SECURITY_POLICY
    assert page.headers["referrer-policy"] == "same-origin"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"


def test_the_sites_own_scripts_and_styles_may_be_cached_and_nothing_else(plain_server: RunningServer) -> None:
    style = httpx.get(f"{plain_server.base_url}/static/site.css")
    page = httpx.get(f"{plain_server.base_url}/pricing")

    assert style.status_code == 200
    assert style.headers["cache-control"] == "public, max-age=3600"
    assert style.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"


def test_no_answer_names_the_server(plain_server: RunningServer) -> None:
    answers = [*json_answers(plain_server).values(), httpx.get(f"{plain_server.base_url}/pricing")]

    for response in answers:
        assert "server" not in response.headers, response.headers


def test_no_hsts_over_a_plain_http_public_url(plain_server: RunningServer) -> None:
    answers = [*json_answers(plain_server).values(), httpx.get(f"{plain_server.base_url}/pricing")]

    for response in answers:
        assert "strict-transport-security" not in response.headers


def test_hsts_on_every_answer_behind_an_https_public_url(https_server: RunningServer) -> None:
    answers = [*json_answers(https_server).values(), httpx.get(f"{https_server.base_url}/pricing")]

    for response in answers:
        assert response.headers.get("strict-transport-security") == HSTS, response.url


def test_api_docs_are_off_by_default_and_the_openapi_document_stays(plain_server: RunningServer) -> None:
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert httpx.get(f"{plain_server.base_url}{path}").status_code == 404, path
    document = httpx.get(f"{plain_server.base_url}/openapi.json")
    assert document.status_code == 200
    assert "/metrics" in document.json()["paths"]


def test_api_docs_are_served_when_asked_for(https_server: RunningServer) -> None:
    docs = httpx.get(f"{https_server.base_url}/docs")

    assert docs.status_code == 200
    assert "swagger-ui" in docs.text
    assert httpx.get(f"{https_server.base_url}/redoc").status_code == 200


def test_metrics_without_a_token_answer_loopback_clients(plain_server: RunningServer) -> None:
    response = httpx.get(f"{plain_server.base_url}/metrics")

    assert response.status_code == 200
    assert "tenancy_jobs" in response.text


@pytest.mark.parametrize(
    "forwarded_for",
    [
        "203.0.113.7",
        "127.0.0.1, 203.0.113.7",  # a client naming loopback itself: the proxy's hop is what counts
        "::ffff:203.0.113.7",
        "not-an-address",
    ],
)
def test_metrics_without_a_token_refuse_clients_forwarded_from_elsewhere(
    plain_server: RunningServer, forwarded_for: str
) -> None:
    # 127.0.0.1 is a trusted proxy here, so X-Forwarded-For names the real client.
    response = httpx.get(f"{plain_server.base_url}/metrics", headers={"X-Forwarded-For": forwarded_for})

    assert response.status_code == 403
    assert response.json() == {"detail": "/metrics answers only loopback clients while TENANCY_METRICS_TOKEN is unset"}
    assert "tenancy_" not in response.text


def test_an_itn_sender_gone_mid_body_is_logged_and_nothing_is_kept(plain_server: RunningServer) -> None:
    # A sender that promises 400 bytes, sends 20 and hangs up: no traceback, no ledger entry.
    host, port = plain_server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sender:
        sender.sendall(
            b"POST /payments/payfast/itn HTTP/1.1\r\nHost: tenancy\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 400\r\n\r\nm_payment_id=TXN-GONE"
        )
    wait_until(lambda: "itn_client_disconnected" in plain_server.log_text(), 10, "the disconnect to be logged")
    assert "Traceback" not in plain_server.log_text()
    services = plain_server.services()
    try:
        assert services.ledger.count_by_verdict() == {}
    finally:
        services.close()
