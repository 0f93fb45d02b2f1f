"""The soak's team traffic (issue 20, third bullet): member invitations racing for seats, the
invitations accepted (some twice), and the checks that prove seats never above the plan's.

How it fits soak/run.py:

1. `plan_teams(plan, seed, catalogue)`, right after the plan is made: a seeded fraction (~20%) of
   the purchases that will be provisioned get a team. Each invites more people than its plan has
   free seats (the plan's `max_users` less the owner's, plus 1 to 3): the invitations race for
   the last seats. A starter tenant (one seat, its owner's) has none free: every invitation is
   refused. About 30% of the invitations that get a seat are accepted twice: half with both
   acceptances sent at the same moment, half with the second sent after every team's traffic.
2. `send_wave(...)`, after the subscription wave has drained, worker and server kills and faults
   still on. The invitations are made in this process through the product's service layer
   (`TeamService.invite`, as `POST /tenants/me/members` calls it: its answer leaves out the link,
   which only the invitee's email carries, and the owner's password is only in the welcome email),
   on Services built over the same TENANCY_HOME and backend with the run's faults, so they race
   on the real stores with the server and workers. Each invitation that gets a seat is accepted
   through the real route, `POST /invitations/{token}/accept`, on the soak's server (which is
   killed meanwhile). Every task of every team runs at once, shuffled, from a pool of threads: a
   tenant's invitations race with each other and with its acceptances. An invitation cut short
   by a TransientError (a throttled store, a mail server timing out) is asked for again: the
   product withdraws an invitation it could not send (its seat given back); one left pending
   (its link lost with the error) is "invited already", and is resent for a new link, as an owner
   would. An acceptance without a final answer (a refused connection, a 5xx, a 429) is sent
   again.
3. `check(...)`, on the stores read after the last drain (`read` fills `Stores.team`): the
   problems found, if any.

The random choices come from their own generator (seeded from --seed), so the first wave's mix for
a given seed is what it was before teams were added.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from tenancy.bootstrap import Services, build, log_directory
from tenancy.config import Settings
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.lifecycle import EventType, new_event
from tenancy.domain.members import InvitationStatus, Role
from tenancy.domain.model import UserStatus
from tenancy.domain.plans import PlanCatalogue
from tenancy.errors import InvalidInputError, SeatsTakenError, TransientError
from tenancy.logging_setup import configure_logging
from tenancy.payments import payfast

__all__ = ["MEMBERS", "Team", "TeamTraffic", "check", "owners_only", "plan_teams", "read", "send_wave"]

MEMBERS = 0.20  # of the purchases that will be provisioned
MAX_EXTRA = 3  # invitations beyond the free seats
REPLAYED = 0.30  # of the invitations that get a seat: accepted twice (half at once, half later)
PASSWORD = "Soak-Member-pass-2026!"  # noqa: S105 - the invitees' password, passes the policy
MAX_ATTEMPTS = 40
PAUSE_SECONDS = 0.2
ROLES = (Role.EDITOR, Role.VIEWER, Role.TENANT_ADMIN)
# Why the product refuses a second acceptance of a link (TeamService.invitation_for and accept).
# A copy sent at the same moment may be read as pending, then find the member the other made.
USED = ("used already", "can no longer be used", "is a member of this team already")
# The members' findings of the runbook audit (tenancy.runbook.findings).
MEMBER_FINDINGS = ("member",)
EVENTS = {"invited": EventType.MEMBER_INVITED, "joined": EventType.MEMBER_JOINED}  # by their keys' prefix


@dataclass
class Invitee:
    email: str
    role: Role
    copies: int = 1  # acceptances sent at the same moment
    later: bool = False  # accepted once more after every team's traffic
    # What happened (filled by send_wave)
    outcome: str = ""  # invited | seats | refused: <why> | failed: <why>
    token: str = ""
    invite_attempts: int = 0
    answers: list[tuple[int, str, bool]] = field(default_factory=list)  # (status, detail, retried first)

    @property
    def sends(self) -> int:
        return self.copies + int(self.later)

    @property
    def created(self) -> int:
        """Acceptances answered 201."""
        return sum(1 for status, _, _ in self.answers if status == 201)

    @property
    def answer_lost(self) -> bool:
        """No 201, but a retry (after no answer, a 5xx) told the link was used: the 201 was lost."""
        return not self.created and any(
            retried and status == 400 and any(why in detail for why in USED) for status, detail, retried in self.answers
        )


@dataclass
class Team:
    purchase: Any  # run.Purchase
    plan: str
    seats: int  # the plan's max_users
    invitees: list[Invitee]

    @property
    def tenant_id(self) -> str:
        return tenant_id_for(self.purchase.transaction_id)

    @property
    def free(self) -> int:
        return max(self.seats - 1, 0)  # the owner holds one


@dataclass
class TeamTraffic:
    teams: list[Team] = field(default_factory=list)
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)  # what the sending itself met
    retries: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def invitees(self) -> list[Invitee]:
        return [invitee for team in self.teams for invitee in team.invitees]

    def count(self, outcome: str) -> int:
        return sum(1 for invitee in self.invitees if invitee.outcome == outcome)

    @property
    def accepted(self) -> int:
        """Invitations accepted: answered 201, or refused as used on a retry after no answer."""
        return sum(1 for invitee in self.invitees if invitee.created or invitee.answer_lost)

    @property
    def answers_lost(self) -> int:
        return sum(1 for invitee in self.invitees if invitee.answer_lost)

    @property
    def replays(self) -> int:
        return sum(invitee.sends - 1 for invitee in self.invitees if invitee.outcome == "invited")

    def retried(self, why: str) -> None:
        with self.lock:
            self.retries[why] += 1

    def plan_line(self) -> str:
        return f"members: tenants={len(self.teams)} invitations={len(self.invitees)}"

    def sent_line(self) -> str:
        retried = ", ".join(f"{why} {count}" for why, count in sorted(self.retries.items())) or "none"
        return f"sent {len(self.invitees)} member invitations in {self.seconds:.1f} s; again after: {retried}"

    def line(self) -> str:
        return (
            f"members: tenants={len(self.teams)} invitations={len(self.invitees)} invited={self.count('invited')}"
            f" accepted={self.accepted} refused_for_seats={self.count('seats')} replays={self.replays}"
            f" answers_lost={self.answers_lost}"
        )


def plan_teams(plan: Any, seed: int, catalogue: PlanCatalogue, fraction: float = MEMBERS) -> TeamTraffic:
    """Teams for ~`fraction` of the purchases that will be provisioned (`plan` is run.Plan), each
    with more invitations than its plan has free seats; which ones are accepted twice, and how,
    is decided as they get their seats (from each team's own seeded generator)."""
    rng = random.Random(f"soak-members-{seed}")
    traffic = TeamTraffic()
    if fraction <= 0:
        return traffic
    first_of = {itn.label: itn for itn in plan.itns}
    for number, purchase in enumerate(plan.purchases, start=1):
        if not purchase.expects_tenant or rng.random() >= fraction:
            continue
        name = dict(payfast.parse_itn(first_of[f"{purchase.transaction_id}/COMPLETE"].body))["custom_str1"]
        seats = catalogue.get(name).max_users
        team = Team(purchase, name, seats, [])
        for k in range(1, team.free + rng.randint(1, MAX_EXTRA) + 1):
            invitee = Invitee(f"member-s{seed}-{number:06d}-{k:02d}@example.com", rng.choice(ROLES))
            if rng.random() < REPLAYED:
                if rng.random() < 0.5:
                    invitee.copies = 2
                else:
                    invitee.later = True
            team.invitees.append(invitee)
        traffic.teams.append(team)
    return traffic


# --- Sending -----------------------------------------------------------------------------------


def faulty_services(env: dict[str, str]) -> Services:
    """Services over the processes' TENANCY_HOME and backend, with their faults (TENANCY_FAULTS):
    what the invitations are made with. This process's log lines go to TENANCY_HOME/logs, where
    the injected faults are counted."""
    saved = {key: value for key, value in os.environ.items() if key.startswith(("TENANCY_", "AWS_"))}
    for key in saved:
        del os.environ[key]
    os.environ.update(env)
    try:
        settings = Settings()
        configure_logging(settings.log_level, log_dir=log_directory(settings), terminal=False)
        return build(settings)
    finally:
        for key in [key for key in os.environ if key.startswith(("TENANCY_", "AWS_"))]:
            del os.environ[key]
        os.environ.update(saved)


def _token(link: str) -> str:
    return link.rsplit("/join/", 1)[1]


def _invite(services: Services, traffic: TeamTraffic, team: Team, invitee: Invitee) -> None:
    """Invites `invitee` until the product answers finally: invited (with the link's token), or
    refused for seats; an invitation left pending by an attempt cut short is resent for its link."""
    tenant = None
    why = "never tried"
    for attempt in range(1, MAX_ATTEMPTS + 1):
        invitee.invite_attempts = attempt
        try:
            tenant = tenant or services.tenants.get(team.tenant_id)
            if tenant is None:
                invitee.outcome = "failed: no tenant"
                return
            try:
                invited = services.team.invite(tenant, invitee.email, invitee.role, by=team.purchase.email)
            except InvalidInputError as refusal:
                if "invited already" not in str(refusal):
                    raise
                # An earlier attempt's invitation, kept pending, its link lost with the error.
                pending = [each for each in services.team.invitations(tenant.tenant_id, pending_only=True)
                           if each.email == invitee.email]  # fmt: skip
                if not pending:
                    why = f"invited already, but no pending invitation: {refusal}"
                    traffic.retried("invite: invited already, none pending")
                    time.sleep(PAUSE_SECONDS)
                    continue
                invited = services.team.resend(tenant, pending[0].invitation_id, by=team.purchase.email)
                traffic.retried("invite: resent an invitation left pending")
            invitee.outcome, invitee.token = "invited", _token(invited.link)
            return
        except SeatsTakenError:
            invitee.outcome = "seats"
            return
        except TransientError as error:
            why = f"{type(error).__name__}: {error}"
            traffic.retried("invite: TransientError")
        except InvalidInputError as refusal:
            if "could not be delivered" not in str(refusal):  # an injected mail refusal: withdrawn, asked again
                invitee.outcome = f"refused: {refusal}"
                return
            why = str(refusal)
            traffic.retried("invite: not delivered")
        time.sleep(min(PAUSE_SECONDS * attempt, 2.0))
    invitee.outcome = f"failed: no final answer after {MAX_ATTEMPTS} attempts; the last: {why}"


def _accept(client: httpx.Client, base_url: str, traffic: TeamTraffic, invitee: Invitee) -> None:
    """One acceptance of the link, sent again until answered finally (not a 5xx, a 429 or no answer)."""
    url = f"{base_url}/invitations/{invitee.token}/accept"
    retried = False
    problem = ""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            response = client.post(url, json={"password": PASSWORD})
        except httpx.HTTPError as error:
            problem, why = f"no answer: {type(error).__name__}", "accept: no answer"
        else:
            if response.status_code < 500 and response.status_code != 429:
                try:
                    detail = str(response.json().get("detail", ""))
                except ValueError:
                    detail = response.text[:200]
                with traffic.lock:
                    invitee.answers.append((response.status_code, detail, retried))
                return
            problem, why = f"HTTP {response.status_code}", f"accept: HTTP {response.status_code}"
        retried = True
        traffic.retried(why)
        time.sleep(min(PAUSE_SECONDS * attempt, 5.0))
    with traffic.lock:
        invitee.answers.append((0, f"no final answer after {MAX_ATTEMPTS} attempts; the last: {problem}", True))


def _together(count: int, action: Callable[[], None]) -> None:
    """`action` from `count` threads released at the same moment."""
    if count == 1:
        action()
        return
    barrier = threading.Barrier(count, timeout=30)

    def fire() -> None:
        with suppress(threading.BrokenBarrierError):
            barrier.wait()
        action()

    threads = [threading.Thread(target=fire, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)


def send_wave(traffic: TeamTraffic, env: dict[str, str], base_url: str, concurrency: int, seed: int) -> None:
    """Every team's invitations and acceptances at once, from `concurrency` threads, then the later
    second acceptances. `env` is the processes' environment (faults included)."""
    if not traffic.teams:
        return
    begun = time.monotonic()
    services = faulty_services(env)
    tasks = [(team, invitee) for team in traffic.teams for invitee in team.invitees]
    random.Random(f"soak-members-order-{seed}").shuffle(tasks)
    limits = httpx.Limits(max_connections=4 * concurrency)
    try:
        with httpx.Client(timeout=60, limits=limits) as client:

            def invite_and_accept(team: Team, invitee: Invitee) -> None:
                try:
                    _invite(services, traffic, team, invitee)
                except Exception as error:  # noqa: BLE001 - the product raised what it should not: a finding
                    invitee.outcome = f"failed: {type(error).__name__}: {error}"
                    with traffic.lock:
                        traffic.problems.append(f"{invitee.email}: invite raised {invitee.outcome[8:]}")
                    return
                if invitee.outcome == "invited":
                    _together(invitee.copies, lambda: _accept(client, base_url, traffic, invitee))

            def later(invitee: Invitee) -> None:
                _accept(client, base_url, traffic, invitee)

            with ThreadPoolExecutor(concurrency) as pool:
                for future in [pool.submit(invite_and_accept, team, invitee) for team, invitee in tasks]:
                    future.result()
            replays = [invitee for _, invitee in tasks if invitee.later and invitee.outcome == "invited"]
            with ThreadPoolExecutor(concurrency) as pool:
                for future in [pool.submit(later, invitee) for invitee in replays]:
                    future.result()
    finally:
        services.close()
        traffic.seconds = time.monotonic() - begun


# --- Reading and checking ----------------------------------------------------------------------


@dataclass
class TeamStores:
    """Every tenant's seats and invitations, as the team store holds them."""

    seats_used: dict[str, int] = field(default_factory=dict)
    max_users: dict[str, int] = field(default_factory=dict)
    invitations: dict[str, list[Any]] = field(default_factory=dict)
    events: set[tuple[str, str]] = field(default_factory=set)  # (invitation, member.invited|joined) queued


def read(services: Services, tenants: list[Any]) -> TeamStores:
    found = TeamStores()
    for tenant in tenants:
        found.seats_used[tenant.tenant_id] = services.team_store.seats_used(tenant.tenant_id)
        found.max_users[tenant.tenant_id] = services.plans.get(tenant.plan).max_users
        found.invitations[tenant.tenant_id] = services.team_store.invitations(tenant.tenant_id)
        for invitation in found.invitations[tenant.tenant_id]:
            owed = {InvitationStatus.PENDING: ("invited",), InvitationStatus.ACCEPTED: ("invited", "joined")}
            for kind, event_type in [(kind, EVENTS[kind]) for kind in owed.get(invitation.status, ())]:
                key = f"{kind}:{invitation.invitation_id}"  # TeamService's
                event = new_event(event_type, tenant.tenant_id, tenant.plan, tenant.status, "", key)
                if services.lifecycle.get_notice(event.event_id) is not None:
                    found.events.add((invitation.invitation_id, event_type.value))
    return found


def owners_only(stores: Any, traffic: TeamTraffic) -> Any:
    """`stores` (run.Stores) without the invitees' identity users, users records and emails: the
    judge's exactly-once counts are the purchases' (one owner each); `check` counts the members."""
    invitees = {invitee.email for invitee in traffic.invitees}
    return replace(
        stores,
        identity_users=[user for user in stores.identity_users if user.username not in invitees],
        users=[record for record in stores.users if record.email not in invitees],
        emails=[email for email in stores.emails if email.to not in invitees],
    )


def check(traffic: TeamTraffic, stores: Any, audit: dict[str, Any]) -> list[str]:
    """The teams in the stores against what was sent: no tenant holding more seats than its plan
    has (counted as the product counts them: its active users records, the owner's included, and
    its pending invitations; and the tenant's own count), exactly min(free seats, invitations)
    invitations of each team given a seat and the rest refused for seats, each accepted link
    answered 201 once (a second acceptance refused as used) and making one member (one users
    record, one identity user of the tenant, its member.invited and member.joined events queued for
    the Site Builder application), no email with two users records or identity users, and no member finding in the
    audit."""
    problems = [f"members: {problem}" for problem in traffic.problems]
    team = stores.team
    users_of: dict[str, list[Any]] = defaultdict(list)
    for record in stores.users:
        users_of[record.tenant_id].append(record)
    for tenant_id, limit in team.max_users.items():
        active = sum(1 for record in users_of[tenant_id] if record.status is UserStatus.ACTIVE)
        pending = sum(1 for each in team.invitations[tenant_id] if each.status is InvitationStatus.PENDING)
        counted = team.seats_used[tenant_id]
        if active + pending > limit or counted > limit:
            problems.append(f"members: tenant {tenant_id} holds {active} members and {pending} pending invitations"
                            f" (its count: {counted}), its plan has {limit} seats")  # fmt: skip
        elif counted != active + pending:
            problems.append(f"members: tenant {tenant_id} counts {counted} seats, holds {active} members"
                            f" and {pending} pending invitations")  # fmt: skip
    records_of: Counter[str] = Counter(record.email for record in stores.users)
    problems += [f"members: {email} has {count} users records" for email, count in records_of.items() if count > 1]
    identities_of: Counter[str] = Counter(user.username for user in stores.identity_users)
    problems += [f"members: {name} has {count} identity users" for name, count in identities_of.items() if count > 1]
    identity_by_name = {user.username: user for user in stores.identity_users}
    for each in traffic.teams:
        name = f"members: {each.purchase.transaction_id} ({each.plan}, {each.seats} seats)"
        outcomes = Counter(invitee.outcome for invitee in each.invitees)
        wanted = min(each.free, len(each.invitees))
        if outcomes["invited"] != wanted or outcomes["seats"] != len(each.invitees) - wanted:
            refused = len(each.invitees) - wanted
            problems.append(f"{name}: {dict(outcomes)} of {len(each.invitees)} invitations,"
                            f" expected {wanted} invited and {refused} refused for seats")  # fmt: skip
        invitations = {invitation.email: invitation for invitation in team.invitations.get(each.tenant_id, [])
                       if invitation.status is InvitationStatus.ACCEPTED}  # fmt: skip
        members = {record.email: record for record in users_of[each.tenant_id]}
        for invitee in each.invitees:
            if invitee.outcome != "invited":
                if invitee.email in members or invitee.email in identity_by_name:
                    problems.append(f"{name}: {invitee.email} was refused ({invitee.outcome}), yet is a member")
                continue
            invitation = invitations.get(invitee.email)
            problems += _accepted(name, invitee, invitation, members.get(invitee.email),
                                  identity_by_name.get(invitee.email), each.tenant_id)  # fmt: skip
            for event_type in EVENTS.values():
                if invitation is not None and (invitation.invitation_id, event_type.value) not in team.events:
                    problems.append(f"{name}: {invitee.email} joined; its {event_type.value} event was never queued")
    for case in audit["cases"]:
        if case["finding"].startswith(MEMBER_FINDINGS):
            problems.append(f"members: audit: {case.get('transaction_id')}: {case['finding']}: {case['summary']}")
    return problems


def _accepted(name: str, invitee: Invitee, invitation: Any, record: Any, identity: Any, tenant_id: str) -> list[str]:
    """One invitation given a seat: accepted once (a 201, or a retry told "used already" after an
    attempt without an answer), every other acceptance refused as used, one member made."""
    problems = []
    others = [answer for answer in invitee.answers if answer[0] != 201]
    refused_as_used = [answer for answer in others if answer[0] == 400 and any(why in answer[1] for why in USED)]
    if len(invitee.answers) != invitee.sends:
        problems.append(f"{name}: {invitee.email}: {len(invitee.answers)} answers to {invitee.sends} acceptances")
    if invitee.created > 1 or (not invitee.created and not invitee.answer_lost):
        problems.append(f"{name}: {invitee.email}: {invitee.created} acceptances answered 201: {invitee.answers}")
    if len(refused_as_used) != len(others):
        problems.append(f"{name}: {invitee.email}: acceptances not refused as used: {others}")
    if invitation is None:
        problems.append(f"{name}: {invitee.email}: no accepted invitation in the store")
    if record is None or record.status is not UserStatus.ACTIVE or record.role != invitee.role.value:
        problems.append(f"{name}: {invitee.email}: users record {record}, expected an active {invitee.role.value}")
    elif invitation is not None and invitation.user_id != record.user_id:
        problems.append(f"{name}: {invitee.email}: invitation made {invitation.user_id}, users record {record.user_id}")
    if identity is None or identity.tenant_id != tenant_id or (record is not None and identity.sub != record.user_id):
        problems.append(f"{name}: {invitee.email}: identity user {identity}, expected one of {tenant_id}")
    return problems
