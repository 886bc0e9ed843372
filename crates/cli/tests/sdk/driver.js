"use strict";
/*
 * Drives the official JavaScript client SDK of Durable Functions, durable-functions 3.5
 * (`DurableClient`, obtained with `getClient` from a client binding), unchanged, against
 * `durable serve`.
 *
 * Run by crates/cli/tests/sdk_clients.rs with NODE_PATH pointing at an `npm ci` of
 * package.json/package-lock.json. Environment:
 *
 *   DURABLE_BINDING  the client binding JSON, as the Functions host passes it to the SDK; with
 *                    `rpcBaseUrl` (durable's key-less local RPC endpoint) the SDK calls that,
 *                    without it the SDK uses the legacy creation/management URLs with `code=`
 *   DURABLE_MODE     rpc or webhook (which of the two the binding is; for the summary)
 *   DURABLE_OUTBOX   durable's development outbox file (where the verification SMS go)
 *   DURABLE_PREFIX   a prefix for the instance ids this run chooses
 *   DURABLE_REWIND   when set, the rewind scenario instead: the id of a Failed verification
 *                    whose SMS can now go out; the driver rewinds it (the Rust test answers it)
 *
 * Any exception or wrong value exits non-zero. The last line on stdout is a JSON summary that
 * the Rust test checks against the server.
 */

const fs = require("fs");
const df = require("durable-functions");
const { HttpRequest, InvocationContext } = require("@azure/functions");

const ORCHESTRATOR = "E4_SmsPhoneVerification";
const EVENT = "SmsChallengeResponse";
const DEADLINE_MS = 60000;
/** Instances started to make the list span pages (Durable Functions' page size is 100). */
const PAGED_INSTANCES = 105;

const binding = JSON.parse(process.env.DURABLE_BINDING);
const mode = process.env.DURABLE_MODE;
const outbox = process.env.DURABLE_OUTBOX;
const prefix = process.env.DURABLE_PREFIX;
const checked = [];

function ok(operation) {
    checked.push(operation);
}

