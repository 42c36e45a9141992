//! The memory figures overload protection and the default watermark read from Linux's /proc: the process's
//! resident memory and the machine's total. A leaf: the configuration and the guard both use it.

/// The process's resident memory in bytes (Linux: VmRSS of /proc/self/status); `None` where it cannot be read.
pub(crate) fn resident_bytes() -> Option<u64> {
    kib_field("/proc/self/status", "VmRSS:")
}

/// The machine's memory in bytes (MemTotal of /proc/meminfo), for the default watermark.
pub fn total_memory() -> Option<u64> {
    kib_field("/proc/meminfo", "MemTotal:")
}

/// A `NAME: N kB` line of a /proc file, in bytes.
fn kib_field(file: &str, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_read_from_proc() {
        let resident = resident_bytes().expect("VmRSS on Linux");
        let total = total_memory().expect("MemTotal on Linux");
        assert!(resident > 0 && resident < total);
    }
}
