"""deploy/aws/template.yaml: valid for CloudFormation and SAM (cfn-lint), and in step with the
code: the handler string, the runtime, the schedule, and settings the service accepts."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint
from cfnlint.decode import decode_str

from mls_sync.aws import LambdaHandler
from mls_sync.config import Settings
from mls_sync.store.crypto import TokenCipher

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "aws" / "template.yaml"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"


def template() -> dict[str, Any]:
    decoded, errors = decode_str(TEMPLATE.read_text())
    assert not errors and decoded is not None
    return decoded


def function() -> dict[str, Any]:
    return template()["Resources"]["SyncFunction"]["Properties"]


@pytest.mark.slow
def test_cfn_lint_passes_the_template() -> None:
    result = subprocess.run(
        [str(CFN_LINT), str(TEMPLATE)], capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_cfn_lint_would_catch_a_broken_template() -> None:
    # The check above can fail: the same linter refuses a retired runtime and a dangling Ref.
    broken = TEMPLATE.read_text().replace("python3.12", "python2.7")
    broken = broken.replace("LogGroup: !Ref LogGroup", "LogGroup: !Ref NoSuchLogGroup")

    rules = {match.rule.id for match in lint(broken)}

    assert {"E2533", "E3030"} <= rules


def test_the_handler_string_is_the_lambda_handler() -> None:
    module, _, attribute = function()["Handler"].rpartition(".")

    assert isinstance(getattr(importlib.import_module(module), attribute), LambdaHandler)


def test_the_function_runs_a_supported_python_within_lambdas_limits() -> None:
    props = function()

    assert props["Runtime"] in ("python3.11", "python3.12")
    assert 300 <= props["Timeout"] <= 900  # runs may take 5 minutes; 900 s is Lambda's ceiling
    assert props["EventInvokeConfig"]["MaximumRetryAttempts"] == 0
    assert props["FunctionUrlConfig"]["AuthType"] == "NONE"  # the bearer is checked in code


def test_the_schedule_is_every_15_minutes_by_default() -> None:
    decoded = template()
    schedule = function()["Events"]["Schedule"]

    assert schedule["Type"] == "Schedule"
    assert schedule["Properties"]["Schedule"] == {"Ref": "ScheduleExpression"}
    assert decoded["Parameters"]["ScheduleExpression"]["Default"] == "rate(15 minutes)"


def test_secrets_come_from_secrets_manager_never_from_plain_values() -> None:
    variables = function()["Environment"]["Variables"]

    for name, key in [
        ("DATABASE_URL", "DATABASE_URL"),
        ("CRON_SECRET", "CRON_SECRET"),
        ("MLS_SYNC_TOKEN_KEYS", "TOKEN_KEYS"),
    ]:
        reference = variables[name]["Fn::Sub"]
        assert reference == f"{{{{resolve:secretsmanager:${{SecretArn}}:SecretString:{key}}}}}"


def test_the_functions_environment_is_settings_the_service_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded = template()
    stack = "mls-sync"
    env: dict[str, str] = {}
    for name, value in function()["Environment"]["Variables"].items():
        if isinstance(value, str):
            env[name] = value
        elif "Ref" in value:
            env[name] = str(decoded["Parameters"][value["Ref"]]["Default"])
        elif "resolve:secretsmanager" in value["Fn::Sub"]:
            env[name] = {
                "DATABASE_URL": "postgresql://mls@db.internal/mls",
                "CRON_SECRET": "s3cret-of-at-least-32-characters!",
                "MLS_SYNC_TOKEN_KEYS": TokenCipher.generate_key(),
            }[name]
        else:
            env[name] = value["Fn::Sub"].replace("${AWS::StackName}", stack)
    for name in env:
        known = name in ("DATABASE_URL", "CRON_SECRET") or (
            name.startswith("MLS_SYNC_")
            and name[len("MLS_SYNC_") :].lower() in Settings.model_fields
        )
        assert known, f"{name} is not a setting"
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    settings = Settings()

    assert settings.environment == "production"
    assert (
        settings.cron_secret is not None
        and settings.cron_secret.get_secret_value() == "s3cret-of-at-least-32-characters!"
    )
    assert settings.emf_namespace == "MlsStatusSync"
    assert settings.emf_dimensions == {"Service": stack}
    assert str(settings.data_dir) == "/tmp"


def test_the_dynamodb_tables_have_the_documented_keys() -> None:
    resources = template()["Resources"]
    data = resources["DataTable"]["Properties"]
    coordination = resources["CoordinationTable"]["Properties"]

    assert [k["AttributeName"] for k in data["KeySchema"]] == ["pk", "sk"]
    indexes = {
        i["IndexName"]: [k["AttributeName"] for k in i["KeySchema"]]
        for i in data["GlobalSecondaryIndexes"]
    }
    assert indexes == {
        "gsi1": ["gsi1pk", "gsi1sk"],
        "gsi2": ["gsi2pk", "gsi2sk"],
        "gsi3": ["gsi3pk", "gsi3sk"],
    }
    assert [k["AttributeName"] for k in coordination["KeySchema"]] == ["pk"]
    assert coordination["TimeToLiveSpecification"]["AttributeName"] == "expires_epoch"
    readme = (TEMPLATE.parents[2] / "README.md").read_text()
    for documented in ("gsi1pk", "gsi2pk", "gsi3pk", "expires_epoch", "-data", "-coordination"):
        assert documented in readme


def test_the_template_tables_are_the_ones_the_dynamodb_backend_creates() -> None:
    from mls_sync.store.dynamo.schema import coordination_table, data_table

    resources = template()["Resources"]
    for resource, made in (
        ("DataTable", data_table("x")),
        ("CoordinationTable", coordination_table("x")),
    ):
        declared = resources[resource]["Properties"]
        for field in ("KeySchema", "AttributeDefinitions", "BillingMode"):
            assert declared[field] == made[field], (resource, field)
        assert declared.get("GlobalSecondaryIndexes") == made.get("GlobalSecondaryIndexes")
