use std::collections::BTreeMap;

use super::*;

fn request(name: &str) -> VolumeCreate {
    VolumeCreate {
        name: name.into(),
        labels: BTreeMap::from([("app".to_string(), "db".to_string())]),
    }
}

#[test]
fn a_volume_is_made_found_again_and_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let volumes = Volumes::new(tmp.path().join("volumes"));
    let lock = volumes.lock();
    let made = volumes
        .create(&lock, &request("data"), false, 1_000)
        .unwrap();
    assert_eq!(made.name, "data");
    assert_eq!(made.labels["app"], "db");
    assert!(Path::new(&made.mountpoint).is_dir());
    std::fs::write(Path::new(&made.mountpoint).join("kept"), "x").unwrap();
    // Creating it again gives back the same volume, files and all.
    let again = volumes
        .create(&lock, &request("data"), false, 2_000)
        .unwrap();
    assert_eq!(again.created, made.created);
    assert!(Path::new(&again.mountpoint).join("kept").exists());
    assert_eq!(volumes.names().unwrap(), ["data"]);
    volumes.remove(&lock, "data").unwrap();
    assert!(matches!(
        volumes.inspect("data", Vec::new()),
        Err(VolumeError::NotFound(_))
    ));
}

#[test]
fn unnamed_volumes_get_docker_style_names() {
    let tmp = tempfile::tempdir().unwrap();
    let volumes = Volumes::new(tmp.path());
    let lock = volumes.lock();
    let a = volumes.create(&lock, &request(""), true, 0).unwrap();
    let b = volumes.create(&lock, &request(""), true, 0).unwrap();
    assert_eq!(a.name.len(), 64);
    assert!(a.name.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a.name, b.name);
    assert!(a.anonymous);
}

#[test]
fn hostile_names_never_reach_the_filesystem() {
    let tmp = tempfile::tempdir().unwrap();
    let volumes = Volumes::new(tmp.path().join("v"));
    let lock = volumes.lock();
    for name in ["../escape", "a/b", ".hidden", "x", "-dash"] {
        let err = volumes.create(&lock, &request(name), false, 0).unwrap_err();
        assert!(err.to_string().contains("volume name"), "{name}: {err}");
        assert!(matches!(
            volumes.inspect(name, Vec::new()),
            Err(VolumeError::NotFound(_))
        ));
    }
    assert!(!tmp.path().join("escape").exists());
}

#[test]
fn a_damaged_record_is_reported_and_its_files_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let volumes = Volumes::new(tmp.path());
    let lock = volumes.lock();
    volumes.create(&lock, &request("keep"), false, 0).unwrap();
    let record = tmp.path().join("keep").join(record::FILE);
    std::fs::write(&record, b"{not json").unwrap();
    std::fs::write(volumes.data_dir("keep").join("precious"), "x").unwrap();
    let (listed, damaged) = volumes.list(&BTreeMap::new()).unwrap();
    assert!(listed.is_empty());
    assert_eq!(damaged.len(), 1);
    assert!(
        damaged[0].contains(&record.display().to_string()),
        "{damaged:?}"
    );
    let err = volumes.remove(&lock, "keep").unwrap_err();
    assert!(matches!(err, VolumeError::Damaged { .. }), "{err}");
    // Neither listing nor a refused removal touched anything.
    assert_eq!(std::fs::read(&record).unwrap(), b"{not json");
    assert!(volumes.data_dir("keep").join("precious").exists());
    // A record naming another volume is damaged too.
    std::fs::write(
        &record,
        br#"{"name":"other","created_ms":0,"anonymous":false}"#,
    )
    .unwrap();
    assert!(matches!(
        volumes.inspect("keep", Vec::new()),
        Err(VolumeError::Damaged { .. })
    ));
}
