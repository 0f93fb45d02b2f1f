"""The SessionStore port, the same assertions on SQLite and on DynamoDB (moto)."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from tenancy.domain.model import SessionKind, SignInSession
from tenancy.ports import SessionStore

from aws_support import Backend

NOW = 1_800_000_000


@pytest.fixture
def store(backend: Backend) -> SessionStore:
    return backend.services.session_store


def session(session_id: str = "s" * 22, username: str = "ada@example.com", **changes: object) -> SignInSession:
    values: dict[str, object] = {
        "session_id": session_id,
        "secret_hash": "a" * 64,
        "kind": SessionKind.API,
        "username": username,
        "subject": "sub-1",
        "tenant_id": "ten_abc",
        "roles": ("tenant_admin",),
        "created_at": NOW,
        "expires_at": NOW + 3600,
        "provider_refresh_token": "provider-refresh",
    }
    values.update(changes)
    return SignInSession(**values)  # type: ignore[arg-type]


def test_a_created_session_reads_back_whole(store: SessionStore) -> None:
    made = session()
    store.create(made)
    browser = session("b" * 22, kind=SessionKind.BROWSER, tenant_id=None, roles=(), provider_refresh_token=None)
    store.create(browser)

    assert store.get(made.session_id) == made
    assert store.get(browser.session_id) == browser
    assert store.get("n" * 22) is None


def test_rotation_is_a_compare_and_set_that_only_one_of_two_racers_wins(store: SessionStore) -> None:
    store.create(session())
    outcomes: list[bool] = []
    start = threading.Barrier(2)

    def rotate(new_hash: str) -> None:
        start.wait()
        outcomes.append(store.rotate("s" * 22, expected_secret_hash="a" * 64, new_secret_hash=new_hash))

    threads = [threading.Thread(target=rotate, args=(letter * 64,)) for letter in "bc"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == [False, True]
    current = store.get("s" * 22)
    assert current is not None
    assert current.secret_hash in {"b" * 64, "c" * 64}


def test_a_revoked_session_cannot_rotate_and_forgets_the_providers_token(store: SessionStore) -> None:
    store.create(session())

    store.revoke("s" * 22, NOW + 5)
    store.revoke("s" * 22, NOW + 9)  # idempotent: the first end stands
    store.revoke("x" * 22, NOW + 9)  # an unknown session is no error

    ended = store.get("s" * 22)
    assert ended == dataclasses.replace(session(), revoked_at=NOW + 5, provider_refresh_token=None)
    assert store.rotate("s" * 22, expected_secret_hash="a" * 64, new_secret_hash="b" * 64) is False


def test_revoking_a_user_ends_only_that_users_live_sessions(store: SessionStore) -> None:
    store.create(session("1" * 22))
    store.create(session("2" * 22, kind=SessionKind.BROWSER, provider_refresh_token=None))
    store.create(session("3" * 22, username="grace@example.com"))
    store.create(session("4" * 22))
    store.revoke("4" * 22, NOW + 1)

    ended = store.revoke_user("ada@example.com", NOW + 10)

    assert ended == 2
    assert [store.get(name * 22).revoked_at for name in "1234"] == [NOW + 10, NOW + 10, None, NOW + 1]  # type: ignore[union-attr]


def test_the_token_mark_only_moves_forward(store: SessionStore) -> None:
    assert store.tokens_not_before("ada@example.com") is None

    store.set_tokens_not_before("ada@example.com", NOW + 10)
    store.set_tokens_not_before("ada@example.com", NOW + 5)

    assert store.tokens_not_before("ada@example.com") == NOW + 10
    assert store.tokens_not_before("grace@example.com") is None
    store.set_tokens_not_before("ada@example.com", NOW + 20)
    assert store.tokens_not_before("ada@example.com") == NOW + 20
