"""The TenantStore and UserStore contracts, the same assertions on SQLite and on DynamoDB (moto),
and the DynamoDB items checked against RB-001's own put-item JSON (4.2 users, 4.3 tenants)."""

from __future__ import annotations

import json

import pytest

from tenancy.domain.ids import invoice_number_for, storage_prefix_for, tenant_id_for
from tenancy.domain.model import Billing, Tenant, TenantStatus, Usage, UserRecord, UserStatus
from tenancy.domain.plans import Limits
from tenancy.errors import ItemAlreadyExistsError, NotFoundError, PermanentError
from tenancy.ports import TenantStore, UserStore

from aws_support import Backend

PROFESSIONAL = Limits(max_sites=5, max_generations_per_month=100, max_storage_mb=500, custom_domain_allowed=True)


def make_tenant(
    transaction_id: str = "TXN-100001",
    *,
    tenant_id: str | None = None,
    created_at: str = "2026-01-18T00:00:00Z",
    status: TenantStatus = TenantStatus.PROVISIONING,
) -> Tenant:
    tenant_id = tenant_id or tenant_id_for(transaction_id)
    return Tenant(
        tenant_id=tenant_id,
        owner_user_id="",
        name="User Tenant",
        plan="professional",
        status=status,
        limits=PROFESSIONAL,
        usage=Usage(sites_count=1, generations_this_month=7, storage_used_mb=42),
        storage_prefix=storage_prefix_for(tenant_id),
        billing=Billing(transaction_id, invoice_number_for(transaction_id)),
        created_at=created_at,
        updated_at=created_at,
    )


def make_user(
    user_id: str = "2f9c1a4e-0000-4000-8000-000000000001",
    *,
    email: str = "user@example.com",
    created_at: str = "2026-01-18T00:00:00Z",
) -> UserRecord:
    return UserRecord(
        user_id=user_id,
        tenant_id="ten_XXXXX",
        email=email,
        role="tenant_admin",
        status=UserStatus.ACTIVE,
        created_at=created_at,
    )


@pytest.fixture
def tenants(backend: Backend) -> TenantStore:
    return backend.services.tenants


@pytest.fixture
def users(backend: Backend) -> UserStore:
    return backend.services.users


# Tenants -------------------------------------------------------------------------------------


def test_a_created_tenant_reads_back_as_written(tenants: TenantStore) -> None:
    tenant = make_tenant()

    tenants.create(tenant)

    assert tenants.get(tenant.tenant_id) == tenant


def test_creating_a_tenant_twice_is_refused_and_keeps_the_first(tenants: TenantStore) -> None:
    tenants.create(make_tenant())

    with pytest.raises(ItemAlreadyExistsError):
        tenants.create(make_tenant(status=TenantStatus.ACTIVE))

    stored = tenants.get(tenant_id_for("TXN-100001"))
    assert stored is not None
    assert stored.status is TenantStatus.PROVISIONING


def test_a_missing_tenant_is_none(tenants: TenantStore) -> None:
    assert tenants.get("ten_XXXXX") is None


def test_set_owner_and_set_status_change_only_those_fields_and_updated_at(tenants: TenantStore) -> None:
    tenant = make_tenant()
    tenants.create(tenant)

    tenants.set_owner(tenant.tenant_id, "cognito-sub-1", "2026-01-18T00:01:00Z")
    tenants.set_status(tenant.tenant_id, TenantStatus.ACTIVE, "2026-01-18T00:02:00Z")

    assert tenants.get(tenant.tenant_id) == Tenant(
        **{
            **{field: getattr(tenant, field) for field in Tenant.__dataclass_fields__},
            "owner_user_id": "cognito-sub-1",
            "status": TenantStatus.ACTIVE,
            "updated_at": "2026-01-18T00:02:00Z",
        }
    )


def test_set_owner_or_status_of_a_missing_tenant_is_not_found_and_creates_nothing(tenants: TenantStore) -> None:
    with pytest.raises(NotFoundError):
        tenants.set_owner("ten_XXXXX", "cognito-sub-1", "2026-01-18T00:01:00Z")
    with pytest.raises(NotFoundError):
        tenants.set_status("ten_XXXXX", TenantStatus.ACTIVE, "2026-01-18T00:01:00Z")

    assert tenants.get("ten_XXXXX") is None


