//! SELinux nodes: the kubelet passes `context="<label>"` in
//! `volume_capability.mount.mount_flags` when the CSIDriver object sets
//! `seLinuxMount: true` and the Pod has an SELinux label, and expects the
//! volume's files to carry that label without the container runtime
//! relabelling them.
//!
//! `context=` is an option of a file system, not of a mount: a bind mount
//! of a directory on the node's shared tmpfs ignores it, and remounting the
//! bind mount with it cannot change the file system's label (the kernel
//! refuses a different `context=` on remount). So a volume published with a
//! context gets a small tmpfs of its own (`--selinux-volume-size`) on its
//! `data/`, mounted with that context before its first file is written
//! ([`cmcsi_store::Store::mount_volume_fs`]); the read-only bind mount at
//! the Pod's target then shows that file system, label included, and
//! unpublish unmounts it with the volume.

use cmcsi_store::StoreError;

use crate::driver::Driver;
use crate::error::DriverError;
use crate::locks::VolumeGuard;
use crate::volume::Volume;

/// Longest SELinux context accepted in a `context=` mount flag.
pub const MAX_CONTEXT_BYTES: usize = 256;

/// The SELinux context in the kubelet's mount flags (`context="..."`,
/// quotes optional), checked: at most [`MAX_CONTEXT_BYTES`] of the
/// characters a context is made of (`user_u:role_r:type_t:s0:c1,c2`).
/// Other flags are ignored, as before. `None` when there is no `context=`.
pub fn context_of(flags: &[String]) -> Result<Option<String>, DriverError> {
    let mut found = None;
    for flag in flags {
        let Some(value) = flag.trim().strip_prefix("context=") else {
            continue;
        };
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        let ok = !value.is_empty()
            && value.len() <= MAX_CONTEXT_BYTES
            && value.contains(':')
            && value.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b',' | b'-')
            });
        if !ok {
            return Err(DriverError::InvalidRequest(format!(
                "volume_capability.mount.mount_flags: `{}` is not an SELinux context= option \
                 (expected context=\"user_u:role_r:type_t:s0:c1,c2\", at most {MAX_CONTEXT_BYTES} \
                 bytes of letters, digits and _ . : , -)",
                flag.chars().take(80).collect::<String>().escape_debug()
            )));
        }
        if found.as_deref().is_some_and(|f: &str| f != value) {
            return Err(DriverError::InvalidRequest(
                "volume_capability.mount.mount_flags names two different SELinux contexts".into(),
            ));
        }
        found = Some(value.to_owned());
    }
    Ok(found)
}

impl Driver {
    /// Gives the volume its own file system with the request's SELinux
    /// context, before its first issuance. A volume that already has files
    /// (created by a publish without a context) keeps them on the shared
    /// tmpfs, with a warning.
    pub(crate) async fn apply_selinux_context(
        &self,
        context: Option<&str>,
        mount_group: Option<u32>,
        volume: &Volume,
        guard: &VolumeGuard,
    ) -> Result<(), DriverError> {
        let Some(context) = context.map(str::to_owned) else {
            return Ok(());
        };
        let id = volume.id().to_owned();
        let size = self.config.selinux_volume_size;
        let gid = volume.spec.fs_group.or(mount_group);
        // Without SELinux the kernel refuses context= (mount(8) drops it
        // then); the kubelet does not ask on such nodes, but if it does, the
        // volume still gets its file system, without the label.
        let enabled = selinux_enabled();
        let options = if enabled {
            format!("context=\"{context}\"")
        } else {
            tracing::warn!(volume = volume.id(), context = %context, "the kubelet asked for an SELinux context, but SELinux is not enabled in this kernel: the volume's files get their own tmpfs without it");
            String::new()
        };
        let result = self
            .on_store_locked(guard, move |s| s.mount_volume_fs(&id, size, gid, &options))
            .await;
        match result {
            Ok(mounted) => {
                if mounted {
                    tracing::info!(volume = volume.id(), context = %context, "volume files on their own tmpfs with the Pod's SELinux context");
                }
                Ok(())
            }
            Err(DriverError::Store(StoreError::Conflict { reason, .. })) if volume.issued() => {
                tracing::warn!(volume = volume.id(), context = %context, reason = %reason, "the volume was first published without an SELinux context; its files keep the data root's label");
                Ok(())
            }
            Err(DriverError::Store(StoreError::Mount { path, source })) => {
                Err(DriverError::Mount {
                    action: "mounting the tmpfs (--selinux-volume-size) that gives the volume's \
                             files the Pod's SELinux context at",
                    path,
                    source,
                })
            }
            Err(e) => Err(e),
        }
    }
}

/// Whether SELinux is the running kernel's LSM: the process's own
/// context (`/proc/self/attr/current`) reads as an SELinux context
/// (`user:role:type:level`). Without SELinux the file cannot be read, or
/// (AppArmor) holds a profile name without colons.
pub fn selinux_enabled() -> bool {
    std::fs::read_to_string("/proc/self/attr/current")
        .is_ok_and(|c| c.trim_end_matches(['\0', '\n']).split(':').count() >= 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(f: &[&str]) -> Vec<String> {
        f.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_kubelets_context_flag_is_read_with_or_without_quotes() {
        let ctx = "system_u:object_r:container_file_t:s0:c1,c2";
        assert_eq!(
            context_of(&flags(&[&format!("context=\"{ctx}\"")]))
                .unwrap()
                .as_deref(),
            Some(ctx)
        );
        assert_eq!(
            context_of(&flags(&["ro", &format!("context={ctx}")]))
                .unwrap()
                .as_deref(),
            Some(ctx)
        );
        assert_eq!(context_of(&flags(&["noatime"])).unwrap(), None);
        assert_eq!(context_of(&[]).unwrap(), None);
    }

    #[test]
    fn a_context_that_could_smuggle_mount_options_is_refused() {
        for bad in [
            "context=\"a:b:c\",size=1G",
            "context=a:b:c,uid=0 x",
            "context=",
            "context=\"noColon\"",
            "context=\"a:b:c\\\"",
        ] {
            let e = context_of(&flags(&[bad])).unwrap_err();
            assert!(matches!(e, DriverError::InvalidRequest(_)), "{bad}: {e}");
        }
        let long = format!("context=a:{}", "b".repeat(MAX_CONTEXT_BYTES));
        assert!(context_of(&flags(&[&long])).is_err());
        assert!(context_of(&flags(&["context=a:b:c", "context=a:b:d"])).is_err());
    }
}
