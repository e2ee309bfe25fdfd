"""template.yaml: cfn-lint, then the CloudFormation that the SAM translator makes of it.

The translation runs offline (no AWS calls: the managed-policy loader is a stub), so these
tests see the resources CloudFormation would create: the authorizer and its cache, the
routes, every role's statements, the queue, the key, the alarms and the outputs. They also
check that the functions' environment names are real settings, that each handler file
exposes the right ``ghapt.handlers`` entry point, and that the layer's requirements follow
pyproject.toml.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any, cast

import ghapt.aws.handlers as handlers
import pytest
from ghapt.auth.passwords import parse_users
from ghapt.aws.kms import KEY_SPECS
from ghapt.core.settings import Settings
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from samtranslator.public.translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from tests.support.paths import ROOT

TEMPLATE = ROOT / "template.yaml"

# Parameters without a default, as a deployer would give them.
REQUIRED = {
    "Repositories": "acme/tool acme/agent",
    "MetadataRepository": "acme/apt-metadata",
    "OidcAudience": "https://apt.example.com",
}
# Logical id -> (folder under functions/, the ghapt.handlers entry point it must expose).
FUNCTIONS = {
    "AuthorizerFunction": ("authorizer", "authorizer_handler"),
    "MetadataFunction": ("metadata", "metadata_handler"),
    "PoolFunction": ("pool", "pool_handler"),
    "PublicKeyFunction": ("publickey", "publickey_handler"),
    "WebhookFunction": ("webhook", "webhook_handler"),
    "IndexerFunction": ("indexer", "indexer_handler"),
    "TokenFunction": ("token", "token_handler"),
}
# Environment names that are not ghapt settings but are allowed (Powertools).
POWERTOOLS_ENV = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"}
SETTINGS_ENV = {f.metadata["env"] for f in fields(Settings)}
# The only managed policies a function role may carry (logs and X-Ray traces).
ALLOWED_MANAGED = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}
API_TIMEOUT = 29  # API Gateway's default integration timeout, seconds


# --- loading and translating -----------------------------------------------------------------
class _NoIamPolicyLoader(ManagedPolicyLoader):  # type: ignore[misc]  # samtranslator is untyped
    """The template names no managed policy by name, so nothing needs IAM's list."""

    def __init__(self) -> None:
        pass

    def load(self) -> dict[str, str]:
        return {}


def _sam() -> dict[str, Any]:
    return cast("dict[str, Any]", yaml_parse(TEMPLATE.read_text()))


def _translate(**parameters: str) -> dict[str, Any]:
    template = _sam()
    # The translator wants S3 locations, which `sam package` puts in place of the folders.
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = "s3://ghapt-artifacts/" + props[key].strip("/")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", "eu-west-1")
        return cast("dict[str, Any]", transform(template, {**REQUIRED, **parameters}, _NoIamPolicyLoader()))


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    return _sam()


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return _translate()


def _of_type(cfn: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in cfn["Resources"].items() if v["Type"] == type_}


def _one(cfn: dict[str, Any], type_: str) -> tuple[str, dict[str, Any]]:
    found = _of_type(cfn, type_)
    assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
    return next(iter(found.items()))


