use super::parse::parse_socket_address;
use super::*;

#[test]
fn endpoints() {
    let unix = |p: &str| Endpoint::Unix(PathBuf::from(p));
    assert_eq!(
        parse_endpoint("unix:///csi/csi.sock").unwrap(),
        unix("/csi/csi.sock")
    );
    assert_eq!(
        parse_endpoint("unix://plugin/csi.sock").unwrap(),
        unix("plugin/csi.sock")
    );
    assert_eq!(
        parse_endpoint("/run/csi.sock").unwrap(),
        unix("/run/csi.sock")
    );
    assert_eq!(
        parse_endpoint("tcp://127.0.0.1:10000").unwrap(),
        Endpoint::Tcp("127.0.0.1:10000".into())
    );
    assert_eq!(
        parse_endpoint("tcp://[::1]:10000").unwrap(),
        Endpoint::Tcp("[::1]:10000".into())
    );
    assert!(
        parse_endpoint("tcp://nowhere")
            .unwrap_err()
            .contains("host:port")
    );
    assert!(
        parse_endpoint("http://x")
            .unwrap_err()
            .contains("tcp://host:port")
    );
    assert!(parse_endpoint("unix://").is_err());
}

#[test]
fn sizes() {
    assert_eq!(parse_size_flag("32Mi").unwrap(), 32 << 20);
    assert_eq!(parse_size_flag("2097152").unwrap(), 2 << 20);
    assert_eq!(parse_size_flag("1Gi").unwrap(), 1 << 30);
    assert!(parse_size_flag("10").unwrap_err().contains("1Mi"));
    assert!(
        parse_size_flag("32MB")
            .unwrap_err()
            .contains("Ki, Mi or Gi")
    );
}

#[test]
fn log_levels() {
    assert_eq!("1".parse::<LogLevel>().unwrap(), LogLevel::Info);
    assert_eq!("DEBUG".parse::<LogLevel>().unwrap(), LogLevel::Debug);
    assert_eq!("5".parse::<LogLevel>().unwrap(), LogLevel::Trace);
    assert_eq!("4".parse::<LogLevel>().unwrap(), LogLevel::Debug);
    assert_eq!("10".parse::<LogLevel>().unwrap(), LogLevel::Trace);
    assert_eq!("-1".parse::<LogLevel>().unwrap(), LogLevel::Info);
    assert_eq!("0".parse::<LogLevel>().unwrap(), LogLevel::Info);
    assert!("loud".parse::<LogLevel>().is_err());
}

#[test]
fn flags_parse_with_defaults() {
    let cli = Cli::try_parse_from([
        "cert-manager-csi-driver",
        "--node-id",
        "node-a",
        "--endpoint",
        "unix:///tmp/x.sock",
    ])
    .unwrap();
    let c = cli.into_config();
    assert_eq!(c.driver_name, DEFAULT_DRIVER_NAME);
    assert_eq!(c.data_root, PathBuf::from("/csi-data-dir"));
    assert_eq!(c.log_format, LogFormat::Text);
}

#[test]
fn bind_addresses() {
    assert_eq!(parse_socket_address("0").unwrap(), None);
    assert_eq!(
        parse_socket_address(":9402").unwrap(),
        Some("[::]:9402".parse().unwrap())
    );
    assert_eq!(
        parse_socket_address("[::]:9402").unwrap(),
        Some("[::]:9402".parse().unwrap())
    );
    assert_eq!(
        parse_socket_address("localhost:9402")
            .unwrap()
            .unwrap()
            .port(),
        9402
    );
    assert!(parse_socket_address(":x").unwrap_err().contains("port"));
    assert_eq!(
        parse_bind_address("127.0.0.1:1").unwrap(),
        BindAddress(Some("127.0.0.1:1".parse().unwrap()))
    );
    assert!(
        parse_socket_address("nowhere")
            .unwrap_err()
            .contains(":9402")
    );
}

