//! A long-running role as a process: it reports readiness on the admin port, serves its
//! metrics, and on SIGTERM drains and exits 0 within the grace period.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Polls `url` until it answers 200 or `timeout` passes; returns the last status seen.
fn wait_for_ok(url: &str, child: &mut Child, timeout: Duration) -> Option<u16> {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < deadline {
        assert!(child.try_wait().unwrap().is_none(), "the role exited early");
        if let Ok(response) = reqwest::blocking::get(url) {
            last = Some(response.status().as_u16());
            if last == Some(200) {
                return last;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    last
}

#[test]
fn registry_role_is_ready_serves_metrics_and_stops_cleanly_on_sigterm() {
    let (api, admin) = (common::free_port(), common::free_port());
    let topic = common::unique_topic("schemas");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lineage-bus"))
        .arg("registry")
        .env(
            "LINEAGE_BUS__KAFKA__BOOTSTRAP_SERVERS",
            common::service_env("KAFKA_BOOTSTRAP"),
        )
        .env("LINEAGE_BUS__REGISTRY__LISTEN", format!("127.0.0.1:{api}"))
        .env("LINEAGE_BUS__REGISTRY__TOPIC", &topic)
        .env(
            "LINEAGE_BUS__REGISTRY__WRITER_TRANSACTIONAL_ID",
            format!("{topic}-writer"),
        )
        .env("LINEAGE_BUS__ADMIN__LISTEN", format!("127.0.0.1:{admin}"))
        .env("LINEAGE_BUS__TELEMETRY__LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let ready = wait_for_ok(
        &format!("http://127.0.0.1:{admin}/health/ready"),
        &mut child,
        Duration::from_secs(60),
    );
    assert_eq!(ready, Some(200), "never became ready");
    let live = reqwest::blocking::get(format!("http://127.0.0.1:{admin}/health/live")).unwrap();
    assert_eq!(live.status(), 200);
    let subjects = reqwest::blocking::get(format!("http://127.0.0.1:{api}/subjects")).unwrap();
    assert_eq!(subjects.text().unwrap(), "[]");
    let metrics = reqwest::blocking::get(format!("http://127.0.0.1:{admin}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("lineage_bus_registry_http_requests_total"),
        "{metrics}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "still running 20 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(exit.success(), "exit {exit:?}; logs:\n{stderr}");
    assert!(stderr.contains("stop signal received"), "{stderr}");
    // JSON logs: every line is one object.
    for line in stderr.lines().filter(|l| !l.is_empty()) {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    }
}
