"""schemathesis against the served OpenAPI document: whatever the schema allows, and much it does
not, no endpoint answers with a 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from servers import RunningServer, cli_env, free_port, start_server, stop_server


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("fuzz-home")
    # Offline PayFast mode: otherwise every well-formed ITN would wait on PayFast's validate
    # endpoint, which cannot be reached here, and answer 503 by design.
    running = start_server(home, cli_env(home, TENANCY_PORT=str(free_port()), TENANCY_PAYFAST_MODE="offline"))
    yield running
    stop_server(running)
    assert "Traceback" not in running.log_text()


@pytest.fixture(scope="module")
def api_schema(fuzzed_server: RunningServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzzed_server.base_url}/openapi.json")


def test_no_endpoint_answers_with_a_server_error(api_schema: schemathesis.BaseSchema) -> None:
    # One hypothesis run per operation (schemathesis's pytest plugin does not work with this
    # pytest), each generating cases from that operation's schema.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 8
    calls: list[int] = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def no_server_error(case: schemathesis.Case) -> None:
            response = case.call(timeout=30)
            calls.append(response.status_code)
            case.validate_response(response, checks=[not_a_server_error])

        no_server_error()

    assert len(calls) >= 5 * len(operations)  # every operation was really exercised
    assert all(status < 500 for status in calls)
