"""A tenant's team through the real `tenancy serve` in sandbox mode: tenants bought by signed ITNs
(PayFast's validate endpoint and subscription API played by local stand-ins), owners signed in
through /auth/login and the new-password challenge, invitations read from the SMTP catcher.

Inviting (the email and its /join link, which no file under the server home keeps), joining with
a chosen password and signing in, the team list with roles and seats; role enforcement (viewers
and editors read, never change; every changing route under /tenants/me found in OpenAPI refuses a
viewer; another tenant's members do not exist; a viewer's browser cannot change billing); the
seat limit, the seat race and a link raced by twenty clicks; links used twice, forged, revoked or
resent; emails of another tenant or of a member; role changes and removals ending live tokens
and browser sessions at once; the owner kept a tenant admin, and the ownership handed on; a
downgrade refused while its seats are held; a suspended tenant's members shut out like its owner.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from aiosmtpd.controller import Controller

from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.model import JobStatus
from tenancy.payments.payfast import parameter_string
from tenancy.payments.simulator import build_itn, encode_form, new_subscription_token

from helpers import wait_until
from page_client import csrf_token_in, page_client, sign_in
from payfast_api_standin import PayfastApiStandIn, running_payfast_api
from purchases import wait_for_job
from servers import (
    PAYFAST_ADDRESS,
    MailCatcher,
    PayfastStandIn,
    RunningServer,
    free_port,
    server_env,
    start_server,
    stop_server,
    temporary_password_in,
    tenancy,
    welcome_text,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
PRICES = {"starter": "99.00", "professional": "299.00", "enterprise": "999.00"}
OWNER_PASSWORD = "Own-Passw0rd!"
MEMBER_PASSWORD = "Member-Passw0rd!"
INVITED_SUBJECT = "You are invited to join"
JOIN_LINK = re.compile(r"/join/(inv_[a-z0-9]{20}\.[A-Za-z0-9_-]{43})")
CHANGING_METHODS = ("post", "put", "patch", "delete")


@dataclass(frozen=True)
class Person:
    email: str
    password: str
    tokens: dict[str, Any]

    @property
    def id_token(self) -> str:
        return str(self.tokens["id_token"])

    @property
    def claims(self) -> dict[str, Any]:
        return jwt.decode(self.id_token, options={"verify_signature": False})

    @property
    def user_id(self) -> str:
        return str(self.claims["sub"])


@dataclass(frozen=True)
class Team:
    tenant_id: str
    owner: Person
    editor: Person
    viewer: Person


# --- Helpers: buying, signing in, inviting, joining ---


def provision(
    server: RunningServer, validate: PayfastStandIn, plan: str = "professional", **values: Any
) -> tuple[str, str]:
    """A tenant bought by a signed ITN through the server and provisioned by its workers: (tenant
    id, owner email). `values`: more of the ITN (a subscription's token and billing date)."""
    transaction_id = f"TXN-{uuid.uuid4().hex[:12].upper()}"
    email = f"owner-{transaction_id.lower()}@example.com"
    fields = build_itn(
        transaction_id=transaction_id,
        email=email,
        plan=plan,
        amount=PRICES[plan],
        merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
        passphrase=PAYFAST_SANDBOX_PASSPHRASE,
        **values,
    )
    validate.genuine.add(parameter_string(fields))
    answer = httpx.post(
        f"{server.base_url}/payments/payfast/itn",
        content=encode_form(fields),
        headers={**FORM, "X-Forwarded-For": PAYFAST_ADDRESS},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    wait_for_job(server, transaction_id, JobStatus.SUCCEEDED)
    return tenant_id_for(transaction_id), email


def signed_in_owner(server: RunningServer, catcher: MailCatcher, email: str) -> Person:
    """The owner signed in with the welcome email's temporary password, then their own."""
    temporary = temporary_password_in(welcome_text(catcher, email))
    challenge = httpx.post(f"{server.base_url}/auth/login", json={"email": email, "password": temporary}, timeout=30)
    assert challenge.status_code == 200, challenge.text
    tokens = httpx.post(
        f"{server.base_url}/auth/challenge",
        json={"email": email, "session": challenge.json()["session"], "new_password": OWNER_PASSWORD},
        timeout=30,
    )
    assert tokens.status_code == 200, tokens.text
    return Person(email, OWNER_PASSWORD, tokens.json())


def login(server: RunningServer, email: str, password: str) -> httpx.Response:
    return httpx.post(f"{server.base_url}/auth/login", json={"email": email, "password": password}, timeout=30)


def signed_in(server: RunningServer, email: str, password: str) -> Person:
    answer = login(server, email, password)
    assert answer.status_code == 200, answer.text
    assert "id_token" in answer.json(), answer.text  # a member's password is their own: no challenge
    return Person(email, password, answer.json())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def call(server: RunningServer, method: str, path: str, token: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{server.base_url}{path}", json=body, headers=bearer(token), timeout=30)


def invite(server: RunningServer, token: str, email: str, role: str) -> httpx.Response:
    return call(server, "POST", "/tenants/me/members", token, {"email": email, "role": role})


def team_of(server: RunningServer, token: str) -> dict[str, Any]:
    answer = call(server, "GET", "/tenants/me/members", token)
    assert answer.status_code == 200, answer.text
    shown: dict[str, Any] = answer.json()
    return shown


def invitation_emails(catcher: MailCatcher, email: str) -> list[str]:
    """The text of every invitation email SMTP caught for `email`, oldest first."""
    texts = []
    for message in catcher.to(email):
        if str(message["Subject"]).startswith(INVITED_SUBJECT):
            part = message.get_payload(0) if message.is_multipart() else message
            texts.append(str(part.get_payload(decode=True).decode()))
    return texts


def join_token(catcher: MailCatcher, email: str, count: int = 1) -> str:
    """The link token of the `count`-th invitation email to `email` (waits up to 15 s for it)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        texts = invitation_emails(catcher, email)
        if len(texts) >= count:
            match = JOIN_LINK.search(texts[count - 1])
            assert match, texts[count - 1]
            return match.group(1)
        time.sleep(0.05)
    raise AssertionError(f"no invitation email number {count} to {email}")


def accept(server: RunningServer, token: str, password: str = MEMBER_PASSWORD) -> httpx.Response:
    return httpx.post(f"{server.base_url}/invitations/{token}/accept", json={"password": password}, timeout=30)


def joined(server: RunningServer, catcher: MailCatcher, owner: Person, role: str) -> Person:
    """A new member: invited by `owner` as `role`, joined by the emailed link, signed in."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    assert invite(server, owner.id_token, email, role).status_code == 201
    answer = accept(server, join_token(catcher, email))
    assert answer.status_code == 201, answer.text
    return signed_in(server, email, MEMBER_PASSWORD)


def new_team(server: RunningServer, validate: PayfastStandIn, catcher: MailCatcher, plan: str = "professional") -> Team:
    tenant_id, email = provision(server, validate, plan)
    owner = signed_in_owner(server, catcher, email)
    return Team(tenant_id, owner, joined(server, catcher, owner, "editor"), joined(server, catcher, owner, "viewer"))


def member_row(team: dict[str, Any], email: str) -> dict[str, Any]:
    rows = [member for member in team["members"] if member["email"] == email]
    assert len(rows) == 1, team
    return rows[0]


class BouncingMailCatcher(MailCatcher):
    """tests/servers.py's catcher, except that it refuses recipients named `bounce-...` for good
    (550) and defers those named `deferred-...` (451), as a real mail server may."""

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.startswith("bounce-"):
            return "550 5.1.1 No such user"
        if address.startswith("deferred-"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[tuple[MailCatcher, int]]:
    catcher = BouncingMailCatcher()
    port = free_port()
    controller = Controller(catcher, hostname="127.0.0.1", port=port)
    controller.start()
    yield catcher, port
    controller.stop()


@pytest.fixture(scope="module")
def payfast_api() -> Iterator[PayfastApiStandIn]:
    with running_payfast_api(merchant_id=PAYFAST_SANDBOX_MERCHANT_ID, passphrase=PAYFAST_SANDBOX_PASSPHRASE) as api:
        yield api


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    smtp_server: tuple[MailCatcher, int],
    payfast: PayfastStandIn,
    payfast_api: PayfastApiStandIn,
) -> Iterator[RunningServer]:
    """tests/servers.py's `server`, with PayFast's subscription API played by a stand-in as well
    (a subscriber's tenant is suspended by the lifecycle run)."""
    home = tmp_path_factory.mktemp("team-home")
    env = server_env(
        home, free_port(), smtp_server[1], payfast.server_address[1], TENANCY_PAYFAST_API_URL=payfast_api.url
    )
    running = start_server(home, env)
    yield running
    stop_server(running)
    assert "Traceback" not in running.log_text()


@pytest.fixture(scope="module")
def catcher(smtp_server: tuple[MailCatcher, int]) -> MailCatcher:
    return smtp_server[0]


@pytest.fixture(scope="module")
def team(server: RunningServer, payfast: PayfastStandIn, catcher: MailCatcher) -> Team:
    """An enterprise tenant (50 seats, so that the tests sharing it never run out) with its
    owner, an editor and a viewer, whom no test changes."""
    return new_team(server, payfast, catcher, "enterprise")


# --- Inviting and joining ---


def test_an_invitation_is_emailed_with_a_join_link_described_and_accepted_with_a_password(
    server: RunningServer, payfast: PayfastStandIn, catcher: MailCatcher
) -> None:
    tenant_id, owner_email = provision(server, payfast)
    owner = signed_in_owner(server, catcher, owner_email)
    email = f"Designer-{uuid.uuid4().hex[:8]}@Example.com"  # as typed: stored normalized
    address = email.lower()

    invited = invite(server, owner.id_token, email, "editor")

    assert invited.status_code == 201, invited.text
    assert (invited.json()["email"], invited.json()["role"], invited.json()["status"]) == (address, "editor", "pending")
    assert invited.json()["invited_by"] == owner_email
    token = join_token(catcher, address)
    text = invitation_emails(catcher, address)[0]
    assert re.search(rf"https?://\S+/join/{re.escape(token)}\s", text), text
    assert "as an editor" in text
    assert token.startswith(f"{invited.json()['invitation_id']}.")

    described = httpx.get(f"{server.base_url}/invitations/{token}", timeout=30)
    own_tenant = call(server, "GET", "/tenants/me", owner.id_token).json()
    assert described.status_code == 200, described.text
    assert described.json()["team"] == own_tenant["name"]
    assert (described.json()["email"], described.json()["role"]) == (address, "editor")
    # The emailed link's page is served, naming the team.
    page = httpx.get(f"{server.base_url}/join/{token}", headers={"Accept": "text/html"}, timeout=30)
    assert page.status_code == 200
    assert own_tenant["name"] in page.text
    # A pending invitation holds a seat.
    assert team_of(server, owner.id_token)["seats"] == {"used": 2, "limit": 5}

    answer = accept(server, token)

    assert answer.status_code == 201, answer.text
    assert answer.json() == {"tenant_id": tenant_id, "email": address, "role": "editor"}
    member = signed_in(server, email, MEMBER_PASSWORD)
    assert (member.claims["custom:tenant_id"], member.claims["custom:roles"]) == (tenant_id, "editor")
    mine = call(server, "GET", "/tenants/me", member.id_token)
    assert mine.status_code == 200, mine.text
    assert (mine.json()["tenant_id"], mine.json()["name"]) == (tenant_id, own_tenant["name"])


def test_the_link_is_never_logged_nor_kept_under_the_server_home(
    server: RunningServer, payfast: PayfastStandIn, catcher: MailCatcher, team: Team
) -> None:
    email = f"secret-{uuid.uuid4().hex[:8]}@example.com"
    assert invite(server, team.owner.id_token, email, "viewer").status_code == 201
    token = join_token(catcher, email)
    # Requests carrying the token in their path are logged too: described, and accepted.
    assert httpx.get(f"{server.base_url}/invitations/{token}", timeout=30).status_code == 200
    assert accept(server, token).status_code == 201
    invitation_id, _, secret = token.partition(".")

    def logs() -> str:
        paths = [server.log_path, *(server.home / "logs").rglob("*")]
        return "".join(path.read_text(errors="replace") for path in paths if path.is_file())

    # The invitation is logged by its id, which is all an operator needs (and shows the logs are written).
    wait_until(lambda: invitation_id in logs(), 10, "the invitation's id in the logs")
    files = [path for path in server.home.rglob("*") if path.is_file()]
    # Every file: the logs, and the SQLite database (its outbox copy redacted, the link hashed).
    for path in files:
        assert secret.encode() not in path.read_bytes(), path


def test_the_team_lists_the_owner_and_members_with_roles_and_seats(
    server: RunningServer, payfast: PayfastStandIn, catcher: MailCatcher
) -> None:
    team = new_team(server, payfast, catcher)

    for person in (team.owner, team.editor, team.viewer):
        shown = team_of(server, person.id_token)

        assert shown["seats"] == {"used": 3, "limit": 5}
        roles = {member["email"]: (member["role"], member["status"], member["owner"]) for member in shown["members"]}
        assert roles == {
            team.owner.email: ("tenant_admin", "active", True),
            team.editor.email: ("editor", "active", False),
            team.viewer.email: ("viewer", "active", False),
        }
        assert shown["invitations"] == []


# --- Role enforcement ---


def test_viewers_and_editors_read_the_team_but_cannot_change_it(
    server: RunningServer, catcher: MailCatcher, team: Team
) -> None:
    pending = invite(server, team.owner.id_token, f"pending-{uuid.uuid4().hex[:8]}@example.com", "viewer")
    assert pending.status_code == 201
    invitation_id = pending.json()["invitation_id"]
    before = team_of(server, team.owner.id_token)
    outsider = f"outsider-{uuid.uuid4().hex[:8]}@example.com"

    for person in (team.viewer, team.editor):
        token = person.id_token
        changes = [
            invite(server, token, outsider, "tenant_admin"),
            call(server, "PATCH", f"/tenants/me/members/{person.user_id}", token, {"role": "tenant_admin"}),
            call(server, "PATCH", f"/tenants/me/members/{team.owner.user_id}", token, {"role": "viewer"}),
            call(server, "DELETE", f"/tenants/me/members/{team.owner.user_id}", token),
            call(server, "POST", f"/tenants/me/invitations/{invitation_id}/resend", token),
            call(server, "DELETE", f"/tenants/me/invitations/{invitation_id}", token),
            call(server, "POST", "/tenants/me/owner", token, {"user_id": person.user_id}),
        ]

        assert [answer.status_code for answer in changes] == [403] * len(changes), person.email
        assert {answer.json()["detail"] for answer in changes} == {"only a tenant admin can manage the team"}
        assert call(server, "GET", "/tenants/me/members", token).status_code == 200
        assert call(server, "GET", "/tenants/me", token).status_code == 200

    # Nothing changed, and no one was emailed.
    assert team_of(server, team.owner.id_token) == before
    assert catcher.to(outsider) == []
    assert call(server, "DELETE", f"/tenants/me/invitations/{invitation_id}", team.owner.id_token).status_code == 200


def changing_operations(server: RunningServer) -> list[tuple[str, str, dict[str, Any]]]:
    """Every operation under /tenants/me that changes something and takes the caller's bearer
    token, read from the served OpenAPI document (method, path, operation), so that a new route
    cannot escape this matrix."""
    document = httpx.get(f"{server.base_url}/openapi.json", timeout=30).json()
    return [
        (method, path, operation)
        for path, operations in document["paths"].items()
        if path == "/tenants/me" or path.startswith("/tenants/me/")
        for method, operation in operations.items()
        if method in CHANGING_METHODS and any("HTTPBearer" in scheme for scheme in operation.get("security", []))
    ]


def example_body(schema: dict[str, Any], document: dict[str, Any], name: str = "") -> Any:
    """A valid request body for `schema` (required fields only; an enum's first value, which for
    a role is tenant_admin), so that the request reaches the role check rather than a 422."""
    if "$ref" in schema:
        target: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return example_body(target, document, name)
    if "anyOf" in schema:
        choices = [choice for choice in schema["anyOf"] if choice.get("type") != "null"]
        return example_body(choices[0], document, name)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        return {key: example_body(properties[key], document, key) for key in schema.get("required", [])}
    if kind == "array":
        return [example_body(schema.get("items", {}), document, name)]
    if kind in {"integer", "number"}:
        return max(1, schema.get("minimum", 1))
    if kind == "boolean":
        return True
    if "email" in name:
        return f"matrix-{uuid.uuid4().hex[:8]}@example.com"
    return "probe".ljust(schema.get("minLength", 1), "e")


def test_a_viewer_is_refused_403_on_every_changing_tenant_route_in_openapi(
    server: RunningServer, catcher: MailCatcher, team: Team
) -> None:
    pending = invite(server, team.owner.id_token, f"kept-{uuid.uuid4().hex[:8]}@example.com", "editor")
    assert pending.status_code == 201
    # Path parameters name real things, the most tempting ones: the owner, a pending invitation.
    parameters = {"user_id": team.owner.user_id, "invitation_id": pending.json()["invitation_id"]}
    document = httpx.get(f"{server.base_url}/openapi.json", timeout=30).json()
    operations = changing_operations(server)
    before = team_of(server, team.owner.id_token)
    tenant_before = call(server, "GET", "/tenants/me", team.owner.id_token).json()
    # The matrix is not empty: it holds at least the team routes known today.
    found = {(method, path) for method, path, _ in operations}
    assert {
        ("post", "/tenants/me/members"),
        ("patch", "/tenants/me/members/{user_id}"),
        ("delete", "/tenants/me/members/{user_id}"),
        ("post", "/tenants/me/invitations/{invitation_id}/resend"),
        ("delete", "/tenants/me/invitations/{invitation_id}"),
        ("post", "/tenants/me/owner"),
    } <= found

    for method, path, operation in operations:
        concrete = re.sub(r"\{(\w+)\}", lambda match: parameters.get(match.group(1), "probe"), path)
        content = operation.get("requestBody", {}).get("content", {})
        body = example_body(content["application/json"]["schema"], document) if "application/json" in content else None

        answer = call(server, method.upper(), concrete, team.viewer.id_token, body)

        assert answer.status_code == 403, (method, path, body, answer.status_code, answer.text)

    # Not one of them changed anything.
    assert team_of(server, team.owner.id_token) == before
    assert call(server, "GET", "/tenants/me", team.owner.id_token).json() == tenant_before


# --- Seats ---


def test_inviting_past_the_plans_seats_is_409_saying_what_to_do(
    server: RunningServer, payfast: PayfastStandIn, catcher: MailCatcher
) -> None:
    _, email = provision(server, payfast, plan="starter")  # one seat: its owner's
    owner = signed_in_owner(server, catcher, email)
    wanted = f"second-{uuid.uuid4().hex[:8]}@example.com"

    refused = invite(server, owner.id_token, wanted, "editor")

    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"] == (
        "every seat is taken: the plan has 1 (members and pending invitations hold one each); "
        "remove a member, revoke an invitation or upgrade the plan"
    )
    assert team_of(server, owner.id_token)["seats"] == {"used": 1, "limit": 1}
    assert invitation_emails(catcher, wanted) == []


def test_twenty_parallel_invitations_for_three_free_seats_give_three_201s_and_seventeen_409s(
    server: RunningServer, payfast: PayfastStandIn, catcher: MailCatcher
) -> None:
    _, email = provision(server, payfast)
    owner = signed_in_owner(server, catcher, email)
    # The owner and one pending invitation hold two of the five seats.
    assert invite(server, owner.id_token, f"first-{uuid.uuid4().hex[:8]}@example.com", "viewer").status_code == 201
    racers = [f"racer-{number}-{uuid.uuid4().hex[:6]}@example.com" for number in range(20)]

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda address: invite(server, owner.id_token, address, "editor"), racers))

    assert sorted(answer.status_code for answer in answers) == [201] * 3 + [409] * 17
    shown = team_of(server, owner.id_token)
    assert shown["seats"] == {"used": 5, "limit": 5}
    winners = {racer for racer, answer in zip(racers, answers, strict=True) if answer.status_code == 201}
    assert {invitation["email"] for invitation in shown["invitations"]} >= winners
    assert len(shown["invitations"]) == 4
    # Only the winners were emailed.
    for racer in winners:
        join_token(catcher, racer)
    assert [racer for racer in racers if racer not in winners and catcher.to(racer)] == []


