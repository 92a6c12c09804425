#!/usr/bin/env python3
"""`sam local invoke` of one event per function (and a few that only an invoke can send),
each answer checked against the event's own `x-billstack-expect` (events/README.md).

    tools/sam-smoke/invoke.py --events DIR --values DIR/values.json --local-api URL \\
        -- <sam local invoke options: -t, --env-vars, --parameter-overrides, --add-host, ...>

DIR holds events rendered by scripts/render-events. The backfill function is driven by
SQS, which sam local does not emulate: the connection function's `POST /stripe/backfill`
saves the job and answers 503 (no queue to hand it to, BACKFILL_QUEUE_URL being empty
locally), then the job's message is sent to the backfill function as an SQS event
(tools/sam-smoke/backfill-sqs.json) and the job's end is read back from
`GET /stripe/status` of the local API (`--local-api`, the same table).

Prints a table (function, event, status, time) and exits 1 on any mismatch. Prints no
answer body (some carry keys), only the fields that did not match.
"""

import argparse
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from smoke import Smoke  # noqa: E402  (the same field matcher)

# (function, event, body checked: True for the event's own expectation, a dict for another,
#  expected status if not the event's, note)
PLAN = [
    ("CustomersFunction", "customers/get.json", True, None, ""),
    ("CustomersFunction", "customers/create-base64-body.json", True, None,
     "base64 body: start-api never sends one"),
    ("ProductsFunction", "products/get.json", True, None, ""),
    ("PricesFunction", "prices/get.json", True, None, ""),
    # Rendered team events name render-events' team ("Events team"), not the test's: the
    # status is what they promise here (events/README.md).
    ("TeamsFunction", "teams/teams-list.json", False, None, ""),
    # render-events connects its team with a webhook secret, the test without one.
    ("ConnectionFunction", "connection/status.json",
     {"connected": True, "isActive": True, "keyValid": True, "syncStatus": "pending",
      "accountId": "acct_emulatordefault", "webhookSecretSet": True}, None,
     "KMS decrypt + Stripe"),
    ("WebhooksFunction", "webhooks/customer-updated.json", True, None, "signed delivery"),
    ("ConnectionFunction", "connection/backfill.json", False, 503,
     "no SQS locally: job saved, not queued"),
]


# SAM's own words when the container never answered: it waits until the container's
# published port takes a connection, then posts three times within about 0.7 s and gives
# up. Docker's own port proxy takes the connection before the runtime interface emulator
# inside listens, and under QEMU on a slow machine the emulator needs longer than 0.7 s (CI
# once lost 7 of 9 invokes so). scripts/sam-engine's dockerd runs tools/sam-engine/
# port-proxy.py instead, which holds the connection until the emulator listens. A daemon
# not started by sam-engine still has Docker's proxy: then SAM waits out the function's
# timer (30 s) for nothing, so stop it at once and invoke again (marked "retried").
NO_RESPONSE = "No response from invoke container"