#[test]
fn boolean_flags_take_go_forms() {
    let base = ["x", "--node-id", "n", "--endpoint", "/s"];
    let c = Cli::try_parse_from(base).unwrap().into_config();
    assert!(!c.use_token_request && c.mount_tmpfs && !c.continue_on_not_ready);
    assert_eq!(c.issuance_timeout, Duration::from_secs(60));
    assert_eq!(c.renewal_backoff_initial, Duration::from_secs(30));
    assert_eq!(c.renewal_backoff_max, Duration::from_secs(300));
    assert_eq!(c.abandoned_sweep_interval, Duration::from_secs(300));
    let mut args = base.to_vec();
    args.extend([
        "--use-token-request",
        "--mount-tmpfs=false",
        "--continue-on-not-ready=true",
        "--abandoned-volume-sweep-interval=0",
    ]);
    let c = Cli::try_parse_from(args).unwrap().into_config();
    assert!(c.use_token_request && !c.mount_tmpfs && c.continue_on_not_ready);
    assert_eq!(c.abandoned_sweep_interval, Duration::ZERO);
    let mut args = base.to_vec();
    args.push("--abandoned-volume-sweep-interval=soon");
    let err = Cli::try_parse_from(args).unwrap_err().to_string();
    assert!(err.contains("abandoned-volume-sweep-interval"), "{err}");
}

#[test]
fn limit_flags_reach_the_request_limits() {
    let base = ["x", "--node-id", "n", "--endpoint", "/s"];
    let c = Cli::try_parse_from(base).unwrap().into_config();
    assert_eq!(c.request_limits, RequestLimits::default());
    let mut args = base.to_vec();
    args.extend([
        "--max-volume-context-bytes=8192",
        "--max-sans=7",
        "--max-file-name-depth=3",
        "--max-file-name-bytes=99",
        "--max-concurrent-large-rsa=2",
        "--max-keystore-password-bytes=64",
        "--allow-cert-manager-annotations",
    ]);
    let c = Cli::try_parse_from(args).unwrap().into_config();
    assert_eq!(
        c.request_limits,
        RequestLimits {
            max_volume_context_bytes: 8192,
            max_sans: 7,
            max_file_name_depth: 3,
            max_file_name_bytes: 99,
            max_concurrent_large_rsa: 2,
            max_keystore_password_bytes: 64,
            allow_cert_manager_annotations: true,
        }
    );
}

#[test]
fn the_keystore_password_limit_can_only_be_lowered() {
    let base = ["x", "--node-id", "n", "--endpoint", "/s"];
    for bad in [
        "--max-keystore-password-bytes=1025",
        "--max-keystore-password-bytes=0",
    ] {
        let mut args = base.to_vec();
        args.push(bad);
        let err = Cli::try_parse_from(args).unwrap_err().to_string();
        assert!(err.contains("--max-keystore-password-bytes"), "{err}");
    }
}