# --- Links: used twice, revoked, resent; emails that cannot be invited ---


def test_a_link_works_once(server: RunningServer, catcher: MailCatcher, team: Team) -> None:
    email = f"twice-{uuid.uuid4().hex[:8]}@example.com"
    assert invite(server, team.owner.id_token, email, "viewer").status_code == 201
    token = join_token(catcher, email)
    assert accept(server, token).status_code == 201

    again = accept(server, token, "An0ther-Passw0rd!")
    described = httpx.get(f"{server.base_url}/invitations/{token}", timeout=30)

    assert again.status_code == 400, again.text
    assert again.json()["detail"] == "This invitation was used already. Sign in instead."
    assert described.status_code == 400
    # The second try changed nothing: the first password still signs in, the second does not.
    assert login(server, email, "An0ther-Passw0rd!").status_code == 401
    assert login(server, email, MEMBER_PASSWORD).status_code == 200


def test_a_link_accepted_twenty_times_at_once_makes_one_member_with_the_winners_password(
    server: RunningServer, catcher: MailCatcher, team: Team
) -> None:
    email = f"eager-{uuid.uuid4().hex[:8]}@example.com"
    assert invite(server, team.owner.id_token, email, "viewer").status_code == 201
    token = join_token(catcher, email)
    seats = team_of(server, team.owner.id_token)["seats"]["used"]
    passwords = [f"Racer-{number}-Passw0rd!" for number in range(20)]

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda password: accept(server, token, password), passwords))

    assert sorted(answer.status_code for answer in answers) == [201] + [400] * 19, [a.text for a in answers]
    winner = next(password for password, answer in zip(passwords, answers, strict=True) if answer.status_code == 201)
    assert [row["email"] for row in team_of(server, team.owner.id_token)["members"]].count(email) == 1
    assert team_of(server, team.owner.id_token)["seats"]["used"] == seats  # the invitation's seat is the member's
    # A losing click never set the password: the winner's signs in (first: failures are throttled).
    assert signed_in(server, email, winner).claims["custom:tenant_id"] == team.tenant_id
    loser = next(password for password in passwords if password != winner)
    assert login(server, email, loser).status_code == 401


