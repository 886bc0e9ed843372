"""Drives the official Python client SDK of Durable Functions, azure-functions-durable 1.7
(`DurableOrchestrationClient`), unchanged, against `durable serve`.

Run by crates/cli/tests/sdk_clients.rs with the interpreter of a virtual environment that has
the SDK installed. Environment:

  DURABLE_BINDING  the client binding JSON, as the Functions host passes it to the SDK
  DURABLE_MODE     rpc: the SDK's own calls through `rpcBaseUrl` (durable's key-less local RPC
                   endpoint); webhook: the legacy management URLs with `code=` that the SDK
                   builds from the binding (`create_check_status_response`,
                   `create_http_management_payload`), driven over HTTP as a caller would
  DURABLE_OUTBOX   durable's development outbox file (where the verification SMS go)
  DURABLE_PREFIX   a prefix for the instance ids this run chooses
  DURABLE_REWIND   when set, the rewind scenario instead: the id of a Failed verification
                   whose SMS can now go out; the driver rewinds it (the Rust test answers it)

Any exception or wrong value exits non-zero. The last line on stdout is a JSON summary that the
Rust test checks against the server.
"""

import asyncio
import json
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone

import azure.durable_functions as df
import azure.functions as func
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus as Status
from azure.durable_functions.models.utils import http_utils

ORCHESTRATOR = "E4_SmsPhoneVerification"
EVENT = "SmsChallengeResponse"
DEADLINE_SECONDS = 60

BINDING = os.environ["DURABLE_BINDING"]
MODE = os.environ["DURABLE_MODE"]
OUTBOX = os.environ["DURABLE_OUTBOX"]
PREFIX = os.environ["DURABLE_PREFIX"]
REWIND = os.environ.get("DURABLE_REWIND")

checked = []


def ok(operation):
    """Records an operation that worked as expected."""
    checked.append(operation)


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


