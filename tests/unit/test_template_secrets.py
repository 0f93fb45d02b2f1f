"""deploy/template.yaml holds no secret (issue 19): no secret value, no NoEcho parameter, no secret
in any function's environment; every function that builds the services is given the SSM path
`tenancy aws bootstrap` creates the secrets' parameters under, and may read them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

from tenancy.config import PAYFAST_SANDBOX_MERCHANT_KEY, PAYFAST_SANDBOX_PASSPHRASE, Settings
from tenancy.secret_source import SecretName

from helpers import make_settings

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "template.yaml"
# The pre-token trigger reads the tenants table alone (lambdas._tenants): it never reads a secret.
WITHOUT_SECRETS = {"PreTokenFunction"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, problems = decode(str(TEMPLATE))
    assert not problems, problems
    plain: dict[str, Any] = json.loads(json.dumps(decoded))
    return plain


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def test_no_secret_value_or_secret_parameter_appears_in_the_template(template: dict[str, Any]) -> None:
    text = TEMPLATE.read_text()
    environments = [template["Globals"]["Function"]["Environment"]["Variables"]] + [
        properties.get("Environment", {}).get("Variables", {}) for properties in functions(template).values()
    ]

    # Not even PayFast's public sandbox values: a default secret is one every deployment shares.
    assert PAYFAST_SANDBOX_MERCHANT_KEY not in text
    assert PAYFAST_SANDBOX_PASSPHRASE not in text
    assert [name for name, parameter in template["Parameters"].items() if parameter.get("NoEcho")] == []
    for variables in environments:
        assert {name.variable for name in SecretName}.isdisjoint(variables)


def test_every_function_that_builds_the_services_reads_the_secrets_where_bootstrap_makes_them(
    template: dict[str, Any], tmp_path: Path
) -> None:
    settings: Settings = make_settings(tmp_path, env="dev")
    path = template["Globals"]["Function"]["Environment"]["Variables"]["TENANCY_SECRETS_PATH"]

    assert path == {"Fn::Sub": "/site-builder/${Env}/"}
    assert path["Fn::Sub"].replace("${Env}", "dev") == settings.effective_secrets_path
    readers = {name for name in functions(template) if name not in WITHOUT_SECRETS}
    assert readers >= {"ItnHandlerFunction", "ProvisioningFunction", "AuditFunction", "LifecycleFunction"}
    for name in readers:
        # SAM's template: ssm:GetParameters on every parameter under the path, no wider; the
        # AWS-managed key aws/ssm decrypts them without a kms:Decrypt grant.
        read = {"SSMParameterReadPolicy": {"ParameterName": {"Fn::Sub": "site-builder/${Env}/*"}}}
        assert read in functions(template)[name]["Policies"], name
