//! R-metrics: the metrics port, which any Pod that reaches the node's driver
//! can connect to, cannot be used to exhaust the driver. Against the real
//! binary: 500 idle connections and a slow-header client grow its RSS by
//! less than 16 MiB, `/metrics` still answers within 2 s, and the idle
//! connections and the slow client are closed within their timeouts.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cmcsi_testkit::in_mount_namespace;
use common::{Harness, free_port_address, http_get};

const IDLE: usize = 500;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Whether the server has closed `s` (EOF or reset), without waiting long.
fn closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let mut b = [0u8; 256];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

#[test]
fn idle_and_slow_clients_cannot_hold_the_metrics_port() {
    in_mount_namespace!(async {
        let addr = free_port_address();
        let h = Harness::start(&[
            "--metrics-bind-address",
            &addr,
            "--metrics-idle-timeout",
            "3s",
            "--metrics-header-timeout",
            "2s",
        ])
        .await;
        let pid = h.driver.pid().unwrap();
        let _ = http_get(&addr, "/metrics");
        let before = rss_kib(pid);

        let mut idle: Vec<TcpStream> = (0..IDLE)
            .filter_map(|_| TcpStream::connect(&addr).ok())
            .collect();
        let mut slow = TcpStream::connect(&addr).unwrap();
        slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let opened = Instant::now();

        // A scrape still answers, promptly.
        let started = Instant::now();
        let body = http_get(&addr, "/metrics");
        let took = started.elapsed();
        assert!(body.contains("certmanager_csi_"), "{body}");
        assert!(took < Duration::from_secs(2), "a scrape took {took:?}");
        let after = rss_kib(pid);
        let growth_mib = after.saturating_sub(before) as f64 / 1024.0;
        eprintln!(
            "{} idle connections and a slow-header client: RSS {before} -> {after} KiB \
             (+{growth_mib:.1} MiB); a scrape took {took:?}",
            idle.len()
        );
        assert!(growth_mib < 16.0, "RSS grew by {growth_mib:.1} MiB");

        // The slow client keeps trickling header bytes; it is cut off at the
        // header timeout all the same.
        let deadline = opened + Duration::from_secs(3) + Duration::from_secs(2);
        let mut slow_closed = false;
        while Instant::now() < deadline {
            if slow.write_all(b"X").is_err() || closed(&mut slow) {
                slow_closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert!(slow_closed, "the slow-header client is still connected");

        // Every idle connection is closed within the idle timeout (plus slack).
        tokio::time::sleep(
            (opened + Duration::from_secs(5)).saturating_duration_since(Instant::now()),
        )
        .await;
        let open = idle.iter_mut().map(closed).filter(|c| !c).count();
        assert_eq!(
            open, 0,
            "{open} idle connections are still open after the idle timeout"
        );
        // And the port still serves.
        assert!(http_get(&addr, "/metrics").contains("certmanager_csi_"));
    });
}
