#!/usr/bin/env python3
"""Smoke test of every BillStack route over HTTP (Python 3 standard library only).

Runs the same scenario against any base URL that serves the API, and checks the status
and the body fields of each answer, and the state in Stripe (the emulator):

    tools/sam-smoke/smoke.py --base http://127.0.0.1:3300 --gateway sam \\
        --values target/events/values.json --stripe http://127.0.0.1:12111
    tools/sam-smoke/smoke.py --base http://127.0.0.1:3000 --gateway local \\
        --values target/events/values.json --stripe http://127.0.0.1:12111

`--values` is what `scripts/render-events` seeded (target/events/values.json: team,
project, keys, session tokens of the team's owner, a member and an outsider; the team is
connected to the emulator's default account with render-events' webhook secret).
`--gateway` says what is in front of the functions: `local` (scripts/local's server, the
same router as the functions) or `sam` (`sam local start-api`'s emulation of API
Gateway). They differ only where API Gateway answers by itself or where a Lambda has no
local queue; each such row names its reason (docs/local-invoke.md, section 4).

Every run makes objects of its own (a run ID in names and emails), so it can run again
against the same stack, and against both gateways in turn. Prints a table of route →
status and exits 1 on any mismatch. Never prints a key or a token.
"""

import argparse
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

# The webhook signing secret scripts/render-events connects its team with (a public test
# value of this repository, not a Stripe secret).
RENDER_EVENTS_WEBHOOK_SECRET = "whsec_billstackEventsSigningSecret000000"
# The emulator's default account's public key (valid in every emulator).
EMULATOR_KEY = "sk_test_billstack_local"
NEVER_ID = "0000000000000000000000000000dead"

ANY = object()  # any non-null value