async def eventually(what, probe):
    """Re-runs `probe` until it returns something truthy; fails after the deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        value = await probe()
        if value:
            return value
        expect(time.monotonic() < deadline, f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


async def sms_code(instance_id):
    """The code of the verification SMS that `instance_id` sent (the outbox keeps the sending
    activity's idempotency key, which starts with the instance id)."""

    async def probe():
        try:
            with open(OUTBOX, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return None
        for line in lines:
            message = json.loads(line)
            if message["reference"].startswith(instance_id + ":"):
                match = re.fullmatch(r"Your verification code is (\d{4})", message["body"])
                expect(match, f"unexpected SMS: {message['body']}")
                return match.group(1)
        return None

    return await eventually(f"the SMS of {instance_id} is in the outbox", probe)


def leaks(code, text):
    """Whether `text` shows the code as the SMS or an answer would (a bare 4-digit search would
    also match timestamps and hex MACs)."""
    return f'"{code}"' in text or f"is {code}" in text


def wrong_codes(code, n):
    """`n` different wrong codes, as numbers (the sample accepts 42 for "0042")."""
    return [(int(code) + 1 + i) % 10000 for i in range(n)]


def phone(n):
    return f"+1425555{n:04d}"


# ------------------------------------------------------------------------------------ rpc mode


async def status_of(client, instance_id, **options):
    status = await client.get_status(instance_id, **options)
    expect(status, f"no status for {instance_id}")
    return status


async def reach(client, instance_id, wanted):
    async def probe():
        status = await client.get_status(instance_id)
        return status if status and status.runtime_status == wanted else None

    return await eventually(f"{instance_id} is {wanted.value}", probe)


async def expect_exception(what, call, *needles):
    try:
        await call
    except KeyError as e:
        raise AssertionError(f"{what}: the SDK failed reading the error body (KeyError {e})") from e
    except Exception as e:  # noqa: BLE001 - the SDKs raise bare Exceptions
        text = str(e)
        for needle in needles:
            expect(needle in text, f"{what}: {needle!r} not in {text!r}")
        return text
    raise AssertionError(f"{what}: no exception")


async def run_rpc(client, binding):
    t0 = datetime.now(timezone.utc) - timedelta(seconds=2)

    # Start, with and without an instance id.
    right = await client.start_new(ORCHESTRATOR, f"{PREFIX}right", phone(1))
    expect(right == f"{PREFIX}right", f"start_new returned {right!r}")
    ok("start_new with instance id")
    wrong = await client.start_new(ORCHESTRATOR, None, phone(2))
    expect(re.fullmatch(r"[0-9a-f]{32}", wrong), f"a random id is 32 hex digits: {wrong!r}")
    ok("start_new without instance id")

    # A 400 carries ExceptionMessage, which the SDK raises (it used to die with KeyError).
    await expect_exception(
        "start_new of an unknown orchestrator",
        client.start_new("NoSuchOrchestrator", None, None),
        "NoSuchOrchestrator",
        ORCHESTRATOR,
    )
    ok("start_new error (400 ExceptionMessage)")

    # Status with history, input and outputs, once the orchestrator waits for the answer.
    code = await sms_code(right)

    async def waiting_for_answer():
        status = await status_of(client, right, show_history=True, show_history_output=True, show_input=True)
        events = [e["EventType"] for e in getattr(status, "historyEvents", [])]
        return status if "TimerCreated" in events else None

    status = await eventually(f"{right} waits for its answer", waiting_for_answer)
    expect(status.runtime_status == Status.Running, f"status {status.runtime_status}")
    expect(status.name == ORCHESTRATOR and status.instance_id == right, f"{status.to_json()}")
    expect(status.created_time is not None and status.last_updated_time is not None, "times")
    history = status.historyEvents
    expect(history[0]["EventType"] == "ExecutionStarted", f"history starts {history[0]}")
    expect(any(e["EventType"] == "TaskCompleted" for e in history), f"{history}")
    expect(not leaks(code, json.dumps(history)), "the code is in the history")
    ok("get_status with history")

    # The walkthrough: the right code → true.
    await client.raise_event(right, EVENT, int(code))
    done = await reach(client, right, Status.Completed)
    expect(done.output is True, f"the right code gives true: {done.to_json()}")
    ok("raise_event (right code → true)")

    # Four wrong codes → false.
    code = await sms_code(wrong)
    for guess in wrong_codes(code, 4):
        await client.raise_event(wrong, EVENT, guess)
    done = await reach(client, wrong, Status.Completed)
    expect(done.output is False, f"four wrong codes give false: {done.to_json()}")
    ok("raise_event (4 wrong codes → false)")

    # Raising to a finished instance: 410, which the SDK reports as gone.
    await expect_exception("raise_event after completion", client.raise_event(wrong, EVENT, 1), "gone")
    ok("raise_event to a finished instance (410)")
    missing = await client.get_status(f"{PREFIX}no-such-instance")
    expect(not missing, "an unknown id has no status")
    ok("get_status of an unknown id (404)")

    # Suspend, resume, terminate.
    life = await client.start_new(ORCHESTRATOR, f"{PREFIX}life", phone(3))
    await sms_code(life)
    await reach(client, life, Status.Running)
    await client.suspend(life, "maintenance")
    await reach(client, life, Status.Suspended)
    ok("suspend")
    await client.resume(life, "maintenance over")
    await reach(client, life, Status.Running)
    ok("resume")
    await client.terminate(life, "user gave up")
    done = await reach(client, life, Status.Terminated)
    expect(done.output == "user gave up", f"the reason is the output: {done.to_json()}")
    await client.terminate(life, "again")  # 410: accepted by the SDK
    ok("terminate")

    # Restart: a new id by default, or the same one. The SDK returns the 202 body.
    restarted = await client.restart(life)
    expect(isinstance(restarted, dict) and restarted["id"] != life, f"restart returned {restarted!r}")
    restarted = restarted["id"]
    await reach(client, restarted, Status.Running)
    again = await client.restart(life, restart_with_new_instance_id=False)
    expect(again["id"] == life, f"restart with the same id returned {again!r}")
    await reach(client, life, Status.Running)
    ok("restart (new id and same id)")

    # Queries with filters (the Python SDK reads the first page only; it sends no `top` and
    # ignores the continuation token, as against Durable Functions).
    everything = await client.get_status_all()
    ids = {s.instance_id for s in everything}
    expect({right, wrong, life, restarted} <= ids, f"get_status_all: {ids}")
    ok("get_status_all")
    completed = await client.get_status_by(runtime_status=[Status.Completed], instance_id_prefix=PREFIX)
    expect([s.instance_id for s in completed] == [right], f"prefix + status: {[s.to_json() for s in completed]}")
    running = await client.get_status_by(
        created_time_from=t0,
        created_time_to=datetime.now(timezone.utc) + timedelta(seconds=2),
        runtime_status=[Status.Running, Status.Pending],
    )
    expect({s.instance_id for s in running} == {life, restarted}, f"time + status: {[s.to_json() for s in running]}")
    before = await client.get_status_by(created_time_to=t0 - timedelta(days=1))
    expect(before == [], f"nothing was created before the test: {before}")
    ok("get_status_by (time, status and prefix filters)")

    # Purge: a finished instance goes; a running one stays (0 deleted, no exception).
    result = await client.purge_instance_history(right)
    expect(result.instances_deleted == 1, f"purge of a finished instance: {vars(result)}")
    expect(not await client.get_status(right), f"{right} was purged")
    result = await client.purge_instance_history(right)
    expect(result.instances_deleted == 0, "purge of an unknown id: 0")
    ok("purge_instance_history of a finished instance")
    result = await client.purge_instance_history(restarted)
    expect(result.instances_deleted == 0, f"purge of a running instance deletes nothing: {vars(result)}")
    expect((await status_of(client, restarted)).runtime_status == Status.Running, "the running instance stays")
    ok("purge_instance_history of a running instance (kept)")

    # Purge by filter: unfinished statuses are skipped; finished ones go.
    result = await client.purge_instance_history_by(created_time_from=t0, runtime_status=[Status.Running])
    expect(result.instances_deleted == 0, f"purge by Running deletes nothing: {vars(result)}")
    expect((await status_of(client, life)).runtime_status == Status.Running, "running instances stay")
    result = await client.purge_instance_history_by(
        created_time_from=t0, runtime_status=[Status.Completed, Status.Terminated, Status.Failed]
    )
    expect(result.instances_deleted == 1, f"purge by finished statuses: {vars(result)}")
    expect(not await client.get_status(wrong), f"{wrong} was purged")
    ok("purge_instance_history_by")

    # Entities are not supported yet: reported as 501, not as a missing route.
    entity = df.EntityId("counter", "k1")
    await expect_exception("read_entity_state", client.read_entity_state(entity), "501")
    await expect_exception("signal_entity", client.signal_entity(entity, "add", 1), "501")
    ok("entities (501)")

    # The HTTP helpers build management URLs (with code=) that work against durable.
    await check_http_helpers(client, binding, life)
    response = await client.wait_for_completion_or_create_check_status_response(
        http_request("/api/wait"), life, timeout_in_milliseconds=200, retry_interval_in_milliseconds=50
    )
    expect(response.status_code == 202, f"a running instance: check-status response, {response.status_code}")
    await client.terminate(life, "done")
    response = await client.wait_for_completion_or_create_check_status_response(
        http_request("/api/wait"), life, timeout_in_milliseconds=10000, retry_interval_in_milliseconds=50
    )
    expect(response.status_code == 200, f"a terminated instance: 200, {response.status_code}")
    ok("wait_for_completion_or_create_check_status_response")

    return {"right": right, "wrong": wrong, "life": life, "restarted": restarted}


def http_request(path):
    origin = origin_of(json.loads(BINDING)["managementUrls"]["statusQueryGetUri"])
    return func.HttpRequest(method="GET", url=origin + path, body=b"")


def origin_of(url):
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def check_http_helpers(client, binding, instance_id):
    payload = client.create_http_management_payload(instance_id)
    expect(payload["id"] == instance_id, f"{payload}")
    for name, url in payload.items():
        expect(name == "id" or "code=" in url, f"{name} carries the key: {url}")
    status, _, body = http("GET", payload["statusQueryGetUri"])
    expect(status in (200, 202) and body["instanceId"] == instance_id, f"statusQueryGetUri: {status} {body}")
    response = client.create_check_status_response(http_request("/api/start"), instance_id)
    expect(response.status_code == 202, f"create_check_status_response: {response.status_code}")
    expect(response.headers["Location"] == payload["statusQueryGetUri"], f"{dict(response.headers)}")
    ok("create_check_status_response / create_http_management_payload")


# -------------------------------------------------------------------------------- webhook mode


def http(method, url, body=None):
    """One request; returns (status, headers, parsed JSON body or None)."""
    data = None if body is None else body.encode("utf-8")
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=DEADLINE_SECONDS) as response:
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, e.headers, e.read()
    return status, headers, json.loads(raw) if raw.strip() else None


def expect_error(status, body, wanted_status, kind):
    expect(status == wanted_status, f"expected {wanted_status}, got {status}: {body}")
    expect(body["error"] == kind, f"{body}")
    for field in ("Message", "ExceptionMessage", "ExceptionType"):
        expect(isinstance(body.get(field), str) and body[field], f"no {field}: {body}")


async def http_status(url, instance_id, wanted):
    async def probe():
        status, _, body = http("GET", url)
        expect(status in (200, 202), f"status of {instance_id}: {status} {body}")
        return body if body["runtimeStatus"] == wanted else None

    return await eventually(f"{instance_id} is {wanted}", probe)


async def run_webhook(client, binding):
    # The Python SDK calls its APIs only through rpcBaseUrl; without it, what it offers is
    # the management payload built from the binding's URLs, which callers drive over HTTP.
    expect(binding.get("rpcBaseUrl") is None, "webhook mode has no rpcBaseUrl")
    t0 = datetime.now(timezone.utc) - timedelta(seconds=2)
    creation = binding["creationUrls"]["createNewInstancePostUri"]

    def start_url(name, instance_id=None):
        path = f"/{urllib.parse.quote(instance_id, safe='')}" if instance_id else ""
        return creation.replace("{functionName}", name).replace("[/{instanceId}]", path)

    def urls(instance_id):
        return client.create_http_management_payload(instance_id)

    # Start through the binding's creation URL, with and without an id.
    status, headers, body = http("POST", start_url(ORCHESTRATOR, f"{PREFIX}right"), json.dumps(phone(11)))
    expect(status == 202 and body["id"] == f"{PREFIX}right", f"start: {status} {body}")
    right = body["id"]
    expect(body["statusQueryGetUri"] == urls(right)["statusQueryGetUri"], f"{body} vs {urls(right)}")
    expect(headers["Location"] == body["statusQueryGetUri"], "Location")
    ok("start with instance id (createNewInstancePostUri)")
    status, _, body = http("POST", start_url(ORCHESTRATOR), json.dumps(phone(12)))
    expect(status == 202 and re.fullmatch(r"[0-9a-f]{32}", body["id"]), f"start: {status} {body}")
    wrong = body["id"]
    ok("start without instance id")
    status, _, body = http("POST", start_url("NoSuchOrchestrator"), "null")
    expect_error(status, body, 400, "UnknownOrchestrator")
    expect(ORCHESTRATOR in body["ExceptionMessage"], f"{body}")
    ok("start error (400 with ExceptionMessage)")

    # The walkthrough through the payload's URLs.
    code = await sms_code(right)

    async def waiting_for_answer():
        url = urls(right)["statusQueryGetUri"] + "&showHistory=true&showHistoryOutput=true"
        status, _, body = http("GET", url)
        expect(status == 202, f"a running instance is 202: {status} {body}")
        events = [e["EventType"] for e in body.get("historyEvents", [])]
        return body if "TimerCreated" in events else None

    body = await eventually(f"{right} waits for its answer", waiting_for_answer)
    expect(body["input"] == phone(11) and body["runtimeStatus"] == "Running", f"{body}")
    expect(not leaks(code, json.dumps(body)), "the code is in the status")
    ok("status with history (statusQueryGetUri)")
    raise_url = urls(right)["sendEventPostUri"].replace("{eventName}", EVENT)
    status, _, body = http("POST", raise_url, json.dumps(code))
    expect(status == 202, f"raise: {status} {body}")
    done = await http_status(urls(right)["statusQueryGetUri"], right, "Completed")
    expect(done["output"] is True, f"the right code gives true: {done}")
    ok("raise event (sendEventPostUri, right code → true)")
    code = await sms_code(wrong)
    for guess in wrong_codes(code, 4):
        status, _, body = http("POST", urls(wrong)["sendEventPostUri"].replace("{eventName}", EVENT), str(guess))
        expect(status == 202, f"raise: {status} {body}")
    done = await http_status(urls(wrong)["statusQueryGetUri"], wrong, "Completed")
    expect(done["output"] is False, f"four wrong codes give false: {done}")
    status, _, body = http("POST", urls(wrong)["sendEventPostUri"].replace("{eventName}", EVENT), "1")
    expect_error(status, body, 410, "InstanceFinished")
    ok("raise event (4 wrong codes → false, then 410)")

    # Suspend, resume, terminate, restart.
    status, _, body = http("POST", start_url(ORCHESTRATOR, f"{PREFIX}life"), json.dumps(phone(13)))
    life = body["id"]
    life_urls = urls(life)
    await sms_code(life)
    await http_status(life_urls["statusQueryGetUri"], life, "Running")
    reason = urllib.parse.quote("maintenance window")
    status, _, _ = http("POST", life_urls["suspendPostUri"].replace("{text}", reason))
    expect(status == 202, f"suspend: {status}")
    await http_status(life_urls["statusQueryGetUri"], life, "Suspended")
    status, _, _ = http("POST", life_urls["resumePostUri"].replace("{text}", reason))
    expect(status == 202, f"resume: {status}")
    await http_status(life_urls["statusQueryGetUri"], life, "Running")
    ok("suspend / resume (suspendPostUri, resumePostUri)")
    status, _, _ = http("POST", life_urls["terminatePostUri"].replace("{text}", urllib.parse.quote("user gave up")))
    expect(status == 202, f"terminate: {status}")
    done = await http_status(life_urls["statusQueryGetUri"], life, "Terminated")
    expect(done["output"] == "user gave up", f"{done}")
    ok("terminate (terminatePostUri)")
    status, _, body = http("POST", life_urls["restartPostUri"])
    expect(status == 202 and body["id"] != life, f"restart: {status} {body}")
    restarted = body["id"]
    await http_status(urls(restarted)["statusQueryGetUri"], restarted, "Running")
    ok("restart (restartPostUri)")

    # Queries with filters and paging, from the status URL with the id left out.
    instances = urls("")["statusQueryGetUri"]
    since = urllib.parse.quote(t0.isoformat())
    status, _, body = http("GET", f"{instances}&runtimeStatus=Completed&instanceIdPrefix={PREFIX}")
    expect(status == 200 and [s["instanceId"] for s in body] == [right], f"filters: {status} {body}")
    seen, token, pages = [], None, 0
    while True:
        request = urllib.request.Request(f"{instances}&createdTimeFrom={since}&top=1")
        if token:
            request.add_header("x-ms-continuation-token", token)
        with urllib.request.urlopen(request, timeout=DEADLINE_SECONDS) as response:
            seen += [s["instanceId"] for s in json.loads(response.read())]
            token = response.headers.get("x-ms-continuation-token")
        pages += 1
        if not token:
            break
    expect(sorted(seen) == sorted({right, wrong, life, restarted}), f"paged: {seen}")
    expect(pages >= 4, f"pages of one: {pages}")
    ok("list with filters and paging (x-ms-continuation-token)")

    # Purge through purgeHistoryDeleteUri: finished → deleted, running → kept.
    status, _, body = http("DELETE", urls(right)["purgeHistoryDeleteUri"])
    expect((status, body) == (200, {"instancesDeleted": 1}), f"purge: {status} {body}")
    status, _, body = http("DELETE", urls(right)["purgeHistoryDeleteUri"])
    expect_error(status, body, 404, "InstanceNotFound")
    ok("purge of a finished instance (purgeHistoryDeleteUri)")
    status, _, body = http("DELETE", urls(restarted)["purgeHistoryDeleteUri"])
    expect(status == 200 and body["instancesDeleted"] == 0 and "force=true" in body["message"], f"{status} {body}")
    await http_status(urls(restarted)["statusQueryGetUri"], restarted, "Running")
    ok("purge of a running instance (kept, 200 with 0 deleted)")
    status, _, body = http("DELETE", f"{instances}&createdTimeFrom={since}&runtimeStatus=Running")
    expect_error(status, body, 404, "NotFound")
    await http_status(urls(restarted)["statusQueryGetUri"], restarted, "Running")
    status, _, body = http("DELETE", f"{instances}&createdTimeFrom={since}&runtimeStatus=Completed,Terminated")
    expect((status, body) == (200, {"instancesDeleted": 2}), f"purge by filter: {status} {body}")
    ok("purge by filter")

    # Entities: 501 with Durable Functions' error fields.
    entity_url = f"{binding['baseUrl']}/entities/counter/k1?{binding['requiredQueryStringParameters']}"
    for method in ("GET", "POST", "DELETE"):
        status, _, body = http(method, entity_url, None if method != "POST" else "1")
        expect_error(status, body, 501, "NotImplemented")
    ok("entities (501)")

    await check_http_helpers(client, binding, restarted)
    return {"right": right, "wrong": wrong, "life": life, "restarted": restarted}


# ------------------------------------------------------------------------------------- rewind


async def rewind_rpc(client, failed):
    """`client.rewind` (the SDK calls it through rpcBaseUrl only)."""
    await expect_exception(
        "rewind of an unknown id", client.rewind(f"{PREFIX}no-such-instance", "retry"), "No instance with ID"
    )
    ok("rewind of an unknown id (404)")
    await client.rewind(failed, "number allowed")
    status = await status_of(client, failed)
    expect(status.runtime_status != Status.Failed, f"rewound: {status.to_json()}")
    await reach(client, failed, Status.Running)
    ok("rewind of a Failed instance")
    # 412: the SDK knows only 410 here, so it raises the payload, which holds durable's message.
    await expect_exception("rewind of a running instance", client.rewind(failed, "again"), "412", "only Failed")
    ok("rewind of an instance that is not Failed (412)")


async def rewind_webhook(client, failed):
    """The management payload's `rewindPostUri`, driven over HTTP."""
    url = client.create_http_management_payload(failed)["rewindPostUri"]
    reason = urllib.parse.quote("number allowed")
    unknown = client.create_http_management_payload(f"{PREFIX}no-such-instance")["rewindPostUri"]
    status, _, body = http("POST", unknown.replace("{text}", reason))
    expect_error(status, body, 404, "InstanceNotFound")
    ok("rewind of an unknown id (404)")
    status, _, body = http("POST", url.replace("{text}", reason))
    expect(status == 202, f"rewind: {status} {body}")
    statuses = client.create_http_management_payload(failed)["statusQueryGetUri"]
    await http_status(statuses, failed, "Running")
    ok("rewind of a Failed instance")
    status, _, body = http("POST", url.replace("{text}", reason))
    expect_error(status, body, 412, "NotFailed")
    ok("rewind of an instance that is not Failed (412)")


async def main():
    binding = json.loads(BINDING)
    client = df.DurableOrchestrationClient(BINDING)
    try:
        if REWIND and MODE == "rpc":
            await rewind_rpc(client, REWIND)
            ids = {"rewound": REWIND}
        elif REWIND:
            await rewind_webhook(client, REWIND)
            ids = {"rewound": REWIND}
        elif MODE == "rpc":
            ids = await run_rpc(client, binding)
        elif MODE == "webhook":
            ids = await run_webhook(client, binding)
        else:
            raise SystemExit(f"unknown DURABLE_MODE {MODE!r}")
    finally:
        await http_utils._close_session()
    print(json.dumps({"sdk": "azure-functions-durable", "mode": MODE, "ids": ids, "checked": checked}))


if __name__ == "__main__":
    # A stuck call must fail the test, not hang it.
    signal.signal(signal.SIGALRM, lambda *_: sys.exit("the driver took longer than 300 s"))
    signal.alarm(300)
    asyncio.run(main())
