//! Pod IP allocation on loopback. Each pod gets its own 127.0.x.y so several pods can listen on
//! the same container port. Agents running side by side on one machine (other clusters) must
//! not hand out the same address, so every allocation is also a lease file in a machine-wide
//! directory, owned by the agent's pid and start time; leases of dead agents are reclaimed.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::process::ProcessIdentity;

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("pod IP range {0:?} must be a CIDR inside 127.0.0.0/8 such as 127.0.0.0/16")]
    BadRange(String),
    #[error("no free pod IP left in {0}")]
    Exhausted(String),
    #[error("IP lease directory {path}: {source}")]
    LeaseDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// An inclusive range of IPv4 addresses inside 127.0.0.0/8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    first: u32,
    last: u32,
}

impl IpRange {
    pub fn parse_cidr(cidr: &str) -> Result<Self, IpamError> {
        let bad = || IpamError::BadRange(cidr.to_string());
        let (addr, prefix) = cidr.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u32 = prefix.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) || addr.octets()[0] != 127 {
            return Err(bad());
        }
        let mask = u32::MAX << (32 - prefix);
        let first = u32::from(addr) & mask;
        Ok(Self {
            first,
            last: first | !mask,
        })
    }

    fn len(self) -> u32 {
        self.last - self.first + 1
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}-{}",
            Ipv4Addr::from(self.first),
            Ipv4Addr::from(self.last)
        )
    }
}

/// Addresses never handed to pods: 127.0.0.0/24 (127.0.0.1 is the node, 127.0.0.53 and friends
/// belong to system resolvers), 127.0.1.0/24 (Debian's hostname entry), and .0/.255 hosts.
pub fn is_assignable(ip: Ipv4Addr) -> bool {
    let [a, b, c, d] = ip.octets();
    a == 127 && !(b == 0 && c <= 1) && d != 0 && d != 255
}

/// The assignable addresses of `range`, starting at `offset` and wrapping around.
pub fn candidates(range: IpRange, offset: u32) -> impl Iterator<Item = Ipv4Addr> {
    let len = range.len();
    (0..len)
        .map(move |i| Ipv4Addr::from(range.first + (offset.wrapping_add(i) % len)))
        .filter(|ip| is_assignable(*ip))
}

/// Allocates pod IPs and holds their lease files until released.
#[derive(Debug)]
pub struct IpAllocator {
    range: IpRange,
    lease_dir: PathBuf,
    owner: ProcessIdentity,
    held: BTreeSet<Ipv4Addr>,
    cursor: u32,
}

impl IpAllocator {
    pub fn new(
        range: IpRange,
        lease_dir: &Path,
        owner: ProcessIdentity,
    ) -> Result<Self, IpamError> {
        std::fs::create_dir_all(lease_dir).map_err(|source| IpamError::LeaseDir {
            path: lease_dir.to_path_buf(),
            source,
        })?;
        // Agents started side by side begin their search at different places.
        let cursor = owner.pid.wrapping_mul(7919) % range.len();
        Ok(Self {
            range,
            lease_dir: lease_dir.to_path_buf(),
            owner,
            held: BTreeSet::new(),
            cursor,
        })
    }