class Smoke:
    def __init__(self, base, gateway, values, stripe, webhook_secret, timeout):
        self.base = base.rstrip("/")
        self.gateway = gateway
        self.v = values
        self.stripe = stripe.rstrip("/") if stripe else None
        self.webhook_secret = webhook_secret
        self.timeout = timeout
        self.rows = []
        self.failures = 0
        self.last_body, self.last_headers = None, {}
        self.run = f"{int(time.time()) % 100000000:08d}{os.getpid() % 1000:03d}{gateway[0]}"
        self.team = values["teamId"]
        self.project = values["projectId"]
        self.coll = f"/api/billstack/teams/{self.team}/projects/{self.project}"

    # ------------------------------------------------------------------ HTTP
    def http(self, method, path, auth=None, body=None, raw=None, headers=None, base=None):
        url = (base or self.base) + path
        data = None
        hdrs = {"Accept": "application/json"}
        if auth is not None:
            hdrs["Authorization"] = f"Bearer {auth}"
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if raw is not None:
            data = raw if isinstance(raw, bytes) else raw.encode()
            hdrs.setdefault("Content-Type", "application/json")
        hdrs.update(headers or {})
        request = urllib.request.Request(url, data=data, method=method, headers=hdrs)
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, payload, rh = response.status, response.read(), response.headers
        except urllib.error.HTTPError as err:
            status, payload, rh = err.code, err.read(), err.headers
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            return 0, {"_transport_error": str(err)}, {}, time.monotonic() - started
        elapsed = time.monotonic() - started
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = {"_raw": payload[:200].decode(errors="replace")}
        return status, parsed, {k.lower(): v for k, v in rh.items()}, elapsed

    def stripe_get(self, kind, object_id):
        status, body, _, _ = self.http(
            "GET", f"/v1/{kind}/{object_id}", auth=EMULATOR_KEY, base=self.stripe
        )
        return status, body

    # ------------------------------------------------------------------ checks
    @staticmethod
    def match(expected, actual, where="body"):
        """Returns a list of mismatches: fields not named are not checked; ANY is any
        non-null value; a str ending in '*' is a prefix; callables are predicates."""
        problems = []
        if expected is ANY:
            if actual is None:
                problems.append(f"{where} is null")
        elif callable(expected):
            if not expected(actual):
                problems.append(f"{where}={json.dumps(actual)[:80]} fails its check")
        elif isinstance(expected, dict):
            if not isinstance(actual, dict):
                return [f"{where} is not an object: {json.dumps(actual)[:80]}"]
            for key, value in expected.items():
                if key not in actual:
                    problems.append(f"{where}.{key} missing")
                else:
                    problems.extend(Smoke.match(value, actual[key], f"{where}.{key}"))
        elif isinstance(expected, str) and expected.endswith("*"):
            if not isinstance(actual, str) or not actual.startswith(expected[:-1]):
                problems.append(f"{where}={json.dumps(actual)[:80]}, want {expected}")
        elif expected != actual:
            problems.append(f"{where}={json.dumps(actual)[:80]}, want {json.dumps(expected)[:80]}")
        return problems

    def check(self, label, method, route, status, expect_status, expect_body=None, extra=None,
              elapsed=None, note=""):
        """Records one row; `extra` is a list of further problems (Stripe state, headers)."""
        problems = []
        wanted = expect_status if isinstance(expect_status, tuple) else (expect_status,)
        if status not in wanted:
            problems.append(f"status {status}, want {'/'.join(map(str, wanted))}")
        if expect_body is not None and status in wanted:
            problems.extend(self.match(expect_body, self.last_body))
        problems.extend(extra or [])
        self.rows.append((label, f"{method} {route}", status, "/".join(map(str, wanted)),
                          "ok" if not problems else "FAIL", elapsed, note, problems))
        if problems:
            self.failures += 1
        return not problems

    def call(self, label, method, path, route, expect_status, expect_body=None, note="",
             extra=None, **kwargs):
        status, body, headers, elapsed = self.http(method, path, **kwargs)
        self.last_body, self.last_headers = body, headers
        more = extra(body, headers) if extra and status in (
            expect_status if isinstance(expect_status, tuple) else (expect_status,)) else []
        self.check(label, method, route, status, expect_status, expect_body, more, elapsed, note)
        return body if isinstance(body, dict) else {}

    @staticmethod
    def error_shape(code=None, param=None):
        """{"error": "<string>", "code"?, "param"?}: conventions.md's error body."""
        shape = {"error": lambda e: isinstance(e, str) and e != ""}
        if code:
            shape["code"] = code
        if param:
            shape["param"] = param
        return shape

    def stripe_state(self, kind, object_id, expected):
        """Problems with the object in the emulator (none when no emulator was given)."""
        if not self.stripe:
            return []
        status, body = self.stripe_get(kind, object_id)
        if status != 200:
            return [f"stripe GET /v1/{kind}/{object_id}: {status}"]
        return [f"stripe {p}" for p in self.match(expected, body, kind)]

    # ------------------------------------------------------------------ scenario
    def scenario(self):
        v, team, coll, run = self.v, self.team, self.coll, self.run
        owner = v["sessionToken"]
        key = v["apiKey"]
        t = "/api/billstack/teams"
        T = "/api/billstack/teams/{teamId}"
        P = "/api/billstack/teams/{teamId}/projects/{projectId}"
        sam = self.gateway == "sam"

        # ---- team API (sessions)
        self.call("teams list", "GET", t, "/api/billstack/teams", 200,
                  {"teams": lambda ts: any(x.get("id") == team and x.get("role") == "owner"
                                           for x in ts)}, auth=owner)
        created = self.call("teams create", "POST", t, "/api/billstack/teams", 201,
                            {"team": {"id": "team_*", "name": f"Smoke team {run}",
                                      "role": "owner"}},
                            auth=owner, body={"name": f"Smoke team {run}"})
        self.call("team get", "GET", f"{t}/{team}", T, 200,
                  {"team": {"id": team, "role": "owner", "createdAt": ANY}}, auth=owner)
        self.call("team update", "PATCH", f"{t}/{team}", T, 200,
                  {"team": {"id": team, "name": "Events team", "role": "owner"}},
                  auth=owner, body={"name": "Events team"})
        self.call("team get (outsider)", "GET", f"{t}/{team}", T, 404,
                  {"error": "Team not found", "code": "not_found"},
                  auth=v["outsiderSessionToken"])
        if created.get("team", {}).get("id"):
            self.call("teams list (new team)", "GET", t, "/api/billstack/teams", 200,
                      {"teams": lambda ts: any(x.get("id") == created["team"]["id"] for x in ts)},
                      auth=owner)
        self.call("projects list", "GET", f"{t}/{team}/projects", T + "/projects", 200,
                  {"projects": lambda ps: any(p.get("id") == self.project for p in ps)},
                  auth=owner)
        proj = self.call("project create", "POST", f"{t}/{team}/projects", T + "/projects", 201,
                         {"project": {"id": "proj_*", "teamId": team,
                                      "name": f"Smoke project {run}"}},
                         auth=owner, body={"name": f"Smoke project {run}"})
        pid = proj.get("project", {}).get("id", f"proj_{NEVER_ID}")
        self.call("project get", "GET", f"{t}/{team}/projects/{pid}", T + "/projects/{projectId}",
                  200, {"project": {"id": pid, "teamId": team}}, auth=owner)
        self.call("project update", "PATCH", f"{t}/{team}/projects/{pid}",
                  T + "/projects/{projectId}", 200,
                  {"project": {"id": pid, "name": f"Smoke project {run} renamed"}},
                  auth=owner, body={"name": f"Smoke project {run} renamed"})
        self.call("project get (unknown)", "GET", f"{t}/{team}/projects/proj_{NEVER_ID}",
                  T + "/projects/{projectId}", 404, self.error_shape("not_found"), auth=owner)
        self.call("members list", "GET", f"{t}/{team}/members", T + "/members", 200,
                  {"members": lambda ms: any(m.get("userId") == v["ownerUserId"]
                                             and m.get("role") == "owner" for m in ms)},
                  auth=owner)
        user = f"user_smoke_{run}"
        self.call("member add", "POST", f"{t}/{team}/members", T + "/members", 201,
                  {"member": {"userId": user, "role": "member", "email": f"{user}@example.com"}},
                  auth=owner, body={"userId": user, "role": "member",
                                    "email": f"{user}@example.com"})
        self.call("member update", "PATCH", f"{t}/{team}/members/{user}",
                  T + "/members/{userId}", 200, {"member": {"userId": user, "role": "owner"}},
                  auth=owner, body={"role": "owner"})
        self.call("member remove", "DELETE", f"{t}/{team}/members/{user}",
                  T + "/members/{userId}", 200, {"success": True}, auth=owner)
        self.call("member remove (last owner)", "DELETE",
                  f"{t}/{team}/members/{v['ownerUserId']}", T + "/members/{userId}", 409,
                  self.error_shape("last_owner"), auth=owner)
        scopes = ["customers:read", "customers:write", "products:read", "products:write"]
        made = self.call("api key create", "POST", f"{t}/{team}/api-keys", T + "/api-keys", 201,
                         {"key": {"id": "key_*", "name": f"smoke {run}", "prefix": "bs_*",
                                  "projectId": None, "scopes": scopes, "revokedAt": None},
                          "rawKey": "bs_*"},
                         auth=owner, body={"name": f"smoke {run}", "scopes": scopes})
        smoke_key = made.get("rawKey", "bs_" + "0" * 48)
        smoke_key_id = made.get("key", {}).get("id", f"key_{NEVER_ID}")
        self.call("api key create (member)", "POST", f"{t}/{team}/api-keys", T + "/api-keys",
                  403, self.error_shape("owner_required"), auth=v["memberSessionToken"],
                  body={"name": "not allowed"})
        self.call("api key create (bad scope)", "POST", f"{t}/{team}/api-keys", T + "/api-keys",
                  400, self.error_shape("invalid_parameter", "scopes"), auth=owner,
                  body={"name": "bad", "scopes": ["customers:delete"]})
        self.call("api keys list", "GET", f"{t}/{team}/api-keys", T + "/api-keys", 200,
                  {"keys": lambda ks: any(k.get("id") == smoke_key_id and k.get("revokedAt") is None
                                          and "rawKey" not in k for k in ks)}, auth=owner)
        self.call("api key get", "GET", f"{t}/{team}/api-keys/{smoke_key_id}",
                  T + "/api-keys/{keyId}", 200,
                  {"key": {"id": smoke_key_id, "name": f"smoke {run}", "prefix": "bs_*"}},
                  auth=owner)
        self.call("stripe status", "GET", f"{t}/{team}/stripe/status", T + "/stripe/status", 200,
                  {"connected": True, "isActive": True, "keyValid": True,
                   "accountId": "acct_emulatordefault", "livemode": False,
                   "webhookSecretSet": True}, auth=owner)
        self.call("stripe webhook-url", "GET", f"{t}/{team}/stripe/webhook-url",
                  T + "/stripe/webhook-url", 200,
                  {"webhookUrl": f"{self.base}/api/webhooks/stripe/{team}", "instructions": ANY},
                  auth=owner)
        self.call("stripe connect (invalid key)", "POST", f"{t}/{team}/stripe/connect",
                  T + "/stripe/connect", 400, self.error_shape("invalid_stripe_key", "secretKey"),
                  auth=owner, body={"secretKey": "sk_test_billstack_unknown_key_0000"})
        self.call("stripe connect (API key)", "POST", f"{t}/{team}/stripe/connect",
                  T + "/stripe/connect", 403, self.error_shape("session_required"),
                  auth=key, body={"secretKey": EMULATOR_KEY})
        if sam:
            # Locally no queue takes the job (BACKFILL_QUEUE_URL is empty and the SDK has no
            # local SQS endpoint): 503, the job saved; a running job is answered 200.
            self.call("stripe backfill", "POST", f"{t}/{team}/stripe/backfill",
                      T + "/stripe/backfill", (503, 200), None, auth=owner,
                      body={"objects": ["customers"]},
                      note="503 locally: no SQS queue behind sam local")
        else:
            self.call("stripe backfill", "POST", f"{t}/{team}/stripe/backfill",
                      T + "/stripe/backfill", 200,
                      {"success": True, "jobId": "job_*"}, auth=owner,
                      body={"objects": ["customers"]})

        # ---- customers (the new key: it works at once)
        email = f"smoke.{run}@example.com"
        idem = {"Idempotency-Key": f"smoke-{run}-customer"}
        cust = self.call("customer create", "POST", f"{coll}/customers", P + "/customers", 201,
                         {"customer": {"id": "pc_*", "email": email, "name": "Smoke Customer",
                                       "metadata": {"plan": "pro"}, "stripeCustomerId": "cus_*",
                                       "projectId": self.project, "createdAt": ANY}},
                         auth=smoke_key, headers=idem,
                         body={"email": email, "name": "Smoke Customer", "metadata": {"plan": "pro"}})
        cid = cust.get("customer", {}).get("id", f"pc_{NEVER_ID}")
        cus = cust.get("customer", {}).get("stripeCustomerId", "cus_missing")
        self.call("customer create (replay)", "POST", f"{coll}/customers", P + "/customers", 201,
                  {"customer": {"id": cid}}, auth=smoke_key, headers=idem,
                  body={"email": email, "name": "Smoke Customer", "metadata": {"plan": "pro"}},
                  extra=lambda b, h: [] if h.get("idempotent-replayed") == "true"
                  else ["no idempotent-replayed: true header"])
        self.call("customer create (key reused)", "POST", f"{coll}/customers", P + "/customers",
                  400, self.error_shape("idempotency_error", "Idempotency-Key"),
                  auth=smoke_key, headers=idem, body={"email": "other." + email})
        self.check("stripe customer", "GET", "emulator /v1/customers/{id}", 200, 200, None,
                   self.stripe_state("customers", cus, {
                       "email": email, "name": "Smoke Customer",
                       "metadata": {"project_id": self.project, "billstack_id": cid}}))
        self.call("customer get", "GET", f"{coll}/customers/{cid}", P + "/customers/{customerId}",
                  200, {"customer": {"id": cid, "email": email, "stripeCustomerId": cus,
                                     "projectId": self.project}}, auth=smoke_key)
        self.call("customer get (session)", "GET", f"{coll}/customers/{cid}",
                  P + "/customers/{customerId}", 200, {"customer": {"id": cid}}, auth=owner)
        self.call("customers list", "GET", f"{coll}/customers?limit=100", P + "/customers", 200,
                  {"customers": lambda cs: any(c.get("id") == cid for c in cs),
                   "hasMore": ANY}, auth=smoke_key)
        self.call("customers list (paged)", "GET", f"{coll}/customers?limit=1&offset=0",
                  P + "/customers", 200, {"customers": lambda cs: len(cs) == 1}, auth=key)
        self.call("customer update", "PATCH", f"{coll}/customers/{cid}",
                  P + "/customers/{customerId}", 200,
                  {"customer": {"id": cid, "name": "Smoke Renamed",
                                "metadata": {"plan": "enterprise"}}},
                  auth=smoke_key, body={"name": "Smoke Renamed", "metadata": {"plan": "enterprise"}},
                  extra=lambda b, h: self.stripe_state("customers", cus, {
                      "name": "Smoke Renamed", "metadata": {"plan": "enterprise"}}))
        self.call("customer create (dup email)", "POST", f"{coll}/customers", P + "/customers",
                  409, self.error_shape("email_taken", "email"), auth=smoke_key,
                  body={"email": email})
        # A change made in Stripe comes back signed: the raw body and Stripe-Signature pass
        # through untouched, or the HMAC would not match.
        event = {
            "id": f"evt_smoke{run}", "object": "event", "api_version": "2025-09-30.clover",
            "created": 4102444800, "type": "customer.updated", "livemode": False,
            "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
            "data": {"object": {"id": cus, "object": "customer", "email": email,
                                "name": "Renamed in Stripe",
                                "metadata": {"project_id": self.project, "billstack_id": cid,
                                             "plan": "enterprise"}}},
        }
        raw = json.dumps(event, separators=(",", ":"))
        now = int(time.time())
        sig = hmac.new(self.webhook_secret.encode(), f"{now}.{raw}".encode(),
                       hashlib.sha256).hexdigest()
        hook = f"/api/webhooks/stripe/{team}"
        W = "/api/webhooks/stripe/{teamId}"
        self.call("webhook (signed)", "POST", hook, W, 200,
                  {"received": True, "outcome": "applied"}, raw=raw,
                  headers={"Stripe-Signature": f"t={now},v1={sig}",
                           "Content-Type": "application/json; charset=utf-8"})
        self.call("webhook (redelivered)", "POST", hook, W, 200,
                  {"received": True, "duplicate": True}, raw=raw,
                  headers={"Stripe-Signature": f"t={now},v1={sig}",
                           "Content-Type": "application/json; charset=utf-8"})
        self.call("webhook (bad signature)", "POST", hook, W, 400,
                  self.error_shape("invalid_signature", "Stripe-Signature"), raw=raw,
                  headers={"Stripe-Signature": f"t={now},v1={'0' * 64}"})
        self.call("webhook (no signature)", "POST", hook, W, 400,
                  self.error_shape("invalid_signature", "Stripe-Signature"), raw=raw)
        self.call("customer get (after webhook)", "GET", f"{coll}/customers/{cid}",
                  P + "/customers/{customerId}", 200,
                  {"customer": {"id": cid, "name": "Renamed in Stripe"}}, auth=smoke_key)
        self.call("customer delete", "DELETE", f"{coll}/customers/{cid}",
                  P + "/customers/{customerId}", 200, {"success": True}, auth=smoke_key,
                  # Removed from BillStack only: the Stripe customer is kept.
                  extra=lambda b, h: self.stripe_state(
                      "customers", cus, lambda c: c.get("id") == cus and not c.get("deleted")))
        self.call("customer get (deleted)", "GET", f"{coll}/customers/{cid}",
                  P + "/customers/{customerId}", 404, self.error_shape("not_found"),
                  auth=smoke_key)
        self.call("customer delete (unknown)", "DELETE", f"{coll}/customers/pc_{NEVER_ID}",
                  P + "/customers/{customerId}", 404, self.error_shape("not_found"),
                  auth=smoke_key)

        # ---- products
        prod = self.call("product create", "POST", f"{coll}/products", P + "/products", 201,
                         {"product": {"id": "pp_*", "name": f"Smoke Plan {run}",
                                      "description": "Smoke", "isActive": True,
                                      "stripeProductId": "prod_*", "metadata": {"tier": "gold"},
                                      "projectId": self.project}},
                         auth=smoke_key, headers={"Idempotency-Key": f"smoke-{run}-product"},
                         body={"name": f"Smoke Plan {run}", "description": "Smoke",
                               "metadata": {"tier": "gold"}})
        ppid = prod.get("product", {}).get("id", f"pp_{NEVER_ID}")
        sprod = prod.get("product", {}).get("stripeProductId", "prod_missing")
        self.check("stripe product", "GET", "emulator /v1/products/{id}", 200, 200, None,
                   self.stripe_state("products", sprod, {
                       "name": f"Smoke Plan {run}", "active": True,
                       "metadata": {"project_id": self.project, "billstack_id": ppid}}))
        self.call("product get", "GET", f"{coll}/products/{ppid}", P + "/products/{productId}",
                  200, {"product": {"id": ppid, "name": f"Smoke Plan {run}"}}, auth=smoke_key)
        self.call("products list", "GET", f"{coll}/products?activeOnly=true&limit=100",
                  P + "/products", 200,
                  {"products": lambda ps: any(p.get("id") == ppid for p in ps)}, auth=smoke_key)
        self.call("products list (bad filter)", "GET", f"{coll}/products?activeOnly=yes",
                  P + "/products", 400, self.error_shape("invalid_parameter", "activeOnly"),
                  auth=smoke_key)
        self.call("product update", "PATCH", f"{coll}/products/{ppid}",
                  P + "/products/{productId}", 200,
                  {"product": {"id": ppid, "name": f"Smoke Plan {run} v2", "isActive": True}},
                  auth=smoke_key, body={"name": f"Smoke Plan {run} v2"},
                  extra=lambda b, h: self.stripe_state("products", sprod,
                                                       {"name": f"Smoke Plan {run} v2"}))
        self.call("product create (unknown field)", "POST", f"{coll}/products", P + "/products",
                  400, self.error_shape("invalid_parameter", "price"), auth=smoke_key,
                  body={"name": "x", "price": 2999})

        # ---- prices
        price = self.call("price create", "POST", f"{coll}/prices", P + "/prices", 201,
                          {"price": {"id": "pri_*", "productId": ppid, "unitAmount": 2999,
                                     "currency": "usd", "type": "recurring",
                                     "interval": "month", "intervalCount": 1,
                                     "isActive": True, "stripePriceId": "price_*"}},
                          auth=smoke_key,
                          body={"productId": ppid, "unitAmount": 2999, "currency": "usd",
                                "type": "recurring", "interval": "month", "intervalCount": 1})
        prid = price.get("price", {}).get("id", f"pri_{NEVER_ID}")
        sprice = price.get("price", {}).get("stripePriceId", "price_missing")
        self.check("stripe price", "GET", "emulator /v1/prices/{id}", 200, 200, None,
                   self.stripe_state("prices", sprice, {
                       "unit_amount": 2999, "currency": "usd", "product": sprod, "active": True,
                       "recurring": {"interval": "month", "interval_count": 1}}))
        self.call("price get", "GET", f"{coll}/prices/{prid}", P + "/prices/{priceId}", 200,
                  {"price": {"id": prid, "productId": ppid, "unitAmount": 2999}}, auth=smoke_key)
        self.call("prices list", "GET",
                  f"{coll}/prices?productId={urllib.parse.quote(ppid)}&activeOnly=true",
                  P + "/prices", 200,
                  {"prices": lambda ps: [p.get("id") for p in ps] == [prid]}, auth=smoke_key)
        self.call("price update", "PATCH", f"{coll}/prices/{prid}", P + "/prices/{priceId}", 200,
                  {"price": {"id": prid, "isActive": False, "metadata": {"legacy": "true"}}},
                  auth=smoke_key, body={"isActive": False, "metadata": {"legacy": "true"}},
                  extra=lambda b, h: self.stripe_state("prices", sprice, {"active": False}))
        self.call("price update (amount)", "PATCH", f"{coll}/prices/{prid}",
                  P + "/prices/{priceId}", 400, self.error_shape("invalid_parameter", "unitAmount"),
                  auth=smoke_key, body={"unitAmount": 100})
        self.call("price create (no amount)", "POST", f"{coll}/prices", P + "/prices", 400,
                  self.error_shape("invalid_parameter", "unitAmount"), auth=smoke_key,
                  body={"productId": ppid, "currency": "usd", "interval": "month"})
        self.call("price delete", "DELETE", f"{coll}/prices/{prid}", P + "/prices/{priceId}", 200,
                  {"success": True}, auth=smoke_key)
        self.call("price get (deleted)", "GET", f"{coll}/prices/{prid}", P + "/prices/{priceId}",
                  404, self.error_shape("not_found"), auth=smoke_key)
        self.call("product delete", "DELETE", f"{coll}/products/{ppid}",
                  P + "/products/{productId}", 200, {"success": True}, auth=smoke_key,
                  extra=lambda b, h: self.stripe_state("products", sprod, {"active": False}))
        self.call("product get (deleted)", "GET", f"{coll}/products/{ppid}",
                  P + "/products/{productId}", 404, self.error_shape("not_found"), auth=smoke_key)

        # ---- authentication failures
        self.call("no Authorization", "GET", f"{coll}/customers", P + "/customers", 401,
                  self.error_shape("unauthorized"))
        self.call("unknown API key", "GET", f"{coll}/customers", P + "/customers", 401,
                  self.error_shape("unauthorized"), auth="bs_" + "0" * 48)
        self.call("malformed bearer", "GET", f"{coll}/products", P + "/products", 401,
                  self.error_shape(), auth="not-a-token")
        self.call("read-only key writes", "POST", f"{coll}/customers", P + "/customers", 403,
                  self.error_shape("forbidden"), auth=v["readOnlyApiKey"],
                  body={"email": f"ro.{email}"})
        self.call("key of another project", "GET", f"{coll}/customers", P + "/customers", 403,
                  self.error_shape("forbidden"), auth=v["otherProjectApiKey"])
        self.call("API key on team route", "GET", t, "/api/billstack/teams", 403,
                  self.error_shape("session_required"), auth=key)
        self.call("no Authorization (team)", "GET", t, "/api/billstack/teams", 401,
                  self.error_shape("unauthorized"))
        self.call("api key revoke", "DELETE", f"{t}/{team}/api-keys/{smoke_key_id}",
                  T + "/api-keys/{keyId}", 200, {"success": True}, auth=owner)
        self.call("revoked key", "GET", f"{coll}/customers", P + "/customers", 401,
                  self.error_shape("unauthorized"), auth=smoke_key)
        self.call("api key get (revoked)", "GET", f"{t}/{team}/api-keys/{smoke_key_id}",
                  T + "/api-keys/{keyId}", 200, {"key": {"id": smoke_key_id, "revokedAt": ANY}},
                  auth=owner)

        # ---- error shapes
        self.call("400 bad limit", "GET", f"{coll}/customers?limit=0", P + "/customers", 400,
                  self.error_shape("invalid_parameter", "limit"), auth=key)
        self.call("400 malformed JSON", "POST", f"{coll}/customers", P + "/customers", 400,
                  self.error_shape("invalid_request"), auth=key, raw='{"email": ')
        self.call("404 unknown customer", "GET", f"{coll}/customers/pc_{NEVER_ID}",
                  P + "/customers/{customerId}", 404, self.error_shape("not_found"), auth=key)
        self.call("404 unknown project", "GET",
                  f"/api/billstack/teams/{team}/projects/proj_{NEVER_ID}/customers",
                  P + "/customers", 404, self.error_shape("not_found"), auth=key)
        if sam:
            # No route for the method: API Gateway answers by itself and no Lambda runs.
            # SAM answers as REST APIs do (403 Missing Authentication Token); a deployed HTTP
            # API answers 404 {"message": "Not Found"}. Only scripts/local reaches our 405.
            self.call("405 PUT customer", "PUT", f"{coll}/customers/pc_{NEVER_ID}",
                      P + "/customers/{customerId}", 403,
                      {"message": "Missing Authentication Token"}, auth=key, body={},
                      note="API Gateway (SAM) answers: no route")
            self.call("404 unknown path", "GET", "/api/billstack/nothing", "/api/billstack/nothing",
                      403, {"message": "Missing Authentication Token"}, auth=key,
                      note="API Gateway (SAM) answers: no route")
        else:
            self.call("405 PUT customer", "PUT", f"{coll}/customers/pc_{NEVER_ID}",
                      P + "/customers/{customerId}", 405, self.error_shape("method_not_allowed"),
                      auth=key, body={})
            self.call("404 unknown path", "GET", "/api/billstack/nothing",
                      "/api/billstack/nothing", 404, self.error_shape(), auth=key)

    # ------------------------------------------------------------------ report
    def report(self, out=sys.stdout):
        # Routes relative to /api/billstack (the webhook's and the emulator's are whole).
        rows = [(r[0], r[1].replace(" /api/billstack/", " /"), *r[2:]) for r in self.rows]
        width = max(len(r[0]) for r in rows)
        rwidth = max(len(r[1]) for r in rows)
        print(f"{'check':<{width}}  {'route (under /api/billstack)':<{rwidth}}  status  want     "
              "time  result", file=out)
        for label, route, status, want, result, elapsed, note, problems in rows:
            took = f"{elapsed:5.2f}s" if elapsed is not None else "     -"
            line = f"{label:<{width}}  {route:<{rwidth}}  {status:>6}  {want:<7} {took}  {result}"
            if note:
                line += f"  ({note})"
            print(line, file=out)
            for problem in problems:
                print(f"{'':<{width}}    - {problem}", file=out)
        print(f"{len(self.rows)} checks, {self.failures} failed, against {self.base} "
              f"({self.gateway})", file=out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the API's base URL")
    parser.add_argument("--gateway", choices=["local", "sam"], default="local",
                        help="what serves the routes: scripts/local's server or sam local start-api")
    parser.add_argument("--values", required=True,
                        help="scripts/render-events' values.json (IDs, keys and tokens it seeded)")
    parser.add_argument("--stripe", default=os.environ.get("STRIPE_EMULATOR_URL", ""),
                        help="the Stripe emulator's URL, to check what reached Stripe")
    parser.add_argument("--webhook-secret", default=RENDER_EVENTS_WEBHOOK_SECRET,
                        help="the team's webhook signing secret (render-events' by default)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    args = parser.parse_args()
    with open(args.values) as f:
        values = json.load(f)
    missing = [k for k in ("teamId", "projectId", "apiKey", "sessionToken", "memberSessionToken",
                           "outsiderSessionToken", "readOnlyApiKey", "otherProjectApiKey",
                           "ownerUserId") if k not in values]
    if missing:
        sys.exit(f"smoke: {args.values} has no {', '.join(missing)} (render the events against "
                 "a local stack with the development issuer)")
    smoke = Smoke(args.base, args.gateway, values, args.stripe, args.webhook_secret, args.timeout)
    started = time.monotonic()
    smoke.scenario()
    smoke.report()
    print(f"smoke took {time.monotonic() - started:.1f}s")
    sys.exit(1 if smoke.failures else 0)


if __name__ == "__main__":
    main()
