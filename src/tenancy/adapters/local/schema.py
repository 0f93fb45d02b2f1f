"""The embedded backend's tables: the data contract's fields, plus the queue, identity and outbox."""

from __future__ import annotations

__all__ = [
    "ADDED_COLUMNS",
    "FINDINGS_SCHEMA",
    "LIFECYCLE_SCHEMA",
    "SCHEMA",
    "SIMULATOR_SCHEMA",
    "SUBSCRIPTIONS_SCHEMA",
    "TALLY_BACKFILL",
    "TALLY_SCHEMA",
    "TEAM_SCHEMA",
    "USAGE_SCHEMA",
]

# (table, tally name prefix, column): the rows counted by a column's value.
_TALLIED = (
    ("provisioning", "jobs", "status"),
    ("payments", "payments", "verdict"),
    ("findings", "findings", "finding"),
    ("subscriptions", "subscriptions", "status"),
)


def _add_minute(series: str, timestamp: str, when: str = "1") -> str:
    """A trigger statement adding one to `series` in `timestamp`'s minute, when `when` holds."""
    return (
        f"INSERT INTO minutely SELECT {series}, substr({timestamp}, 1, 16), 1 WHERE {when}"
        " ON CONFLICT (series, minute) DO UPDATE SET count = count + 1;"
    )


def _remove_minute(series: str, timestamp: str, when: str = "1") -> str:
    """A trigger statement taking one from `series` in `timestamp`'s minute, when `when` holds."""
    return (
        f"UPDATE minutely SET count = count - 1 WHERE ({when})"  # noqa: S608 - fixed SQL
        f" AND series = {series} AND minute = substr({timestamp}, 1, 16);"
    )


def _new_entries(kind: str, first_new: str) -> str:
    """A trigger statement adding to the minutely series `<kind>s` the billing history entries of
    that kind a write of `subscriptions` added (those from index `first_new` on), each in the
    minute it was applied (its `at`): renewals and cancellations a week, counted as they happen."""
    return (
        f"INSERT INTO minutely SELECT '{kind}s', substr(json_extract(value, '$.at'), 1, 16), COUNT(*)"  # noqa: S608
        f" FROM json_each(NEW.data, '$.history') WHERE key >= {first_new}"
        f" AND json_extract(value, '$.kind') = '{kind}' GROUP BY 2"
        " ON CONFLICT (series, minute) DO UPDATE SET count = count + excluded.count;"
    )


def _annual_cents(row: str, sign: str) -> str:
    """Keeps `annual_cents:<status>` summing the subscriptions' recurring amounts, a year's worth."""
    return (
        f"INSERT INTO tally VALUES ('annual_cents:' || {row}.status, {sign}{row}.annual_cents)"  # noqa: S608
        f" ON CONFLICT (name) DO UPDATE SET count = count + {sign}{row}.annual_cents;"
    )


def _tally_triggers(table: str, prefix: str, column: str) -> tuple[str, ...]:
    """The triggers that keep `<prefix>:<value>` counting the rows of `table` by `column`."""
    add = f"INSERT INTO tally VALUES ('{prefix}:' || NEW.{column}, 1)"  # noqa: S608 - fixed SQL
    add += " ON CONFLICT (name) DO UPDATE SET count = count + 1;"
    remove = f"UPDATE tally SET count = count - 1 WHERE name = '{prefix}:' || OLD.{column};"  # noqa: S608 - fixed SQL
    return (
        f"CREATE TRIGGER IF NOT EXISTS {table}_tally_insert AFTER INSERT ON {table} BEGIN {add} END",
        f"CREATE TRIGGER IF NOT EXISTS {table}_tally_delete AFTER DELETE ON {table} BEGIN {remove} END",
        f"CREATE TRIGGER IF NOT EXISTS {table}_tally_update AFTER UPDATE OF {column} ON {table}"
        f" WHEN OLD.{column} IS NOT NEW.{column} BEGIN {remove} {add} END",
    )


SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS tenants (
        tenant_id TEXT PRIMARY KEY,
        owner_user_id TEXT NOT NULL,
        name TEXT NOT NULL,
        plan TEXT NOT NULL,
        status TEXT NOT NULL,
        limits TEXT NOT NULL,
        usage TEXT NOT NULL,
        storage_prefix TEXT NOT NULL,
        transaction_id TEXT NOT NULL,
        invoice_number TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS tenants_by_transaction ON tenants (transaction_id)",
    "CREATE INDEX IF NOT EXISTS tenants_by_owner ON tenants (owner_user_id)",
    "CREATE INDEX IF NOT EXISTS tenants_by_status ON tenants (status)",
    """CREATE TABLE IF NOT EXISTS users (
        user_id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        email TEXT NOT NULL,
        role TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS users_by_email ON users (email)",
    "CREATE INDEX IF NOT EXISTS users_by_tenant ON users (tenant_id)",
    """CREATE TABLE IF NOT EXISTS provisioning (
        transaction_id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        invoice_number TEXT NOT NULL,
        email TEXT NOT NULL,
        plan TEXT NOT NULL,
        tenant_name TEXT NOT NULL,
        status TEXT NOT NULL,
        pf_payment_id TEXT,
        completed_steps TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        owner_user_id TEXT,
        last_error TEXT,
        review_reason TEXT,
        next_attempt_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        claim TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS provisioning_by_status ON provisioning (status, updated_at)",
    "CREATE INDEX IF NOT EXISTS provisioning_by_email ON provisioning (email)",
    # The console's newest jobs, whatever their status.
    "CREATE INDEX IF NOT EXISTS provisioning_by_update ON provisioning (updated_at)",
    """CREATE TABLE IF NOT EXISTS payments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at TEXT NOT NULL,
        source_ip TEXT NOT NULL,
        fields TEXT NOT NULL,
        verdict TEXT NOT NULL,
        reasons TEXT NOT NULL,
        pf_payment_id TEXT,
        transaction_id TEXT,
        payment_status TEXT,
        email TEXT,
        plan TEXT,
        amount_gross TEXT
    )""",
    # The dedupe guarantee (check 6): one accepted entry per pf_payment_id + status,
    # enforced by the database, so concurrent copies cannot both be accepted.
    """CREATE UNIQUE INDEX IF NOT EXISTS payments_accepted_once
        ON payments (pf_payment_id, payment_status) WHERE verdict = 'accepted'""",
    "CREATE INDEX IF NOT EXISTS payments_by_transaction ON payments (transaction_id)",
    "CREATE INDEX IF NOT EXISTS payments_by_email ON payments (email)",
    # /metrics and the alert rules count entries by verdict and read the window's rejections.
    "CREATE INDEX IF NOT EXISTS payments_by_verdict ON payments (verdict, received_at)",
    """CREATE TABLE IF NOT EXISTS queue_messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        queue TEXT NOT NULL,
        transaction_id TEXT NOT NULL,
        visible_at REAL NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0,
        receipt TEXT,
        sent_at TEXT NOT NULL,
        last_error TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS queue_messages_visible ON queue_messages (queue, visible_at)",
    # A purchase's messages (its evidence, judged after every change to it): without this, each
    # look-up reads the whole queue, so every ITN got slower as a backlog grew.
    "CREATE INDEX IF NOT EXISTS queue_messages_transaction ON queue_messages (transaction_id)",
    """CREATE TABLE IF NOT EXISTS identity_users (
        username TEXT PRIMARY KEY,
        sub TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        attributes TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        password_expires_at REAL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS identity_sessions (
        session_hash TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        purpose TEXT NOT NULL,
        expires_at REAL NOT NULL,
        used INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS identity_refresh_tokens (
        token_hash TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        auth_time REAL NOT NULL,
        expires_at REAL NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS outbox (
        message_id TEXT PRIMARY KEY,
        to_address TEXT NOT NULL,
        sender TEXT NOT NULL,
        subject TEXT NOT NULL,
        text_body TEXT NOT NULL,
        html_body TEXT,
        status TEXT NOT NULL,
        error TEXT,
        tags TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS outbox_by_recipient ON outbox (to_address, created_at)",
    """CREATE TABLE IF NOT EXISTS repair_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        operator TEXT NOT NULL,
        transaction_id TEXT,
        tenant_id TEXT,
        email TEXT,
        finding TEXT NOT NULL,
        actions TEXT NOT NULL,
        before_state TEXT NOT NULL,
        after_state TEXT NOT NULL,
        outcome TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS repair_log_by_transaction ON repair_log (transaction_id)",
    "CREATE INDEX IF NOT EXISTS repair_log_by_tenant ON repair_log (tenant_id)",
    "CREATE INDEX IF NOT EXISTS provisioning_by_tenant ON provisioning (tenant_id)",
    """CREATE TABLE IF NOT EXISTS rate_counters (
        counter_key TEXT NOT NULL,
        window INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (counter_key, window)
    )""",
    # Sign-in sessions (browser cookies, API refresh-token families): only the secret's hash is kept.
    """CREATE TABLE IF NOT EXISTS sign_in_sessions (
        session_id TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL,
        kind TEXT NOT NULL,
        username TEXT NOT NULL,
        subject TEXT NOT NULL,
        tenant_id TEXT,
        roles TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        provider_refresh_token TEXT,
        revoked_at INTEGER
    )""",
    "CREATE INDEX IF NOT EXISTS sign_in_sessions_by_username ON sign_in_sessions (username)",
    "CREATE INDEX IF NOT EXISTS sign_in_sessions_by_expiry ON sign_in_sessions (expires_at)",
    # Per user: ID tokens issued before `not_before` (epoch seconds) no longer count.
    """CREATE TABLE IF NOT EXISTS token_revocations (
        username TEXT PRIMARY KEY,
        not_before INTEGER NOT NULL
    )""",
    # One live forgotten-password code per user (a new one replaces it); only its argon2 hash is kept.
    """CREATE TABLE IF NOT EXISTS identity_reset_codes (
        username TEXT PRIMARY KEY,
        code_hash TEXT NOT NULL,
        expires_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
    )""",
)

# Each tenant's PayFast subscription and billing history (adapters.local.subscriptions): the
# whole subscription as JSON, with the columns it is found by, the version it is written over, and
# what the dashboard's tallies count (status, and the recurring amount as cents a year).
SUBSCRIPTIONS_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS subscriptions (
        tenant_id TEXT PRIMARY KEY,
        token TEXT NOT NULL UNIQUE,
        transaction_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        data TEXT NOT NULL,
        status TEXT NOT NULL,
        annual_cents INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS subscriptions_by_transaction ON subscriptions (transaction_id)",
)

# The tenant lifecycle (adapters.local.lifecycle): each tenant's history of moves, and the notices
# (events for the Site Builder application, owner emails) a move queued in its own transaction,
# pending until delivered. `due` orders what the dispatcher delivers next.
LIFECYCLE_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS tenant_history (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id TEXT NOT NULL,
        at TEXT NOT NULL,
        from_status TEXT NOT NULL,
        to_status TEXT NOT NULL,
        trigger TEXT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL,
        event TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS tenant_history_by_tenant ON tenant_history (tenant_id, seq)",
    """CREATE TABLE IF NOT EXISTS notices (
        notice_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT,
        delivered_at TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS notices_due ON notices (next_attempt_at) WHERE status = 'pending'",
    "CREATE INDEX IF NOT EXISTS notices_by_status ON notices (status, created_at)",
    "CREATE INDEX IF NOT EXISTS notices_by_tenant ON notices (tenant_id, status)",
    """CREATE TABLE IF NOT EXISTS tombstones (
        tenant_id TEXT PRIMARY KEY,
        owner_email_hash TEXT NOT NULL,
        plan TEXT NOT NULL,
        transaction_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        cancelled_at TEXT,
        deleted_at TEXT NOT NULL,
        reason TEXT NOT NULL
    )""",
)

# Entitlements (adapters.local.usage): the answer given to each usage record's idempotency key,
# and the service API's keys (hashed).
USAGE_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS usage_answers (
        tenant_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        applied INTEGER NOT NULL,
        usage TEXT NOT NULL,
        limits TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (tenant_id, idempotency_key)
    )""",
    "CREATE INDEX IF NOT EXISTS usage_answers_by_age ON usage_answers (created_at)",
    """CREATE TABLE IF NOT EXISTS service_keys (
        name TEXT PRIMARY KEY,
        key_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    )""",
)

# Team members (adapters.local.team): invitations, at most one pending per email and tenant.
TEAM_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS invitations (
        invitation_id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        email TEXT NOT NULL,
        role TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        status TEXT NOT NULL,
        invited_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        user_id TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS invitations_by_tenant ON invitations (tenant_id, created_at)",
    "CREATE INDEX IF NOT EXISTS invitations_pending ON invitations (expires_at) WHERE status = 'pending'",
    "CREATE UNIQUE INDEX IF NOT EXISTS invitations_one_pending ON invitations (tenant_id, email)"
    " WHERE status = 'pending'",
)

# The findings index: each purchase's current finding (runbook.findings_index), and the last
# full audits that refreshed it.
FINDINGS_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS findings (
        transaction_id TEXT PRIMARY KEY,
        finding TEXT NOT NULL,
        classified_at TEXT NOT NULL,
        changed_at TEXT NOT NULL,
        email TEXT,
        tenant_id TEXT,
        job_status TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS findings_by_finding ON findings (finding, changed_at)",
    # Purchases with no job (paid, never provisioned: RB-001 4.1), the few the console lists first.
    "CREATE INDEX IF NOT EXISTS findings_without_job ON findings (changed_at) WHERE job_status IS NULL",
    """CREATE TABLE IF NOT EXISTS audit_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        trigger TEXT NOT NULL,
        since TEXT NOT NULL,
        purchases INTEGER NOT NULL,
        findings INTEGER NOT NULL
    )""",
    # The scheduled audit's claim (one row): held until `until`, by whichever process runs it.
    "CREATE TABLE IF NOT EXISTS audit_claim (name TEXT PRIMARY KEY, until TEXT NOT NULL)",
)

# Counts the console and /metrics read without counting rows, kept exact by triggers in the very
# transaction that changes a row, whoever writes it (the application, a bulk load, an operator's
# SQL). `tally` holds jobs by status (`jobs:<status>`), ITNs by verdict (`payments:<verdict>`) and
# purchases by finding (`findings:<finding>`). `minutely` holds, by the minute of a timestamp (its
# first 16 characters, `2026-01-18T09:05`): ITNs by verdict as received (`payments:<verdict>`),
# accepted COMPLETE ITNs (`paid`), and succeeded jobs by their last update (`succeeded`, and
# `succeeded_retried` for those that took more than one attempt). A window's count is then its
# whole minutes from the tally plus the rows of its first, partial minute (database.py).
TALLY_SCHEMA: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS tally (name TEXT PRIMARY KEY, count INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS minutely (
        series TEXT NOT NULL,
        minute TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (series, minute)
    )""",
    *(statement for tallied in _TALLIED for statement in _tally_triggers(*tallied)),
    f"""CREATE TRIGGER IF NOT EXISTS payments_minutely_insert AFTER INSERT ON payments BEGIN
        {_add_minute("'payments:' || NEW.verdict", "NEW.received_at")}
        {_add_minute("'paid'", "NEW.received_at", "NEW.verdict = 'accepted' AND NEW.payment_status = 'COMPLETE'")}
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS payments_minutely_delete AFTER DELETE ON payments BEGIN
        {_remove_minute("'payments:' || OLD.verdict", "OLD.received_at")}
        {_remove_minute("'paid'", "OLD.received_at", "OLD.verdict = 'accepted' AND OLD.payment_status = 'COMPLETE'")}
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS provisioning_minutely_insert AFTER INSERT ON provisioning BEGIN
        {_add_minute("'succeeded'", "NEW.updated_at", "NEW.status = 'succeeded'")}
        {_add_minute("'succeeded_retried'", "NEW.updated_at", "NEW.status = 'succeeded' AND NEW.attempts >= 2")}
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS provisioning_minutely_update
        AFTER UPDATE OF status, updated_at, attempts ON provisioning BEGIN
        {_remove_minute("'succeeded'", "OLD.updated_at", "OLD.status = 'succeeded'")}
        {_remove_minute("'succeeded_retried'", "OLD.updated_at", "OLD.status = 'succeeded' AND OLD.attempts >= 2")}
        {_add_minute("'succeeded'", "NEW.updated_at", "NEW.status = 'succeeded'")}
        {_add_minute("'succeeded_retried'", "NEW.updated_at", "NEW.status = 'succeeded' AND NEW.attempts >= 2")}
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS subscriptions_figures_insert AFTER INSERT ON subscriptions BEGIN
        {_annual_cents("NEW", "")}
        {_new_entries("renewal", "0")}
        {_new_entries("cancellation", "0")}
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS subscriptions_figures_update AFTER UPDATE ON subscriptions BEGIN
        {_annual_cents("OLD", "-")}
        {_annual_cents("NEW", "")}
        {_new_entries("renewal", "json_array_length(OLD.data, '$.history')")}
        {_new_entries("cancellation", "json_array_length(OLD.data, '$.history')")}
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS subscriptions_figures_delete AFTER DELETE ON subscriptions BEGIN
        {_annual_cents("OLD", "-")}
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS provisioning_minutely_delete AFTER DELETE ON provisioning BEGIN
        {_remove_minute("'succeeded'", "OLD.updated_at", "OLD.status = 'succeeded'")}
        {_remove_minute("'succeeded_retried'", "OLD.updated_at", "OLD.status = 'succeeded' AND OLD.attempts >= 2")}
    END""",
)

# What a database made before a tally existed counts from its rows, once, when the tally is added.
TALLY_BACKFILL: dict[str, tuple[str, ...]] = {
    "tally": tuple(
        f"INSERT INTO tally SELECT '{prefix}:' || {column}, COUNT(*) FROM {table} GROUP BY {column}"  # noqa: S608
        for table, prefix, column in _TALLIED
    ),
    "minutely": (
        """INSERT INTO minutely SELECT 'payments:' || verdict, substr(received_at, 1, 16), COUNT(*) FROM payments
            GROUP BY 1, 2""",
        """INSERT INTO minutely SELECT 'paid', substr(received_at, 1, 16), COUNT(*) FROM payments
            WHERE verdict = 'accepted' AND payment_status = 'COMPLETE' GROUP BY 2""",
        """INSERT INTO minutely SELECT 'succeeded', substr(updated_at, 1, 16), COUNT(*) FROM provisioning
            WHERE status = 'succeeded' GROUP BY 2""",
        """INSERT INTO minutely SELECT 'succeeded_retried', substr(updated_at, 1, 16), COUNT(*) FROM provisioning
            WHERE status = 'succeeded' AND attempts >= 2 GROUP BY 2""",
    ),
}

# Columns added after a table was first created: (table, column, declaration). A database made by
# an older version gets them on open; CREATE TABLE above already has them for a new one.
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("provisioning", "claim", "TEXT"),
    ("payments", "token", "TEXT"),
    ("provisioning", "is_returning", "INTEGER NOT NULL DEFAULT 0"),  # ProvisioningJob.returning
    # Team members (adapters.local.team): seats held and tenant admins; NULL counts the owner alone.
    ("tenants", "seats_used", "INTEGER"),
    ("tenants", "admins", "INTEGER"),
    ("users", "last_sign_in_at", "TEXT"),
)

# PayFast's subscription API as the offline simulator keeps it (adapters.local.payfast_simulator).
SIMULATOR_SCHEMA: tuple[str, ...] = (
    """
CREATE TABLE IF NOT EXISTS simulated_subscriptions (
    token TEXT PRIMARY KEY,
    amount_cents INTEGER NOT NULL,
    frequency INTEGER NOT NULL,
    cycles INTEGER NOT NULL DEFAULT 0,
    cycles_complete INTEGER NOT NULL DEFAULT 0,
    run_date TEXT NOT NULL,
    status_text TEXT NOT NULL,
    anchor_date TEXT NOT NULL,
    periods_since_anchor INTEGER NOT NULL DEFAULT 0
)
""",
)