def test_a_forged_or_malformed_link_is_refused_without_saying_which_part_was_wrong(
    server: RunningServer, catcher: MailCatcher, team: Team
) -> None:
    email = f"forged-{uuid.uuid4().hex[:8]}@example.com"
    assert invite(server, team.owner.id_token, email, "viewer").status_code == 201
    invitation_id, _, secret = join_token(catcher, email).partition(".")
    forged = [
        f"{invitation_id}.{secret[::-1]}",  # the real id, another secret
        f"inv_{'a' * 20}.{secret}",  # the real secret, an id that does not exist
        invitation_id,  # the id alone
        "not-a-link",
    ]

    answers = [accept(server, token) for token in forged]
    answers += [httpx.get(f"{server.base_url}/invitations/{token}", timeout=30) for token in forged]

    assert [answer.status_code for answer in answers] == [400] * len(answers), [a.text for a in answers]
    assert {answer.json()["detail"] for answer in answers} == {
        "This invitation link is not valid. Ask for a new invitation."
    }
    assert login(server, email, MEMBER_PASSWORD).status_code == 401  # no account was made
    # The genuine link still works.
    assert accept(server, f"{invitation_id}.{secret}").status_code == 201


def test_a_revoked_link_is_refused_and_its_seat_given_back(
    server: RunningServer, catcher: MailCatcher, team: Team
) -> None:
    email = f"revoked-{uuid.uuid4().hex[:8]}@example.com"
    invited = invite(server, team.owner.id_token, email, "editor")
    assert invited.status_code == 201
    token = join_token(catcher, email)
    seats = team_of(server, team.owner.id_token)["seats"]["used"]

    revoked = call(server, "DELETE", f"/tenants/me/invitations/{invited.json()['invitation_id']}", team.owner.id_token)
    refused = accept(server, token)

    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    assert refused.status_code == 400
    assert refused.json()["detail"] == "This invitation was withdrawn. Ask the person who invited you."
    assert httpx.get(f"{server.base_url}/invitations/{token}", timeout=30).status_code == 400
    assert team_of(server, team.owner.id_token)["seats"]["used"] == seats - 1
    assert login(server, email, MEMBER_PASSWORD).status_code == 401  # no account was made


