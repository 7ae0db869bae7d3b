//! R3, hostile input: well over 100 malformed or malicious publish requests
//! (traversal in file names and volume ids, absolute paths, NUL bytes,
//! enormous values, thousands of SANs, wrong types, a target path that is a
//! symlink) and hostile issuer answers (invalid UTF-8 or garbage in the
//! returned PEM, a certificate for another key). Each gets INVALID_ARGUMENT
//! or a clear error, the driver never panics and keeps serving, and nothing
//! is written outside the data root and the targets.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use cmcsi_proto::v1::{self as csi, volume_capability};
use cmcsi_testkit::in_mount_namespace;
use cmcsi_testkit::{FakeApi, Script};
use common::{Harness, Pod, TOKEN, is_mounted, mounts_under, read_set, set_matches};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// INVALID_ARGUMENT.
    Invalid,
    /// Some error with a message a person can act on.
    Error,
    /// Accepted as the default (an empty value means "not set", as with
    /// the Go driver); unpublished again at once.
    Accepted,
}

struct Case {
    what: String,
    req: csi::NodePublishVolumeRequest,
    expect: Expect,
}

const ISSUER: (&str, &str) = ("csi.cert-manager.io/issuer-name", "ca-issuer");
const DNS: (&str, &str) = ("csi.cert-manager.io/dns-names", "h.example.com");
const P: &str = "csi.cert-manager.io/";

fn base_context() -> HashMap<String, String> {
    Pod::new("ns", "hostile").context(&[ISSUER, DNS])
}

/// Everything under `dir` except the parts the driver may write: path ->
/// (kind, size, mode, mtime).
fn snapshot(dir: &Path, skip: &[&str]) -> BTreeMap<PathBuf, (String, u64, u32, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if skip.iter().any(|s| rel == Path::new(s)) {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            let kind = format!("{:?}", m.file_type());
            if m.is_dir() {
                stack.push(p.clone());
            }
            // A directory's mtime changes when anything is created in it.
            out.insert(
                rel,
                (
                    kind,
                    m.len(),
                    m.mode(),
                    m.mtime_nsec() + m.mtime() * 1_000_000_000,
                ),
            );
        }
    }
    out
}

