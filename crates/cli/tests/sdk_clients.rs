//! The official Durable Functions client SDKs, unchanged, against the real binary:
//! `azure-functions-durable` 1.7 (Python, `DurableOrchestrationClient`) and `durable-functions`
//! 3.5 (JavaScript, `DurableClient`), each built from a client binding that points at durable,
//! in rpc mode (`rpcBaseUrl` = the key-less local RPC endpoint) and in the legacy webhook mode
//! (management URLs with `code=`). The drivers in `tests/sdk/` run every client operation and
//! assert the results; this file installs the SDKs (see `sdk/mod.rs`), runs the drivers and
//! checks what they report against the server. Also: the local RPC endpoint itself.

mod common;
mod sdk;

use common::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};

/// The server of one SDK run: the development outbox (no Twilio), a window no test outlasts,
/// the local RPC endpoint on a free port, and the sample's abuse limits lifted (the drivers
/// start over a hundred instances from one address, to page through lists; the limits have
/// tests of their own).
fn serve(dir: &tempfile::TempDir) -> Durable {
    let args = ["--local-rpc-port", "0", "--verification-window", "1h", "--no-verification-limits"];
    Durable::start(&dir.path().join("data"), &Launch { args: args.map(String::from).to_vec(), twilio: None })
}

/// The client binding the Functions host passes to the SDKs (`BindingHelper.cs` of the Durable
/// Functions extension), pointing at `durable`: creation and management URLs with the key, and
/// in rpc mode `rpcBaseUrl` = the local RPC endpoint.
fn binding(durable: &Durable, rpc: bool) -> Value {
    let webhook = format!("{}/runtime/webhooks/durabletask", durable.base);
    let instance = format!("{webhook}/instances/INSTANCEID");
    let query = format!("taskHub=DurableHub&connection=Storage&code={KEY}");
    let mut binding = json!({
        "taskHubName": "DurableHub",
        "creationUrls": {
            "createNewInstancePostUri": format!("{webhook}/orchestrators/{{functionName}}[/{{instanceId}}]?code={KEY}"),
            "createAndWaitOnNewInstancePostUri": format!(
                "{webhook}/orchestrators/{{functionName}}[/{{instanceId}}]?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&code={KEY}"
            ),
        },
        "managementUrls": {
            "id": "INSTANCEID",
            "statusQueryGetUri": format!("{instance}?{query}"),
            "sendEventPostUri": format!("{instance}/raiseEvent/{{eventName}}?{query}"),
            "terminatePostUri": format!("{instance}/terminate?reason={{text}}&{query}"),
            "rewindPostUri": format!("{instance}/rewind?reason={{text}}&{query}"),
            "purgeHistoryDeleteUri": format!("{instance}?{query}"),
            "restartPostUri": format!("{instance}/restart?{query}"),
            "suspendPostUri": format!("{instance}/suspend?reason={{text}}&{query}"),
            "resumePostUri": format!("{instance}/resume?reason={{text}}&{query}"),
        },
        "baseUrl": webhook,
        "requiredQueryStringParameters": format!("code={KEY}"),
    });
    if rpc {
        let local = durable.local_rpc.clone().expect("the server runs the local RPC endpoint");
        binding["rpcBaseUrl"] = Value::String(local);
    }
    binding
}

/// The environment of a driver.
fn driver_env(command: &mut Command, durable: &Durable, rpc: bool, prefix: &str) {
    command
        .env("DURABLE_BINDING", binding(durable, rpc).to_string())
        .env("DURABLE_MODE", if rpc { "rpc" } else { "webhook" })
        .env("DURABLE_OUTBOX", durable.data_dir.join("outbox.jsonl"))
        .env("DURABLE_PREFIX", prefix);
}

/// Which driver to run, and (for the rewind scenario) the Failed instance it rewinds.
#[derive(Clone, Copy)]
enum Sdk {
    Python,
    JavaScript,
}

async fn run_driver(sdk: Sdk, durable: &Durable, rpc: bool, prefix: &str, rewind: Option<&str>) -> Value {
    let mut command = match sdk {
        Sdk::Python => {
            let python = tokio::task::spawn_blocking(sdk::python).await.unwrap();
            let mut command = Command::new(python);
            command.arg(sdk::file("driver.py"));
            command
        }
        Sdk::JavaScript => {
            let node_modules = tokio::task::spawn_blocking(sdk::node_modules).await.unwrap();
            let mut command = Command::new("node");
            command.arg(sdk::file("driver.js")).env("NODE_PATH", node_modules);
            command
        }
    };
    driver_env(&mut command, durable, rpc, prefix);
    if let Some(id) = rewind {
        command.env("DURABLE_REWIND", id);
    }
    tokio::task::spawn_blocking(move || sdk::run_driver(command)).await.unwrap()
}