def test_a_resent_invitation_kills_the_old_link_and_the_new_one_works(
    server: RunningServer, catcher: MailCatcher, team: Team
) -> None:
    email = f"resent-{uuid.uuid4().hex[:8]}@example.com"
    invited = invite(server, team.owner.id_token, email, "viewer")
    assert invited.status_code == 201
    old = join_token(catcher, email)

    resent = call(
        server, "POST", f"/tenants/me/invitations/{invited.json()['invitation_id']}/resend", team.owner.id_token
    )
    new = join_token(catcher, email, count=2)

    assert resent.status_code == 200, resent.text
    assert resent.json()["invitation_id"] == invited.json()["invitation_id"]
    assert new != old
    assert accept(server, old).status_code == 400
    assert accept(server, new).status_code == 201
    assert signed_in(server, email, MEMBER_PASSWORD).claims["custom:tenant_id"] == team.tenant_id


def test_an_address_that_is_not_an_email_is_refused_holding_no_seat(
    server: RunningServer, catcher: MailCatcher, team: Team
) -> None:
    seats = team_of(server, team.owner.id_token)["seats"]["used"]
    addresses = ["@example.com", "two words@example.com", "a@b@example.com", "no-at-sign.example.com", "x@localhost"]

    answers = [invite(server, team.owner.id_token, address, "viewer") for address in addresses]

    assert [answer.status_code for answer in answers] == [400] * len(addresses), [a.text for a in answers]
    assert [answer.json()["detail"] for answer in answers] == [
        f"{address!r} is not an email address: check it and try again" for address in addresses
    ]
    assert team_of(server, team.owner.id_token)["seats"]["used"] == seats
    assert [address for address in addresses if catcher.to(address)] == []