fn cases(h: &Harness, sentinel: &Path) -> Vec<Case> {
    let mut out = Vec::new();
    let mut n = 0usize;
    let mut next_vol = || {
        n += 1;
        format!("csi-hostile-{n:03}")
    };
    let mut push = |what: String, req: csi::NodePublishVolumeRequest, expect| {
        out.push(Case { what, req, expect })
    };
    let req_for =
        |vol: &str, ctx: HashMap<String, String>| Harness::request(vol, &h.target(vol), ctx);

    // Volume ids.
    for id in [
        "",
        ".",
        "..",
        "../escape",
        "../../../../sentinel/pwned",
        "/absolute",
        "a/b",
        "a\0b",
        ".quarantine",
        ".creating-csi-x",
        "csi-\n",
        "csi x",
        "csi-\u{202e}gpj",
        &"x".repeat(129),
        &"a".repeat(100_000),
    ] {
        let target = h.target("csi-hostile-id");
        push(
            format!(
                "volume id {:?}",
                id.escape_debug()
                    .to_string()
                    .chars()
                    .take(40)
                    .collect::<String>()
            ),
            Harness::request(id, &target, base_context()),
            Expect::Invalid,
        );
    }

    // Target paths.
    let link = h.dir.path().join("pods/link-to-sentinel");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(sentinel, &link).unwrap();
    for t in [
        String::new(),
        "relative/mount".to_string(),
        "../../sentinel".to_string(),
        format!("{}/pods/../sentinel", h.dir.path().display()),
        format!("{}/pods/x\0y", h.dir.path().display()),
        link.display().to_string(),
    ] {
        let mut r = req_for(&next_vol(), base_context());
        r.target_path = t.clone();
        push(format!("target path {t:?}"), r, Expect::Invalid);
    }

    // Request fields.
    {
        let mut r = req_for(&next_vol(), base_context());
        r.readonly = false;
        push("not read-only".into(), r, Expect::Invalid);
        let mut r = req_for(&next_vol(), base_context());
        r.volume_capability = None;
        push("no volume capability".into(), r, Expect::Invalid);
        let mut r = req_for(&next_vol(), base_context());
        r.volume_capability.as_mut().unwrap().access_type =
            Some(volume_capability::AccessType::Block(Default::default()));
        push("block volume".into(), r, Expect::Invalid);
        for eph in [None, Some("false"), Some("TRUE"), Some("")] {
            let mut ctx = base_context();
            match eph {
                None => ctx.remove("csi.storage.k8s.io/ephemeral"),
                Some(v) => ctx.insert("csi.storage.k8s.io/ephemeral".into(), v.into()),
            };
            push(
                format!("ephemeral {eph:?}"),
                req_for(&next_vol(), ctx),
                Expect::Invalid,
            );
        }
        for g in ["abc", "-1", "99999999999", "0x10", "1 000", "\0"] {
            let mut r = req_for(&next_vol(), base_context());
            if let Some(volume_capability::AccessType::Mount(m)) =
                r.volume_capability.as_mut().unwrap().access_type.as_mut()
            {
                m.volume_mount_group = g.into();
            }
            push(format!("volume_mount_group {g:?}"), r, Expect::Invalid);
        }
    }

    // Volume attributes: wrong types, bad values, traversal, huge values.
    let huge = "a".repeat(1 << 20);
    let many_sans = (0..5000)
        .map(|i| format!("h{i}.example.com"))
        .collect::<Vec<_>>()
        .join(",");
    let traversal = format!("{}pwned", "../".repeat(5));
    let deep = format!("{}tmp/cmcsi-hostile-pwned", "../".repeat(30));
    let attr_cases: Vec<(&str, String)> = vec![
        ("issuer-name", String::new()),
        ("issuer-name", "a/b".into()),
        ("issuer-name", huge.clone()),
        ("issuer-kind", "Issuer\0".into()),
        ("duration", "forever".into()),
        ("duration", "-1h".into()),
        ("duration", "0s".into()),
        ("duration", "99999999999h".into()),
        ("duration", "1h\0".into()),
        ("renew-before", "soon".into()),
        ("renew-before", "-5m".into()),
        ("key-algorithm", "DSA".into()),
        ("key-size", "abc".into()),
        ("key-size", "-1".into()),
        ("key-size", "99999999".into()),
        ("key-size", "1".into()),
        ("key-encoding", "PKCS99".into()),
        ("is-ca", "maybe".into()),
        ("reuse-private-key", "perhaps".into()),
        ("disable-auto-renew", "2".into()),
        ("fs-group", "-5".into()),
        ("fs-group", "abc".into()),
        ("fs-group", "99999999999".into()),
        ("certificate-file", traversal.clone()),
        ("certificate-file", "/etc/passwd".into()),
        ("certificate-file", "a/../../b".into()),
        ("certificate-file", "..data".into()),
        ("certificate-file", "..2026_01_01_00_00_00.0".into()),
        ("certificate-file", "a\0b".into()),
        ("certificate-file", "dir/".into()),
        ("certificate-file", "./x".into()),
        ("certificate-file", "x".repeat(256)),
        ("certificate-file", "a/".repeat(3000)),
        ("certificate-file", "tls.key-same".into()),
        ("privatekey-file", deep.clone()),
        ("privatekey-file", "/root/.ssh/id_rsa".into()),
        ("privatekey-file", "../../../metadata.json".into()),
        ("ca-file", traversal.clone()),
        ("ca-file", "..".into()),
        ("ca-file", "crt.pem".into()),
        ("pkcs12-filename", traversal.clone()),
        ("pkcs12-enable", "yes please".into()),
        ("pkcs12-profile", "Modern2099".into()),
        ("pkcs12-profile", huge.clone()),
        ("pkcs12-truststore-filename", deep.clone()),
        ("pkcs12-truststore-filename", "key.pem".into()),
        ("pkcs12-password-secret-key", "../token".into()),
        ("pkcs12-password-secret-key", "absent-from-secrets".into()),
        ("jks-enable", "sure".into()),
        ("jks-filename", traversal.clone()),
        ("jks-filename", "..data".into()),
        (
            "jks-truststore-filename",
            "/etc/ssl/certs/java/cacerts".into(),
        ),
        ("jks-alias", "ca".into()),
        ("jks-alias", "a\u{1}b".into()),
        ("jks-alias", huge.clone()),
        ("jks-password-secret-key", "k\0".into()),
        ("jks-password-secret-key", "x".repeat(300)),
        ("credential-bundle-file", traversal.clone()),
        ("credential-bundle-file", "crt.pem".into()),
        ("credential-bundle-file", huge.clone()),
        ("dns-names", "a\0b.example.com".into()),
        ("dns-names", format!("{}.com", "a".repeat(300))),
        ("dns-names", many_sans.clone()),
        ("dns-names", huge.clone()),
        ("dns-names", "exa mple.com".into()),
        ("dns-names", "-bad-.example.com".into()),
        ("uri-sans", "not a uri".into()),
        ("uri-sans", format!("spiffe://{}", "a".repeat(5000))),
        ("ip-sans", "999.1.1.1".into()),
        ("ip-sans", "::g".into()),
        (
            "ip-sans",
            (0..300)
                .map(|i| format!("10.0.{}.{}", i / 250, i % 250))
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("common-name", huge.clone()),
        ("common-name", "${NOPE}".into()),
        ("common-name", "${POD_NAME".into()),
        ("key-usages", "bogus".into()),
        ("key-usages", "server auth,\0".into()),
        ("literal-subject", "CN=a,,,=,=".into()),
        (
            "literal-subject",
            (0..100)
                .map(|i| format!("OU=o{i}"))
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("issuer-nmae", "typo".into()),
        ("\0", "nul key".into()),
        ("", "empty key".into()),
    ];
    for (key, value) in attr_cases {
        let mut ctx = base_context();
        ctx.insert(format!("{P}{key}"), value.clone());
        if key == "certificate-file" && value == "tls.key-same" {
            ctx.insert(format!("{P}certificate-file"), "same.pem".into());
            ctx.insert(format!("{P}privatekey-file"), "same.pem".into());
        }
        if key == "ca-file" && value == "crt.pem" {
            // The CA would overwrite the certificate.
        }
        if key == "pkcs12-filename" {
            ctx.insert(format!("{P}pkcs12-enable"), "true".into());
            ctx.insert(format!("{P}pkcs12-password"), "pw".into());
        }
        // The keystore attributes take effect (and are checked) only with their
        // keystore enabled; a Secret key stands in for the password.
        for kind in ["pkcs12", "jks"] {
            if key.starts_with(&format!("{kind}-")) && key != format!("{kind}-enable") {
                ctx.insert(format!("{P}{kind}-enable"), "true".into());
                if !key.ends_with("-secret-key") {
                    ctx.insert(format!("{P}{kind}-password"), "pw".into());
                }
            }
        }
        let shown: String = value.escape_debug().to_string().chars().take(40).collect();
        push(
            format!("{key}={shown}"),
            req_for(&next_vol(), ctx),
            Expect::Invalid,
        );
    }
    let mut ctx = base_context();
    ctx.insert(format!("{P}certificate-file"), String::new());
    push(
        "certificate-file= (empty means the default)".into(),
        req_for(&next_vol(), ctx),
        Expect::Accepted,
    );
    // Missing or hostile Pod information.
    for (key, value) in [
        ("csi.storage.k8s.io/pod.namespace", None),
        ("csi.storage.k8s.io/pod.namespace", Some("../../etc")),
        ("csi.storage.k8s.io/pod.namespace", Some("")),
        ("csi.storage.k8s.io/pod.name", Some(huge.as_str())),
    ] {
        let mut ctx = base_context();
        match value {
            None => ctx.remove(key),
            Some(v) => ctx.insert(key.into(), v.into()),
        };
        push(
            format!("{key}={:?}", value.map(|v| v.len())),
            req_for(&next_vol(), ctx),
            Expect::Error,
        );
    }
    // Thousands of unknown keys.
    let mut ctx = base_context();
    for i in 0..5000 {
        ctx.insert(format!("{P}unknown-{i}"), "x".into());
    }
    push(
        "5000 unknown attributes".into(),
        req_for(&next_vol(), ctx),
        Expect::Invalid,
    );
    out
}

/// Acts as a broken issuer: marks the request signed with `cert` and `ca`.
async fn answer(api: &FakeApi, ns: &str, name: &str, cert: &[u8], ca: &[u8]) {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let now = "2026-01-01T00:00:00Z";
    let body = serde_json::json!({"status": {
        "certificate": b64(cert),
        "ca": b64(ca),
        "conditions": [
            {"type": "Approved", "status": "True", "reason": "Test", "message": "ok", "lastTransitionTime": now},
            {"type": "Ready", "status": "True", "reason": "Issued", "message": "issued", "lastTransitionTime": now},
        ],
    }})
    .to_string();
    let mut s = tokio::net::TcpStream::connect(api.addr()).await.unwrap();
    let head = format!(
        "PATCH /apis/cert-manager.io/v1/namespaces/{ns}/certificaterequests/{name}/status HTTP/1.1\r\n\
         Host: {}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/merge-patch+json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        api.addr(),
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

#[test]
fn hostile_requests_get_clear_errors_and_touch_nothing_outside() {
    in_mount_namespace!(async {
        let h = Harness::start_with(
            FakeApi::builder()
                .issuer("ca-issuer", Script::Sign)
                .issuer("broken", Script::Never),
            &["--issuance-timeout", "3s"],
        )
        .await;
        let sentinel = h.dir.path().join("sentinel");
        std::fs::create_dir_all(sentinel.join("sub")).unwrap();
        std::fs::write(sentinel.join("keep.txt"), b"keep").unwrap();
        let skip = ["data", "pods", "driver.log", "plugin"];
        let before = snapshot(h.dir.path(), &skip);
        let passwd = std::fs::metadata("/etc/passwd").unwrap().mtime();

        let corpus = cases(&h, &sentinel);
        let mut problems = Vec::new();
        let mut node = h.node().await;
        for case in &corpus {
            let result = tokio::time::timeout(
                Duration::from_secs(20),
                node.node_publish_volume(case.req.clone()),
            )
            .await
            .unwrap_or_else(|_| panic!("{}: no answer", case.what));
            match result {
                Ok(_) if case.expect == Expect::Accepted => {
                    let t = Path::new(&case.req.target_path);
                    let (k, c) = read_set(t, "key.pem", "crt.pem").unwrap();
                    set_matches(&k, &c).unwrap();
                    node.node_unpublish_volume(csi::NodeUnpublishVolumeRequest {
                        volume_id: case.req.volume_id.clone(),
                        target_path: case.req.target_path.clone(),
                    })
                    .await
                    .unwrap();
                    continue;
                }
                Ok(_) => problems.push(format!("{}: accepted", case.what)),
                Err(st) => {
                    let ok = match case.expect {
                        Expect::Invalid => st.code() == Code::InvalidArgument,
                        Expect::Error => !matches!(st.code(), Code::Unknown | Code::Ok),
                        Expect::Accepted => false,
                    };
                    if !ok || st.message().len() < 10 {
                        problems.push(format!("{}: {:?} {}", case.what, st.code(), st.message()));
                    }
                    if st.message().len() > 8 * 1024 {
                        problems.push(format!(
                            "{}: a {} byte message echoes the input",
                            case.what,
                            st.message().len()
                        ));
                    }
                }
            }
            if !h.serving().await {
                panic!("the driver stopped serving after {}", case.what);
            }
            if !case.req.target_path.is_empty() && Path::new(&case.req.target_path).is_absolute() {
                let t = Path::new(&case.req.target_path);
                if std::fs::symlink_metadata(t).is_ok_and(|m| !m.file_type().is_symlink())
                    && is_mounted(t)
                {
                    problems.push(format!("{}: something was mounted", case.what));
                }
            }
        }

        // Hostile answers from the issuer.
        let ours = h.api.ca_pem();
        let other_leaf = {
            // A certificate for some other key: the one the API's CA holds.
            ours.clone().into_bytes()
        };
        let pem_cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
            (
                "invalid UTF-8 certificate",
                vec![0xff, 0xfe, 0x00, 0x80, b'-'],
                ours.clone().into_bytes(),
            ),
            (
                "no PEM at all",
                b"hello, I am a certificate".to_vec(),
                ours.clone().into_bytes(),
            ),
            (
                "garbage inside a PEM block",
                b"-----BEGIN CERTIFICATE-----\nAAAA!!!!\n-----END CERTIFICATE-----\n".to_vec(),
                ours.clone().into_bytes(),
            ),
            (
                "valid base64, invalid DER",
                b"-----BEGIN CERTIFICATE-----\nMIIBAAAAAAAAAAAAAAAA\n-----END CERTIFICATE-----\n"
                    .to_vec(),
                ours.clone().into_bytes(),
            ),
            (
                "a certificate for another key",
                other_leaf,
                ours.clone().into_bytes(),
            ),
            (
                "a 1 MB certificate",
                format!(
                    "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                    "A".repeat(1 << 20)
                )
                .into_bytes(),
                ours.clone().into_bytes(),
            ),
        ];
        let pod = Pod::new("ns", "pem");
        for (i, (what, cert, ca)) in pem_cases.iter().enumerate() {
            let vol = format!("csi-pem-{i}");
            let ctx = pod.context(&[("csi.cert-manager.io/issuer-name", "broken"), DNS]);
            let req = Harness::request(&vol, &h.target(&vol), ctx);
            let mut n = h.node().await;
            let call = tokio::spawn(async move { n.node_publish_volume(req).await });
            let r = h
                .api
                .wait_for_request("ns", Duration::from_secs(10), |r| {
                    r["metadata"]["annotations"]["csi.cert-manager.io/volume-id"] == vol.as_str()
                })
                .await
                .unwrap();
            let name = r["metadata"]["name"].as_str().unwrap().to_string();
            answer(&h.api, "ns", &name, cert, ca).await;
            match call.await.unwrap() {
                Ok(_) => problems.push(format!("{what}: accepted")),
                Err(st) => {
                    if matches!(st.code(), Code::Unknown | Code::Ok) || st.message().len() < 10 {
                        problems.push(format!("{what}: {:?} {}", st.code(), st.message()));
                    }
                    eprintln!("{what}: {:?} {}", st.code(), st.message());
                }
            }
            assert!(!is_mounted(&h.target(&vol)), "{what}: mounted");
            assert!(h.serving().await, "{what}: the driver stopped serving");
        }

        for p in &problems {
            eprintln!("PROBLEM {p}");
        }
        // Nothing outside the data root and the targets changed.
        let after = snapshot(h.dir.path(), &skip);
        assert_eq!(before, after, "files outside the data root changed");
        assert_eq!(std::fs::metadata("/etc/passwd").unwrap().mtime(), passwd);
        assert!(!Path::new("/tmp/cmcsi-hostile-pwned").exists());
        assert!(!h.dir.path().join("pwned").exists());
        assert_eq!(
            mounts_under(&h.dir.path().join("pods")),
            Vec::<String>::new()
        );
        for e in std::fs::read_dir(h.data_root.join("inmemfs")).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                name.starts_with("csi-hostile-")
                    || name.starts_with("csi-pem-")
                    || name == ".quarantine",
                "unexpected entry in the data root: {name:?}"
            );
        }

        // Still serving real Pods.
        let target = h
            .publish("csi-after", &Pod::new("ns", "after"), &[ISSUER, DNS])
            .await
            .unwrap();
        let (k, c) = read_set(&target, "key.pem", "crt.pem").unwrap();
        set_matches(&k, &c).unwrap();
        let log = h.logs();
        assert!(!log.contains("panicked"), "the driver panicked");
        eprintln!(
            "R3: {} hostile requests, {} hostile issuer answers",
            corpus.len(),
            pem_cases.len()
        );
        assert!(corpus.len() + pem_cases.len() >= 100);
        assert!(
            problems.is_empty(),
            "{} problems:\n{}",
            problems.len(),
            problems.join("\n")
        );
    });
}
