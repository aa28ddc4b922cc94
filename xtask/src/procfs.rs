//! What the benchmarks read from /proc: memory fields, CPU time, the load average and which process
//! belongs to a pod. The parsers are pure; the readers return `None` (or zero) once a process is
//! gone.

/// Linux reports /proc times in USER_HZ, 100 per second on every architecture it runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// A `<field>:   <n> kB` line of /proc/PID/status or /proc/meminfo, in KiB.
pub fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// User plus system CPU time of a process in clock ticks, from /proc/PID/stat (fields 14 and 15;
/// the command name in parentheses may contain spaces, so count from its closing parenthesis).
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU seconds a process has used so far; 0 once it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| cpu_ticks(&stat))
        .map_or(0.0, |t| t as f64 / TICKS_PER_SECOND)
}

/// A KiB field of /proc/PID/status (`VmRSS`, `VmHWM`, …).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    kib_field(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        field,
    )
}

/// `MemAvailable` of /proc/meminfo, in KiB.
pub fn mem_available_kib() -> Option<u64> {
    kib_field(
        &std::fs::read_to_string("/proc/meminfo").ok()?,
        "MemAvailable",
    )
}

/// The 1-minute load average: how busy the shared machine was.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Whether a /proc/PID/cgroup text puts the process in the pod with this UID: kubelet's cgroupfs
/// layout names the pod `pod<uid>` (with underscores for dashes under the systemd driver).
pub fn in_pod_cgroup(cgroup: &str, pod_uid: &str) -> bool {
    !pod_uid.is_empty()
        && (cgroup.contains(&format!("/pod{pod_uid}"))
            || cgroup.contains(&format!("pod{}", pod_uid.replace('-', "_"))))
}

/// The process of a real node's pod (by UID) whose program is `program`, found through its cgroup.
pub fn pod_process(pod_uid: &str, program: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            let cgroup = std::fs::read_to_string(entry.path().join("cgroup")).ok()?;
            (comm.trim() == program && in_pod_cgroup(&cgroup, pod_uid)).then_some(pid)
        })
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_is_found_by_the_uid_in_its_cgroup_path() {
        let uid = "6f1c2a3b-0d4e-4f50-8a6b-7c8d9e0f1a2b";
        let cgroup = format!(
            "12:memory:/fp-node/kubepods/burstable/pod{uid}/0123abcd\n1:name=systemd:/fp-node/kubepods/burstable/pod{uid}/0123abcd\n"
        );
        assert!(in_pod_cgroup(&cgroup, uid));
        assert!(in_pod_cgroup(
            "3:cpu:/kubepods.slice/kubepods-pod6f1c2a3b_0d4e_4f50_8a6b_7c8d9e0f1a2b.slice/x\n",
            uid
        ));
        assert!(!in_pod_cgroup(
            &cgroup,
            "6f1c2a3b-0d4e-4f50-8a6b-000000000000"
        ));
        assert!(!in_pod_cgroup("0::/user.slice\n", uid));
        assert!(!in_pod_cgroup(&cgroup, ""));
    }

    #[test]
    fn reads_kib_fields_of_status_and_meminfo() {
        let status = "Name:\tfp-api-server\nVmHWM:\t  90112 kB\nVmRSS:\t   81920 kB\nThreads:\t4\n";
        assert_eq!(kib_field(status, "VmRSS"), Some(81_920));
        assert_eq!(kib_field(status, "VmHWM"), Some(90_112));
        assert_eq!(kib_field(status, "VmRS"), None);
        assert_eq!(kib_field(status, "VmSwap"), None);
        assert_eq!(
            kib_field(
                "MemTotal: 100 kB\nMemAvailable:   2048 kB\n",
                "MemAvailable"
            ),
            Some(2048)
        );
    }

    #[test]
    fn cpu_time_counts_from_the_command_name() {
        let stat =
            "4242 (fp operator) S 1 4242 4242 0 -1 4194560 2937 0 0 0 150 25 0 0 20 0 9 0 100 0";
        assert_eq!(cpu_ticks(stat), Some(175));
        assert_eq!(cpu_ticks("4242 (x) S 1"), None);
    }

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let me = std::process::id();
        assert!(status_kib(me, "VmRSS").is_some_and(|kib| kib > 0));
        assert!(cpu_seconds(me) >= 0.0);
        assert_eq!(cpu_seconds(u32::MAX), 0.0, "no such process");
    }
}