def test_put_writes_a_new_tenant_and_overwrites_an_existing_one(tenants: TenantStore) -> None:
    tenant = make_tenant()
    tenants.put(tenant)
    repaired = make_tenant(status=TenantStatus.ACTIVE, created_at="2026-01-19T00:00:00Z")

    tenants.put(repaired)

    assert tenants.get(tenant.tenant_id) == repaired


def test_delete_removes_the_tenant_and_ignores_a_missing_one(tenants: TenantStore) -> None:
    tenant = make_tenant()
    tenants.create(tenant)

    tenants.delete(tenant.tenant_id)
    tenants.delete(tenant.tenant_id)

    assert tenants.get(tenant.tenant_id) is None


def test_find_by_transaction_finds_the_tenant_with_the_derived_id(tenants: TenantStore) -> None:
    tenant = make_tenant("TXN-100001")
    tenants.create(tenant)
    tenants.create(make_tenant("TXN-100002"))

    assert tenants.find_by_transaction("TXN-100001") == tenant


def test_find_by_transaction_finds_a_hand_made_tenant_like_rb001_ten_newid(tenants: TenantStore) -> None:
    hand_made = make_tenant("TXN-123456", tenant_id="ten_NEWID")
    tenants.put(hand_made)
    tenants.create(make_tenant("TXN-100002"))

    assert tenants.find_by_transaction("TXN-123456") == hand_made


def test_find_by_transaction_answers_the_earliest_created_of_several_hand_made_tenants(tenants: TenantStore) -> None:
    older = make_tenant("TXN-123456", tenant_id="ten_OLDER", created_at="2026-01-18T00:00:00Z")
    newer = make_tenant("TXN-123456", tenant_id="ten_NEWER", created_at="2026-01-19T00:00:00Z")
    tenants.put(newer)
    tenants.put(older)

    assert tenants.find_by_transaction("TXN-123456") == older


def test_find_by_transaction_prefers_the_derived_id_over_an_older_hand_made_tenant(tenants: TenantStore) -> None:
    tenants.put(make_tenant("TXN-123456", tenant_id="ten_NEWID", created_at="2026-01-18T00:00:00Z"))
    derived = make_tenant("TXN-123456", created_at="2026-01-19T00:00:00Z")
    tenants.create(derived)

    found = tenants.find_by_transaction("TXN-123456")

    assert found is not None
    assert found.tenant_id == derived.tenant_id


def test_find_by_transaction_of_an_unknown_transaction_is_none(tenants: TenantStore) -> None:
    tenants.create(make_tenant("TXN-100001"))

    assert tenants.find_by_transaction("TXN-999999") is None


def test_scan_returns_every_tenant_in_batches_no_larger_than_asked(tenants: TenantStore) -> None:
    created = [make_tenant(f"TXN-2000{number:02d}") for number in range(7)]
    for tenant in created:
        tenants.create(tenant)

    batches = list(tenants.scan(batch_size=3))

    assert len(batches) >= 3
    assert all(0 < len(batch) <= 3 for batch in batches)
    scanned = [tenant for batch in batches for tenant in batch]
    assert sorted(scanned, key=lambda tenant: tenant.tenant_id) == sorted(created, key=lambda tenant: tenant.tenant_id)


def test_scan_of_no_tenants_yields_no_batch(tenants: TenantStore) -> None:
    assert list(tenants.scan(batch_size=3)) == []


# Users ---------------------------------------------------------------------------------------


def test_a_created_users_record_reads_back_with_its_email_lower_cased(users: UserStore) -> None:
    users.create(make_user(email="User@Example.COM"))

    assert users.get("2f9c1a4e-0000-4000-8000-000000000001") == make_user(email="user@example.com")


def test_a_hand_made_user_id_like_rb001_user_xxxxx_is_accepted(users: UserStore) -> None:
    users.create(make_user("user_XXXXX"))

    assert users.get("user_XXXXX") == make_user("user_XXXXX")


def test_creating_a_users_record_twice_is_refused(users: UserStore) -> None:
    users.create(make_user())

    with pytest.raises(ItemAlreadyExistsError):
        users.create(make_user(email="other@example.com"))

    assert users.get("2f9c1a4e-0000-4000-8000-000000000001") == make_user()


