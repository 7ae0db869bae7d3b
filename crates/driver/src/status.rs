//! `cert-manager-csi-driver status`: what the driver keeps on this node,
//! read from the data root alone (no API access, no lock: it runs beside the
//! driver, through `kubectl exec`). Lists every volume with its Pod, files,
//! certificate expiry, next renewal, pending request, last error and
//! whether it was set aside, as a table or JSON.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Parser, ValueEnum};
use cmcsi_store::StoreView;
use serde::Serialize;

use crate::health::{Condition, LastError, VolumeState};
use crate::timefmt::rfc3339 as jiff_like;

/// The flags of `cert-manager-csi-driver status`.
#[derive(Debug, Parser)]
#[command(
    name = "cert-manager-csi-driver status",
    about = "List the volumes the driver keeps on this node, read from its data root \
             (no Kubernetes API access needed)",
    after_help = "In a cluster: kubectl exec -n cert-manager-csi-driver <driver Pod on the node> \
                  -c cert-manager-csi-driver -- cert-manager-csi-driver status"
)]
pub struct StatusCli {
    /// The driver's data root (its --data-root).
    #[arg(long, default_value = crate::config::DEFAULT_DATA_ROOT)]
    pub data_root: PathBuf,

    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// How `status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns, one volume per line.
    Table,
    /// One JSON document (`{"dataRoot": ..., "volumes": [...]}`).
    Json,
}

/// What `status` reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The data root read.
    pub data_root: String,
    /// Every volume, those set aside last.
    pub volumes: Vec<VolumeReport>,
}

/// One volume.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeReport {
    /// The Pod's namespace (empty when unknown).
    pub namespace: String,
    /// The Pod's name (empty when unknown).
    pub pod: String,
    /// The CSI volume id.
    pub volume_id: String,
    /// The files the Pod sees.
    pub files: Vec<String>,
    /// The certificate's `notAfter` (RFC 3339).
    pub not_after: Option<String>,
    /// When the driver renews it next (RFC 3339).
    pub next_renewal: Option<String>,
    /// The CertificateRequest in flight (`namespace/name`).
    pub pending_request: Option<String>,
    /// The last failed issuance since the last success.
    pub last_error: Option<LastError>,
    /// Whether the volume's directory was set aside (unusable, or its
    /// metadata unreadable); it is removed after `--quarantine-grace`.
    pub quarantined: bool,
    /// Whether `NodeGetVolumeStats` reports it abnormal, and why.
    pub abnormal: bool,
    /// The condition's message.
    pub condition: String,
    /// What could not be read of it, if anything.
    pub problem: Option<String>,
}

impl VolumeReport {
    fn of(volume_id: String, state: &VolumeState, files: Vec<String>, now: SystemTime) -> Self {
        let (pod, namespace) = crate::events::pod_fields(&state.meta.volume_context);
        let Condition { abnormal, message } = state.condition(now);
        VolumeReport {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            volume_id,
            files,
            not_after: state.not_after.map(jiff_like),
            next_renewal: state.meta.next_issuance_time.map(jiff_like),
            pending_request: state.pending.as_ref().map(|(ns, n)| format!("{ns}/{n}")),
            last_error: state.last_error.clone(),
            quarantined: false,
            abnormal,
            condition: message,
            problem: None,
        }
    }

    fn unreadable(volume_id: String, problem: String, quarantined: bool) -> Self {
        VolumeReport {
            namespace: String::new(),
            pod: String::new(),
            volume_id,
            files: Vec::new(),
            not_after: None,
            next_renewal: None,
            pending_request: None,
            last_error: None,
            quarantined,
            abnormal: true,
            condition: problem.clone(),
            problem: Some(problem),
        }
    }
}

/// Reads the report of the data root `data_root`.
pub fn report(data_root: &std::path::Path, now: SystemTime) -> Result<Report, String> {
    let view = StoreView::open(data_root).map_err(|e| {
        format!(
            "cannot read the data root {}: {e} (pass the driver's --data-root)",
            data_root.display()
        )
    })?;
    let mut volumes = Vec::new();
    for id in view.volume_ids().map_err(|e| e.to_string())? {
        let state = VolumeState::read(&view, &id);
        let files = view.current_files(&id).unwrap_or_default();
        volumes.push(match state {
            Ok(state) => VolumeReport::of(id, &state, files, now),
            Err(e) => VolumeReport::unreadable(id, e.to_string(), false),
        });
    }
    for q in view.quarantined().map_err(|e| e.to_string())? {
        let mut v = match &q.metadata {
            Some(meta) => {
                let state = VolumeState {
                    meta: meta.clone(),
                    not_after: None,
                    pending: None,
                    last_error: None,
                };
                let mut v = VolumeReport::of(meta.volume_id.clone(), &state, Vec::new(), now);
                v.abnormal = true;
                v.condition = "set aside: no longer served".into();
                v
            }
            None => VolumeReport::unreadable(
                q.name.clone(),
                "set aside: its metadata cannot be read".into(),
                true,
            ),
        };
        v.quarantined = true;
        if let Some(at) = q.set_aside_at {
            v.condition = format!("{} (at {}, as {})", v.condition, jiff_like(at), q.name);
        }
        volumes.push(v);
    }
    Ok(Report {
        data_root: data_root.display().to_string(),
        volumes,
    })
}

