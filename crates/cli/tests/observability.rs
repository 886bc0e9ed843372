//! Monitoring through the real binary: `GET /metrics` parsed by a Prometheus text parser, and
//! OpenTelemetry spans received over OTLP/HTTP by a receiver on loopback, across a restart.

mod common;

use common::*;
use durable_bench::otlp_sink::{OtlpSink, ReceivedSpan};
use serde_json::Value;
use std::collections::HashMap;

const ORCHESTRATOR: &str = "E4_SmsPhoneVerification";

/// The samples of one scrape, by metric name (histograms and summaries as their `_count`,
/// `_sum` and buckets, through the parser's own model).
struct Scrape {
    samples: Vec<prometheus_parse::Sample>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("the output parses as Prometheus text");
        Scrape { samples: scrape.samples }
    }

    /// The value of the counter or gauge `name` whose labels include `labels` (0 when absent).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels)
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                other => panic!("{name} is not a counter or gauge: {other:?}"),
            })
            .unwrap_or(0.0)
    }

    /// The number of observations of histogram `name` with `labels`.
    fn histogram_count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.find(name, labels).map(|s| &s.value) {
            Some(prometheus_parse::Value::Histogram(buckets)) => {
                buckets.iter().map(|b| b.count).fold(0.0, f64::max) as u64
            }
            None => 0,
            other => panic!("{name} is not a histogram: {other:?}"),
        }
    }

    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<&prometheus_parse::Sample> {
        self.samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
    }
}