def _api_body(cfn: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = _one(cfn, "AWS::ApiGateway::RestApi")[1]["Properties"]["Body"]
    return body


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def _referenced(value: Any) -> set[str]:
    """Logical ids (and parameters) that ``value`` refers to through Ref, GetAtt or Sub."""
    names: set[str] = set()
    for node in _walk(value):
        if not isinstance(node, dict):
            continue
        if isinstance(node.get("Ref"), str):
            names.add(node["Ref"])
        getatt = node.get("Fn::GetAtt")
        if isinstance(getatt, list):
            names.add(getatt[0])
        elif isinstance(getatt, str):
            names.add(getatt.split(".")[0])
        sub = node.get("Fn::Sub")
        text, local = (sub[0], set(sub[1])) if isinstance(sub, list) else (sub, set())
        if isinstance(text, str):
            for variable in re.findall(r"\$\{([^!}][^}]*)\}", text):
                if variable not in local:  # Sub's own variables are walked as values
                    names.add(variable.split(".")[0])
    return {n for n in names if not n.startswith("AWS::")}


def _statements(cfn: dict[str, Any], function: str) -> list[dict[str, Any]]:
    role = _role(cfn, function)
    out = []
    for policy in role["Properties"].get("Policies", []):
        stmts = policy["PolicyDocument"]["Statement"]
        out.extend(stmts if isinstance(stmts, list) else [stmts])
    return out


def _role(cfn: dict[str, Any], function: str) -> dict[str, Any]:
    role_ref = cfn["Resources"][function]["Properties"]["Role"]
    assert "Fn::GetAtt" in role_ref, f"{function} has no role of its own"
    role: dict[str, Any] = cfn["Resources"][role_ref["Fn::GetAtt"][0]]
    return role


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def _resolve(value: Any, params: dict[str, str]) -> str:
    """An environment value as a string: parameters filled in, resources as `ref:X`/`getatt:X.Y`."""
    if isinstance(value, dict) and "Ref" in value:
        name = value["Ref"]
        return str(params[name]) if name in params else f"ref:{name}"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return "getatt:" + (".".join(target) if isinstance(target, list) else target)
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        return re.sub(
            r"\$\{([^}]+)\}", lambda m: str(params.get(m.group(1), f"ref:{m.group(1)}")), value["Fn::Sub"]
        )
    assert isinstance(value, str | int | float), f"unexpected environment value {value!r}"
    return str(value)


def _parameters(sam: dict[str, Any], **overrides: str) -> dict[str, str]:
    params = {k: str(v["Default"]) for k, v in sam["Parameters"].items() if "Default" in v}
    return {**params, **REQUIRED, **overrides}


def _env(cfn: dict[str, Any], function: str) -> dict[str, Any]:
    variables: dict[str, Any] = (
        cfn["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {})
    )
    return variables


# --- lint -------------------------------------------------------------------------------------
def test_cfn_lint_passes_without_findings() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, cwd=ROOT)
    # Exit code 0: no error (2), warning (4) or informational (8) finding.
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_samconfig_defaults() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert config["default"]["global"]["parameters"]["stack_name"] == "ghapt"
    deploy = config["default"]["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True
    assert deploy["confirm_changeset"] is True
    assert "region" not in deploy  # left to `sam deploy --guided`
    assert "parameter_overrides" not in deploy  # only examples, commented out


# --- code: layer, handlers, environment ------------------------------------------------------
def test_layer_requirements_match_pyproject_runtime_dependencies() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = {
        canonicalize_name(Requirement(d).name): Requirement(d) for d in pyproject["project"]["dependencies"]
    }
    lines = (ROOT / "layers/ghapt/requirements.txt").read_text().splitlines()
    reqs = [Requirement(line) for line in (ln.split("#")[0].strip() for ln in lines) if line]
    have = {canonicalize_name(r.name): r for r in reqs}
    assert len(have) == len(reqs), "a requirement is listed twice"
    assert set(have) == set(wanted)
    # The extras matter too: Powertools' Tracer needs [tracer] (aws-xray-sdk) in Lambda.
    for name, req in wanted.items():
        assert have[name].extras == req.extras, name


def test_layer_is_built_from_the_package_folder_for_the_functions_runtime(
    sam: dict[str, Any], cfn: dict[str, Any]
) -> None:
    (layer_id,) = [k for k, v in sam["Resources"].items() if v["Type"] == "AWS::Serverless::LayerVersion"]
    layer = sam["Resources"][layer_id]
    content = ROOT / layer["Properties"]["ContentUri"]
    # `sam build` puts this folder's contents under python/, so `import ghapt` needs ghapt/ here.
    assert (content / "ghapt" / "__init__.py").is_file()
    assert (content / "ghapt" / "aws" / "handlers.py").is_file()
    assert (content / "requirements.txt").is_file()
    runtime = sam["Globals"]["Function"]["Runtime"]
    assert layer["Metadata"]["BuildMethod"] == runtime
    assert layer["Metadata"].get("BuildArchitecture") == "arm64"
    _, version = _one(cfn, "AWS::Lambda::LayerVersion")
    assert version["Properties"]["CompatibleRuntimes"] == [runtime]
    assert version["Properties"]["CompatibleArchitectures"] == ["arm64"]


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_handler_file_exposes_the_ghapt_entry_point(sam: dict[str, Any], function: str) -> None:
    folder, entry_point = FUNCTIONS[function]
    props = sam["Resources"][function]["Properties"]
    handler = props.get("Handler", sam["Globals"]["Function"].get("Handler"))
    module_name, _, attribute = handler.rpartition(".")
    code_dir = ROOT / props["CodeUri"]
    assert code_dir == ROOT / "functions" / folder
    path = code_dir / (module_name.replace(".", "/") + ".py")
    assert path.is_file(), f"{function}: {path} does not exist"
    spec = importlib.util.spec_from_file_location(f"_ghapt_function_{folder}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    exposed = getattr(module, attribute)
    assert callable(exposed)
    assert exposed is getattr(handlers, entry_point), f"{function} must expose ghapt.handlers.{entry_point}"


def test_function_environment_names_are_real_settings(cfn: dict[str, Any]) -> None:
    functions = _of_type(cfn, "AWS::Lambda::Function")
    assert set(functions) == set(FUNCTIONS)
    for name in functions:
        env = _env(cfn, name)
        unknown = set(env) - SETTINGS_ENV - POWERTOOLS_ENV
        assert not unknown, f"{name}: {sorted(unknown)} are not ghapt settings"
        assert env["POWERTOOLS_SERVICE_NAME"] == "ghapt"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "ghapt"


# What each function's settings must hold, checked on the environment with parameters filled in.
NEEDS = {
    "AuthorizerFunction": ("users_secret_arn", "oidc_issuer", "oidc_audience"),
    "MetadataFunction": ("metadata_repo", "branch", "github_read_secret_arn"),
    "PoolFunction": ("metadata_repo", "branch", "github_read_secret_arn", "github_repos"),
    "PublicKeyFunction": ("kms_key_id",),
    "WebhookFunction": ("webhook_secret_arn", "queue_url"),
    "IndexerFunction": ("metadata_repo", "branch", "github_secret_arn", "github_repos", "kms_key_id"),
    "TokenFunction": ("oidc_issuer", "oidc_audience", "token_secret_arn"),
}
# Which resource each resource-valued setting must point at.
POINTS_AT = {
    "GHAPT_USERS_SECRET_ARN": "ref:UsersSecret",
    "GHAPT_GITHUB_SECRET_ARN": "ref:GitHubSecret",
    "GHAPT_GITHUB_READ_SECRET_ARN": "ref:GitHubReadSecret",
    "GHAPT_WEBHOOK_SECRET_ARN": "ref:WebhookSecret",
    "GHAPT_QUEUE_URL": "ref:RebuildQueue",
    "GHAPT_KMS_KEY_ID": "getatt:SigningKey.Arn",
    "GHAPT_TOKEN_SECRET_ARN": "ref:TokenSecret",
}


@pytest.mark.parametrize("function", sorted(NEEDS))
def test_function_environment_loads_as_valid_settings(
    sam: dict[str, Any], cfn: dict[str, Any], function: str
) -> None:
    params = _parameters(sam, OidcOwnerIds="1234567")
    env = {k: _resolve(v, params) for k, v in _env(cfn, function).items()}
    settings = Settings.from_env(env)  # validates every value's shape
    settings.require(*NEEDS[function])
    for name, target in POINTS_AT.items():
        if name in env:
            assert env[name] == target, f"{function}: {name} points at {env[name]}"
    if function in ("MetadataFunction", "PoolFunction", "IndexerFunction"):
        assert settings.backend == "github"
        assert settings.metadata_repo == "acme/apt-metadata"
    if function in ("PublicKeyFunction", "IndexerFunction"):
        assert settings.signer == "kms"
    if function in ("PoolFunction", "IndexerFunction"):
        assert settings.github_repos == ("acme/tool", "acme/agent")
    if function == "AuthorizerFunction":
        assert settings.oidc_issuer == "https://token.actions.githubusercontent.com"
        assert settings.oidc_owner_ids == ("1234567",)
        assert env["GHAPT_AUTH_CACHE_SECONDS"] == params["AuthCacheSeconds"]


def test_functions_runtime_architecture_layer_and_sizes(cfn: dict[str, Any]) -> None:
    layer_id, _ = _one(cfn, "AWS::Lambda::LayerVersion")
    sizes = {}
    for name in FUNCTIONS:
        props = cfn["Resources"][name]["Properties"]
        assert props["Runtime"] in ("python3.12", "python3.13"), name
        assert props["Architectures"] == ["arm64"], name
        assert props["Layers"] == [{"Ref": layer_id}], name
        assert props["TracingConfig"] == {"Mode": "Active"}, name
        assert props["Handler"] == "app.lambda_handler", name
        sizes[name] = (props["MemorySize"], props["Timeout"])
    for name in (
        "AuthorizerFunction",
        "MetadataFunction",
        "PoolFunction",
        "PublicKeyFunction",
        "TokenFunction",
    ):
        memory, timeout = sizes[name]
        assert 128 <= memory <= 512, name
        assert timeout < API_TIMEOUT, name
    assert sizes["AuthorizerFunction"][1] <= 10
    assert sizes["WebhookFunction"][1] <= 10  # GitHub waits 10 s for an answer
    memory, timeout = sizes["IndexerFunction"]
    assert memory >= 1024
    assert timeout == 900
    concurrency = cfn["Resources"]["IndexerFunction"]["Properties"]["ReservedConcurrentExecutions"]
    assert concurrency["Fn::If"][1] == 1


# --- the API ------------------------------------------------------------------------------------
def _authorizers(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    schemes = body.get("components", {}).get("securitySchemes") or body.get("securityDefinitions", {})
    return {k: v for k, v in schemes.items() if "x-amazon-apigateway-authorizer" in v}


def test_default_authorizer_is_a_request_authorizer_on_the_authorization_header(cfn: dict[str, Any]) -> None:
    body = _api_body(cfn)
    (name, scheme), *others = _authorizers(body).items()
    assert not others
    authorizer = scheme["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "request"
    assert authorizer["identitySource"] == "method.request.header.Authorization"
    assert _referenced(authorizer["authorizerUri"]) == {"AuthorizerFunction"}
    assert 0 < int(authorizer["authorizerResultTtlInSeconds"]) <= 300
    # API Gateway may call the authorizer.
    permissions = [
        p["Properties"]
        for p in _of_type(cfn, "AWS::Lambda::Permission").values()
        if _referenced(p["Properties"]["FunctionName"]) == {"AuthorizerFunction"}
    ]
    assert permissions
    assert all(p["Principal"] == "apigateway.amazonaws.com" for p in permissions)
    assert name


def test_authorizer_cache_follows_its_parameter_and_cannot_exceed_300(sam: dict[str, Any]) -> None:
    # CloudFormation hands the transform parameter values as strings: "60" lands in the body.
    ttl = _authorizers(_api_body(_translate(AuthCacheSeconds="60")))
    assert (
        int(next(iter(ttl.values()))["x-amazon-apigateway-authorizer"]["authorizerResultTtlInSeconds"]) == 60
    )
    parameter = sam["Parameters"]["AuthCacheSeconds"]
    assert parameter["MaxValue"] <= 300
    assert parameter["Default"] <= 300


EXPECTED_ROUTES = {
    ("/dists/{proxy+}", "get"): "MetadataFunction",
    ("/dists/{proxy+}", "head"): "MetadataFunction",
    ("/", "get"): "MetadataFunction",
    ("/", "head"): "MetadataFunction",
    ("/index.html", "get"): "MetadataFunction",
    ("/index.html", "head"): "MetadataFunction",
    ("/pool/{proxy+}", "get"): "PoolFunction",
    ("/pool/{proxy+}", "head"): "PoolFunction",
    ("/public.key", "get"): "PublicKeyFunction",
    ("/public.key", "head"): "PublicKeyFunction",
    ("/webhook", "post"): "WebhookFunction",
    ("/token", "post"): "TokenFunction",
}
PUBLIC_ROUTES = {("/public.key", "get"), ("/public.key", "head"), ("/webhook", "post")}


def test_routes_and_which_skip_the_authorizer(cfn: dict[str, Any]) -> None:
    body = _api_body(cfn)
    (authorizer,) = _authorizers(body)
    routes = {}
    for path, methods in body["paths"].items():
        for method, operation in methods.items():
            integration = operation["x-amazon-apigateway-integration"]
            assert integration["type"] == "aws_proxy"
            (function,) = _referenced(integration["uri"])
            routes[(path, method)] = function
            security = operation.get("security") or body.get("security")
            if (path, method) in PUBLIC_ROUTES:
                assert security == [{"NONE": []}], f"{method} {path} must be public"
            else:
                assert security == [{authorizer: []}], f"{method} {path} must be authorized"
    assert routes == EXPECTED_ROUTES


def test_unauthorized_gateway_response_asks_for_basic_auth(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    responses = _api_body(cfn)["x-amazon-apigateway-gateway-responses"]
    unauthorized = responses["UNAUTHORIZED"]
    assert unauthorized["statusCode"] == "401"
    header = unauthorized["responseParameters"]["gatewayresponse.header.WWW-Authenticate"]
    value = _resolve(header, _parameters(sam))
    # A static header value is a quoted literal for API Gateway.
    assert value.startswith("'")
    assert value.endswith("'")
    assert re.match(r"^Basic realm=\"ghapt\"", value[1:-1]), value
    # An unknown path is a 404, not API Gateway's "Missing Authentication Token" 403.
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["statusCode"] == "404"
    # The realm cannot break out of the quotes.
    realm = sam["Parameters"]["Realm"]["AllowedPattern"]
    assert re.fullmatch(realm, "ghapt")
    assert re.fullmatch(realm, "acme apt")
    for bad in ('a"b', "a'b", "a\\b", ""):
        assert not re.fullmatch(realm, bad), bad


def test_binary_media_types_cover_every_body(cfn: dict[str, Any]) -> None:
    _, api = _one(cfn, "AWS::ApiGateway::RestApi")
    assert api["Properties"]["BinaryMediaTypes"] == ["*~1*"]
    assert _api_body(cfn)["x-amazon-apigateway-binary-media-types"] == ["*/*"]


def test_stage_name_and_throttling_come_from_parameters(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    _, stage = _one(cfn, "AWS::ApiGateway::Stage")
    props = stage["Properties"]
    assert props["StageName"] == {"Ref": "StageName"}
    (setting,) = props["MethodSettings"]
    assert (setting["ResourcePath"], setting["HttpMethod"]) == ("/*", "*")
    assert setting["ThrottlingBurstLimit"] == {"Ref": "ThrottlingBurstLimit"}
    assert setting["ThrottlingRateLimit"] == {"Ref": "ThrottlingRateLimit"}
    for name in ("ThrottlingBurstLimit", "ThrottlingRateLimit"):
        assert sam["Parameters"][name]["Type"] == "Number"
        assert sam["Parameters"][name]["Default"] >= 1


# --- queue, schedule, key, secrets ------------------------------------------------------------
def test_rebuild_queue_is_fifo_with_a_fifo_dead_letter_queue(cfn: dict[str, Any]) -> None:
    queue = cfn["Resources"]["RebuildQueue"]["Properties"]
    assert queue["FifoQueue"] is True
    assert queue["ContentBasedDeduplication"] is True
    assert queue["VisibilityTimeout"] >= cfn["Resources"]["IndexerFunction"]["Properties"]["Timeout"]
    redrive = queue["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["RebuildDeadLetterQueue", "Arn"]}
    assert 1 <= int(redrive["maxReceiveCount"]) <= 10
    dlq = cfn["Resources"]["RebuildDeadLetterQueue"]["Properties"]
    assert dlq["FifoQueue"] is True
    assert dlq["MessageRetentionPeriod"] >= queue.get("MessageRetentionPeriod", 345600)


def test_indexer_consumes_the_queue_with_partial_batch_failures(cfn: dict[str, Any]) -> None:
    mappings = _of_type(cfn, "AWS::Lambda::EventSourceMapping")
    (mapping,) = mappings.values()
    props = mapping["Properties"]
    assert props["EventSourceArn"] == {"Fn::GetAtt": ["RebuildQueue", "Arn"]}
    assert _referenced(props["FunctionName"]) == {"IndexerFunction"}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= props["BatchSize"] <= 10  # the FIFO maximum
    assert "MaximumBatchingWindowInSeconds" not in props  # not allowed on FIFO queues


def test_indexer_runs_on_a_schedule(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    rules = _of_type(cfn, "AWS::Events::Rule")
    (rule,) = rules.values()
    props = rule["Properties"]
    assert props["ScheduleExpression"] == {"Ref": "RebuildSchedule"}
    assert props.get("State", "ENABLED") == "ENABLED"
    (target,) = props["Targets"]
    assert _referenced(target["Arn"]) == {"IndexerFunction"}
    assert sam["Parameters"]["RebuildSchedule"]["Default"] == "rate(1 day)"
    invokers = [
        p["Properties"]["Principal"]
        for p in _of_type(cfn, "AWS::Lambda::Permission").values()
        if _referenced(p["Properties"]["FunctionName"]) == {"IndexerFunction"}
    ]
    assert invokers == ["events.amazonaws.com"]


def test_signing_key_is_asymmetric_retained_and_administered_by_the_account(cfn: dict[str, Any]) -> None:
    key = cfn["Resources"]["SigningKey"]
    props = key["Properties"]
    assert props["KeySpec"] in KEY_SPECS
    assert props["KeyUsage"] == "SIGN_VERIFY"
    assert key["DeletionPolicy"] == "Retain"
    assert key["UpdateReplacePolicy"] == "Retain"
    statements = props["KeyPolicy"]["Statement"]
    assert statements
    for statement in statements:
        principal = statement["Principal"]
        assert principal != "*"
        assert principal.get("AWS") != "*"
        assert principal == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    (alias,) = _of_type(cfn, "AWS::KMS::Alias").values()
    assert alias["Properties"]["TargetKeyId"] == {"Ref": "SigningKey"}
    assert alias["Properties"]["AliasName"]["Fn::Sub"].startswith("alias/")


def test_secrets_start_usable(cfn: dict[str, Any]) -> None:
    webhook = cfn["Resources"]["WebhookSecret"]["Properties"]
    assert "SecretString" not in webhook
    assert webhook["GenerateSecretString"]["PasswordLength"] >= 32
    users = cfn["Resources"]["UsersSecret"]["Properties"]["SecretString"]
    assert parse_users(json.loads(users), "UsersSecret") == {}
    github = json.loads(cfn["Resources"]["GitHubSecret"]["Properties"]["SecretString"])
    assert isinstance(github, dict)
    assert set(github) <= {"token", "app_id", "installation_id", "private_key"}
    assert not any(github.values()), "no credential may live in the template"
    token = cfn["Resources"]["TokenSecret"]["Properties"]
    assert "SecretString" not in token
    assert token["GenerateSecretString"]["PasswordLength"] >= 32  # ghapt.tokens.MIN_KEY_BYTES


def test_oidc_parameters_have_no_insecure_defaults(sam: dict[str, Any]) -> None:
    params = sam["Parameters"]
    assert params["OidcIssuer"]["Default"] == "https://token.actions.githubusercontent.com"
    audience = params["OidcAudience"]
    assert "Default" not in audience  # required: ghapt's own audience, never GitHub's default
    assert not re.fullmatch(audience["AllowedPattern"], "")
    for rule in (
        "OidcOwners",
        "OidcOwnerIds",
        "OidcRepositories",
        "OidcRepositoryIds",
        "OidcRefPattern",
        "OidcEnvironmentPattern",
    ):
        assert params[rule]["Default"] == "", rule  # no identity is allowed until configured


# --- least privilege --------------------------------------------------------------------------
SECRETS = {"UsersSecret", "GitHubSecret", "GitHubReadSecret", "WebhookSecret", "TokenSecret"}
SECRET_READERS = {
    "AuthorizerFunction": {"UsersSecret", "TokenSecret"},
    "TokenFunction": {"TokenSecret"},
    "MetadataFunction": {"GitHubReadSecret"},
    "PoolFunction": {"GitHubReadSecret"},
    "PublicKeyFunction": set(),
    "WebhookFunction": {"WebhookSecret"},
    "IndexerFunction": {"GitHubSecret"},
}


def test_roles_carry_no_broad_managed_policies_or_wildcard_resources(cfn: dict[str, Any]) -> None:
    for function in FUNCTIONS:
        role = _role(cfn, function)
        assert set(role["Properties"].get("ManagedPolicyArns", [])) <= ALLOWED_MANAGED, function
        for statement in _statements(cfn, function):
            assert statement["Effect"] == "Allow"
            assert statement["Resource"] != "*", function
            assert "*" not in _walk(statement["Resource"]), function
            assert not any(a.endswith(":*") or a == "*" for a in _actions(statement)), function


def test_each_function_reads_only_its_own_secret(cfn: dict[str, Any]) -> None:
    for function, expected in SECRET_READERS.items():
        read = set()
        for statement in _statements(cfn, function):
            targets = _referenced(statement["Resource"])
            if any(a.startswith("secretsmanager:") for a in _actions(statement)):
                assert set(_actions(statement)) == {"secretsmanager:GetSecretValue"}, function
                read |= targets
            else:
                assert not targets & SECRETS, f"{function} names a secret outside a read statement"
        assert read == expected, function


def test_only_the_indexer_may_sign(cfn: dict[str, Any]) -> None:
    kms_actions = {}
    for function in FUNCTIONS:
        actions = set()
        for statement in _statements(cfn, function):
            these = {a for a in _actions(statement) if a.startswith("kms:")}
            if these:
                assert statement["Resource"] == {"Fn::GetAtt": ["SigningKey", "Arn"]}, function
            actions |= these
        kms_actions[function] = actions
    assert kms_actions["IndexerFunction"] == {"kms:Sign", "kms:GetPublicKey", "kms:DescribeKey"}
    assert kms_actions["PublicKeyFunction"] == {"kms:GetPublicKey", "kms:DescribeKey"}
    for function in (
        "AuthorizerFunction",
        "MetadataFunction",
        "PoolFunction",
        "WebhookFunction",
        "TokenFunction",
    ):
        assert kms_actions[function] == set(), function


def test_queue_permissions_are_send_for_the_webhook_and_consume_for_the_indexer(cfn: dict[str, Any]) -> None:
    sqs = {}
    for function in FUNCTIONS:
        actions = set()
        for statement in _statements(cfn, function):
            these = {a for a in _actions(statement) if a.startswith("sqs:")}
            if these:
                assert _referenced(statement["Resource"]) == {"RebuildQueue"}, function
            actions |= these
        sqs[function] = actions
    assert sqs["WebhookFunction"]
    assert all(a.startswith("sqs:SendMessage") for a in sqs["WebhookFunction"])
    assert "sqs:ReceiveMessage" in sqs["IndexerFunction"]
    assert "sqs:DeleteMessage" in sqs["IndexerFunction"]
    # The indexer sends only its own continuation (a time-budgeted rebuild that has work left).
    assert {a for a in sqs["IndexerFunction"] if a.startswith("sqs:SendMessage")} == {"sqs:SendMessage"}
    for function in (
        "AuthorizerFunction",
        "MetadataFunction",
        "PoolFunction",
        "PublicKeyFunction",
        "TokenFunction",
    ):
        assert sqs[function] == set(), function


# --- alarms and outputs -----------------------------------------------------------------------
def test_alarms_watch_the_dead_letter_queue_and_api_errors(cfn: dict[str, Any]) -> None:
    alarms = [a["Properties"] for a in _of_type(cfn, "AWS::CloudWatch::Alarm").values()]
    by_metric = {(a["Namespace"], a["MetricName"]): a for a in alarms}
    dlq = by_metric[("AWS/SQS", "ApproximateNumberOfMessagesVisible")]
    assert dlq["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["RebuildDeadLetterQueue", "QueueName"]}}
    ]
    assert (dlq["ComparisonOperator"], dlq["Threshold"]) == ("GreaterThanThreshold", 0)
    api = by_metric[("AWS/ApiGateway", "5XXError")]
    dims = {d["Name"]: d["Value"] for d in api["Dimensions"]}
    _, rest_api = _one(cfn, "AWS::ApiGateway::RestApi")
    assert dims["ApiName"] == rest_api["Properties"]["Name"]  # the metric's ApiName is the API's name
    assert dims["Stage"] == {"Ref": "StageName"}
    assert api["ComparisonOperator"].startswith("GreaterThan")
    for alarm in alarms:
        assert alarm.get("TreatMissingData") == "notBreaching"


def test_outputs_name_the_urls_queue_key_and_secrets(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    outputs = {k: v["Value"] for k, v in cfn["Outputs"].items()}
    base = outputs["ApiUrl"]["Fn::Sub"]
    assert re.fullmatch(
        r"https://\$\{Api\}\.execute-api\.\$\{AWS::Region\}\.\$\{AWS::URLSuffix\}/\$\{StageName\}/", base
    )
    assert outputs["PublicKeyUrl"]["Fn::Sub"] == base + "public.key"
    assert outputs["WebhookUrl"]["Fn::Sub"] == base + "webhook"
    assert outputs["RebuildQueueUrl"] == {"Ref": "RebuildQueue"}
    assert outputs["SigningKeyArn"] == {"Fn::GetAtt": ["SigningKey", "Arn"]}
    for secret in SECRETS:
        assert outputs[f"{secret}Arn"] == {"Ref": secret}
    # ${Api} in the URLs is the REST API the routes live on.
    api_id, _ = _one(cfn, "AWS::ApiGateway::RestApi")
    assert api_id == "Api"


# --- token exchange ---------------------------------------------------------------------------
def test_token_function_and_authorizer_agree_on_what_a_token_is_bound_to(
    sam: dict[str, Any], cfn: dict[str, Any]
) -> None:
    params = _parameters(sam, OidcOwnerIds="1234567", TokenTtlSeconds="3600")
    token_env = {k: _resolve(v, params) for k, v in _env(cfn, "TokenFunction").items()}
    auth_env = {k: _resolve(v, params) for k, v in _env(cfn, "AuthorizerFunction").items()}
    minting, verifying = Settings.from_env(token_env), Settings.from_env(auth_env)
    # The MAC binds issuer and audience, the key is one secret, the login one name.
    for name in ("oidc_issuer", "oidc_audience", "token_secret_arn", "token_login", "oidc_login"):
        assert getattr(minting, name) == getattr(verifying, name), name
    assert minting.token_ttl_seconds == 3600
    parameter = sam["Parameters"]["TokenTtlSeconds"]
    assert parameter["Default"] == 6 * 3600
    assert parameter["MaxValue"] <= 24 * 3600
    # The token function needs no users, GitHub, KMS or queue.
    assert not {"GHAPT_USERS_SECRET_ARN", "GHAPT_GITHUB_SECRET_ARN", "GHAPT_KMS_KEY_ID"} & set(token_env)


def test_token_route_is_behind_the_authorizer_and_has_an_output(cfn: dict[str, Any]) -> None:
    body = _api_body(cfn)
    (authorizer,) = _authorizers(body)
    operation = body["paths"]["/token"]["post"]
    assert (operation.get("security") or body.get("security")) == [{authorizer: []}]
    base = cfn["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"]
    assert cfn["Outputs"]["TokenUrl"]["Value"]["Fn::Sub"] == base + "token"
