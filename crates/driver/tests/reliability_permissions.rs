//! R6, permissions: the CSI socket is 0600, the data root 0700, the files a
//! Pod sees 0440 (readable by the Pod's fsGroup only when one is set), and
//! with `--mount-tmpfs` keys are only ever on a tmpfs: the driver refuses to
//! start over a data root that is some other file system.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use cmcsi_testkit::in_mount_namespace;
use cmcsi_testkit::kubelet::DriverProcess;
use cmcsi_testkit::{FakeApi, Script};
use common::{BIN, Harness, Pod, TOKEN, requests_for};

const TMPFS_MAGIC: i64 = 0x0102_1994;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o7777
}

fn fs_type(p: &Path) -> i64 {
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let t = rustix::fs::statfs(p).unwrap().f_type as i64;
    t
}

#[test]
fn socket_data_root_and_file_modes() {
    in_mount_namespace!(async {
        let h = Harness::start_with(
            FakeApi::builder()
                .issuer("ca-issuer", Script::Sign)
                .issuer("later", Script::Never),
            &["--issuance-timeout", "2s"],
        )
        .await;
        assert_eq!(mode(&h.socket()), 0o600, "CSI socket");
        assert_eq!(mode(&h.data_root), 0o700, "data root");
        let inmemfs = h.data_root.join("inmemfs");
        assert_eq!(mode(&inmemfs), 0o700, "inmemfs");
        assert_eq!(fs_type(&inmemfs), TMPFS_MAGIC, "inmemfs is a tmpfs");
        assert_ne!(fs_type(&h.data_root), TMPFS_MAGIC, "the test's disk is not");

        let pod = Pod::new("ns", "perms");
        let base = [
            ("csi.cert-manager.io/issuer-name", "ca-issuer"),
            ("csi.cert-manager.io/dns-names", "p.example.com"),
            ("csi.cert-manager.io/pkcs12-enable", "true"),
            ("csi.cert-manager.io/pkcs12-password", "pw"),
        ];
        // No fsGroup: 0440 owned by the driver's user and group, so no
        // Pod group can read them.
        let t = h.publish("csi-nogroup", &pod, &base).await.unwrap();
        let driver_gid = rustix::process::getegid().as_raw();
        for f in ["key.pem", "crt.pem", "ca.pem", "keystore.p12"] {
            let m = std::fs::metadata(t.join(f)).unwrap();
            assert_eq!(m.mode() & 0o7777, 0o440, "{f}");
            assert_eq!(m.gid(), driver_gid, "{f}: no fsGroup, no other group");
            assert_eq!(fs_type(&t.join(f)), TMPFS_MAGIC, "{f} is on the tmpfs");
        }
        let vol = h.volume_dir("csi-nogroup");
        assert_eq!(mode(&vol), 0o700, "volume directory");
        assert_eq!(mode(&vol.join("metadata.json")), 0o600, "metadata.json");
        assert_eq!(
            mode(&vol.join("data")) & 0o007,
            0,
            "data/ is closed to others"
        );

        // fsGroup from the attribute and from the Pod (volume_mount_group).
        let mut with_group = base.to_vec();
        with_group.push(("csi.cert-manager.io/fs-group", "2000"));
        let t = h
            .publish("csi-group-attr", &pod, &with_group)
            .await
            .unwrap();
        for f in ["key.pem", "crt.pem", "ca.pem", "keystore.p12"] {
            let m = std::fs::metadata(t.join(f)).unwrap();
            assert_eq!((m.mode() & 0o7777, m.gid()), (0o440, 2000), "{f}");
        }
        let mut req = Harness::request(
            "csi-group-pod",
            &h.target("csi-group-pod"),
            pod.context(&base),
        );
        if let Some(cmcsi_proto::v1::volume_capability::AccessType::Mount(m)) = req
            .volume_capability
            .as_mut()
            .and_then(|c| c.access_type.as_mut())
        {
            m.volume_mount_group = "3000".into();
        }
        h.node().await.node_publish_volume(req).await.unwrap();
        let m = std::fs::metadata(h.target("csi-group-pod").join("key.pem")).unwrap();
        assert_eq!((m.mode() & 0o7777, m.gid()), (0o440, 3000));

        // A request in flight keeps its key beside the volume, 0600, on the tmpfs.
        let later = [
            ("csi.cert-manager.io/issuer-name", "later"),
            ("csi.cert-manager.io/dns-names", "l.example.com"),
        ];
        h.publish("csi-pending", &pod, &later).await.unwrap_err();
        assert_eq!(requests_for(&h.api, "csi-pending").len(), 1);
        let pending = h.volume_dir("csi-pending").join("pending-request.json");
        assert_eq!(mode(&pending), 0o600, "pending request record");
        assert_eq!(fs_type(&pending), TMPFS_MAGIC);
    });
}

#[test]
fn refuses_a_data_root_that_is_not_a_tmpfs() {
    in_mount_namespace!(async {
        let api = common::fake_api(FakeApi::builder().issuer("ca-issuer", Script::Sign)).await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig, TOKEN).unwrap();
        // Someone mounted a disk directory where the tmpfs should be.
        let data_root = dir.path().join("data");
        let disk = dir.path().join("disk");
        std::fs::create_dir_all(data_root.join("inmemfs")).unwrap();
        std::fs::create_dir_all(&disk).unwrap();
        rustix::mount::mount_bind(&disk, data_root.join("inmemfs")).unwrap();
        assert_ne!(fs_type(&data_root.join("inmemfs")), TMPFS_MAGIC);
        let args: Vec<String> = [
            "--node-id",
            "node-a",
            "--data-root",
            data_root.to_str().unwrap(),
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let err = DriverProcess::spawn(
            Path::new(BIN),
            &dir.path().join("csi.sock"),
            &dir.path().join("driver.log"),
            &args,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("not a tmpfs"), "{err}");
        assert_eq!(
            std::fs::read_dir(&disk).unwrap().count(),
            0,
            "nothing was written to disk"
        );

        // Told to accept keys on that file system, it starts.
        let mut args = args;
        args.push("--mount-tmpfs=false".into());
        let d = DriverProcess::spawn(
            Path::new(BIN),
            &dir.path().join("csi.sock"),
            &dir.path().join("driver.log"),
            &args,
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(d);
        // So the temporary directory can be removed.
        rustix::mount::unmount(
            data_root.join("inmemfs"),
            rustix::mount::UnmountFlags::DETACH,
        )
        .unwrap();
    });
}
