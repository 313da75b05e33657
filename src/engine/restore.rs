//! The restore init container a cluster made from a snapshot gets: the engine's own image and
//! mounts, waiting in the data volume until `vc restore` has written the datastore, so the API
//! server never serves before the snapshot's objects are in place. Pure: it edits a rendered
//! StatefulSet.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Container;

/// The init container's name.
pub const RESTORE_CONTAINER: &str = "vc-restore";
/// Where the data volume is mounted, and so the init container's working directory.
pub const DATA_DIR: &str = "/data";

/// Adds the restore init container after the existing ones (the binaries they copy, kine
/// among them, are what the engine's restore starts). It copies the syncer container's image,
/// environment, mounts, resources and security context; its command waits for `done_marker`
/// in the data volume, so later starts of the pod pass through at once.
pub fn add_restore_init_container(sts: &mut StatefulSet, wait_script: &str) {
    let Some(pod) = sts.spec.as_mut().and_then(|s| s.template.spec.as_mut()) else { return };
    let Some(syncer) = pod.containers.iter().find(|c| c.name == "syncer").cloned() else { return };
    let restore = Container {
        name: RESTORE_CONTAINER.to_string(),
        image: syncer.image,
        image_pull_policy: syncer.image_pull_policy,
        command: Some(vec!["sh".to_string(), "-c".to_string(), wait_script.to_string()]),
        working_dir: Some(DATA_DIR.to_string()),
        env: syncer.env,
        env_from: syncer.env_from,
        volume_mounts: syncer.volume_mounts,
        resources: syncer.resources,
        security_context: syncer.security_context,
        ..Default::default()
    };
    pod.init_containers.get_or_insert_with(Vec::new).push(restore);
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSetSpec;
    use k8s_openapi::api::core::v1::{EnvVar, PodSpec, PodTemplateSpec, VolumeMount};

    #[test]
    fn the_restore_container_runs_last_with_the_syncers_image_env_and_mounts() {
        let syncer = Container {
            name: "syncer".into(),
            image: Some("engine:1".into()),
            env: Some(vec![EnvVar {
                name: "POD_NAME".into(),
                value: Some("x".into()),
                ..Default::default()
            }]),
            volume_mounts: Some(vec![VolumeMount {
                name: "data".into(),
                mount_path: "/data".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let copy = Container { name: "kubernetes".into(), ..Default::default() };
        let mut sts = StatefulSet {
            spec: Some(StatefulSetSpec {
                template: PodTemplateSpec {
                    spec: Some(PodSpec {
                        containers: vec![syncer],
                        init_containers: Some(vec![copy]),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        add_restore_init_container(&mut sts, "until [ -e .done ]; do sleep 1; done");
        let pod = sts.spec.unwrap().template.spec.unwrap();
        let inits = pod.init_containers.unwrap();
        assert_eq!(
            inits.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["kubernetes", "vc-restore"]
        );
        let restore = &inits[1];
        assert_eq!(restore.image.as_deref(), Some("engine:1"));
        assert_eq!(restore.working_dir.as_deref(), Some("/data"));
        assert_eq!(restore.command.as_ref().unwrap()[0], "sh");
        assert_eq!(restore.volume_mounts.as_ref().unwrap()[0].mount_path, "/data");
        assert_eq!(restore.env.as_ref().unwrap()[0].name, "POD_NAME");
    }
}