function expect(condition, message) {
    if (!condition) {
        throw new Error(`assertion failed: ${message}`);
    }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Re-runs `probe` until it returns something truthy; fails after the deadline. */
async function eventually(what, probe) {
    const deadline = Date.now() + DEADLINE_MS;
    for (;;) {
        const value = await probe();
        if (value) {
            return value;
        }
        expect(Date.now() < deadline, `timed out waiting until ${what}`);
        await sleep(50);
    }
}

/** The code of the SMS `instanceId` sent (the outbox keeps the activity's idempotency key,
 * which starts with the instance id). */
function smsCode(instanceId) {
    return eventually(`the SMS of ${instanceId} is in the outbox`, async () => {
        if (!fs.existsSync(outbox)) {
            return null;
        }
        for (const line of fs.readFileSync(outbox, "utf8").split("\n").filter(Boolean)) {
            const message = JSON.parse(line);
            if (message.reference.startsWith(`${instanceId}:`)) {
                const match = /^Your verification code is (\d{4})$/.exec(message.body);
                expect(match, `unexpected SMS: ${message.body}`);
                return match[1];
            }
        }
        return null;
    });
}

/** `n` different wrong codes, as strings ("0042" style). */
function wrongCodes(code, n) {
    return Array.from({ length: n }, (_, i) => String((Number(code) + 1 + i) % 10000).padStart(4, "0"));
}

const phone = (n) => `+1425555${String(n).padStart(4, "0")}`;

async function reach(client, instanceId, wanted) {
    return eventually(`${instanceId} is ${wanted}`, async () => {
        const status = await client.getStatus(instanceId);
        return status.runtimeStatus === wanted ? status : null;
    });
}

async function rejects(what, promise, ...needles) {
    let error;
    try {
        await promise;
    } catch (e) {
        error = e;
    }
    expect(error, `${what}: no error`);
    for (const needle of needles) {
        expect(String(error.message).includes(needle), `${what}: ${JSON.stringify(needle)} not in ${error.message}`);
    }
    return error.message;
}

/** A client from the binding, the way a function gets it: `getClient(context)`. */
function clientFromBinding() {
    // On a real host WEBSITE_HOSTNAME names the app; without it getClient rewrites the
    // binding's URLs to http://localhost:7071.
    process.env.WEBSITE_HOSTNAME = new URL(binding.managementUrls.statusQueryGetUri).host;
    const input = df.input.durableClient();
    const context = new InvocationContext({
        invocationId: "00000000-0000-0000-0000-000000000000",
        functionName: "sdk-driver",
        options: { extraInputs: [input] },
    });
    context.extraInputs.set(input, binding);
    return df.getClient(context);
}

/** The rewind scenario: `client.rewind` (through rpcBaseUrl, or the binding's rewindPostUri). */
async function rewind(client, failed) {
    // The SDK rejects a 404 or 412 with `new Error(response.data)`: durable's JSON error body
    // makes that "[object Object]", so the status is what can be checked.
    await rejects("rewind of an unknown id", client.rewind(`${prefix}no-such-instance`, "retry"));
    await rejects("getStatus of an unknown id", client.getStatus(`${prefix}no-such-instance`), "404");
    ok("rewind of an unknown id (404)");
    await client.rewind(failed, "number allowed");
    const status = await client.getStatus(failed);
    expect(status.runtimeStatus !== "Failed", `rewound: ${JSON.stringify(status)}`);
    await reach(client, failed, "Running");
    ok("rewind of a Failed instance");
    await rejects("rewind of a running instance", client.rewind(failed, "again"));
    expect((await client.getStatus(failed)).runtimeStatus === "Running", "still running");
    ok("rewind of an instance that is not Failed (412)");
    console.log(JSON.stringify({ sdk: "durable-functions", mode, ids: { rewound: failed }, checked }));
}

async function main() {
    expect(mode === (binding.rpcBaseUrl ? "rpc" : "webhook"), `the binding does not match mode ${mode}`);
    const client = clientFromBinding();
    if (process.env.DURABLE_REWIND) {
        return rewind(client, process.env.DURABLE_REWIND);
    }
    const t0 = new Date(Date.now() - 2000);

    // Start, with and without an instance id.
    const right = await client.startNew(ORCHESTRATOR, { instanceId: `${prefix}right`, input: phone(21) });
    expect(right === `${prefix}right`, `startNew returned ${right}`);
    ok("startNew with instance id");
    const wrong = await client.startNew(ORCHESTRATOR, { input: phone(22) });
    expect(/^[0-9a-f]{32}$/.test(wrong), `a random id is 32 hex digits: ${wrong}`);
    ok("startNew without instance id");
    await rejects("startNew of an unknown orchestrator", client.startNew("NoSuchOrchestrator"), "400", ORCHESTRATOR);
    ok("startNew error (400)");

    // Status, once the orchestrator waits for the answer. The SDK's status object reads
    // `history`, but Durable Functions sends `historyEvents` (and so does durable): the
    // history is checked through the status URL below.
    const code = await smsCode(right);
    const waiting = await eventually(`${right} is Running`, async () => {
        const status = await client.getStatus(right, { showHistory: true, showHistoryOutput: true, showInput: true });
        return status.runtimeStatus === "Running" ? status : null;
    });
    expect(waiting.name === ORCHESTRATOR && waiting.instanceId === right, JSON.stringify(waiting));
    expect(waiting.input === phone(21), `input: ${JSON.stringify(waiting.input)}`);
    expect(waiting.createdTime instanceof Date && !isNaN(waiting.createdTime), "createdTime");
    const statusUrl = client.createHttpManagementPayload(right).statusQueryGetUri;
    const history = await eventually(`${right} waits for its answer`, async () => {
        const body = await (await fetch(`${statusUrl}&showHistory=true&showHistoryOutput=true`)).json();
        return body.historyEvents.some((e) => e.EventType === "TimerCreated") ? body.historyEvents : null;
    });
    expect(history[0].EventType === "ExecutionStarted", JSON.stringify(history[0]));
    // As the SMS or an answer would show it (a bare 4-digit search would match timestamps).
    const text = JSON.stringify(history);
    expect(!text.includes(`"${code}"`) && !text.includes(`is ${code}`), "the code is in the history");
    ok("getStatus (with showHistory options; history through statusQueryGetUri)");

    // The walkthrough: the right code → true; four wrong ones → false.
    await client.raiseEvent(right, EVENT, code);
    let done = await reach(client, right, "Completed");
    expect(done.output === true, `the right code gives true: ${JSON.stringify(done)}`);
    ok("raiseEvent (right code → true)");
    const wrongCode = await smsCode(wrong);
    for (const guess of wrongCodes(wrongCode, 4)) {
        await client.raiseEvent(wrong, EVENT, guess);
    }
    done = await reach(client, wrong, "Completed");
    expect(done.output === false, `four wrong codes give false: ${JSON.stringify(done)}`);
    ok("raiseEvent (4 wrong codes → false)");
    await client.raiseEvent(wrong, EVENT, "0000"); // 410: accepted by the SDK
    ok("raiseEvent to a finished instance (410)");
    await rejects("getStatus of an unknown id", client.getStatus(`${prefix}no-such-instance`), "404");
    ok("getStatus of an unknown id (404)");

    // Suspend, resume, terminate; restart through the management payload (the SDK has no
    // restart method).
    const life = await client.startNew(ORCHESTRATOR, { instanceId: `${prefix}life`, input: phone(23) });
    await smsCode(life);
    await reach(client, life, "Running");
    await client.suspend(life, "maintenance");
    await reach(client, life, "Suspended");
    ok("suspend");
    await client.resume(life, "maintenance over");
    await reach(client, life, "Running");
    ok("resume");
    await client.terminate(life, "user gave up");
    done = await reach(client, life, "Terminated");
    expect(done.output === "user gave up", `the reason is the output: ${JSON.stringify(done)}`);
    await client.terminate(life, "again"); // 410: accepted by the SDK
    ok("terminate");
    const restart = await fetch(client.createHttpManagementPayload(life).restartPostUri, { method: "POST" });
    expect(restart.status === 202, `restartPostUri: ${restart.status}`);
    const restarted = (await restart.json()).id;
    expect(restarted && restarted !== life, `restart gave ${restarted}`);
    await reach(client, restarted, "Running");
    ok("restart (restartPostUri)");

    // Enough instances for the list to span pages; the SDK follows x-ms-continuation-token.
    const paged = [];
    for (let batch = 0; batch < PAGED_INSTANCES; batch += 15) {
        const starts = [];
        for (let i = batch; i < Math.min(batch + 15, PAGED_INSTANCES); i++) {
            const id = `${prefix}page-${String(i).padStart(3, "0")}`;
            starts.push(client.startNew(ORCHESTRATOR, { instanceId: id, input: phone(100 + i) }));
        }
        paged.push(...(await Promise.all(starts)));
    }
    const all = await client.getStatusAll();
    const allIds = all.map((s) => s.instanceId);
    expect(new Set(allIds).size === allIds.length, "getStatusAll returned an instance twice");
    expect(allIds.length > 100, `getStatusAll followed the continuation token: ${allIds.length}`);
    for (const id of [right, wrong, life, restarted, ...paged]) {
        expect(allIds.includes(id), `getStatusAll misses ${id}`);
    }
    ok(`getStatusAll (${allIds.length} instances over several pages)`);
    const completed = await client.getStatusBy({
        createdTimeFrom: t0,
        createdTimeTo: new Date(Date.now() + 2000),
        runtimeStatus: [df.OrchestrationRuntimeStatus.Completed],
    });
    expect(
        JSON.stringify(completed.map((s) => s.instanceId).sort()) === JSON.stringify([right, wrong].sort()),
        `getStatusBy Completed: ${JSON.stringify(completed)}`,
    );
    const unfinished = await client.getStatusBy({
        createdTimeFrom: t0,
        runtimeStatus: [df.OrchestrationRuntimeStatus.Running, df.OrchestrationRuntimeStatus.Pending],
    });
    expect(unfinished.length === PAGED_INSTANCES + 1, `getStatusBy Running/Pending: ${unfinished.length}`);
    const before = await client.getStatusBy({ createdTimeFrom: new Date(0), createdTimeTo: new Date(t0 - 86400000) });
    expect(before.length === 0, `nothing was created before the test: ${JSON.stringify(before)}`);
    ok("getStatusBy (time and status filters)");

    // Purge: a finished instance goes; a running one stays (0 deleted, no error).
    let result = await client.purgeInstanceHistory(right);
    expect(result.instancesDeleted === 1, `purge of a finished instance: ${JSON.stringify(result)}`);
    await rejects("getStatus after purge", client.getStatus(right), "404");
    result = await client.purgeInstanceHistory(right);
    expect(result.instancesDeleted === 0, `purge of an unknown id: ${JSON.stringify(result)}`);
    ok("purgeInstanceHistory of a finished instance");
    result = await client.purgeInstanceHistory(restarted);
    expect(result.instancesDeleted === 0, `purge of a running instance deletes nothing: ${JSON.stringify(result)}`);
    expect((await client.getStatus(restarted)).runtimeStatus === "Running", "the running instance stays");
    ok("purgeInstanceHistory of a running instance (kept)");

    // Purge by filter: unfinished statuses are skipped, finished ones go.
    result = await client.purgeInstanceHistoryBy({
        createdTimeFrom: t0,
        runtimeStatus: [df.OrchestrationRuntimeStatus.Running],
    });
    expect(result.instancesDeleted === 0, `purge by Running deletes nothing: ${JSON.stringify(result)}`);
    expect((await client.getStatus(paged[0])).runtimeStatus === "Running", "running instances stay");
    result = await client.purgeInstanceHistoryBy({
        createdTimeFrom: t0,
        runtimeStatus: [df.OrchestrationRuntimeStatus.Completed, df.OrchestrationRuntimeStatus.Terminated],
    });
    expect(result.instancesDeleted === 2, `purge by finished statuses: ${JSON.stringify(result)}`);
    await rejects("getStatus after purge by filter", client.getStatus(wrong), "404");
    ok("purgeInstanceHistoryBy");

    // Entities are not supported yet: reported as 501 with a message.
    const entity = new df.EntityId("counter", "k1");
    await rejects("readEntityState", client.readEntityState(entity), "501", "entities are not supported");
    await rejects("signalEntity", client.signalEntity(entity, "add", 1), "501", "entities are not supported");
    ok("readEntityState / signalEntity (501)");

    // The HTTP helpers: management URLs with code= that work against durable.
    const origin = new URL(binding.managementUrls.statusQueryGetUri).origin;
    const request = new HttpRequest({ method: "GET", url: `${origin}/api/start` });
    const payload = client.createHttpManagementPayload(restarted);
    for (const [name, url] of Object.entries(payload)) {
        expect(name === "id" || url.includes("code="), `${name} carries the key: ${url}`);
    }
    const response = client.createCheckStatusResponse(request, restarted);
    expect(response.status === 202, `createCheckStatusResponse: ${response.status}`);
    expect(response.headers.get("Location") === payload.statusQueryGetUri, "Location");
    const viaUrl = await fetch(payload.statusQueryGetUri);
    expect(viaUrl.status === 202 && (await viaUrl.json()).instanceId === restarted, `statusQueryGetUri: ${viaUrl.status}`);
    ok("createCheckStatusResponse / createHttpManagementPayload");
    let waited = await client.waitForCompletionOrCreateCheckStatusResponse(request, restarted, {
        timeoutInMilliseconds: 200,
        retryIntervalInMilliseconds: 50,
    });
    expect(waited.status === 202, `still running: ${waited.status}`);
    await client.terminate(restarted, "done");
    waited = await client.waitForCompletionOrCreateCheckStatusResponse(request, restarted, {
        timeoutInMilliseconds: 10000,
        retryIntervalInMilliseconds: 50,
    });
    expect(waited.status === 200, `terminated: ${waited.status}`);
    ok("waitForCompletionOrCreateCheckStatusResponse");

    const ids = { right, wrong, life, restarted, paged: paged.length };
    console.log(JSON.stringify({ sdk: "durable-functions", mode, ids, checked }));
}

// A stuck call must fail the test, not hang it.
setTimeout(() => {
    console.error("the driver took longer than 300 s");
    process.exit(3);
}, 300000).unref();

main().catch((e) => {
    console.error(e && e.stack ? e.stack : e);
    process.exit(1);
});