    /// Leases `preferred` when it is free (a pod keeps its IP across agent restarts), else the
    /// next free address.
    pub fn allocate(&mut self, preferred: Option<Ipv4Addr>) -> Result<Ipv4Addr, IpamError> {
        if let Some(ip) = preferred.filter(|ip| self.in_range(*ip) && !self.held.contains(ip))
            && self.try_lease(ip)?
        {
            return Ok(ip);
        }
        let candidates: Vec<Ipv4Addr> = candidates(self.range, self.cursor).collect();
        for ip in candidates {
            if self.held.contains(&ip) {
                continue;
            }
            if self.try_lease(ip)? {
                self.cursor = (u32::from(ip) - self.range.first + 1) % self.range.len();
                return Ok(ip);
            }
        }
        Err(IpamError::Exhausted(self.range.to_string()))
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        if self.held.remove(&ip) {
            // Only our own lease: another agent may hold the name after a reclaim race.
            let path = self.lease_path(ip);
            if read_owner(&path).as_ref() == Some(&self.owner) {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    pub fn release_all(&mut self) {
        let held: Vec<Ipv4Addr> = self.held.iter().copied().collect();
        for ip in held {
            self.release(ip);
        }
    }

    fn in_range(&self, ip: Ipv4Addr) -> bool {
        let n = u32::from(ip);
        is_assignable(ip) && (self.range.first..=self.range.last).contains(&n)
    }

    fn lease_path(&self, ip: Ipv4Addr) -> PathBuf {
        self.lease_dir.join(ip.to_string())
    }

    fn try_lease(&mut self, ip: Ipv4Addr) -> Result<bool, IpamError> {
        let path = self.lease_path(ip);
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    file.write_all(self.owner.to_string().as_bytes())
                        .map_err(|source| IpamError::LeaseDir {
                            path: path.clone(),
                            source,
                        })?;
                    self.held.insert(ip);
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    match read_owner(&path) {
                        // A lease left by an earlier run of this very process cannot exist;
                        // anything owned by a live process is taken.
                        Some(owner) if owner.is_alive() => return Ok(false),
                        // Dead owner or unreadable (half-written by a crashed agent): reclaim.
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(source) => return Err(IpamError::LeaseDir { path, source }),
            }
        }
        Ok(false)
    }
}

impl Drop for IpAllocator {
    fn drop(&mut self) {
        self.release_all();
    }
}

fn read_owner(path: &Path) -> Option<ProcessIdentity> {
    std::fs::read_to_string(path).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_loopback_cidrs_only() {
        let range = IpRange::parse_cidr("127.0.0.0/16").unwrap();
        assert_eq!(range.to_string(), "127.0.0.0-127.0.255.255");
        assert!(IpRange::parse_cidr("10.0.0.0/16").is_err());
        assert!(IpRange::parse_cidr("127.0.0.0/31").is_err());
        assert!(IpRange::parse_cidr("127.0.0.0").is_err());
    }

    #[test]
    fn never_hands_out_reserved_addresses() {
        for reserved in [
            "127.0.0.1",
            "127.0.0.53",
            "127.0.1.1",
            "127.0.5.0",
            "127.0.5.255",
        ] {
            assert!(!is_assignable(reserved.parse().unwrap()), "{reserved}");
        }
        assert!(is_assignable("127.0.2.1".parse().unwrap()));
        let range = IpRange::parse_cidr("127.0.0.0/16").unwrap();
        let first: Vec<Ipv4Addr> = candidates(range, 0).take(2).collect();
        assert_eq!(
            first,
            vec![Ipv4Addr::new(127, 0, 2, 1), Ipv4Addr::new(127, 0, 2, 2)]
        );
        assert!(candidates(range, 0).all(|ip| ip != Ipv4Addr::new(127, 0, 0, 1)));
        // Wraps around from the offset.
        let wrapped: Vec<Ipv4Addr> = candidates(range, 65534).take(2).collect();
        assert_eq!(
            wrapped,
            vec![Ipv4Addr::new(127, 0, 255, 254), Ipv4Addr::new(127, 0, 2, 1)]
        );
    }

    fn me() -> ProcessIdentity {
        ProcessIdentity::current().unwrap()
    }

    #[test]
    fn allocates_unique_addresses_and_respects_other_live_agents() {
        let dir = tempfile::tempdir().unwrap();
        let range = IpRange::parse_cidr("127.0.2.0/24").unwrap();
        let mut ours = IpAllocator::new(range, dir.path(), me()).unwrap();
        ours.cursor = 0;
        let a = ours.allocate(None).unwrap();
        let b = ours.allocate(None).unwrap();
        assert_ne!(a, b);
        assert_eq!(a, Ipv4Addr::new(127, 0, 2, 1));

        // A live foreign owner (pid 1 with its real start time) keeps its lease.
        let init = ProcessIdentity::of(1).unwrap();
        std::fs::write(dir.path().join("127.0.2.3"), init.to_string()).unwrap();
        let c = ours.allocate(None).unwrap();
        assert_eq!(c, Ipv4Addr::new(127, 0, 2, 4));

        // A dead owner's lease is reclaimed; so is the preferred address when free.
        let dead = ProcessIdentity {
            pid: init.pid,
            start_ticks: init.start_ticks + 1,
        };
        std::fs::write(dir.path().join("127.0.2.9"), dead.to_string()).unwrap();
        let preferred = ours.allocate(Some(Ipv4Addr::new(127, 0, 2, 9))).unwrap();
        assert_eq!(preferred, Ipv4Addr::new(127, 0, 2, 9));
        // A preferred address we already hold is not handed out twice.
        let again = ours.allocate(Some(a)).unwrap();
        assert_ne!(again, a);

        ours.release(a);
        assert!(!dir.path().join(a.to_string()).exists());
        drop(ours);
        assert!(!dir.path().join(b.to_string()).exists());
        assert!(
            dir.path().join("127.0.2.3").exists(),
            "foreign lease untouched"
        );
    }

    #[test]
    fn exhaustion_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let range = IpRange::parse_cidr("127.0.2.0/30").unwrap();
        let mut ours = IpAllocator::new(range, dir.path(), me()).unwrap();
        let got: Vec<_> = (0..3).map(|_| ours.allocate(None).unwrap()).collect();
        assert_eq!(got.len(), 3);
        assert!(matches!(ours.allocate(None), Err(IpamError::Exhausted(_))));
    }
}
