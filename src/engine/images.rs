//! The image and version table of the pinned engine release, as data, and the resolution of a
//! spec's Kubernetes version and image overrides against it. No I/O.

use crate::spec::VirtualClusterSpec;

use super::EngineError;

/// The upstream engine release `vc` renders for.
pub const ENGINE_RELEASE: &str = "0.36.1";

/// The open-source syncer image of [`ENGINE_RELEASE`].
pub const ENGINE_IMAGE: &str = "ghcr.io/loft-sh/vcluster-oss:0.36.1";

/// Repository of the images carrying the Kubernetes binaries (API server, controller manager,
/// kine); the tag is the Kubernetes version.
pub const CONTROL_PLANE_REPOSITORY: &str = "ghcr.io/loft-sh/kubernetes";

/// The Kubernetes minor version used when the spec names none (the release's default).
pub const DEFAULT_KUBERNETES_MINOR: &str = "1.36";

/// Kubernetes minor version to control-plane image tag, oldest first.
pub const KUBERNETES_VERSIONS: &[(&str, &str)] = &[
    ("1.30", "v1.30.2"),
    ("1.31", "v1.31.1"),
    ("1.32", "v1.32.1"),
    ("1.33", "v1.33.4"),
    ("1.34", "v1.34.0"),
    ("1.35", "v1.35.0"),
    ("1.36", "v1.36.0"),
];

/// The images and Kubernetes version one virtual cluster runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedImages {
    /// Full Kubernetes version, such as "v1.33.4".
    pub kubernetes_version: String,
    pub control_plane: String,
    pub engine: String,
}

/// The known minor versions, for messages: "1.30, 1.31, ...".
pub fn known_versions() -> String {
    KUBERNETES_VERSIONS.iter().map(|(minor, _)| *minor).collect::<Vec<_>>().join(", ")
}

/// Maps "1.33", "v1.33" or an exact known tag ("v1.33.4", "1.33.4") to its table entry.
pub fn lookup_version(given: &str) -> Result<(&'static str, &'static str), EngineError> {
    let trimmed = given.trim();
    let bare = trimmed.strip_prefix('v').unwrap_or(trimmed);
    KUBERNETES_VERSIONS
        .iter()
        .find(|(minor, tag)| *minor == bare || tag.strip_prefix('v') == Some(bare))
        .copied()
        .ok_or_else(|| EngineError::UnknownVersion {
            given: given.to_string(),
            known: known_versions(),
        })
}

/// Resolves the spec's version and image overrides. An exact control-plane image wins over
/// the version table; the recorded version then comes from the spec's version, else from the
/// image tag when it is a known one, else from the image tag as written.
pub fn resolve(spec: &VirtualClusterSpec) -> Result<ResolvedImages, EngineError> {
    let requested = spec.kubernetes_version.as_deref().map(lookup_version).transpose()?;
    let (_, default_tag) = lookup_version(DEFAULT_KUBERNETES_MINOR)?;
    let engine = spec.images.engine.clone().unwrap_or_else(|| ENGINE_IMAGE.to_string());
    let resolved = match (&spec.images.control_plane, requested) {
        (Some(image), Some((_, tag))) => ResolvedImages {
            kubernetes_version: tag.to_string(),
            control_plane: image.clone(),
            engine,
        },
        (Some(image), None) => {
            let image_tag = ImageRef::parse(image).tag;
            let version = match lookup_version(&image_tag) {
                Ok((_, tag)) => tag.to_string(),
                Err(_) if image_tag.is_empty() => default_tag.to_string(),
                Err(_) => image_tag,
            };
            ResolvedImages { kubernetes_version: version, control_plane: image.clone(), engine }
        }
        (None, requested) => {
            let tag = requested.map_or(default_tag, |(_, tag)| tag);
            ResolvedImages {
                kubernetes_version: tag.to_string(),
                control_plane: format!("{CONTROL_PLANE_REPOSITORY}:{tag}"),
                engine,
            }
        }
    };
    Ok(resolved)
}

/// An image reference split the way the engine configuration spells images
/// (`registry`, `repository`, `tag`). A digest stays with the tag (`tag@sha256:...`) or, with
/// no tag, becomes the tag field on its own (`@sha256:...` is not representable otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub tag: String,
}

impl ImageRef {
    pub fn parse(reference: &str) -> Self {
        let (name, digest) = match reference.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (reference, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], &name[last_slash + i + 1..]),
            None => (name, ""),
        };
        // A first component with a dot, a colon or "localhost" is a registry host.
        let (registry, repository) = match path.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first, rest)
            }
            _ => ("", path),
        };
        let tag = match digest {
            Some(digest) if tag.is_empty() => format!("@{digest}"),
            Some(digest) => format!("{tag}@{digest}"),
            None => tag.to_string(),
        };
        Self { registry: registry.to_string(), repository: repository.to_string(), tag }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_version_is_the_release_default() {
        let resolved = resolve(&VirtualClusterSpec::default()).unwrap();
        assert_eq!(resolved.kubernetes_version, "v1.36.0");
        assert_eq!(resolved.control_plane, "ghcr.io/loft-sh/kubernetes:v1.36.0");
        assert_eq!(resolved.engine, ENGINE_IMAGE);
    }

    #[test]
    fn versions_map_through_the_table() {
        for (given, tag) in [("1.33", "v1.33.4"), ("v1.30", "v1.30.2"), ("1.32.1", "v1.32.1")] {
            let spec =
                VirtualClusterSpec { kubernetes_version: Some(given.into()), ..Default::default() };
            assert_eq!(resolve(&spec).unwrap().kubernetes_version, tag, "{given}");
        }
    }

    #[test]
    fn unknown_version_lists_the_known_ones() {
        let spec =
            VirtualClusterSpec { kubernetes_version: Some("1.29".into()), ..Default::default() };
        let err = resolve(&spec).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, EngineError::UnknownVersion { .. }));
        assert!(text.contains("\"1.29\""), "{text}");
        assert!(text.contains("1.30, 1.31, 1.32, 1.33, 1.34, 1.35, 1.36"), "{text}");
    }

    #[test]
    fn overrides_are_exact() {
        let mut spec = VirtualClusterSpec::default();
        spec.images.control_plane = Some("mirror.local:5000/k8s/kubernetes:v1.33.4".into());
        spec.images.engine = Some("mirror.local:5000/vcluster-oss:0.36.1".into());
        let resolved = resolve(&spec).unwrap();
        assert_eq!(resolved.control_plane, "mirror.local:5000/k8s/kubernetes:v1.33.4");
        assert_eq!(resolved.engine, "mirror.local:5000/vcluster-oss:0.36.1");
        assert_eq!(resolved.kubernetes_version, "v1.33.4");
    }

    #[test]
    fn image_references_split() {
        let r = ImageRef::parse("ghcr.io/loft-sh/kubernetes:v1.36.0");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_str()),
            ("ghcr.io", "loft-sh/kubernetes", "v1.36.0")
        );
        let r = ImageRef::parse("localhost:5000/kubernetes");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_str()),
            ("localhost:5000", "kubernetes", "")
        );
        let r = ImageRef::parse("library/alpine:3.20@sha256:abc");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_str()),
            ("", "library/alpine", "3.20@sha256:abc")
        );
    }
}