def test_a_missing_users_record_is_none(users: UserStore) -> None:
    assert users.get("user_XXXXX") is None


def test_find_by_email_answers_every_record_of_the_email_oldest_first_whatever_its_case(users: UserStore) -> None:
    newest = make_user("user_C", created_at="2026-01-20T00:00:00Z")
    oldest_b = make_user("user_B", created_at="2026-01-18T00:00:00Z")
    oldest_a = make_user("user_A", created_at="2026-01-18T00:00:00Z")
    for user in (newest, oldest_b, oldest_a, make_user("user_D", email="other@example.com")):
        users.create(user)

    assert users.find_by_email(" USER@example.com ") == [oldest_a, oldest_b, newest]
    assert users.find_by_email("nobody@example.com") == []


def test_put_overwrites_a_users_record_and_delete_removes_it(users: UserStore) -> None:
    users.put(make_user())
    users.put(make_user(email="moved@example.com"))

    assert users.find_by_email("user@example.com") == []
    assert users.find_by_email("moved@example.com") == [make_user(email="moved@example.com")]

    users.delete("2f9c1a4e-0000-4000-8000-000000000001")
    users.delete("2f9c1a4e-0000-4000-8000-000000000001")

    assert users.get("2f9c1a4e-0000-4000-8000-000000000001") is None


def test_scan_returns_every_users_record_in_batches_no_larger_than_asked(users: UserStore) -> None:
    created = [make_user(f"user_{number}") for number in range(5)]
    for user in created:
        users.create(user)

    batches = list(users.scan(batch_size=2))

    assert len(batches) >= 3
    assert all(0 < len(batch) <= 2 for batch in batches)
    scanned = [user for batch in batches for user in batch]
    assert sorted(scanned, key=lambda user: user.user_id) == created


# The items on DynamoDB, against RB-001's own commands --------------------------------------------

# RB-001 4.3's `aws dynamodb put-item --table-name tenants --item '...'`, with $COGNITO_SUB filled in.
RB001_4_3_TENANT_ITEM = """{
    "tenant_id": {"S": "ten_NEWID"},
    "owner_user_id": {"S": "'$COGNITO_SUB'"},
    "name": {"S": "User Tenant"},
    "plan": {"S": "professional"},
    "status": {"S": "active"},
    "limits": {"M": {
      "max_sites": {"N": "5"},
      "max_generations_per_month": {"N": "100"},
      "max_storage_mb": {"N": "500"},
      "custom_domain_allowed": {"BOOL": true}
    }},
    "usage": {"M": {
      "sites_count": {"N": "0"},
      "generations_this_month": {"N": "0"},
      "storage_used_mb": {"N": "0"}
    }},
    "storage_prefix": {"S": "tenants/ten_NEWID"},
    "billing": {"M": {
      "transaction_id": {"S": "TXN-123456"},
      "invoice_number": {"S": "INV-123456"}
    }},
    "created_at": {"S": "2026-01-18T00:00:00Z"},
    "updated_at": {"S": "2026-01-18T00:00:00Z"}
  }""".replace("'$COGNITO_SUB'", "9a7b5c3d-1111-4222-8333-444455556666")

# RB-001 4.2's `aws dynamodb put-item --table-name users --item '...'`.
RB001_4_2_USERS_ITEM = """{
    "user_id": {"S": "user_XXXXX"},
    "tenant_id": {"S": "ten_XXXXX"},
    "email": {"S": "user@example.com"},
    "role": {"S": "tenant_admin"},
    "status": {"S": "active"},
    "created_at": {"S": "2026-01-18T00:00:00Z"}
  }"""