def test_an_invitation_the_mail_server_will_not_take_holds_no_seat_and_may_be_sent_again(
    server: RunningServer, catcher: MailCatcher, team: Team
) -> None:
    seats = team_of(server, team.owner.id_token)["seats"]["used"]
    bounced, deferred = (f"{kind}-{uuid.uuid4().hex[:8]}@example.com" for kind in ("bounce", "deferred"))

    refused = invite(server, team.owner.id_token, bounced, "viewer")
    unavailable = invite(server, team.owner.id_token, deferred, "viewer")

    assert refused.status_code == 400, refused.text
    assert refused.json()["detail"] == (
        f"the invitation to {bounced} could not be delivered (recipient refused by the mail server (550)): "
        "check the address"
    )
    assert unavailable.status_code == 503, unavailable.text
    assert unavailable.headers["Retry-After"] == "1"
    # Neither holds a seat nor waits as pending: asking again is not "invited already".
    shown = team_of(server, team.owner.id_token)
    assert shown["seats"]["used"] == seats
    assert {bounced, deferred} & {row["email"] for row in shown["invitations"]} == set()
    assert invite(server, team.owner.id_token, deferred, "viewer").status_code == 503


def test_an_email_of_another_tenant_is_refused_with_a_clear_message(
    server: RunningServer, payfast: PayfastStandIn, catcher: MailCatcher, team: Team
) -> None:
    _, other_owner = provision(server, payfast)
    message = (
        f"{other_owner} already belongs to another Site Builder account: one email, one account. "
        "Invite another address."
    )

    refused = invite(server, team.owner.id_token, other_owner, "editor")

    assert refused.status_code == 400, refused.text
    assert refused.json()["detail"] == message
    assert invitation_emails(catcher, other_owner) == []


