//! Lambda's CPU share, enforced with a cgroup CPU quota. Lambda gives a function CPU in
//! proportion to its memory: one vCPU at 1,769 MB, so about 7.2% of one at 128 MB. A process
//! started here runs in a fresh cgroup of its own whose quota is that share of each 20 ms period
//! (cgroup v1 `cpu.cfs_quota_us` over `cpu.cfs_period_us`, or v2 `cpu.max`): fresh for every
//! start, so that one start's spent quota never carries over to the next.

use std::ffi::CString;
use std::io::{self, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Memory size at which Lambda gives a function one full vCPU.
pub const ONE_VCPU_MB: u32 = 1769;
/// The scheduler period the quota is spent over.
pub const PERIOD_US: u64 = 20_000;
/// The kernel refuses quotas under 1 ms.
const MIN_QUOTA_US: u64 = 1_000;

#[derive(Clone, Copy, Debug)]
enum Version {
    /// `cpu.cfs_period_us` and `cpu.cfs_quota_us`.
    V1,
    /// `cpu.max`.
    V2,
}

/// Where fresh cgroups with a CPU quota are made.
pub struct Quota {
    pub memory_mb: u32,
    pub quota_us: u64,
    /// Start-up (exec to the first poll) runs without the quota: a model of a start-up phase
    /// that gets more CPU than the invocations, to measure what moving work into it would buy.
    pub init_unthrottled: bool,
    version: Version,
    parent: PathBuf,
    made: AtomicUsize,
}

impl Quota {
    /// Finds a cgroup hierarchy with the CPU controller, makes this run's parent group in it and
    /// checks that a group with the quota can be made and entered. The error says why not.
    pub fn for_memory(memory_mb: u32, init_unthrottled: bool) -> Result<Quota, String> {
        let quota_us = quota_us(memory_mb);
        let (version, root) = cpu_hierarchy()?;
        let parent = root.join(format!("ejs-bench-{}", std::process::id()));
        std::fs::create_dir_all(&parent).map_err(|e| format!("mkdir {}: {e}", parent.display()))?;
        if let Version::V2 = version {
            // The controller must be handed down to the parent's children.
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+cpu");
            std::fs::write(parent.join("cgroup.subtree_control"), "+cpu")
                .map_err(|e| format!("enable cpu in {}: {e}", parent.display()))?;
        }
        let quota = Quota {
            memory_mb,
            quota_us,
            init_unthrottled,
            version,
            parent,
            made: AtomicUsize::new(0),
        };
        quota
            .fresh()
            .map_err(|e| format!("make a cgroup with a CPU quota: {e}"))?;
        Ok(quota)
    }

    /// The CPU share as a fraction of one vCPU.
    pub fn share(&self) -> f64 {
        self.quota_us as f64 / PERIOD_US as f64
    }

    pub fn describe(&self) -> String {
        format!(
            "{} MB: {} µs of CPU per {} ms period ({:.1}% of a vCPU){}, cgroup {:?}, a fresh group per start under {}",
            self.memory_mb,
            self.quota_us,
            PERIOD_US / 1000,
            self.share() * 100.0,
            if self.init_unthrottled {
                " from the first poll on (start-up unthrottled)"
            } else {
                ""
            },
            self.version,
            self.parent.display()
        )
    }

    /// A new, empty cgroup with the quota (or, with `init_unthrottled`, with the quota to be
    /// applied by [`Group::limit`]); removed when dropped.
    pub fn fresh(&self) -> io::Result<Group> {
        let n = self.made.fetch_add(1, Ordering::Relaxed);
        let dir = self.parent.join(format!("start-{n}"));
        std::fs::create_dir(&dir)?;
        let group = Group {
            dir,
            version: self.version,
            quota_us: self.quota_us,
        };
        if let Version::V1 = self.version {
            std::fs::write(group.dir.join("cpu.cfs_period_us"), PERIOD_US.to_string())?;
        }
        if !self.init_unthrottled {
            group.limit()?;
        }
        Ok(group)
    }
}

impl Drop for Quota {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.parent);
    }
}

/// CPU time per period for a memory size: its share of one vCPU, at least the kernel's minimum.
fn quota_us(memory_mb: u32) -> u64 {
    (PERIOD_US * u64::from(memory_mb) / u64::from(ONE_VCPU_MB)).max(MIN_QUOTA_US)
}

/// The mount of a cgroup hierarchy that has the CPU controller: v1's `cpu`, else v2's.
fn cpu_hierarchy() -> Result<(Version, PathBuf), String> {
    let mounts = std::fs::read_to_string("/proc/mounts").map_err(|e| format!("/proc/mounts: {e}"))?;
    let mut v2 = None;
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [_, dir, kind, options, ..] = f[..] else {
            continue;
        };
        match kind {
            "cgroup" if options.split(',').any(|o| o == "cpu") => {
                return Ok((Version::V1, PathBuf::from(dir)));
            }
            "cgroup2" => {
                let controllers =
                    std::fs::read_to_string(Path::new(dir).join("cgroup.controllers")).unwrap_or_default();
                if controllers.split_whitespace().any(|c| c == "cpu") {
                    v2 = Some(PathBuf::from(dir));
                }
            }
            _ => {}
        }
    }
    v2.map(|dir| (Version::V2, dir))
        .ok_or_else(|| "no cgroup hierarchy with the cpu controller is mounted".to_owned())
}

/// One start's cgroup.
pub struct Group {
    dir: PathBuf,
    version: Version,
    quota_us: u64,
}

impl Group {
    /// Applies the quota from now on.
    pub fn limit(&self) -> io::Result<()> {
        match self.version {
            Version::V1 => std::fs::write(self.dir.join("cpu.cfs_quota_us"), self.quota_us.to_string()),
            Version::V2 => std::fs::write(self.dir.join("cpu.max"), format!("{} {PERIOD_US}", self.quota_us)),
        }
    }

    /// Makes `cmd`'s process enter this group between fork and exec, so that all it runs,
    /// from its first instruction, is under the quota.
    pub fn enter_on_exec(&self, cmd: &mut Command) {
        let procs = CString::new(
            self.dir
                .join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .expect("a path without NUL");
        // SAFETY: between fork and exec only async-signal-safe calls: open, write, close.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                // "0" is the writing process itself.
                let wrote = libc::write(fd, b"0".as_ptr().cast(), 1);
                let err = io::Error::last_os_error();
                libc::close(fd);
                if wrote == 1 {
                    Ok(())
                } else {
                    Err(err)
                }
            });
        }
    }

    /// How many periods the group has run in and been throttled in so far.
    pub fn throttled(&self) -> (u64, u64) {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).unwrap_or_default();
        let field = |name: &str| {
            stat.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        (field("nr_periods"), field("nr_throttled"))
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // The processes are gone, but the kernel may take a moment to notice.
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut err = io::stderr();
        let _ = writeln!(err, "note: could not remove {}", self.dir.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_memory_sizes_map_to_their_cpu_share() {
        assert_eq!(quota_us(128), 1_447, "7.2% of a 20 ms period");
        assert_eq!(quota_us(ONE_VCPU_MB), PERIOD_US, "one vCPU");
        assert_eq!(quota_us(2 * ONE_VCPU_MB), 2 * PERIOD_US, "two vCPUs");
        assert_eq!(quota_us(64), MIN_QUOTA_US, "never under the kernel's minimum");
    }
}