async fn scrape(durable: &Durable) -> (u16, String) {
    let response = durable.http.get(durable.url("/metrics")).send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    if status == 200 {
        assert_eq!(content_type.as_deref(), Some("text/plain; version=0.0.4; charset=utf-8"));
    }
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_ran_and_parse_as_prometheus_text() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let durable = Durable::start(
        &dir.path().join("data"),
        &Launch { twilio: Some(twilio.base_url()), ..Default::default() },
    );

    // Two verifications answered right, one terminated while it waits.
    let mut ids = Vec::new();
    for n in 0..2 {
        let to = phone(700 + n);
        let start = durable.start_verification(&format!("\"{to}\"")).await;
        let code = sms_code(&twilio, &to).await;
        assert_eq!(durable.answer(&start, &format!("\"{code}\"")).await, 202);
        assert_eq!(durable.finished(&start).await["output"], true);
        ids.push((start["id"].as_str().unwrap().to_owned(), to));
    }
    let to = phone(702);
    let start = durable.start_verification(&format!("\"{to}\"")).await;
    sms_code(&twilio, &to).await;
    let terminate = start["terminatePostUri"].as_str().unwrap().replace("{text}", "gave-up");
    assert_eq!(durable.post(&terminate, "").await.status(), 202);
    assert_eq!(durable.finished(&start).await["runtimeStatus"], "Terminated");
    ids.push((start["id"].as_str().unwrap().to_owned(), to));

    // Loopback: no key needed (the default `auto`).
    let (status, text) = scrape(&durable).await;
    assert_eq!(status, 200, "{text}");
    let m = Scrape::parse(&text);
    let o = [("orchestrator", ORCHESTRATOR)];
    assert_eq!(m.value("durable_instances_started_total", &o), 3.0, "{text}");
    assert_eq!(m.value("durable_instances_completed_total", &o), 2.0);
    assert_eq!(m.value("durable_instances_terminated_total", &o), 1.0);
    assert_eq!(m.value("durable_instances_failed_total", &o), 0.0);
    let a = [("activity", "E4_SendSmsChallenge")];
    assert_eq!(m.value("durable_activity_executions_total", &a), 3.0);
    assert_eq!(m.value("durable_activity_failures_total", &a), 0.0);
    assert_eq!(m.value("durable_activity_retries_total", &a), 0.0);
    assert_eq!(m.histogram_count("durable_activity_duration_seconds", &a), 3);
    assert_eq!(m.value("durable_sms_sent_total", &[("sender", "twilio")]), 3.0);
    assert_eq!(m.value("durable_sms_failed_total", &[("sender", "twilio")]), 0.0);
    assert_eq!(m.value("durable_events_raised_total", &[]), 2.0);
    let direct = m.value("durable_event_deliveries_total", &[("delivery", "direct")]);
    let queued = m.value("durable_event_deliveries_total", &[("delivery", "queued")]);
    assert_eq!(direct + queued, 2.0);
    // Start, activity result, answer or termination: 3 turns each, fewer when a message
    // arrives while the previous turn runs (they then share one).
    let turns = m.value("durable_turns_total", &[]);
    assert!((6.0..=9.0).contains(&turns), "{turns} turns");
    let cache = m.value("durable_execution_cache_hits_total", &[])
        + m.value("durable_execution_cache_misses_total", &[]);
    assert_eq!(cache, turns - 3.0, "every turn but the first of each instance looks its execution up");
    assert_eq!(m.value("durable_replays_total", &[]), m.value("durable_execution_cache_misses_total", &[]));
    // The terminated one's timer was cancelled, the others' too: no timer fired.
    assert_eq!(m.histogram_count("durable_timer_lateness_seconds", &[]), 0);
    assert!(m.histogram_count("durable_store_commit_seconds", &[("store", "sqlite")]) > 0);
    assert!(m.histogram_count("durable_store_commit_batch_size", &[("store", "sqlite")]) > 0);
    let start_route = [("route", "/api/orchestrators/:name"), ("method", "POST"), ("status", "202")];
    assert_eq!(m.value("durable_http_requests_total", &start_route), 3.0);
    let raise =
        [("route", "/runtime/webhooks/durabletask/instances/:id/raiseEvent/:event"), ("status", "202")];
    assert_eq!(m.value("durable_http_requests_total", &raise), 2.0);
    assert!(
        m.histogram_count("durable_http_request_duration_seconds", &[("route", "/api/orchestrators/:name")])
            >= 3
    );
    // Nothing is left to do: the backlogs read from the store are empty.
    for gauge in ["durable_ready_instances", "durable_ready_activities", "durable_due_timers"] {
        assert!(m.find(gauge, &[]).is_some(), "{gauge} missing");
        assert_eq!(m.value(gauge, &[]), 0.0, "{gauge}");
    }
    assert_eq!(m.value("durable_instances", &[("status", "Completed")]), 2.0);
    assert_eq!(m.value("durable_instances", &[("status", "Terminated")]), 1.0);
    assert_eq!(m.value("durable_instances", &[("status", "Running")]), 0.0);
    assert!(m.find("durable_instances", &[("status", "Suspended")]).is_some());
    // Bounded labels only: no instance id, no phone number, no key, anywhere in the output.
    for (id, to) in &ids {
        assert!(!text.contains(id.as_str()), "an instance id is in /metrics");
        assert!(!text.contains(to.as_str()), "a phone number is in /metrics");
    }
    assert!(!text.contains(KEY));
    // Prometheus naming: counters end in _total, durations are in seconds.
    for sample in &m.samples {
        assert!(sample.metric.starts_with("durable_"), "{}", sample.metric);
        if let prometheus_parse::Value::Counter(_) = sample.value {
            assert!(sample.metric.ends_with("_total"), "{}", sample.metric);
        }
    }
    assert!(text.contains("# TYPE durable_store_commit_seconds histogram"), "{text}");
    // Every sample line made it through the parser (it skips lines it cannot read): each line's
    // metric and label set is among the parsed samples.
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let name = line.split(['{', ' ']).next().unwrap();
        let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        let route = line.split("route=\"").nth(1).map(|r| r.split('"').next().unwrap());
        let found = m.samples.iter().any(|s| {
            (s.metric == name || s.metric == base) && route.is_none_or(|r| s.labels.get("route") == Some(r))
        });
        assert!(found, "the parser lost `{line}`");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_key_when_asked_and_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let keyed = Durable::start(
        &dir.path().join("keyed"),
        &Launch { args: vec!["--metrics-auth".into(), "key".into()], twilio: None },
    );
    assert_eq!(scrape(&keyed).await.0, 401);
    let with_key = keyed.http.get(keyed.url("/metrics")).header("x-functions-key", KEY).send().await.unwrap();
    assert_eq!(with_key.status(), 200);
    Scrape::parse(&with_key.text().await.unwrap());
    drop(keyed);
    let off =
        Durable::start(&dir.path().join("off"), &Launch { args: vec!["--no-metrics".into()], twilio: None });
    assert_eq!(scrape(&off).await.0, 404);
}

