"""Schemathesis hooks of scripts/fuzz-api (loaded through SCHEMATHESIS_HOOKS).

Two rules of the API depend on state that no schema can state, so a drawn value that
the schema allows would be refused (and counted as "valid data rejected"):

- An `Idempotency-Key` names one request: the API replays the first answer to a retry
  with the same body and refuses the key with another body (400 idempotency_error), as
  Stripe does. Drawn keys repeat across cases ("0" most of all), so every valid key is
  made unique before it is sent; an invalid one (the negative cases) is left as is.
- An API key's `expiresAt` must lie in the future (400 otherwise): a valid date-time in
  the past is moved a year ahead of now. Anything that is not a date-time is left as is.
"""

import itertools
import re
import uuid
from datetime import UTC, datetime, timedelta

import schemathesis

VALID_KEY = re.compile(r"[!-~]{1,255}")
# Unique across the passes of a run (each its own process) and across runs on one API.
_RUN = uuid.uuid4().hex[:12]
_sent = itertools.count(1)


def _unique_idempotency_key(headers) -> None:
    for name in list(headers or {}):
        if name.lower() != "idempotency-key":
            continue
        value = headers[name]
        if isinstance(value, str) and VALID_KEY.fullmatch(value):
            headers[name] = f"{value[:200]}.{_RUN}.{next(_sent):x}"


def _future_expiry(body) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("expiresAt"), str):
        return
    try:
        when = datetime.fromisoformat(body["expiresAt"])
    except ValueError:
        return
    if when.tzinfo is None:
        return
    now = datetime.now(UTC)
    if when <= now + timedelta(minutes=5):
        body["expiresAt"] = (now + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")


@schemathesis.hook
def before_call(context, case, kwargs):
    _unique_idempotency_key(case.headers)
    _future_expiry(case.body)
