"""Helpers of scripts/fuzz-api and scripts/client-check (standard library only).

    contract.py banner OUT_FILE ENV_FILE      the local API's seeded team, project, key and
                                              session, read from its stdout, as shell lines
    contract.py seed RUN_DIR                  real objects made through the API (IDs in
                                              RUN_DIR/seed.env, dictionaries in RUN_DIR/dict/)
    contract.py ops SPEC REGEX                how many operations ("METHOD /path") match REGEX
    contract.py check-spec SPEC               a readable OpenAPI 3.x JSON document, or exit 1

Credentials come from the environment (BILLSTACK_API_KEY, BILLSTACK_SESSION_TOKEN) and are
never printed: only object IDs are.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import urllib.error
import urllib.request

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def fail(message: str) -> None:
    print(f"contract.py: {message}", file=sys.stderr)
    sys.exit(1)


# --- the local API's banner -------------------------------------------------------------

BANNER = {
    "LOCALAPI_URL": re.compile(r"listening on (http://\S+)"),
    "BILLSTACK_TEAM_ID": re.compile(r"^\s+team\s+(team_\S+)\s*$", re.MULTILINE),
    "BILLSTACK_PROJECT_ID": re.compile(r"^\s+project\s+(proj_\S+)\s*$", re.MULTILINE),
    "BILLSTACK_API_KEY": re.compile(r"shown once: (bs_[0-9a-f]+)"),
    "BILLSTACK_SESSION_TOKEN": re.compile(r"export TOKEN=(\S+)"),
}


def banner(out_file: str, env_file: str) -> None:
    with open(out_file, encoding="utf-8", errors="replace") as fd:
        text = fd.read()
    if "already exists" in text:
        fail("the local API found an existing table: it must start on fresh storage")
    values = {}
    for name, pattern in BANNER.items():
        match = pattern.search(text)
        if not match:
            fail(f"the local API's output has no {name} (did its banner change?)")
        values[name] = match.group(1)
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as env:
        for name, value in values.items():
            env.write(f"export {name}={shlex.quote(value)}\n")


# --- seeding ------------------------------------------------------------------------------


class Api:
    def __init__(self) -> None:
        self.base = os.environ["LOCALAPI_URL"].rstrip("/")
        self.team = os.environ["BILLSTACK_TEAM_ID"]
        self.project = os.environ["BILLSTACK_PROJECT_ID"]
        self.key = os.environ["BILLSTACK_API_KEY"]
        self.session = os.environ["BILLSTACK_SESSION_TOKEN"]

    def call(self, method: str, path: str, body: dict | None, *, session: bool = False) -> dict:
        token = self.session if session else self.key
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.load(response)
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:500]
            fail(f"seeding: {method} {path} answered {err.code}: {detail}")
        except (urllib.error.URLError, OSError) as err:
            fail(f"seeding: {method} {path} failed: {err}")
        raise AssertionError("unreachable")

    def project_path(self, resource: str) -> str:
        return f"/api/billstack/teams/{self.team}/projects/{self.project}/{resource}"


def seed(run_dir: str) -> None:
    """Real objects for the path parameters: one of each to read and update ("keep") and
    one of each for the destructive operations to spend ("spare"), so a DELETE never takes
    away what the other operations read."""
    api = Api()
    ids: dict[str, str] = {}
    for role in ("keep", "spare"):
        customer = api.call(
            "POST",
            api.project_path("customers"),
            {
                "email": f"fuzz-{role}@example.com",
                "name": f"Fuzz {role}",
                "metadata": {"seed": role},
            },
        )["customer"]
        product = api.call(
            "POST",
            api.project_path("products"),
            {"name": f"Fuzz product ({role})", "description": "seeded by scripts/fuzz-api"},
        )["product"]
        price = api.call(
            "POST",
            api.project_path("prices"),
            {
                "productId": product["id"],
                "unitAmount": 2999,
                "currency": "usd",
                "type": "recurring",
                "interval": "month",
            },
        )["price"]
        suffix = "" if role == "keep" else "_SPARE"
        ids[f"BILLSTACK_CUSTOMER_ID{suffix}"] = customer["id"]
        ids[f"BILLSTACK_PRODUCT_ID{suffix}"] = product["id"]
        ids[f"BILLSTACK_PRICE_ID{suffix}"] = price["id"]

    # The team routes' objects: the seeded key and the session's own membership are what
    # every other call stands on, so the destructive pass gets spares of its own.
    team = f"/api/billstack/teams/{api.team}"
    keys = api.call("GET", f"{team}/api-keys", None, session=True)["keys"]
    ids["BILLSTACK_KEY_ID"] = keys[0]["id"] if keys else ""
    spare_key = api.call("POST", f"{team}/api-keys", {"name": "fuzz spare key"}, session=True)
    ids["BILLSTACK_KEY_ID_SPARE"] = spare_key["key"]["id"]  # its rawKey is dropped unread
    # One spare member to update, another to remove: a removed one answers 404 to updates.
    for name, user in (
        ("BILLSTACK_USER_ID_SPARE", "user_fuzz_spare"),
        ("BILLSTACK_USER_ID_DOOMED", "user_fuzz_doomed"),
    ):
        api.call(
            "POST",
            f"{team}/members",
            {"userId": user, "role": "member", "email": f"{user}@example.com"},
            session=True,
        )
        ids[name] = user

    with open(os.path.join(run_dir, "seed.env"), "w", encoding="utf-8") as env:
        for name, value in ids.items():
            env.write(f"export {name}={shlex.quote(value)}\n")
    # Schemathesis dictionaries (libFuzzer format): values a parameter draws from.
    dict_dir = os.path.join(run_dir, "dict")
    os.makedirs(dict_dir, exist_ok=True)
    for name, keys_ in {
        "customers": ["BILLSTACK_CUSTOMER_ID"],
        "products": ["BILLSTACK_PRODUCT_ID"],
        "prices": ["BILLSTACK_PRICE_ID"],
        "keys": ["BILLSTACK_KEY_ID"],
        "spare-customers": ["BILLSTACK_CUSTOMER_ID_SPARE"],
        "spare-products": ["BILLSTACK_PRODUCT_ID_SPARE"],
        "spare-prices": ["BILLSTACK_PRICE_ID_SPARE"],
    }.items():
        with open(os.path.join(dict_dir, f"{name}.dict"), "w", encoding="utf-8") as out:
            out.writelines(json.dumps(ids[key]) + "\n" for key in keys_)
    shown = ", ".join(f"{k}={v}" for k, v in ids.items())
    print(f"seeded: {shown}", file=sys.stderr)


# --- the spec -----------------------------------------------------------------------------


def load_spec(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fd:
            spec = json.load(fd)
    except (OSError, ValueError) as err:
        fail(f"{path} is not a readable JSON document: {err}")
    if not isinstance(spec, dict) or not str(spec.get("openapi", "")).startswith("3."):
        fail(f"{path} is not an OpenAPI 3.x document (no 'openapi: 3.x' field)")
    return spec


def operations(spec: dict) -> list[str]:
    return [
        f"{method.upper()} {path}"
        for path, item in (spec.get("paths") or {}).items()
        for method in item
        if method in HTTP_METHODS
    ]


def check_spec(path: str) -> None:
    spec = load_spec(path)
    ops = operations(spec)
    if not ops:
        fail(f"{path} has no operations")
    schemes = set((spec.get("components") or {}).get("securitySchemes") or {})
    missing = {"apiKey", "session"} - schemes
    if missing:
        fail(
            f"{path} lacks the security schemes {sorted(missing)}: the fuzzer sends the API key "
            "for 'apiKey' and the session token for 'session' (tools/contract/schemathesis.toml)"
        )
    print(f"{path}: OpenAPI {spec['openapi']}, {len(ops)} operations", file=sys.stderr)


def count_ops(path: str, regex: str) -> None:
    pattern = re.compile(regex)
    print(sum(1 for op in operations(load_spec(path)) if pattern.search(op)))


def main(argv: list[str]) -> None:
    match argv:
        case ["banner", out_file, env_file]:
            banner(out_file, env_file)
        case ["seed", run_dir]:
            seed(run_dir)
        case ["ops", spec, regex]:
            count_ops(spec, regex)
        case ["check-spec", spec]:
            check_spec(spec)
        case _:
            print(__doc__, file=sys.stderr)
            sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
