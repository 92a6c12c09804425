"""The generated-client check of scripts/client-check.

Generates a Python client from the spec with openapi-python-client (pinned in
tools/contract/requirements.txt), imports it, and with it creates a customer with the
seeded API key and reads it back: the statuses must be 201 and 200, and the ID, email,
name and metadata must come back as sent, parsed into the client's own models.

    python client_check.py --spec SPEC --out DIR

Environment: LOCALAPI_URL, BILLSTACK_TEAM_ID, BILLSTACK_PROJECT_ID, BILLSTACK_API_KEY.
The spec must give the create and get operations operationIds (the client's function
names come from them) and name the path parameters teamId, projectId and customerId.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import pkgutil
import subprocess
import sys
import typing
import uuid

PACKAGE = "billstack_client"
COLLECTION = "/api/billstack/teams/{teamId}/projects/{projectId}/customers"
ITEM = COLLECTION + "/{customerId}"


class CheckFailed(Exception):
    pass


def generate(spec: str, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    config = os.path.join(out, "generator.yml")
    with open(config, "w", encoding="utf-8") as fd:
        # No post hooks: formatting the generated code (ruff) changes nothing it does.
        fd.write(
            f"package_name_override: {PACKAGE}\nproject_name_override: billstack-client\npost_hooks: []\n"
        )
    generator = os.path.join(os.path.dirname(sys.executable), "openapi-python-client")
    command = [
        generator,
        "generate",
        "--path",
        spec,
        "--config",
        config,
        "--meta",
        "none",
        "--output-path",
        os.path.join(out, PACKAGE),
        "--overwrite",
    ]
    # A warning is a part of the spec the client cannot express: fail on it unless told.
    if os.environ.get("CLIENT_CHECK_ALLOW_WARNINGS", "0") != "1":
        command.append("--fail-on-warning")
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    output = (result.stdout + result.stderr).strip()
    if output:
        print(output, file=sys.stderr)
    if result.returncode != 0:
        raise CheckFailed(
            f"openapi-python-client could not generate a client from {spec} (exit {result.returncode}); "
            "CLIENT_CHECK_ALLOW_WARNINGS=1 lets warnings pass"
        )


def operation_id(spec: dict, path: str, method: str) -> str:
    operation = (spec.get("paths", {}).get(path) or {}).get(method)
    if operation is None:
        raise CheckFailed(f"the spec has no {method.upper()} {path}")
    if not operation.get("operationId"):
        raise CheckFailed(
            f"{method.upper()} {path} has no operationId: the client's function names come from it"
        )
    return operation["operationId"]


def find_module(operation: str):
    from openapi_python_client.strings import snake_case

    api = importlib.import_module(f"{PACKAGE}.api")
    wanted = snake_case(operation)
    for info in pkgutil.walk_packages(api.__path__, prefix=f"{PACKAGE}.api."):
        if info.name.rsplit(".", 1)[-1] == wanted:
            return importlib.import_module(info.name)
    raise CheckFailed(f"the generated client has no module {wanted} for operationId {operation}")


def model_class(annotation):
    """The generated model class in a parameter's annotation (possibly a union)."""
    candidates = [annotation, *typing.get_args(annotation)]
    for candidate in candidates:
        if inspect.isclass(candidate) and hasattr(candidate, "from_dict"):
            return candidate
    raise CheckFailed(f"no generated model in the annotation {annotation!r}")


def call(module, client, path_values: dict[str, str], **extra):
    """module.sync_detailed with the path parameters under the client's (snake_case) names."""
    from openapi_python_client.strings import snake_case

    signature = inspect.signature(module.sync_detailed)
    kwargs = {"client": client}
    for name, value in path_values.items():
        python_name = snake_case(name)
        if python_name not in signature.parameters:
            raise CheckFailed(
                f"{module.__name__}.sync_detailed has no parameter {python_name} (path parameter {name}); "
                f"it takes {list(signature.parameters)}"
            )
        kwargs[python_name] = value
    for name, value in extra.items():
        if name in signature.parameters:
            kwargs[name] = value
    return module.sync_detailed(**kwargs)


def envelope_customer(response, operation: str, want_status: int) -> dict:
    status = int(response.status_code)
    body = response.content.decode(errors="replace")[:500]
    if status != want_status:
        raise CheckFailed(f"{operation} answered {status}, not {want_status}: {body}")
    parsed = response.parsed
    customer = getattr(parsed, "customer", None)
    if customer is None:
        raise CheckFailed(
            f"{operation}: the client parsed the {status} answer as {type(parsed).__name__}, not an envelope with .customer: {body}"
        )
    as_dict = customer.to_dict()
    raw = json.loads(response.content)["customer"]
    if as_dict.get("id") != raw.get("id") or as_dict.get("email") != raw.get("email"):
        raise CheckFailed(f"{operation}: the client's model lost fields: {as_dict} vs {raw}")
    return as_dict


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spec", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    passed, failed = 0, 0
    try:
        with open(args.spec, encoding="utf-8") as fd:
            spec = json.load(fd)
        create_id = operation_id(spec, COLLECTION, "post")
        get_id = operation_id(spec, ITEM, "get")
        generate(args.spec, args.out)
        sys.path.insert(0, args.out)
        client_module = importlib.import_module(f"{PACKAGE}.client")
        create = find_module(create_id)
        get = find_module(get_id)
        passed += 1  # the client generated and imports

        base = os.environ["LOCALAPI_URL"]
        project = {
            "teamId": os.environ["BILLSTACK_TEAM_ID"],
            "projectId": os.environ["BILLSTACK_PROJECT_ID"],
        }
        client = client_module.AuthenticatedClient(
            base_url=base, token=os.environ["BILLSTACK_API_KEY"], raise_on_unexpected_status=True
        )
        sent = {
            "email": f"client-check-{uuid.uuid4().hex[:12]}@example.com",
            "name": "Client Check",
            "metadata": {"source": "client-check"},
        }
        body_class = model_class(
            inspect.signature(create.sync_detailed).parameters["body"].annotation
        )
        created = envelope_customer(
            call(
                create,
                client,
                project,
                body=body_class.from_dict(sent),
                idempotency_key=uuid.uuid4().hex,
            ),
            create_id,
            201,
        )
        for field in ("email", "name", "metadata"):
            if created.get(field) != sent[field]:
                raise CheckFailed(
                    f"{create_id}: {field} came back as {created.get(field)!r}, sent {sent[field]!r}"
                )
        if not str(created.get("id", "")).startswith("pc_"):
            raise CheckFailed(
                f"{create_id}: the new customer's id is {created.get('id')!r}, not pc_..."
            )
        print(f"client-check: {create_id} answered 201 with {created['id']}", file=sys.stderr)
        passed += 1

        read = envelope_customer(
            call(get, client, {**project, "customerId": created["id"]}), get_id, 200
        )
        for field in ("id", "email", "name", "metadata"):
            if read.get(field) != created.get(field):
                raise CheckFailed(
                    f"{get_id}: {field} read back as {read.get(field)!r}, created as {created.get(field)!r}"
                )
        print(
            f"client-check: {get_id} answered 200 with the same id, email, name and metadata",
            file=sys.stderr,
        )
        passed += 1
    except CheckFailed as err:
        failed += 1
        print(f"client-check: FAILED: {err}", file=sys.stderr)
    except Exception as err:  # noqa: BLE001  the generated client raising (UnexpectedStatus, a parse error...)
        failed += 1
        print(f"client-check: FAILED: {type(err).__name__}: {err}", file=sys.stderr)
    print(f"client-check: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
