//! The scan for secrets: every token the server issued (and the client
//! secret), searched for in every file of the run but the stores and the
//! server's private list.

use std::path::Path;

use aho_corasick::AhoCorasick;

use crate::fingerprint::fingerprint;
use crate::fleet::{CLIENT_SECRET, files};

/// A secret found where it must not be: the file and the secret's
/// fingerprint (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    /// The file's name.
    pub file: String,
    /// The fingerprint of the secret found.
    pub fp: String,
    /// How many times.
    pub count: usize,
}

/// Files that hold secrets by design.
fn exempt(name: &str) -> bool {
    name == files::ISSUED
        || name.starts_with(files::STORE)
        || name.starts_with(files::SERVICE_STORE)
}

/// Scans the run's folder; returns the number of secrets searched for, the
/// files scanned and every leak.
///
/// # Errors
/// The folder or the private list cannot be read.
pub fn scan(dir: &Path) -> Result<(usize, usize, Vec<Leak>), String> {
    let issued = std::fs::read_to_string(dir.join(files::ISSUED))
        .map_err(|e| format!("{}: {e}", files::ISSUED))?;
    scan_for(dir, issued.lines())
}

/// Scans the run's folder for `secrets` and the client secret; returns
/// the number of secrets searched for, the files scanned and every leak.
///
/// # Errors
/// The folder cannot be read.
pub fn scan_for<'a>(
    dir: &Path,
    secrets: impl IntoIterator<Item = &'a str>,
) -> Result<(usize, usize, Vec<Leak>), String> {
    let mut secrets: Vec<&str> = secrets.into_iter().filter(|l| !l.is_empty()).collect();
    secrets.push(CLIENT_SECRET);
    secrets.sort_unstable();
    secrets.dedup();
    let finder = AhoCorasick::new(&secrets).map_err(|e| e.to_string())?;
    let mut leaks = Vec::new();
    let mut scanned = 0;
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if exempt(&name) || !entry.path().is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path()).map_err(|e| format!("{name}: {e}"))?;
        scanned += 1;
        let mut found: std::collections::BTreeMap<usize, usize> = Default::default();
        for m in finder.find_iter(&bytes) {
            *found.entry(m.pattern().as_usize()).or_default() += 1;
        }
        for (pattern, count) in found {
            leaks.push(Leak {
                file: name.clone(),
                fp: fingerprint(secrets[pattern]),
                count,
            });
        }
    }
    Ok((secrets.len(), scanned, leaks))
}

#[cfg(test)]
mod tests {
    use super::{exempt, scan_for};

    #[test]
    fn a_secret_is_found_in_a_log_and_not_in_the_store() {
        let dir = std::env::temp_dir().join(format!("chaos-scan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = "rt-0123456789abcdef-secret";
        std::fs::write(dir.join("w1.0.err"), format!("refreshed with {secret}\n")).unwrap();
        std::fs::write(dir.join("store.sqlite"), secret).unwrap();
        std::fs::write(dir.join("report.txt"), "fp:abc only").unwrap();
        let (searched, scanned, leaks) = scan_for(&dir, [secret]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            (searched, scanned),
            (2, 2),
            "the token and the client secret; two files"
        );
        assert_eq!(leaks.len(), 1, "{leaks:?}");
        assert_eq!(leaks[0].file, "w1.0.err");
        assert_ne!(leaks[0].fp, secret, "named by fingerprint");
    }

    #[test]
    fn only_the_stores_and_the_private_list_are_exempt() {
        for name in [
            "issued.secret",
            "store.sqlite",
            "store.sqlite-wal",
            "store.service.sqlite3",
            "store.service.sqlite3-wal",
            "store.service.sqlite3-shm",
        ] {
            assert!(exempt(name), "{name}");
        }
        for name in ["worker-w1.0.log", "w1.0.err", "server.log", "report.txt"] {
            assert!(!exempt(name), "{name}");
        }
    }
}
