//! Logging set-up with `tracing`: text or JSON lines on stderr, coloured
//! only when stderr is a terminal (never in files or `kubectl logs`).
//!
//! JSON lines follow klog's JSON format (Kubernetes' `--logging-format=json`,
//! what log pipelines for Kubernetes components parse): `ts` (seconds since
//! the Unix epoch, a float), `msg`, `v` (the verbosity: 0 for info and
//! warnings, 4 for debug, 5 for trace; absent on errors, as klog writes
//! them), then our own: `level` (`error`, `warn`, `info`, `debug`, `trace`)
//! and each event's fields (`volume`, `pod`, `namespace`, `request`,
//! `error`, ...). An `error` field is also written as klog's `err`.

use std::fmt;
use std::io::IsTerminal;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogFormat, LogLevel};

/// Installs the global subscriber. `RUST_LOG`, when set, replaces the level
/// with its own filter (`tracing`'s directives, e.g.
/// `info,cmcsi_issuer_client=debug`).
pub fn init(level: LogLevel, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level.as_directive()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.event_format(KlogJson).try_init(),
    };
}

/// klog's verbosity for a `tracing` level (`None` for errors, which klog
/// writes without `v`).
pub fn klog_verbosity(level: &Level) -> Option<u8> {
    match *level {
        Level::ERROR => None,
        Level::WARN | Level::INFO => Some(0),
        Level::DEBUG => Some(4),
        Level::TRACE => Some(5),
    }
}

/// The JSON line format described in the module's documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct KlogJson;

impl<S, N> FormatEvent<S, N> for KlogJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str(&klog_line(event, std::time::SystemTime::now()))?;
        writer.write_char('\n')
    }
}

/// One event as a klog JSON line (without the newline).
pub(crate) fn klog_line(event: &Event<'_>, now: std::time::SystemTime) -> String {
    let level = event.metadata().level();
    let mut fields = Fields(Map::new());
    event.record(&mut fields);
    let mut out = Map::new();
    let ts = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    out.insert("ts".into(), Value::from(ts));
    let msg = fields.0.remove("message").unwrap_or(Value::from(""));
    out.insert("msg".into(), msg);
    if let Some(v) = klog_verbosity(level) {
        out.insert("v".into(), Value::from(v));
    }
    out.insert(
        "level".into(),
        Value::from(level.as_str().to_ascii_lowercase()),
    );
    if let Some(err) = fields.0.get("error") {
        out.insert("err".into(), err.clone());
    }
    for (k, v) in fields.0 {
        // Our fields never replace klog's.
        out.entry(k).or_insert(v);
    }
    Value::Object(out).to_string()
}

/// Collects an event's fields as JSON values.
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), Value::from(value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Captures the lines `KlogJson` writes.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_klogs_fields_and_ours() {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_writer(move || sink.clone())
            .event_format(KlogJson)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(volume = "csi-1", duration_ms = 12u64, "issuance");
            tracing::debug!("internal");
            tracing::error!(error = %"denied", "driver stopped");
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let parsed: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(parsed.len(), 3, "{text}");
        let info = &parsed[0];
        assert!(info["ts"].as_f64().unwrap() > 1.7e9, "{info}");
        assert_eq!(info["msg"], "issuance");
        assert_eq!(info["v"], 0);
        assert_eq!(info["level"], "info");
        assert_eq!(info["volume"], "csi-1");
        assert_eq!(info["duration_ms"], 12);
        assert!(info.get("message").is_none(), "{info}");
        assert_eq!(parsed[1]["v"], 4);
        let error = &parsed[2];
        assert!(
            error.get("v").is_none(),
            "klog writes errors without v: {error}"
        );
        assert_eq!(error["err"], "denied");
        assert_eq!(error["error"], "denied");
    }
}
