//! What the harness reads of a running function process, and of a binary on disk.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// CPU time (user + system) the process `pid` has used so far, all threads, including threads
/// that already exited, in nanoseconds: the kernel's per-process scheduler clock, the same
/// `sum_exec_runtime` that `/proc/<pid>/task/*/schedstat` shows per live thread, read through
/// `clock_getcpuclockid`. Tick-based counters (`/proc/<pid>/stat`) are 10 ms coarse.
pub fn cpu_time(pid: u32) -> Duration {
    let mut clock: libc::clockid_t = 0;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: both pointers are to live locals of the right type.
    let ok = unsafe {
        libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) == 0
            && libc::clock_gettime(clock, &mut ts) == 0
    };
    assert!(ok, "cannot read the CPU clock of process {pid}");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Sum of the first field of `/proc/<pid>/task/*/schedstat` (live threads only): the issue's
/// suggested reading, kept as a cross-check of [`cpu_time`].
pub fn schedstat_sum(pid: u32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let ns: u64 = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}

/// Page faults the process `pid` has taken so far, all threads (`minflt` and `majflt` of
/// `/proc/<pid>/stat`): each one a trap into the kernel, and for a new page a page zeroed or
/// mapped, which is much of a cold start's kernel time.
pub fn page_faults(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    // minflt and majflt are fields 10 and 12 of the line, 8 and 10 after the name.
    [7, 9]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum()
}

/// Peak resident set size (`VmHWM`), in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Size of the binary once stripped (`strip` on a copy; the original is left alone), and of the
/// deployment zip: that stripped binary alone, named `bootstrap`, deflated.
pub fn sizes(binary: &Path, scratch: &Path) -> (u64, u64) {
    let stripped = scratch.join("bootstrap");
    let status = std::process::Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(binary)
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        eprintln!("note: `strip` failed or is missing; sizes are of the binary as built");
        std::fs::copy(binary, &stripped).expect("copy the binary");
    }
    let bytes = std::fs::read(&stripped).expect("read the stripped binary");
    let zip = zip_one("bootstrap", &bytes, 0o755);
    std::fs::write(scratch.join("bootstrap.zip"), &zip).expect("write the zip");
    (bytes.len() as u64, zip.len() as u64)
}

/// A zip archive of one file, deflated at the best level, with Unix permissions (Lambda needs
/// `bootstrap` executable). Minimal: no zip64, so for files under 4 GiB.
fn zip_one(name: &str, data: &[u8], mode: u32) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).expect("deflate");
    let packed = enc.finish().expect("deflate");
    let crc = crc32fast::hash(data);
    let (csize, usize_) = (packed.len() as u32, data.len() as u32);
    let name = name.as_bytes();
    // Version 2.0, no flags, deflate, DOS time 1980-01-01 00:00.
    let common = |out: &mut Vec<u8>| {
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&8u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0x21u16.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&csize.to_le_bytes());
        out.extend_from_slice(&usize_.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
    };
    let mut out = Vec::with_capacity(packed.len() + 200);
    out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    common(&mut out);
    out.extend_from_slice(name);
    out.extend_from_slice(&packed);
    let central = out.len() as u32;
    out.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    out.extend_from_slice(&(0x0300u16 | 20).to_le_bytes()); // made by Unix
    common(&mut out);
    out.extend_from_slice(&0u16.to_le_bytes()); // comment length
    out.extend_from_slice(&0u16.to_le_bytes()); // disk
    out.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
    out.extend_from_slice(&((0o100_000 | mode) << 16).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // offset of the local header
    out.extend_from_slice(name);
    let central_len = out.len() as u32 - central;
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&central_len.to_le_bytes());
    out.extend_from_slice(&central.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_clock_of_this_process_moves_and_agrees_with_schedstat() {
        let pid = std::process::id();
        let before = cpu_time(pid);
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        let after = cpu_time(pid);
        assert!(after > before);
        assert!(schedstat_sum(pid) > Duration::ZERO);
        assert!(peak_rss(pid) > 0);
    }

    #[test]
    fn page_faults_of_this_process_grow_when_it_touches_new_memory() {
        let pid = std::process::id();
        let before = page_faults(pid);
        assert!(before > 0, "a running process has taken page faults");
        let touched: Vec<u8> = vec![1; 64 << 20];
        std::hint::black_box(&touched);
        assert!(page_faults(pid) > before, "64 MiB written without a page fault");
    }

    #[test]
    fn zip_is_readable_by_its_own_offsets() {
        let zip = zip_one("bootstrap", b"hello hello hello", 0o755);
        assert_eq!(&zip[..4], b"PK\x03\x04");
        let eocd = zip.len() - 22;
        assert_eq!(&zip[eocd..eocd + 4], b"PK\x05\x06");
        let central = u32::from_le_bytes(zip[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
        assert_eq!(&zip[central..central + 4], b"PK\x01\x02");
    }
}
