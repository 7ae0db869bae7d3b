//! One version everywhere: the workspace's Cargo version (which the binary reports and the
//! generator writes into every manifest's image tag), the chart's `version` and `appVersion`, and
//! the newest heading of `CHANGELOG.md` must name the same version, so that flags added since the
//! last release never ship in manifests that name an older image. `cargo xtask deploy --check`
//! checks it; with `--release-tag vX.Y.Z` (the release workflow) it also checks that the tag is
//! that version and not a development one.
//!
//! The files are read as text (a section-aware scan of `Cargo.toml`, the first `## [..]` heading
//! of the changelog): the checks need three lines, not a TOML or Markdown parser.

use std::path::Path;

use anyhow::{Context, Result};

use super::IMAGE_REPOSITORY;

/// The version as each place states it.
#[derive(Clone, Debug, Default)]
pub struct Versions {
    /// `version` of `[workspace.package]` in `Cargo.toml`.
    pub cargo: Option<String>,
    /// `version` of `deploy/chart/Chart.yaml`.
    pub chart_version: Option<String>,
    /// `appVersion` of `deploy/chart/Chart.yaml`.
    pub chart_app_version: Option<String>,
    /// The newest version heading of `CHANGELOG.md` (`## [X]`).
    pub changelog: Option<String>,
    /// Every reference to the driver image under `deploy/`: (file, tag).
    pub image_tags: Vec<(String, String)>,
}

/// `version = "..."` of the `[workspace.package]` table.
fn cargo_version(text: &str) -> Option<String> {
    let mut in_section = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == "[workspace.package]";
        } else if let Some(rest) = line.strip_prefix("version").filter(|_| in_section) {
            let value = rest.trim_start().strip_prefix('=')?.trim();
            return Some(value.trim_matches('"').to_owned());
        }
    }
    None
}

/// A top-level `key: value` of a YAML file (quotes removed).
fn yaml_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?.trim();
        Some(value.trim_matches('"').trim_matches('\'').to_owned())
    })
}

/// The first `## [X]` heading's X.
fn changelog_version(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix("## [")?;
        Some(rest.split(']').next()?.to_owned())
    })
}

/// Tags of every `IMAGE_REPOSITORY:tag` reference in `text`.
fn image_tags(text: &str) -> Vec<String> {
    let prefix = format!("{IMAGE_REPOSITORY}:");
    text.match_indices(&prefix)
        .map(|(i, _)| {
            text[i + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
                .collect()
        })
        .collect()
}

/// Reads the versions under `root` (a checkout).
pub fn read(root: &Path) -> Result<Versions> {
    let file = |rel: &str| {
        std::fs::read_to_string(root.join(rel)).with_context(|| format!("reading {rel}"))
    };
    let chart = file("deploy/chart/Chart.yaml")?;
    let mut tags = Vec::new();
    for path in super::list_files(&root.join("deploy"))? {
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            tags.extend(image_tags(&text).into_iter().map(|t| (rel.clone(), t)));
        }
    }
    Ok(Versions {
        cargo: cargo_version(&file("Cargo.toml")?),
        chart_version: yaml_field(&chart, "version"),
        chart_app_version: yaml_field(&chart, "appVersion"),
        changelog: changelog_version(&file("CHANGELOG.md")?),
        image_tags: tags,
    })
}

/// What disagrees with the Cargo version (empty when all agree). With `release_tag`, also a tag
/// that is not `v<version>`, or a development version (`-dev`) being released.
pub fn disagreements(v: &Versions, release_tag: Option<&str>) -> Vec<String> {
    let Some(cargo) = v.cargo.as_deref() else {
        return vec!["Cargo.toml: no `version` in [workspace.package]".to_owned()];
    };
    let mut out = Vec::new();
    let mut expect = |what: &str, found: Option<&str>| {
        if found != Some(cargo) {
            out.push(format!(
                "{what} is {}, the Cargo version is {cargo}",
                found.map_or_else(|| "missing".to_owned(), |f| format!("{f:?}"))
            ));
        }
    };
    expect(
        "deploy/chart/Chart.yaml `version`",
        v.chart_version.as_deref(),
    );
    expect(
        "deploy/chart/Chart.yaml `appVersion`",
        v.chart_app_version.as_deref(),
    );
    expect(
        "CHANGELOG.md's newest heading (`## [X]`)",
        v.changelog.as_deref(),
    );
    if v.image_tags.is_empty() {
        out.push(format!("no file under deploy/ names {IMAGE_REPOSITORY}"));
    }
    for (file, tag) in &v.image_tags {
        if tag != cargo {
            out.push(format!(
                "{file}: image tag {tag:?}, the Cargo version is {cargo}"
            ));
        }
    }
    if let Some(tag) = release_tag {
        if tag.strip_prefix('v') != Some(cargo) {
            out.push(format!(
                "release tag {tag:?} is not v{cargo}: set the version in Cargo.toml ([workspace.package]) \
                 and CHANGELOG.md, run `cargo xtask deploy`, commit, then tag"
            ));
        }
        if cargo.ends_with("-dev") {
            out.push(format!(
                "{cargo} is a development version: release a version without -dev"
            ));
        }
    }
    out
}

