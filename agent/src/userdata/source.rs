//! Where user-data comes from, in order: a NoCloud-style config drive (a
//! filesystem labelled `cidata` or `HUSKCFG` holding a `user-data` file),
//! an EC2-style metadata service (IMDSv2 at 169.254.169.254), the kernel
//! command line (`husk.userdata=<base64 of the TOML>`).

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::mount::{MountFlags, UnmountFlags};

/// The labels a config drive may carry (compared case-insensitively).
pub const LABELS: [&str; 2] = ["cidata", "huskcfg"];
/// A document larger than this is refused (cloud-init's limit is 16 KiB
/// on EC2; a config drive may carry more).
pub const MAX_SIZE: u64 = 1 << 20;
pub const CMDLINE_KEY: &str = "husk.userdata=";
pub const IMDS: &str = "169.254.169.254:80";

/// A document (or why it could not be read) and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub source: String,
    pub text: Result<String, String>,
}

/// Block devices holding a filesystem with one of [`LABELS`]:
/// `(device, filesystem type)`.
pub fn config_drives(sys_block: &Path, dev: &Path) -> Vec<(PathBuf, &'static str)> {
    let Ok(entries) = fs::read_dir(sys_block) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram"))
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|name| {
            let device = dev.join(&name);
            let (label, fstype) = probe(&device).ok()??;
            LABELS
                .iter()
                .any(|l| label.eq_ignore_ascii_case(l))
                .then_some((device, fstype))
        })
        .collect()
}

/// The label and type of the filesystem on `device`, if it is one Husk
/// reads config drives from (ISO 9660, FAT, ext4).
pub fn probe(device: &Path) -> io::Result<Option<(String, &'static str)>> {
    let mut file = fs::File::open(device)?;
    let mut head = vec![0u8; 0x8800];
    let n = read_up_to(&mut file, &mut head)?;
    head.truncate(n);
    let text = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .trim_end_matches([' ', '\0'])
            .to_string()
    };
    // ISO 9660: the primary volume descriptor at 32 KiB.
    if head.len() >= 0x8048 && &head[0x8001..0x8006] == b"CD001" {
        return Ok(Some((text(&head[0x8028..0x8048]), "iso9660")));
    }
    // ext2/3/4: the superblock at 1 KiB, magic 0xEF53.
    if head.len() >= 0x488 && head[0x438..0x43a] == [0x53, 0xef] {
        return Ok(Some((text(&head[0x478..0x488]), "ext4")));
    }
    // FAT: the boot sector's extended BPB (signature 0x29) holds the label.
    if head.len() >= 512 && head[510..512] == [0x55, 0xaa] {
        if head[0x42] == 0x29 && &head[0x52..0x57] == b"FAT32" {
            return Ok(Some((text(&head[0x47..0x52]), "vfat")));
        }
        if head[0x26] == 0x29 && &head[0x36..0x39] == b"FAT" {
            return Ok(Some((text(&head[0x2b..0x36]), "vfat")));
        }
    }
    Ok(None)
}