def test_a_tenant_is_written_with_exactly_the_attribute_types_of_rb001_4_3(aws_backend: Backend) -> None:
    client = aws_backend.moto.session.client("dynamodb")
    aws_backend.services.tenants.create(
        Tenant(
            tenant_id="ten_NEWID",
            owner_user_id="9a7b5c3d-1111-4222-8333-444455556666",
            name="User Tenant",
            plan="professional",
            status=TenantStatus.ACTIVE,
            limits=PROFESSIONAL,
            usage=Usage(),
            storage_prefix="tenants/ten_NEWID",
            billing=Billing("TXN-123456", "INV-123456"),
            created_at="2026-01-18T00:00:00Z",
            updated_at="2026-01-18T00:00:00Z",
        )
    )

    item = client.get_item(TableName="tenants", Key={"tenant_id": {"S": "ten_NEWID"}})["Item"]

    assert item == json.loads(RB001_4_3_TENANT_ITEM)


def test_a_users_record_is_written_with_exactly_the_attributes_of_rb001_4_2(aws_backend: Backend) -> None:
    client = aws_backend.moto.session.client("dynamodb")
    aws_backend.services.users.create(make_user("user_XXXXX", email="User@Example.com"))

    item = client.get_item(TableName="users", Key={"user_id": {"S": "user_XXXXX"}})["Item"]

    assert item == json.loads(RB001_4_2_USERS_ITEM)


def test_a_tenant_written_by_hand_with_rb001_4_3_put_item_is_read_by_get_and_find_by_transaction(
    aws_backend: Backend,
) -> None:
    client = aws_backend.moto.session.client("dynamodb")
    client.put_item(TableName="tenants", Item=json.loads(RB001_4_3_TENANT_ITEM))
    store = aws_backend.services.tenants

    tenant = store.get("ten_NEWID")

    assert tenant == Tenant(
        tenant_id="ten_NEWID",
        owner_user_id="9a7b5c3d-1111-4222-8333-444455556666",
        name="User Tenant",
        plan="professional",
        status=TenantStatus.ACTIVE,
        limits=PROFESSIONAL,
        usage=Usage(sites_count=0, generations_this_month=0, storage_used_mb=0),
        storage_prefix="tenants/ten_NEWID",
        billing=Billing("TXN-123456", "INV-123456"),
        created_at="2026-01-18T00:00:00Z",
        updated_at="2026-01-18T00:00:00Z",
    )
    assert store.find_by_transaction("TXN-123456") == tenant


def test_a_users_record_written_by_hand_with_rb001_4_2_put_item_is_found_by_email(aws_backend: Backend) -> None:
    client = aws_backend.moto.session.client("dynamodb")
    client.put_item(TableName="users", Item=json.loads(RB001_4_2_USERS_ITEM))
    store = aws_backend.services.users

    assert store.find_by_email("User@Example.com") == [make_user("user_XXXXX")]
    assert store.get("user_XXXXX") == make_user("user_XXXXX")


def test_a_hand_made_tenant_with_numbers_written_as_strings_is_reported_as_breaking_the_contract(
    aws_backend: Backend,
) -> None:
    client = aws_backend.moto.session.client("dynamodb")
    item = json.loads(RB001_4_3_TENANT_ITEM)
    item["limits"]["M"]["max_sites"] = {"S": "5"}
    client.put_item(TableName="tenants", Item=item)

    with pytest.raises(PermanentError, match="max_sites should be an N"):
        aws_backend.services.tenants.get("ten_NEWID")


def test_a_sign_in_is_noted_on_the_emails_active_records_only(users: UserStore) -> None:
    users.create(UserRecord("sub-a", "ten_a", "Member@Example.com", "editor", UserStatus.ACTIVE, "2026-12-01"))
    gone = UserRecord("sub-b", "ten_b", "member@example.com", "viewer", UserStatus.DISABLED, "2026-11-01T00:00:00Z")
    users.create(gone)
    users.record_sign_in("MEMBER@example.com", "2026-12-07T09:30:00Z")
    active = users.get("sub-a")
    assert active is not None
    assert active.last_sign_in_at == "2026-12-07T09:30:00Z"
    assert users.get("sub-b") == gone
    users.record_sign_in("nobody@example.com", "2026-12-07T09:31:00Z")  # no record: nothing to note


def test_users_records_are_read_by_many_ids_at_once(users: UserStore) -> None:
    first, second = make_user("user_A"), make_user("user_B", email="b@example.com")
    users.create(first)
    users.create(second)

    assert users.get_many(["user_A", "user_B", "user_missing"]) == {"user_A": first, "user_B": second}
    assert users.get_many([]) == {}
