//! `image_manifest`'s seeds, in its input format (files separated by NUL,
//! each its name line then its content; `@N`/`#N` the digest and size of
//! a later file N, `@L`/`#L` those of the built-in layer): the archive
//! shapes the store imports.

use super::Seed;

fn archive(name: &'static str, files: &[(&str, &str)]) -> Seed {
    let parts: Vec<String> = files
        .iter()
        .map(|(name, content)| format!("{name}\n{content}"))
        .collect();
    (name, parts.join("\0").into_bytes())
}

const CONFIG: &str = r#"{"created":"2024-01-01T00:00:00Z","architecture":"amd64","os":"linux","config":{"User":"1000:1000","Env":["PATH=/bin"],"Entrypoint":["/bin/sh"],"Cmd":["-c","echo"],"WorkingDir":"/srv","Labels":{"a":"b"},"StopSignal":"SIGINT"},"rootfs":{"type":"layers","diff_ids":["sha256:@L"]},"history":[{"created_by":"fuzz"}]}"#;

pub fn seeds() -> Vec<Seed> {
    let manifest = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:@3","size":#3},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:@L","size":#L}]}"#;
    let oci_layout = ("oci-layout", r#"{"imageLayoutVersion":"1.0.0"}"#);
    vec![
        // `docker save` (Docker < 25): manifest.json naming files.
        archive(
            "docker-save",
            &[
                (
                    "manifest.json",
                    r#"[{"Config":"blobs/sha256/@1","RepoTags":["busybox:latest","registry.example:5000/team/busybox:1.36"],"Layers":["abc/layer.tar"]}]"#,
                ),
                ("", CONFIG),
                ("abc/layer.tar -> ../layer.tar", ""),
                ("repositories", r#"{"busybox":{"latest":"abc"}}"#),
            ],
        ),
        // An OCI layout (skopeo, Docker >= 25 beside manifest.json).
        archive(
            "oci-layout",
            &[
                oci_layout,
                (
                    "index.json",
                    r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:@2","size":#2,"annotations":{"org.opencontainers.image.ref.name":"web:1","io.containerd.image.name":"docker.io/library/web:1"}}]}"#,
                ),
                ("", manifest),
                ("", CONFIG),
            ],
        ),
        // A multi-platform index inside the layout's index.
        archive(
            "oci-multi-platform",
            &[
                oci_layout,
                (
                    "index.json",
                    r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:@2","size":#2,"annotations":{"org.opencontainers.image.ref.name":"multi"}}]}"#,
                ),
                (
                    "",
                    r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:@3","size":#3,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:@3","size":#3,"platform":{"architecture":"amd64","os":"linux"}}]}"#,
                ),
                ("", &manifest.replace("@3", "@4").replace("#3", "#4")),
                ("", CONFIG),
            ],
        ),
    ]
}