def test_an_invitation_cannot_be_accepted_by_someone_who_joined_another_tenant_meanwhile(
    server: RunningServer, payfast: PayfastStandIn, catcher: MailCatcher, team: Team
) -> None:
    _, other_email = provision(server, payfast)
    other = signed_in_owner(server, catcher, other_email)
    email = f"sought-{uuid.uuid4().hex[:8]}@example.com"
    assert invite(server, team.owner.id_token, email, "editor").status_code == 201
    assert invite(server, other.id_token, email, "viewer").status_code == 201
    ours, theirs = join_token(catcher, email, 1), join_token(catcher, email, 2)
    assert accept(server, theirs).status_code == 201

    refused = accept(server, ours)

    assert refused.status_code == 400, refused.text
    assert "already belongs to another Site Builder account" in refused.json()["detail"]
    # Still the other tenant's, with the password chosen there.
    member = signed_in(server, email, MEMBER_PASSWORD)
    assert call(server, "GET", "/tenants/me", member.id_token).json()["tenant_id"] != team.tenant_id
    assert email not in {row["email"] for row in team_of(server, team.owner.id_token)["members"]}
    # Unused, the invitation still holds its seat until the owner revokes it.
    assert [row["status"] for row in team_of(server, team.owner.id_token)["invitations"] if row["email"] == email] == [
        "pending"
    ]


def test_a_member_or_a_pending_invitee_is_not_invited_twice(
    server: RunningServer, catcher: MailCatcher, team: Team
) -> None:
    pending = f"pending-{uuid.uuid4().hex[:8]}@example.com"
    first = invite(server, team.owner.id_token, pending, "viewer")
    assert first.status_code == 201
    seats = team_of(server, team.owner.id_token)["seats"]["used"]

    member_again = invite(server, team.owner.id_token, team.editor.email.upper(), "viewer")
    owner_again = invite(server, team.owner.id_token, team.owner.email, "editor")
    invited_again = invite(server, team.owner.id_token, pending, "editor")

    assert (member_again.status_code, owner_again.status_code, invited_again.status_code) == (400, 400, 400)
    assert member_again.json()["detail"] == f"{team.editor.email} is a member of this team already"
    assert owner_again.json()["detail"] == f"{team.owner.email} is a member of this team already"
    assert invited_again.json()["detail"] == f"{pending} is invited already: resend the invitation, or revoke it first"
    assert team_of(server, team.owner.id_token)["seats"]["used"] == seats
    assert len(invitation_emails(catcher, pending)) == 1
    revoked = call(server, "DELETE", f"/tenants/me/invitations/{first.json()['invitation_id']}", team.owner.id_token)
    assert revoked.status_code == 200


def test_a_weak_password_is_refused_and_the_link_still_works(
    server: RunningServer, catcher: MailCatcher, team: Team
) -> None:
    email = f"weak-{uuid.uuid4().hex[:8]}@example.com"
    assert invite(server, team.owner.id_token, email, "viewer").status_code == 201
    token = join_token(catcher, email)

    weak = accept(server, token, "password")

    assert weak.status_code == 400, weak.text
    assert weak.json()["detail"].startswith("Password must have")
    assert login(server, email, "password").status_code == 401
    assert accept(server, token).status_code == 201
    assert signed_in(server, email, MEMBER_PASSWORD).claims["custom:tenant_id"] == team.tenant_id


# --- Roles, removal, the last admin, ownership ---


def test_a_role_change_ends_the_members_tokens_and_the_next_sign_in_carries_the_new_role(
    server: RunningServer, payfast: PayfastStandIn, catcher: MailCatcher
) -> None:
    crew = new_team(server, payfast, catcher)
    old = crew.viewer

    changed = call(server, "PATCH", f"/tenants/me/members/{old.user_id}", crew.owner.id_token, {"role": "tenant_admin"})

    assert changed.status_code == 200, changed.text
    assert (changed.json()["email"], changed.json()["role"]) == (old.email, "tenant_admin")
    # The old token carries the old role: it is refused, and so is its refresh token.
    assert call(server, "GET", "/tenants/me", old.id_token).status_code == 401
    assert call(server, "GET", "/tenants/me/members", old.id_token).status_code == 401
    refreshed = httpx.post(
        f"{server.base_url}/auth/refresh", json={"refresh_token": old.tokens["refresh_token"]}, timeout=30
    )
    assert refreshed.status_code == 401
    fresh = signed_in(server, old.email, MEMBER_PASSWORD)
    assert fresh.claims["custom:roles"] == "tenant_admin"
    assert member_row(team_of(server, crew.owner.id_token), old.email)["role"] == "tenant_admin"
    # The new role is enforced: a co-admin manages the team now.
    assert invite(server, fresh.id_token, f"by-coadmin-{uuid.uuid4().hex[:8]}@example.com", "viewer").status_code == 201
    # Others' tokens were not ended.
    assert call(server, "GET", "/tenants/me", crew.editor.id_token).status_code == 200

    demoted = call(server, "PATCH", f"/tenants/me/members/{fresh.user_id}", crew.owner.id_token, {"role": "viewer"})
    assert demoted.status_code == 200
    again = signed_in(server, old.email, MEMBER_PASSWORD)
    assert again.claims["custom:roles"] == "viewer"
    assert invite(server, again.id_token, f"refused-{uuid.uuid4().hex[:8]}@example.com", "viewer").status_code == 403