#[test]
fn watch_and_tenant_flags() {
    let base = ["x", "--node-id", "n", "--endpoint", "/s"];
    let c = Cli::try_parse_from(base).unwrap().into_config();
    assert_eq!(c.watch_limits, WatchLimits::default());
    assert_eq!(c.tenants, TenantLimits::default());
    assert_eq!(c.tenants.budget(32 << 20).volume_bytes, 2 << 20);
    assert_eq!(c.tenants.budget(32 << 20).reserve_bytes, 4 << 20);
    let args = base.iter().copied().chain([
        "--max-watched-requests-per-namespace=100",
        "--max-watched-requests-per-volume=4",
        "--max-watched-pods=50",
        "--list-strategy=paged",
        "--list-page-size=5",
        "--tmpfs-volume-budget=1Mi",
        "--tmpfs-renewal-reserve=3Mi",
        "--allow-pod-ip-for-host-network",
    ]);
    let c = Cli::try_parse_from(args).unwrap().into_config();
    assert_eq!(c.watch_limits.max_per_namespace, 100);
    assert_eq!(c.watch_limits.max_per_volume, 4);
    assert_eq!(c.watch_limits.max_pods, 50);
    assert_eq!(
        c.watch_limits.list_strategy,
        cmcsi_issuer_client::ListStrategy::Paged
    );
    assert_eq!(c.watch_limits.list_page_size, 5);
    assert_eq!(c.tenants.budget(32 << 20).volume_bytes, 1 << 20);
    assert_eq!(c.tenants.budget(32 << 20).reserve_bytes, 3 << 20);
    assert!(c.tenants.allow_pod_ip_for_host_network);
    let err = Cli::try_parse_from(base.iter().copied().chain(["--list-page-size=0"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("--list-page-size"), "{err}");
}

#[test]
fn event_flags() {
    let base = ["x", "--node-id", "n", "--endpoint", "/s"];
    let c = Cli::try_parse_from(base).unwrap().into_config();
    assert_eq!(c.events, crate::events::EventsConfig::default());
    let mut args = base.to_vec();
    args.extend([
        "--events=false",
        "--event-interval=1m",
        "--event-queue-size=8",
    ]);
    let c = Cli::try_parse_from(args).unwrap().into_config();
    assert!(!c.events.enabled);
    assert_eq!(c.events.interval, Duration::from_secs(60));
    assert_eq!(c.events.queue_size, 8);
    assert_eq!(c.events.namespace_share, 8, "a share is at most the queue");
    let mut args = base.to_vec();
    args.push("--max-queued-events-per-namespace=4");
    let c = Cli::try_parse_from(args).unwrap().into_config();
    assert_eq!(c.events.namespace_share, 4);
    assert_eq!(c.events.queue_size, 256);
}

#[test]
fn missing_node_id_is_an_error() {
    let err = Cli::try_parse_from(["x", "--endpoint", "/tmp/x.sock"]).unwrap_err();
    assert!(err.to_string().contains("--node-id"), "{err}");
}

/// The container args the Go chart (v0.16) renders with every option set.
pub(crate) const GO_CHART_ARGS: &[&str] = &[
    "cert-manager-csi-driver",
    "--log-level=5",
    "--driver-name=csi.cert-manager.io",
    "--node-id=node-a",
    "--endpoint=unix://plugin/csi.sock",
    "--data-root=csi-data-dir",
    "--use-token-request=false",
    "--continue-on-not-ready=true",
    "--kube-api-qps=20",
    "--kube-api-burst=40",
    "--pod-readiness-gate=pod-ip:any",
    "--pod-readiness-gate=pod-condition:Ready",
    "--gate-backoff-duration=2s",
    "--gate-backoff-factor=1.5",
    "--gate-backoff-jitter=0.1",
    "--gate-backoff-cap=20s",
    "--metrics-bind-address=:9402",
];

#[test]
fn the_go_charts_args_parse_with_their_meaning() {
    let c = Cli::try_parse_from(GO_CHART_ARGS)
        .unwrap()
        .try_into_config()
        .unwrap();
    assert_eq!(c.log_level, LogLevel::Trace);
    assert_eq!(c.pod_readiness_gates.len(), 2);
    assert_eq!(c.gate_backoff.duration, Duration::from_secs(2));
    assert_eq!(c.gate_backoff.factor, 1.5);
    assert_eq!(c.gate_backoff.jitter, 0.1);
    assert_eq!(c.gate_backoff.cap, Duration::from_secs(20));
    assert_eq!(c.kube_api_qps, 20.0);
    assert_eq!(c.metrics_bind_address, Some("[::]:9402".parse().unwrap()));
    assert!(c.continue_on_not_ready && !c.go_defaults);
}

#[test]
fn gates_need_continue_on_not_ready_and_a_valid_backoff() {
    let base = ["x", "--node-id", "n", "--endpoint", "/s"];
    let mut args = base.to_vec();
    args.push("--pod-readiness-gate=pod-ip:any");
    let err = Cli::try_parse_from(&args)
        .unwrap()
        .try_into_config()
        .unwrap_err();
    assert!(
        err.to_string().contains("--continue-on-not-ready=true"),
        "{err}"
    );
    args.push("--continue-on-not-ready");
    args.push("--gate-backoff-cap=500ms");
    let err = Cli::try_parse_from(&args)
        .unwrap()
        .try_into_config()
        .unwrap_err();
    assert!(err.to_string().contains("--gate-backoff-cap"), "{err}");
    let mut args = base.to_vec();
    args.push("--pod-readiness-gate=pod-ip:ipv5");
    let err = Cli::try_parse_from(&args).unwrap_err().to_string();
    assert!(err.contains("any, ipv4 or ipv6"), "{err}");
    let c = Cli::try_parse_from(base)
        .unwrap()
        .try_into_config()
        .unwrap();
    assert_eq!(c.gate_backoff, crate::gates::GateBackoff::default());
}

#[test]
fn kubectl_connection_flags_are_accepted() {
    let c = Cli::try_parse_from([
        "x",
        "--node-id",
        "n",
        "--endpoint",
        "/s",
        "--kubeconfig=/k",
        "--context=c",
        "--cluster=cl",
        "--user=u",
        "-s",
        "https://10.0.0.1:6443",
        "--token=sekret",
        "--certificate-authority=/ca.pem",
        "--client-certificate=/c.pem",
        "--client-key=/k.pem",
        "--insecure-skip-tls-verify",
        "--tls-server-name=api",
        "--as=alice",
        "--as-group=g1",
        "--as-group=g2",
        "--as-uid=42",
        "--request-timeout=30",
        "-v",
        "3",
    ])
    .unwrap()
    .try_into_config()
    .unwrap();
    let k = &c.connection;
    assert_eq!(k.server.as_deref(), Some("https://10.0.0.1:6443"));
    assert_eq!(k.impersonate_groups, ["g1", "g2"]);
    assert_eq!(k.request_timeout, Some(Duration::from_secs(30)));
    assert!(k.insecure_skip_tls_verify);
    assert_eq!(c.log_level, LogLevel::Debug);
    let shown = format!("{c:?}");
    assert!(!shown.contains("sekret"), "{shown}");
    let cli =
        Cli::try_parse_from(["x", "--node-id", "n", "--endpoint", "/s", "--token=sekret"]).unwrap();
    let shown = format!("{cli:?}");
    assert!(!shown.contains("sekret"), "{shown}");
}

#[test]
fn help_lists_every_go_flag() {
    let help = <Cli as clap::CommandFactory>::command()
        .render_long_help()
        .to_string();
    for flag in [
        "-v, --log-level",
        "--node-id",
        "--endpoint",
        "--driver-name",
        "--data-root",
        "--use-token-request",
        "--metrics-bind-address",
        "--continue-on-not-ready",
        "--kube-api-qps",
        "--kube-api-burst",
        "--pod-readiness-gate",
        "--gate-backoff-duration",
        "--gate-backoff-factor",
        "--gate-backoff-jitter",
        "--gate-backoff-cap",
        "--kubeconfig",
        "--context",
        "--cluster",
        "--user",
        "-s, --server",
        "--token",
        "--certificate-authority",
        "--client-certificate",
        "--client-key",
        "--insecure-skip-tls-verify",
        "--tls-server-name",
        "--as ",
        "--as-group",
        "--as-uid",
        "--request-timeout",
        "--go-defaults",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn every_flag_is_listed_under_a_heading_and_rust_log_is_documented() {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let loose: Vec<String> = cmd
        .get_arguments()
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
        .filter(|a| a.get_help_heading().is_none())
        .map(|a| a.get_id().to_string())
        .collect();
    assert!(
        loose.is_empty(),
        "flags without a --help heading: {loose:?}"
    );
    let headings: std::collections::BTreeSet<&str> = cmd
        .get_arguments()
        .filter_map(|a| a.get_help_heading())
        .collect();
    assert!(headings.len() >= 8, "{headings:?}");
    let help = Cli::command().render_long_help().to_string();
    assert!(help.contains("RUST_LOG"), "--help documents RUST_LOG");
    assert!(
        help.contains("status"),
        "--help names the status subcommand"
    );
}

/// `try_into_config` of these flags after the required ones.
fn start_with(extra: &[&str]) -> Result<Config, String> {
    let base = ["x", "--node-id", "n"];
    Cli::try_parse_from(base.iter().copied().chain(extra.iter().copied()))
        .map_err(|e| e.to_string())?
        .try_into_config()
        .map_err(|e| e.to_string())
}

#[test]
fn non_loopback_tcp_endpoints_are_refused_unless_allowed() {
    for ok in [
        "tcp://127.0.0.1:10000",
        "tcp://127.1.2.3:10000",
        "tcp://[::1]:10000",
        "tcp://localhost:10000",
        "unix:///csi/csi.sock",
    ] {
        let c = start_with(&["--endpoint", ok]).unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert!(!c.transport.allow_non_loopback_endpoint);
    }
    for exposed in [
        "tcp://0.0.0.0:10000",
        "tcp://[::]:10000",
        "tcp://10.0.0.1:10000",
    ] {
        let err = start_with(&["--endpoint", exposed]).unwrap_err();
        assert!(
            err.contains("--allow-non-loopback-endpoint") && err.contains("not a loopback"),
            "{exposed}: {err}"
        );
        let c = start_with(&["--endpoint", exposed, "--allow-non-loopback-endpoint"])
            .unwrap_or_else(|e| panic!("{exposed} allowed: {e}"));
        assert!(c.transport.allow_non_loopback_endpoint);
    }
    // Embedders' configs are checked by the same function at run.
    assert!(check_endpoint(&Endpoint::Tcp("0.0.0.0:1".into()), false).is_err());
    assert!(check_endpoint(&Endpoint::Tcp("0.0.0.0:1".into()), true).is_ok());
}

#[test]
fn token_file_is_read_at_start_and_exclusive_with_token() {
    use secrecy::ExposeSecret;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "from-a-file\n").unwrap();
    let path = file.to_str().unwrap();
    let c = start_with(&["--endpoint", "/s", "--token-file", path]).unwrap();
    assert_eq!(
        c.connection.token.as_ref().unwrap().expose_secret(),
        "from-a-file"
    );
    assert!(!format!("{c:?}").contains("from-a-file"), "never in Debug");

    let err = start_with(&["--endpoint", "/s", "--token", "t", "--token-file", path]).unwrap_err();
    assert!(
        err.contains("--token-file") && err.contains("--token"),
        "{err}"
    );
    let missing = dir.path().join("missing");
    let err = start_with(&[
        "--endpoint",
        "/s",
        "--token-file",
        missing.to_str().unwrap(),
    ])
    .unwrap_err();
    assert!(
        err.contains("--token-file") && err.contains("does not exist"),
        "{err}"
    );
    std::fs::write(&file, "\n").unwrap();
    let err = start_with(&["--endpoint", "/s", "--token-file", path]).unwrap_err();
    assert!(
        err.contains("--token-file") && err.contains("empty"),
        "{err}"
    );
}

#[test]
fn token_request_over_an_insecure_connection_is_refused_unless_allowed() {
    use cmcsi_issuer_client::InsecureTransport as T;
    for why in [T::PlainHttp, T::SkipTlsVerify] {
        let err = check_token_transport(true, Some(why), false).unwrap_err();
        assert!(
            err.contains("--allow-insecure-token-request") && err.contains(&why.to_string()),
            "{err}"
        );
        assert!(check_token_transport(true, Some(why), true).is_ok());
        assert!(check_token_transport(false, Some(why), false).is_ok());
    }
    assert!(check_token_transport(true, None, false).is_ok());
    let c = start_with(&["--endpoint", "/s", "--allow-insecure-token-request"]).unwrap();
    assert!(c.transport.allow_insecure_token_request);
}