/// Fails, listing every disagreement and how to fix it, unless all versions agree.
pub fn check(root: &Path, release_tag: Option<&str>) -> Result<()> {
    let problems = disagreements(&read(root)?, release_tag);
    if problems.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "the versions disagree:\n  {}\nThe version moves in Cargo.toml ([workspace.package] version) and \
         the newest CHANGELOG.md heading; `cargo xtask deploy` writes it into the chart and the manifests.",
        problems.join("\n  ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agreeing() -> Versions {
        Versions {
            cargo: Some("0.2.0-dev".to_owned()),
            chart_version: Some("0.2.0-dev".to_owned()),
            chart_app_version: Some("0.2.0-dev".to_owned()),
            changelog: Some("0.2.0-dev".to_owned()),
            image_tags: vec![(
                "deploy/base/daemonset.yaml".to_owned(),
                "0.2.0-dev".to_owned(),
            )],
        }
    }

    #[test]
    fn the_checkout_agrees() {
        let root = crate::workspace_root();
        let v = read(&root).unwrap();
        assert_eq!(v.cargo.as_deref(), Some(env!("CARGO_PKG_VERSION")));
        assert!(v.image_tags.len() >= 2, "{:?}", v.image_tags);
        assert_eq!(disagreements(&v, None), Vec::<String>::new());
    }

    /// The files as they are read: a copy of the checkout's four kinds of file, changed one at a
    /// time, is refused with the file named.
    #[test]
    fn a_changed_file_is_refused() {
        let root = crate::workspace_root();
        let files = [
            "Cargo.toml",
            "CHANGELOG.md",
            "deploy/chart/Chart.yaml",
            "deploy/base/daemonset.yaml",
        ];
        let version = env!("CARGO_PKG_VERSION");
        let edits: [(&str, String, String, &str); 4] = [
            (
                "Cargo.toml",
                format!("version = \"{version}\""),
                "version = \"9.9.9\"".to_owned(),
                "the Cargo version is 9.9.9",
            ),
            (
                "CHANGELOG.md",
                format!("## [{version}]"),
                "## [Unreleased]".to_owned(),
                "CHANGELOG.md",
            ),
            (
                "deploy/chart/Chart.yaml",
                format!("appVersion: \"{version}\""),
                "appVersion: \"0.1.0\"".to_owned(),
                "appVersion",
            ),
            (
                "deploy/base/daemonset.yaml",
                format!("{IMAGE_REPOSITORY}:{version}"),
                format!("{IMAGE_REPOSITORY}:0.1.0"),
                "deploy/base/daemonset.yaml: image tag",
            ),
        ];
        for (file, from, to, needle) in edits {
            let dir = tempfile::tempdir().unwrap();
            for f in files {
                let target = dir.path().join(f);
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                let text = std::fs::read_to_string(root.join(f)).unwrap();
                let text = if f == file {
                    assert!(text.contains(&from), "{f} lacks {from}");
                    text.replacen(&from, &to, 1)
                } else {
                    text
                };
                std::fs::write(target, text).unwrap();
            }
            let problems = disagreements(&read(dir.path()).unwrap(), None);
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{file}: {problems:?}"
            );
            assert!(check(dir.path(), None).is_err());
        }
    }

    #[test]
    fn each_disagreement_is_named() {
        assert!(disagreements(&agreeing(), None).is_empty());
        type Breaker = fn(&mut Versions);
        let cases: [(&str, Breaker); 5] = [
            ("appVersion", |v| v.chart_app_version = Some("0.1.0".into())),
            ("`version`", |v| v.chart_version = Some("0.1.0".into())),
            ("CHANGELOG", |v| v.changelog = Some("Unreleased".into())),
            ("image tag", |v| {
                v.image_tags.push(("deploy/x.yaml".into(), "0.1.0".into()));
            }),
            ("no file under deploy/", |v| v.image_tags.clear()),
        ];
        for (needle, break_it) in cases {
            let mut v = agreeing();
            break_it(&mut v);
            let problems = disagreements(&v, None);
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].contains(needle), "{problems:?}");
        }
    }

    #[test]
    fn a_release_tag_must_be_the_version_and_not_dev() {
        let mut v = agreeing();
        let problems = disagreements(&v, Some("v0.2.0-dev"));
        assert!(problems.iter().any(|p| p.contains("development version")));
        for version in [
            &mut v.cargo,
            &mut v.chart_version,
            &mut v.chart_app_version,
            &mut v.changelog,
        ] {
            *version = Some("0.2.0".into());
        }
        v.image_tags[0].1 = "0.2.0".into();
        assert!(disagreements(&v, Some("v0.2.0")).is_empty());
        let problems = disagreements(&v, Some("v0.2.1"));
        assert!(problems[0].contains("not v0.2.0"), "{problems:?}");
    }

    #[test]
    fn parsers_read_the_project_formats() {
        let cargo = "[workspace]\nmembers = []\n[package]\nversion = \"9\"\n[workspace.package]\nedition = \"2024\"\nversion = \"1.2.3\"\n";
        assert_eq!(cargo_version(cargo).as_deref(), Some("1.2.3"));
        assert_eq!(
            yaml_field("version: 1.0.0\nappVersion: \"1.0.0\"\n", "appVersion").as_deref(),
            Some("1.0.0")
        );
        assert_eq!(
            changelog_version("# Changelog\n\n## [1.0.0-dev] - unreleased\n## [0.9.0]\n")
                .as_deref(),
            Some("1.0.0-dev")
        );
        assert_eq!(
            image_tags(&format!(
                "image: {IMAGE_REPOSITORY}:0.2.0-dev\n  \"{IMAGE_REPOSITORY}:1.0\""
            )),
            ["0.2.0-dev", "1.0"]
        );
    }
}