/// The report as a table: one line per volume, `-` for what is absent, the
/// last error cut to keep lines readable (`--output json` has all of it).
pub fn table(report: &Report) -> String {
    const HEAD: [&str; 8] = [
        "NAMESPACE/POD",
        "VOLUME",
        "FILES",
        "NOT AFTER",
        "NEXT RENEWAL",
        "PENDING",
        "LAST ERROR",
        "QUARANTINED",
    ];
    let dash = |s: Option<&str>| s.filter(|s| !s.is_empty()).unwrap_or("-").to_owned();
    let rows: Vec<[String; 8]> = report
        .volumes
        .iter()
        .map(|v| {
            let pod = if v.pod.is_empty() && v.namespace.is_empty() {
                "-".to_owned()
            } else {
                format!("{}/{}", v.namespace, v.pod)
            };
            let error = v.last_error.as_ref().map(|e| {
                let one_line = e.message.replace(['\n', '\r', '\t'], " ");
                let short: String = one_line.chars().take(60).collect();
                let more = if short.len() < one_line.len() {
                    "…"
                } else {
                    ""
                };
                format!("{} ({}x): {short}{more}", e.time, e.failures)
            });
            [
                pod,
                v.volume_id.clone(),
                dash(Some(&v.files.join(","))),
                dash(v.not_after.as_deref()),
                dash(v.next_renewal.as_deref()),
                dash(v.pending_request.as_deref()),
                dash(error.as_deref().or(v.problem.as_deref())),
                if v.quarantined { "yes" } else { "no" }.to_owned(),
            ]
        })
        .collect();
    let mut widths = HEAD.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = w - cell.chars().count() + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    };
    line(HEAD.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// Runs `status` with `args` (the first being `status`): prints the
/// report, 0 on success, 1 when the data root cannot be read, 2 for bad
/// flags.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match StatusCli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let report = match report(&cli.data_root, SystemTime::now()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let text = match cli.output {
        Output::Table => table(&report),
        Output::Json => match serde_json::to_string_pretty(&report) {
            Ok(j) => j + "\n",
            Err(e) => {
                eprintln!("error: cannot encode the report: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmcsi_store::{Metadata, Store, StoreOptions};

    #[test]
    fn set_aside_volumes_are_listed_as_quarantined_beside_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            StoreOptions {
                mount_tmpfs: false,
                tmpfs_size: None,
            },
        )
        .unwrap();
        for (id, pod) in [("csi-kept", "web"), ("csi-aside", "old")] {
            let mut meta = Metadata::new(
                id,
                "/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/tls/mount",
            );
            meta.volume_context
                .insert(cmcsi_attrs::keys::POD_NAME.into(), pod.into());
            meta.volume_context
                .insert(cmcsi_attrs::keys::POD_NAMESPACE.into(), "ns".into());
            store.create_volume(&meta, None).unwrap();
        }
        store.set_aside_volume("csi-aside", "test").unwrap();
        // Read beside the open store (the driver holds its lock).
        let report = report(dir.path(), SystemTime::now()).unwrap();
        let ids: Vec<(&str, bool)> = report
            .volumes
            .iter()
            .map(|v| (v.volume_id.as_str(), v.quarantined))
            .collect();
        assert_eq!(ids, [("csi-kept", false), ("csi-aside", true)]);
        let aside = &report.volumes[1];
        assert_eq!(
            (aside.namespace.as_str(), aside.pod.as_str()),
            ("ns", "old")
        );
        assert!(aside.condition.contains("set aside"), "{aside:?}");
        let kept = &report.volumes[0];
        assert!(
            kept.files.is_empty() && kept.not_after.is_none() && !kept.abnormal,
            "{kept:?}"
        );
        let text = table(&report);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(
            text.lines().nth(2).unwrap().trim_end().ends_with("yes"),
            "{text}"
        );
    }
}
