"""Fast seeding: one purchase provisioned for real (ITN intake and the saga, in-process), then
cloned N-1 times by INSERT ... SELECT inside one transaction, each clone with its own ids."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from common import BenchError, open_services, progress_bar

from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.model import PaymentVerdict
from tenancy.payments.simulator import build_itn, encode_form
from tenancy.runbook.evidence import Selector

PF_BASE = 7_770_000_000
CHUNK = 10_000
# Each table's rows of the template purchase, found by the column named here.
TABLES = {
    "tenants": "transaction_id",
    "users": "email",
    "provisioning": "transaction_id",
    "payments": "transaction_id",
    "identity_users": "username",
    "outbox": "to_address",
}


def transaction_id(number: int) -> str:
    return f"TXN-BENCH{number:06d}"


def email(number: int) -> str:
    return f"bench{number:06d}@example.com"


@dataclass
class Seeded:
    home: Path
    tenants: int


def provision_template(home: Path) -> dict[str, str]:
    """Purchase 0 through the real intake and saga; returns the ids its rows carry."""
    services = open_services(home)
    try:
        plan = services.plans.get(services.plans.names()[0])
        fields = build_itn(
            transaction_id=transaction_id(0),
            email=email(0),
            plan=plan.name,
            amount=plan.price_zar,
            merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
            passphrase=PAYFAST_SANDBOX_PASSPHRASE,
            pf_payment_id=str(PF_BASE),
        )
        record = services.intake.receive(encode_form(fields), "127.0.0.1")
        if record.verdict is not PaymentVerdict.ACCEPTED:
            raise BenchError(f"the template ITN was {record.verdict.value}: {record.reasons}")
        services.worker().poll_once()
        diagnosis = services.runbook.diagnose(Selector(email=email(0)))
        if not diagnosis.healthy:
            raise BenchError(f"the template purchase is {diagnosis.finding.value}")
        identity = services.identity.get_user(email(0))
        assert identity is not None
        message_id = services.mailer.outbox(email(0), limit=1)[0].message_id
        return {"sub": identity.sub, "message_id": message_id, "tenant_id": tenant_id_for(transaction_id(0))}
    finally:
        services.close()


def seed(home: Path, tenants: int, label: str = "") -> Seeded:
    """`tenants` healthy, active tenants (each with payment, job, identity user, users record and
    welcome email) in a new TENANCY_HOME."""
    home.mkdir(parents=True, exist_ok=True)
    template = provision_template(home)
    sub, message_id = template["sub"], template["message_id"]
    connection = sqlite3.connect(home / "tenancy.db", isolation_level=None)
    try:
        connection.execute("PRAGMA busy_timeout = 15000")
        columns = {
            table: [row[1] for row in connection.execute(f"PRAGMA table_info({table})") if row[1] != "id"]
            for table in TABLES
        }
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "CREATE TEMP TABLE seed (n INTEGER PRIMARY KEY, upper TEXT, lower TEXT, tenant TEXT, sub TEXT,"
            " message TEXT, pf TEXT)"
        )
        with progress_bar(f"seeding {tenants} tenants{label}", max(tenants - 1, 1) * 2) as bar:
            for start in range(1, tenants, CHUNK):
                rows = [
                    (
                        n,
                        f"BENCH{n:06d}",
                        f"bench{n:06d}",
                        tenant_id_for(transaction_id(n)),
                        f"{sub[:-12]}{n:012d}",
                        f"{message_id[:-12]}{n:012d}",
                        str(PF_BASE + n),
                    )
                    for n in range(start, min(start + CHUNK, tenants))
                ]
                connection.executemany("INSERT INTO seed VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                bar.advance(len(rows))
            substitutions = (
                ("BENCH000000", "seed.upper"),
                ("bench000000", "seed.lower"),
                (template["tenant_id"], "seed.tenant"),
                (sub, "seed.sub"),
                (message_id, "seed.message"),
                (str(PF_BASE), "seed.pf"),
            )
            for start in range(1, tenants, CHUNK):
                for table, key in TABLES.items():
                    expressions = []
                    for column in columns[table]:
                        expression = f"t.{column}"
                        for old, new in substitutions:
                            expression = f"replace({expression}, '{old}', {new})"
                        text = f"typeof(t.{column}) = 'text'"
                        expressions.append(f"CASE WHEN {text} THEN {expression} ELSE t.{column} END")
                    names = ", ".join(columns[table])
                    template_value = email(0) if key in {"email", "username", "to_address"} else transaction_id(0)
                    connection.execute(
                        f"INSERT INTO {table} ({names}) SELECT {', '.join(expressions)} FROM {table} AS t, seed"  # noqa: S608
                        f" WHERE t.{key} = ? AND seed.n >= ? AND seed.n < ?",
                        (template_value, start, start + CHUNK),
                    )
                bar.advance(min(CHUNK, tenants - start))
        connection.execute("DROP TABLE seed")
        connection.execute("COMMIT")
        connection.execute("ANALYZE")
    finally:
        connection.close()
    return Seeded(home, tenants)


def break_identity_users(home: Path, tenants: int, every: int = 100) -> list[int]:
    """RB-001 4.2 for every `every`-th tenant (1%): the identity user is deleted. Returns their numbers."""
    broken = list(range(every // 2, tenants, every)) or [tenants // 2]
    connection = sqlite3.connect(home / "tenancy.db", isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany("DELETE FROM identity_users WHERE username = ?", [(email(n),) for n in broken])
        connection.execute("COMMIT")
    finally:
        connection.close()
    return broken