def test_removing_a_member_ends_their_live_session_at_once_and_gives_the_seat_back(
    server: RunningServer, payfast: PayfastStandIn, catcher: MailCatcher
) -> None:
    crew = new_team(server, payfast, catcher)
    gone = crew.editor
    assert call(server, "GET", "/tenants/me", gone.id_token).status_code == 200  # live
    assert team_of(server, crew.owner.id_token)["seats"] == {"used": 3, "limit": 5}

    removed = call(server, "DELETE", f"/tenants/me/members/{gone.user_id}", crew.owner.id_token)

    assert removed.status_code == 200, removed.text
    assert (removed.json()["email"], removed.json()["status"]) == (gone.email, "disabled")
    # The very next request with the live token is refused, on every route, and so is its refresh.
    assert call(server, "GET", "/tenants/me", gone.id_token).status_code == 401
    assert call(server, "GET", "/tenants/me/members", gone.id_token).status_code == 401
    refreshed = httpx.post(
        f"{server.base_url}/auth/refresh", json={"refresh_token": gone.tokens["refresh_token"]}, timeout=30
    )
    assert refreshed.status_code == 401
    assert login(server, gone.email, MEMBER_PASSWORD).status_code == 401
    shown = team_of(server, crew.owner.id_token)
    assert shown["seats"] == {"used": 2, "limit": 5}
    assert member_row(shown, gone.email)["status"] == "disabled"
    # The others carry on.
    assert call(server, "GET", "/tenants/me", crew.viewer.id_token).status_code == 200
    # Removed once: removing again changes nothing more, and the seat can be used again.
    assert call(server, "DELETE", f"/tenants/me/members/{gone.user_id}", crew.owner.id_token).status_code == 200
    assert team_of(server, crew.owner.id_token)["seats"]["used"] == 2
    # Invited again later, the same person joins afresh, with a new password.
    assert invite(server, crew.owner.id_token, gone.email, "viewer").status_code == 201
    assert accept(server, join_token(catcher, gone.email, count=2), "Back-Again-Passw0rd!").status_code == 201
    back = signed_in(server, gone.email, "Back-Again-Passw0rd!")
    assert back.claims["custom:roles"] == "viewer"
    assert call(server, "GET", "/tenants/me", back.id_token).status_code == 200
    assert call(server, "GET", "/tenants/me", gone.id_token).status_code == 401  # the old token stays dead
    # The list keeps the removed membership (disabled) beside the new one.
    rows = [row for row in team_of(server, crew.owner.id_token)["members"] if row["email"] == gone.email]
    assert sorted((row["status"], row["role"]) for row in rows) == [("active", "viewer"), ("disabled", "editor")]


def test_a_tenant_keeps_its_last_tenant_admin_because_the_owner_stays_one(
    server: RunningServer, payfast: PayfastStandIn, catcher: MailCatcher
) -> None:
    crew = new_team(server, payfast, catcher)

    # The owner is the tenant's only admin here: neither demoted nor removed, even by themself.
    demoted = call(
        server, "PATCH", f"/tenants/me/members/{crew.owner.user_id}", crew.owner.id_token, {"role": "editor"}
    )
    removed_self = call(server, "DELETE", f"/tenants/me/members/{crew.owner.user_id}", crew.owner.id_token)

    assert demoted.status_code == 400, demoted.text
    assert demoted.json()["detail"] == "the owner stays a tenant admin: transfer ownership to another admin first"
    assert removed_self.status_code == 400
    assert removed_self.json()["detail"] == "you cannot remove yourself: ask another tenant admin"
    shown = team_of(server, crew.owner.id_token)
    assert [row["email"] for row in shown["members"] if row["role"] == "tenant_admin"] == [crew.owner.email]
    assert call(server, "GET", "/tenants/me", crew.owner.id_token).status_code == 200  # not signed out


def test_ownership_is_handed_to_another_tenant_admin_who_may_then_demote_the_old_owner(
    server: RunningServer, payfast: PayfastStandIn, catcher: MailCatcher
) -> None:
    crew = new_team(server, payfast, catcher)
    to_editor = call(server, "POST", "/tenants/me/owner", crew.owner.id_token, {"user_id": crew.editor.user_id})
    assert to_editor.status_code == 400  # only to a tenant admin
    assert "is not a tenant admin" in to_editor.json()["detail"]
    promoted = call(
        server, "PATCH", f"/tenants/me/members/{crew.editor.user_id}", crew.owner.id_token, {"role": "tenant_admin"}
    )
    assert promoted.status_code == 200
    heir = signed_in(server, crew.editor.email, MEMBER_PASSWORD)
    # While the owner, even with a co-admin, the owner stays a tenant admin.
    early = call(server, "PATCH", f"/tenants/me/members/{crew.owner.user_id}", heir.id_token, {"role": "viewer"})
    assert early.status_code == 400, early.text
    assert early.json()["detail"] == "the owner stays a tenant admin: transfer ownership to another admin first"
    # Nor may a co-admin remove the owner.
    ousted = call(server, "DELETE", f"/tenants/me/members/{crew.owner.user_id}", heir.id_token)
    assert ousted.status_code == 400, ousted.text
    assert ousted.json()["detail"] == "the owner cannot be removed: transfer ownership to another admin first"
    # Only the owner hands the ownership on.
    usurped = call(server, "POST", "/tenants/me/owner", heir.id_token, {"user_id": heir.user_id})
    assert usurped.status_code == 403

    handed = call(server, "POST", "/tenants/me/owner", crew.owner.id_token, {"user_id": heir.user_id})

    assert handed.status_code == 200, handed.text
    assert handed.json() == {"tenant_id": crew.tenant_id, "owner_user_id": heir.user_id}
    owners = {row["email"] for row in team_of(server, heir.id_token)["members"] if row["owner"]}
    assert owners == {heir.email}
    demoted = call(server, "PATCH", f"/tenants/me/members/{crew.owner.user_id}", heir.id_token, {"role": "viewer"})
    assert demoted.status_code == 200, demoted.text
    former = signed_in(server, crew.owner.email, OWNER_PASSWORD)
    assert former.claims["custom:roles"] == "viewer"
    assert invite(server, former.id_token, f"nope-{uuid.uuid4().hex[:8]}@example.com", "viewer").status_code == 403
    assert call(server, "GET", "/tenants/me", former.id_token).json()["tenant_id"] == crew.tenant_id