// ------------------------------------------------------------------------------------ traces

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn named<'a>(spans: &'a [ReceivedSpan], name: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.name == name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_is_one_trace_under_the_callers_span_across_a_restart() {
    let sink = OtlpSink::start(true).await.unwrap();
    let endpoint = sink.endpoint();
    // Export every 100 ms, so the spans before the kill reach the receiver.
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_SERVICE_NAME", "durable-e2e"),
    ];
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let launch = Launch { twilio: Some(twilio.base_url()), ..Default::default() };
    let durable = Durable::start_with_env(&data, &launch, &env);

    let to = phone(750);
    let response = durable
        .http
        .post(durable.url(&format!("/api/orchestrators/{ORCHESTRATOR}")))
        .header("x-functions-key", KEY)
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .header("tracestate", "vendor=abc")
        .body(format!("\"{to}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    // The answer names the orchestration's span, in the caller's trace.
    let traceparent = response.headers()["traceparent"].to_str().unwrap().to_owned();
    let start: Value = response.json().await.unwrap();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!((parts[0], parts[1], parts[3]), ("00", CALLER_TRACE, "01"), "{traceparent}");
    let orchestration_span = parts[2].to_owned();
    assert_ne!(orchestration_span, CALLER_SPAN);

    // The SMS went out and its activity span was exported; then the server dies while the
    // verification waits for its answer.
    let code = sms_code(&twilio, &to).await;
    let activity = "activity:E4_SendSmsChallenge";
    let spans = sink.wait_until(DEADLINE, |s| !named(s, activity).is_empty()).await;
    assert_eq!(named(&spans, activity).len(), 1, "{spans:#?}");
    let old_base = durable.base.clone();
    durable.kill9();

    let durable = Durable::start_with_env(&data, &launch, &env);
    // The restarted server listens on another port.
    let start: Value = serde_json::from_str(&start.to_string().replace(&old_base, &durable.base)).unwrap();
    assert_eq!(durable.answer(&start, &format!("\"{code}\"")).await, 202);
    assert_eq!(durable.finished(&start).await["output"], true);
    let orchestration = format!("orchestration:{ORCHESTRATOR}");
    let timer = format!("orchestration:{ORCHESTRATOR}:timer");
    let spans = sink
        .wait_until(DEADLINE, |s| !named(s, &orchestration).is_empty() && !named(s, &timer).is_empty())
        .await;

    let [o] = named(&spans, &orchestration)[..] else {
        panic!("one orchestration span expected: {spans:#?}")
    };
    assert_eq!(o.trace_id, CALLER_TRACE);
    assert_eq!(o.parent_span_id, CALLER_SPAN, "the caller's span is the parent");
    assert_eq!(o.span_id, orchestration_span, "the span the start response named");
    assert_eq!(o.kind, 2, "server");
    assert_eq!(o.status_code, 0);
    assert_eq!(o.service_name, "durable-e2e");
    assert_eq!(o.attributes["durabletask.task.instance_id"], start["id"].as_str().unwrap());
    assert_eq!(o.attributes["durabletask.runtime_status"], "Completed");
    let [a] = named(&spans, activity)[..] else { panic!("one activity span expected: {spans:#?}") };
    let [t] = named(&spans, &timer)[..] else { panic!("one timer span expected: {spans:#?}") };
    for child in [a, t] {
        assert_eq!(child.trace_id, CALLER_TRACE, "{child:?}");
        assert_eq!(child.parent_span_id, o.span_id, "{child:?}");
    }
    assert_eq!(t.attributes["durabletask.timer.cancelled"], "true", "the answer cancelled the timer");
    // The answer is a mark on the orchestration span, by name only.
    let [(answered_at, mark)] = &o.events[..] else { panic!("one event mark expected: {:?}", o.events) };
    assert_eq!(mark, "event:SmsChallengeResponse");
    // In time: the orchestration spans everything, from its true start (before the restart)
    // to its end; the SMS was sent before the timer started, which the answer ended.
    assert!(o.start_ns <= a.start_ns && a.start_ns <= a.end_ns, "{o:?} {a:?}");
    assert!(a.end_ns <= t.start_ns && t.start_ns <= *answered_at && *answered_at <= t.end_ns, "{a:?} {t:?}");
    assert!(t.end_ns <= o.end_ns, "{t:?} {o:?}");
    // Nothing else was exported twice, and nothing carries the code.
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let all = format!("{spans:?}");
    assert!(!all.contains(&format!("is {code}")) && !all.contains(&to), "a secret is in a span");
    let by_id: HashMap<&str, &ReceivedSpan> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    assert_eq!(by_id.len(), 3, "span ids are unique");
}