fn read_up_to(file: &mut fs::File, buf: &mut [u8]) -> io::Result<usize> {
    file.seek(SeekFrom::Start(0))?;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Mounts the drive read-only at `mount_point`, reads `user-data`,
/// unmounts.
pub fn read_config_drive(device: &Path, fstype: &str, mount_point: &Path) -> io::Result<String> {
    fs::create_dir_all(mount_point)?;
    rustix::mount::mount(
        device,
        mount_point,
        fstype,
        MountFlags::RDONLY | MountFlags::NODEV | MountFlags::NOSUID | MountFlags::NOEXEC,
        None,
    )
    .map_err(|e| io::Error::other(format!("mounting {} ({fstype}): {e}", device.display())))?;
    let read = read_limited(&mount_point.join("user-data"));
    let _ = rustix::mount::unmount(mount_point, UnmountFlags::DETACH);
    read
}

pub fn read_limited(path: &Path) -> io::Result<String> {
    let file = fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_SIZE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SIZE {
        return Err(io::Error::other(format!(
            "{} is larger than {MAX_SIZE} bytes",
            path.display()
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| io::Error::other(format!("{} is not UTF-8", path.display())))
}

/// `husk.userdata=<base64>` from a kernel command line.
pub fn from_cmdline(cmdline: &str) -> Option<Result<String, String>> {
    let value = cmdline
        .split_whitespace()
        .find_map(|arg| arg.strip_prefix(CMDLINE_KEY))?;
    Some(
        base64_decode(value)
            .ok_or_else(|| format!("{CMDLINE_KEY}: not base64"))
            .and_then(|b| String::from_utf8(b).map_err(|_| format!("{CMDLINE_KEY}: not UTF-8"))),
    )
}

/// Standard or URL-safe base64, padding optional.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    if digits.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// IMDSv2: a session token (PUT), then the user-data with it. Ok(None)
/// when the service answers that there is no user-data (404).
pub async fn from_imds(address: &str, timeout: Duration) -> io::Result<Option<String>> {
    let token = http(
        address,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "300")],
        timeout,
    )
    .await?;
    let token = match token {
        (200, body) => body,
        (status, _) => return Err(io::Error::other(format!("token request answered {status}"))),
    };
    match http(
        address,
        "GET",
        "/latest/user-data",
        &[("X-aws-ec2-metadata-token", token.trim())],
        timeout,
    )
    .await?
    {
        (200, body) => Ok(Some(body)),
        (404, _) => Ok(None),
        (status, _) => Err(io::Error::other(format!(
            "user-data request answered {status}"
        ))),
    }
}

/// One HTTP/1.1 exchange; (status, body). Bodies are small documents.
async fn http(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> io::Result<(u16, String)> {
    let exchange = async {
        let response = crate::http_client::request(address, method, path, headers, timeout).await?;
        let status = response.status;
        let body = response.bytes(MAX_SIZE as usize).await?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("{address}: no answer")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_base64() {
        let line = "console=ttyS0 husk.userdata=aG9zdG5hbWUgPSAibm9kZSIK quiet";
        assert_eq!(
            from_cmdline(line).unwrap().unwrap(),
            "hostname = \"node\"\n"
        );
        assert!(from_cmdline("console=ttyS0").is_none());
        assert!(from_cmdline("husk.userdata=!!!").unwrap().is_err());
        assert_eq!(base64_decode("YQ").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert_eq!(base64_decode("-_8").unwrap(), [0xfb, 0xff]);
    }

    #[test]
    fn probes_fat_labels_and_ignores_others() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("fat.img");
        let file = fs::File::create(&image).unwrap();
        file.set_len(2 << 20).unwrap();
        let status = std::process::Command::new("mkfs.vfat")
            .args(["-n", "HUSKCFG"])
            .arg(&image)
            .output();
        match status {
            Ok(out) if out.status.success() => {
                assert_eq!(
                    probe(&image).unwrap(),
                    Some(("HUSKCFG".to_string(), "vfat"))
                );
            }
            // A check that cannot run must not pass unrun.
            other => panic!(
                "mkfs.vfat failed or is missing (apt-get install dosfstools, as cargo xtask \
                 test does): {other:?}"
            ),
        }
        let plain = dir.path().join("zero.img");
        fs::write(&plain, vec![0u8; 0x9000]).unwrap();
        assert_eq!(probe(&plain).unwrap(), None);
        // A fake ISO 9660 volume descriptor.
        let mut iso = vec![0u8; 0x9000];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        iso[0x8028..0x8048].copy_from_slice(b"cidata                          ");
        let iso_path = dir.path().join("iso.img");
        fs::write(&iso_path, iso).unwrap();
        assert_eq!(
            probe(&iso_path).unwrap(),
            Some(("cidata".to_string(), "iso9660"))
        );
        // Only labelled devices count.
        let sys = dir.path().join("sys");
        let dev = dir.path().join("dev");
        fs::create_dir_all(sys.join("vdb")).unwrap();
        fs::create_dir_all(sys.join("vda")).unwrap();
        fs::create_dir_all(&dev).unwrap();
        fs::copy(&iso_path, dev.join("vdb")).unwrap();
        fs::copy(&plain, dev.join("vda")).unwrap();
        assert_eq!(config_drives(&sys, &dev), [(dev.join("vdb"), "iso9660")]);
    }

    #[tokio::test]
    async fn imds_v2_token_flow() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..2 {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = socket.read(&mut buf).await.unwrap();
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let body = if request.starts_with("PUT /latest/api/token") {
                    "tok123"
                } else if request.contains("x-aws-ec2-metadata-token: tok123") {
                    "hostname = \"from-imds\"\n"
                } else {
                    "unauthorised"
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                socket.write_all(response.as_bytes()).await.unwrap();
                seen.push(request);
            }
            seen
        });
        let text = from_imds(&address, Duration::from_secs(5)).await.unwrap();
        assert_eq!(text.as_deref(), Some("hostname = \"from-imds\"\n"));
        let seen = server.await.unwrap();
        assert!(
            seen[0].contains("x-aws-ec2-metadata-token-ttl-seconds: 300"),
            "{seen:?}"
        );
        // Nothing listening: a clear error, quickly.
        let err = from_imds("127.0.0.1:9", Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(!err.to_string().is_empty());
    }
}