def sam_invoke(function, event, sam_args, retries=2):
    """Runs one `sam local invoke`; (exit code, answer, SAM's stderr, seconds, retried)."""
    started = time.monotonic()
    process = subprocess.Popen(
        ["sam", "local", "invoke", function, "-e", str(event), *sam_args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines, gave_up = [], threading.Event()

    def read_stderr():
        for line in process.stderr:
            lines.append(line)
            if NO_RESPONSE in line:
                gave_up.set()
                process.terminate()  # the container is already stopped by SAM

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    out = process.stdout.read().strip()
    process.wait()
    reader.join(timeout=5)
    stderr = "".join(lines)
    elapsed = time.monotonic() - started
    if gave_up.is_set() and retries > 0:
        rc, answer, again_err, again, _ = sam_invoke(function, event, sam_args, retries - 1)
        return rc, answer, stderr + "\n--- invoked again\n" + again_err, elapsed + again, True
    try:
        # The answer is the last line SAM prints on stdout.
        answer = json.loads(out.splitlines()[-1]) if out else None
    except ValueError:
        answer = {"_unparsed": out[-300:]}
    return process.returncode, answer, stderr, elapsed, False


def get_json(url, token):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", required=True, type=Path)
    parser.add_argument("--values", required=True, type=Path)
    parser.add_argument("--local-api", required=True, help="the local API on the same table")
    parser.add_argument("--log", type=Path, help="append SAM's stderr (function logs) here")
    parser.add_argument("sam_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    sam_args = [a for a in args.sam_args if a != "--"]
    values = json.loads(args.values.read_text())
    rows, failures = [], 0
    log = args.log.open("a") if args.log else None

    def record(function, event, status, want, elapsed, problems, note=""):
        nonlocal failures
        rows.append((function, event, status, want, elapsed, problems, note))
        failures += bool(problems)

    def run(function, event_path, check_body, want_status, note):
        event = json.loads(event_path.read_text())
        expect = event.get("x-billstack-expect", {})
        want = want_status if want_status is not None else expect.get("status")
        code, answer, stderr, elapsed, retried = sam_invoke(function, event_path, sam_args)
        if retried:
            note = (note + "; " if note else "") + "retried: SAM got no answer the first time"
        if log:
            log.write(f"--- sam local invoke {function} -e {event_path.name}\n{stderr}\n")
        problems = []
        if code != 0:
            problems.append(f"sam exited {code}: {stderr.strip().splitlines()[-1:]}")
        status = answer.get("statusCode") if isinstance(answer, dict) else None
        if status != want:
            problems.append(f"statusCode {status}, want {want}")
        elif check_body:
            try:
                body = json.loads(answer.get("body") or "null")
            except ValueError:
                body = None
            wanted = check_body if isinstance(check_body, dict) else expect.get("body")
            if wanted is not None:
                problems += Smoke.match(wanted, body)
        record(function, str(event_path.relative_to(args.events)), status, want, elapsed,
               problems, note)
        return answer

    for function, name, check_body, want_status, note in PLAN:
        run(function, args.events / name, check_body, want_status, note)

    # The backfill: the job the 503 above saved, continued as SQS would deliver it.
    team, token = values["teamId"], values["sessionToken"]
    status_url = f"{args.local_api.rstrip('/')}/api/billstack/teams/{team}/stripe/status"
    code, before = get_json(status_url, token)
    job = (before or {}).get("backfill") or {}
    if code != 200 or job.get("state") != "running":
        record("BackfillFunction", "backfill/continue.json", None, "null", None,
               [f"no running job to continue (status {code}, backfill {job.get('state')})"])
    else:
        template = (HERE / "backfill-sqs.json").read_text()
        sqs = args.events / "backfill" / "continue.json"
        sqs.parent.mkdir(parents=True, exist_ok=True)
        sqs.write_text(template.replace("{{teamId}}", team).replace("{{jobId}}", job["jobId"]))
        rc, answer, stderr, elapsed, retried = sam_invoke("BackfillFunction", sqs, sam_args)
        if log:
            log.write(f"--- sam local invoke BackfillFunction -e {sqs.name}\n{stderr}\n")
        problems = [] if rc == 0 and answer is None else [
            f"answer {json.dumps(answer)[:200]} (sam exit {rc}), want null"]
        code, after = get_json(status_url, token)
        done = (after or {}).get("backfill") or {}
        if (after or {}).get("syncStatus") != "ready" or done.get("state") != "done" \
                or done.get("jobId") != job["jobId"]:
            problems.append(f"after: syncStatus {(after or {}).get('syncStatus')}, "
                            f"job {done.get('jobId')} {done.get('state')}, want ready/done")
        record("BackfillFunction", "backfill/continue.json (SQS)", "null" if answer is None
               else json.dumps(answer)[:20], "null", elapsed, problems,
               f"job done in {done.get('steps')} steps; syncStatus {(after or {}).get('syncStatus')}"
               + ("; retried: SAM got no answer the first time" if retried else ""))

    fw = max(len(r[0]) for r in rows)
    ew = max(len(r[1]) for r in rows)
    print(f"{'function':<{fw}}  {'event':<{ew}}  status  want   time  result")
    for function, event, status, want, elapsed, problems, note in rows:
        took = f"{elapsed:5.1f}s" if elapsed is not None else "    -"
        line = (f"{function:<{fw}}  {event:<{ew}}  {str(status):>6}  {str(want):<5} {took}  "
                f"{'ok' if not problems else 'FAIL'}")
        if note:
            line += f"  ({note})"
        print(line)
        for problem in problems:
            print(f"{'':<{fw}}    - {problem}")
    print(f"{len(rows)} invokes, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