async fn run_python(durable: &Durable, rpc: bool, prefix: &str) -> Value {
    run_driver(Sdk::Python, durable, rpc, prefix, None).await
}

async fn run_javascript(durable: &Durable, rpc: bool, prefix: &str) -> Value {
    run_driver(Sdk::JavaScript, durable, rpc, prefix, None).await
}

/// The runtime status of `id` as the server reports it (None once purged).
async fn status(durable: &Durable, id: &str) -> Option<String> {
    let url = durable.url(&format!("/runtime/webhooks/durabletask/instances/{id}"));
    let response = durable.http.get(url).header("x-functions-key", KEY).send().await.unwrap();
    if response.status() == 404 {
        return None;
    }
    let body: Value = response.json().await.unwrap();
    Some(body["runtimeStatus"].as_str().unwrap().to_owned())
}

/// Checks a driver's summary: the operations it reports, and the final state of its instances
/// on the server (`None`: purged).
async fn check(durable: &Durable, summary: &Value, operations: &[&str], expected: &[(&str, Option<&str>)]) {
    eprintln!("driver summary: {summary}");
    let checked: Vec<&str> =
        summary["checked"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    for operation in operations {
        assert!(checked.iter().any(|c| c.starts_with(operation)), "{operation} was not checked: {summary}");
    }
    for (key, wanted) in expected {
        let id = summary["ids"][key].as_str().unwrap_or_else(|| panic!("no id {key}: {summary}"));
        assert_eq!(status(durable, id).await.as_deref(), *wanted, "{key} ({id}): {summary}");
    }
    assert!(!durable.log().contains(KEY), "the system key appears in the log");
}

const PYTHON_RPC: &[&str] = &[
    "start_new with instance id",
    "start_new without instance id",
    "start_new error (400 ExceptionMessage)",
    "get_status with history",
    "raise_event (right code → true)",
    "raise_event (4 wrong codes → false)",
    "raise_event to a finished instance (410)",
    "get_status of an unknown id (404)",
    "suspend",
    "resume",
    "terminate",
    "restart (new id and same id)",
    "get_status_all",
    "get_status_by (time, status and prefix filters)",
    "purge_instance_history of a finished instance",
    "purge_instance_history of a running instance (kept)",
    "purge_instance_history_by",
    "entities (501)",
    "create_check_status_response / create_http_management_payload",
    "wait_for_completion_or_create_check_status_response",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_in_rpc_mode_through_the_keyless_local_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let durable = serve(&dir);
    let summary = run_python(&durable, true, "py-rpc-").await;
    let expected =
        [("right", None), ("wrong", None), ("life", Some("Terminated")), ("restarted", Some("Running"))];
    check(&durable, &summary, PYTHON_RPC, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_in_webhook_mode_with_the_key_in_the_urls() {
    let dir = tempfile::tempdir().unwrap();
    let durable = serve(&dir);
    let summary = run_python(&durable, false, "py-webhook-").await;
    let operations = [
        "start with instance id (createNewInstancePostUri)",
        "start without instance id",
        "start error (400 with ExceptionMessage)",
        "status with history (statusQueryGetUri)",
        "raise event (sendEventPostUri, right code → true)",
        "raise event (4 wrong codes → false, then 410)",
        "suspend / resume (suspendPostUri, resumePostUri)",
        "terminate (terminatePostUri)",
        "restart (restartPostUri)",
        "list with filters and paging (x-ms-continuation-token)",
        "purge of a finished instance (purgeHistoryDeleteUri)",
        "purge of a running instance (kept, 200 with 0 deleted)",
        "purge by filter",
        "entities (501)",
        "create_check_status_response / create_http_management_payload",
    ];
    let expected = [("right", None), ("wrong", None), ("life", None), ("restarted", Some("Running"))];
    check(&durable, &summary, &operations, &expected).await;
}

const JAVASCRIPT: &[&str] = &[
    "startNew with instance id",
    "startNew without instance id",
    "startNew error (400)",
    "getStatus (with showHistory options",
    "raiseEvent (right code → true)",
    "raiseEvent (4 wrong codes → false)",
    "raiseEvent to a finished instance (410)",
    "getStatus of an unknown id (404)",
    "suspend",
    "resume",
    "terminate",
    "restart (restartPostUri)",
    "getStatusAll (",
    "getStatusBy (time and status filters)",
    "purgeInstanceHistory of a finished instance",
    "purgeInstanceHistory of a running instance (kept)",
    "purgeInstanceHistoryBy",
    "readEntityState / signalEntity (501)",
    "createCheckStatusResponse / createHttpManagementPayload",
    "waitForCompletionOrCreateCheckStatusResponse",
];

/// Checks the JavaScript driver's instances: the paged ones are all still running.
async fn check_javascript(durable: &Durable, summary: &Value, prefix: &str) {
    let expected = [("right", None), ("wrong", None), ("life", None), ("restarted", Some("Terminated"))];
    check(durable, summary, JAVASCRIPT, &expected).await;
    let paged = summary["ids"]["paged"].as_u64().unwrap();
    assert!(paged > 100, "{summary}");
    let url = durable.url(&format!(
        "/runtime/webhooks/durabletask/instances?instanceIdPrefix={prefix}page-&runtimeStatus=Running&top=1000"
    ));
    let list: Value =
        durable.http.get(url).header("x-functions-key", KEY).send().await.unwrap().json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len() as u64, paged, "the paged instances survived every purge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_sdk_in_rpc_mode_through_the_keyless_local_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let durable = serve(&dir);
    let summary = run_javascript(&durable, true, "js-rpc-").await;
    check_javascript(&durable, &summary, "js-rpc-").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_sdk_in_webhook_mode_with_the_key_in_the_urls() {
    let dir = tempfile::tempdir().unwrap();
    let durable = serve(&dir);
    let summary = run_javascript(&durable, false, "js-webhook-").await;
    check_javascript(&durable, &summary, "js-webhook-").await;
}

// ---------------------------------------------------------------------------------- rewind

/// The rewind scenario, in rpc and webhook mode: Twilio refuses the number (a trial account
/// whose allow-list is empty), so the SMS activity fails for good and the verification is
/// `Failed`; once the number is allowed, the SDK rewinds the instance (and sees the 404 of an
/// unknown id and the refusal for an instance that is not Failed), the SMS goes out again, and
/// the right code completes the verification with `true`.
async fn sdk_rewinds_failed_verifications(sdk: Sdk, prefix: &str) {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let args = ["--local-rpc-port", "0", "--verification-window", "1h"];
    let launch = Launch { args: args.map(String::from).to_vec(), twilio: Some(twilio.base_url()) };
    let durable = Durable::start(&dir.path().join("data"), &launch);
    for (n, rpc) in [(300, true), (301, false)] {
        twilio.set_trial_allow_list(Some(vec![]));
        let to = phone(n);
        let start = durable.start_verification(&format!("\"{to}\"")).await;
        let failed = durable.finished(&start).await;
        assert_eq!(failed["runtimeStatus"], "Failed", "{failed}");
        twilio.set_trial_allow_list(None);

        let id = start["id"].as_str().unwrap();
        let summary = run_driver(sdk, &durable, rpc, prefix, Some(id)).await;
        eprintln!("driver summary: {summary}");
        let checked = summary["checked"].to_string();
        for operation in [
            "rewind of an unknown id (404)",
            "rewind of a Failed instance",
            "rewind of an instance that is not Failed (412)",
        ] {
            assert!(checked.contains(operation), "{operation} was not checked: {summary}");
        }
        let code = sms_code(&twilio, &to).await;
        assert_eq!(durable.answer(&start, &format!("\"{code}\"")).await, 202);
        let done = durable.finished(&start).await;
        assert_eq!((&done["runtimeStatus"], &done["output"]), (&json!("Completed"), &json!(true)), "{done}");
    }
    assert!(!durable.log().contains(KEY), "the system key appears in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_rewinds_a_failed_verification() {
    sdk_rewinds_failed_verifications(Sdk::Python, "py-rewind-").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_sdk_rewinds_a_failed_verification() {
    sdk_rewinds_failed_verifications(Sdk::JavaScript, "js-rewind-").await;
}

// ------------------------------------------------------------------------ local RPC endpoint

/// An address of this machine that is not loopback, if it has one (the interface of the
/// default route; a UDP "connect" sends nothing).
fn non_loopback_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    Some(socket.local_addr().ok()?.ip()).filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_rpc_endpoint_is_keyless_and_loopback_only_and_the_main_port_keeps_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let launch = Launch {
        args: vec!["--local-rpc-port".into(), "0".into(), "--bind".into(), "0.0.0.0".into()],
        twilio: None,
    };
    let durable = Durable::start(&dir.path().join("data"), &launch);
    let local = durable.local_rpc.clone().expect("a local rpc line on stdout");
    assert!(local.starts_with("http://127.0.0.1:") && local.ends_with("/durabletask/"), "{local}");
    let port: u16 = local["http://127.0.0.1:".len()..].trim_end_matches("/durabletask/").parse().unwrap();

    // Key-less: start, status and list work without any key, and hand out no key.
    let http = &durable.http;
    let response = http
        .post(format!("{local}orchestrators/E4_SmsPhoneVerification/local-1"))
        .header("content-type", "application/json")
        .body("\"+14255550100\"")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let urls: Value = response.json().await.unwrap();
    assert!(!urls.to_string().contains("code="), "the local endpoint hands out no key: {urls}");
    assert!(!urls.to_string().contains(KEY));
    let response = http.get(urls["statusQueryGetUri"].as_str().unwrap()).send().await.unwrap();
    assert!(matches!(response.status().as_u16(), 200 | 202), "{:?}", response.text().await);
    let response = http.get(format!("{local}instances")).send().await.unwrap();
    assert_eq!(response.status(), 200);

    // The main port (here on every interface) still requires the key.
    let main = durable.url("/runtime/webhooks/durabletask/instances");
    assert_eq!(http.get(&main).send().await.unwrap().status(), 401);
    assert_eq!(http.get(&main).header("x-functions-key", KEY).send().await.unwrap().status(), 200);
    let response =
        http.get(durable.url("/runtime/webhooks/durabletask/instances/local-1")).send().await.unwrap();
    assert_eq!(response.status(), 401);

    // Loopback only, and only 127.0.0.1: other loopback addresses and this machine's network
    // address are refused (a wildcard bind would accept them).
    let connect = |ip: IpAddr| TcpStream::connect_timeout(&SocketAddr::new(ip, port), DEADLINE);
    assert!(connect("127.0.0.1".parse().unwrap()).is_ok());
    assert!(connect("127.0.0.2".parse().unwrap()).is_err(), "the local endpoint listens beyond 127.0.0.1");
    match non_loopback_address() {
        Some(ip) => assert!(connect(ip).is_err(), "the local endpoint is reachable on {ip}"),
        None => eprintln!("no non-loopback address on this machine; checked 127.0.0.2 only"),
    }
}

/// Starts `durable serve` with `args` and `env`, and returns its "local rpc listening on" line
/// (or the error it exits with).
fn serve_once(args: &[&str], env: &[(&str, &str)]) -> Result<Option<String>, String> {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_durable"))
        .arg("serve")
        .args(["--port", "0", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DURABLE_SYSTEM_KEY", KEY)
        .env("DURABLE_VERIFICATION_KEY", VERIFICATION_KEY)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut local = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok) {
        if let Some(url) = line.strip_prefix("local rpc listening on ") {
            local = Some(url.to_owned());
        } else if line.starts_with("listening on ") {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(local);
        }
    }
    let output = child.wait_with_output().unwrap();
    Err(String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn local_rpc_port_comes_from_flag_environment_or_config_and_refuses_other_addresses() {
    // Off by default.
    assert_eq!(serve_once(&[], &[]).unwrap(), None);
    // The environment variable, and the config file.
    let local = serve_once(&[], &[("DURABLE_LOCAL_RPC_PORT", "0")]).unwrap().expect("from the environment");
    assert!(local.starts_with("http://127.0.0.1:"), "{local}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("durable.toml");
    std::fs::write(&config, "[server]\nlocal_rpc_port = 0\n").unwrap();
    let local =
        serve_once(&["--config", config.to_str().unwrap()], &[]).unwrap().expect("from the config file");
    assert!(local.starts_with("http://127.0.0.1:"), "{local}");
    // Any address but 127.0.0.1 is refused with a message that says why.
    for refused in ["0.0.0.0:17071", "192.168.1.2:17071", "[::1]:17071"] {
        let error = serve_once(&["--local-rpc-port", refused], &[]).unwrap_err();
        assert!(error.contains("127.0.0.1 only"), "{refused}: {error}");
    }
    // A port in use is an error that names the setting.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let error = serve_once(&["--local-rpc-port", &port], &[]).unwrap_err();
    assert!(error.contains("--local-rpc-port"), "{error}");
}