def test_an_admin_cannot_touch_another_tenants_members_or_invitations(
    server: RunningServer, payfast: PayfastStandIn, catcher: MailCatcher, team: Team
) -> None:
    _, other_email = provision(server, payfast)
    other = signed_in_owner(server, catcher, other_email)
    pending = invite(server, team.owner.id_token, f"theirs-{uuid.uuid4().hex[:8]}@example.com", "viewer")
    assert pending.status_code == 201
    invitation_id = pending.json()["invitation_id"]
    before = team_of(server, team.owner.id_token)

    answers = [
        call(server, "PATCH", f"/tenants/me/members/{team.viewer.user_id}", other.id_token, {"role": "tenant_admin"}),
        call(server, "DELETE", f"/tenants/me/members/{team.editor.user_id}", other.id_token),
        call(server, "POST", f"/tenants/me/invitations/{invitation_id}/resend", other.id_token),
        call(server, "DELETE", f"/tenants/me/invitations/{invitation_id}", other.id_token),
        call(server, "POST", "/tenants/me/owner", other.id_token, {"user_id": team.owner.user_id}),
    ]

    # Another tenant's people and invitations do not exist for this token.
    assert [answer.status_code for answer in answers] == [404] * len(answers), [a.text for a in answers]
    assert team_of(server, team.owner.id_token) == before
    assert team.owner.email not in json.dumps(team_of(server, other.id_token))
    assert len(invitation_emails(catcher, pending.json()["email"])) == 1


def test_in_the_browser_a_viewer_cannot_change_billing_and_removal_signs_them_out(
    server: RunningServer, payfast: PayfastStandIn, catcher: MailCatcher
) -> None:
    crew = new_team(server, payfast, catcher)
    services = server.services()
    try:
        # The pages in-process, on the server's own stores (its session cookies are Secure, for
        # https only); the removal goes through the real server.
        browser = page_client(services)
        assert sign_in(browser, crew.viewer.email, MEMBER_PASSWORD).status_code == 303
        account = browser.get("/account")
        assert account.status_code == 200
        assert 'id="change-plan-heading"' not in account.text  # no billing forms for a viewer

        changed = browser.post(
            "/account/billing/plan",
            data={"csrf_token": csrf_token_in(account.text), "plan": "starter"},
            follow_redirects=False,
        )

        assert changed.status_code == 403, changed.text
        assert "Only the owner of a site can change its billing" in changed.text
        assert call(server, "GET", "/tenants/me", crew.owner.id_token).json()["plan"] == "professional"

        removed = call(server, "DELETE", f"/tenants/me/members/{crew.viewer.user_id}", crew.owner.id_token)

        assert removed.status_code == 200
        after = browser.get("/account", follow_redirects=False)
        assert after.status_code == 303, after.text
        assert after.headers["location"].startswith("/auth/login")
    finally:
        services.close()


def test_a_downgrade_to_fewer_seats_is_refused_saying_how_many_to_remove_until_they_are(
    server: RunningServer, payfast: PayfastStandIn, payfast_api: PayfastApiStandIn, catcher: MailCatcher
) -> None:
    token = new_subscription_token()
    payfast_api.add(token, amount=29900, run_date="2027-01-06")
    _, email = provision(server, payfast, token=token, billing_date="2026-12-06")
    owner = signed_in_owner(server, catcher, email)
    member = joined(server, catcher, owner, "editor")
    pending = invite(server, owner.id_token, f"pending-{uuid.uuid4().hex[:8]}@example.com", "viewer")
    assert pending.status_code == 201

    refused = tenancy(server.env, "subscription", "change-plan", email, "starter", "--yes")

    assert refused.returncode != 0
    assert "3 seats are held (members and pending invitations) and the plan has 1; remove 2 first" in refused.stderr
    assert payfast_api.subscription(token)["amount"] == 29900  # PayFast was not asked to change
    invitation_id = pending.json()["invitation_id"]
    assert call(server, "DELETE", f"/tenants/me/invitations/{invitation_id}", owner.id_token).status_code == 200
    assert call(server, "DELETE", f"/tenants/me/members/{member.user_id}", owner.id_token).status_code == 200
    downgraded = tenancy(server.env, "subscription", "change-plan", email, "starter", "--yes")
    assert downgraded.returncode == 0, downgraded.stderr
    assert payfast_api.subscription(token)["amount"] == 9900


# --- Lifecycle (last: the lifecycle run rehearses a date weeks ahead for every tenant) ---


def test_the_members_of_a_suspended_tenant_lose_access_like_its_owner_and_its_links_stop_working(
    server: RunningServer, payfast: PayfastStandIn, payfast_api: PayfastApiStandIn, catcher: MailCatcher
) -> None:
    token = new_subscription_token()
    payfast_api.add(token, amount=29900, run_date="2027-01-06")
    tenant_id, email = provision(server, payfast, token=token, billing_date="2026-12-06")
    owner = signed_in_owner(server, catcher, email)
    member = joined(server, catcher, owner, "editor")
    waiting = f"waiting-{uuid.uuid4().hex[:8]}@example.com"
    assert invite(server, owner.id_token, waiting, "viewer").status_code == 201
    link = join_token(catcher, waiting)

    # PayFast never charges again: past due, then suspended when the grace is over.
    run = tenancy(server.env, "lifecycle", "run", "--as-of", "2027-01-20T09:00:00Z", "--json")

    assert run.returncode == 0, run.stderr
    assert (tenant_id, "suspended") in [(move["tenant_id"], move["to"]) for move in json.loads(run.stdout)["applied"]]
    for person in (owner, member):
        for path in ("/tenants/me", "/tenants/me/members"):
            answer = call(server, "GET", path, person.id_token)
            assert answer.status_code == 403, (person.email, path, answer.text)
            assert answer.json()["detail"] == "Tenant suspended"
    assert invite(server, owner.id_token, f"late-{uuid.uuid4().hex[:8]}@example.com", "viewer").status_code == 403
    closed = "This team cannot take new members now. Ask the person who invited you."
    described = httpx.get(f"{server.base_url}/invitations/{link}", timeout=30)
    accepted = accept(server, link)
    assert (described.status_code, described.json()["detail"]) == (400, closed)
    assert (accepted.status_code, accepted.json()["detail"]) == (400, closed)
    assert login(server, waiting, MEMBER_PASSWORD).status_code == 401  # no account was made
