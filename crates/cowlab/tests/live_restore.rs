//! `cowlab diff` changes hugetlb and THP settings for a live run; killing
//! cowlab mid-run (SIGKILL, which cannot be caught, and SIGTERM) must still
//! leave the machine's settings as they were and no process of the run
//! behind. They run only with `COWLAB_LIVE_TESTS=1` (they change the
//! host's settings); without it, or without root, each prints one line and
//! passes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FILES: &[&str] = &[
    "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
    "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled",
    "/sys/kernel/mm/transparent_hugepage/use_zero_page",
];

fn snapshot() -> Vec<String> {
    FILES.iter().map(|f| std::fs::read_to_string(f).unwrap_or_default()).collect()
}

fn can_run() -> bool {
    if let Some(skip) = live::live_tests_skip() {
        println!("{skip}");
        return false;
    }
    // SAFETY-free check: /proc/self/status Uid line.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root {
        println!("skip: not root (the live backend changes sysfs settings)");
        return false;
    }
    if !Path::new(FILES[0]).exists() {
        println!("skip: no 2M hugetlb pool on this kernel");
        return false;
    }
    true
}

/// A scenario that changes all three settings, then runs for a long time.
fn scenario(dir: &Path) -> std::path::PathBuf {
    let mut s = String::from("hugetlb 2M pages=1\nthp 2M never\nthp use_zero_page off\ntask P\nP: A = mmap 1G\n");
    for _ in 0..60 {
        s.push_str("P: write A fill 0x5a\nP: madvise A dontneed\n");
    }
    let p = dir.join("long.cow");
    std::fs::write(&p, s).unwrap();
    p
}

fn run_processes_of(cowlab: u32) -> Vec<u32> {
    let needle = format!("COWLAB_LIVE_ZYGOTE={cowlab}");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

fn kill_mid_run(signal: &str) {
    if !can_run() {
        return;
    }
    let before = snapshot();
    let dir = std::env::temp_dir().join(format!("cowlab-restore-{signal}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = scenario(&dir);
    let child = Command::new(env!("CARGO_BIN_EXE_cowlab"))
        .args(["diff", "--step-timeout", "30"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Whatever happens below, this cowlab does not outlive the test.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Reap(child);
    // Wait until the live run has changed the settings.
    let t0 = Instant::now();
    while snapshot() == before {
        assert!(t0.elapsed() < Duration::from_secs(60), "cowlab never changed the settings");
        assert!(child.0.try_wait().unwrap().is_none(), "cowlab ended before changing the settings");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.0.try_wait().unwrap().is_none(), "the scenario should still be running");
    Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap();
    let _ = child.0.wait();
    let t0 = Instant::now();
    while snapshot() != before || !run_processes_of(pid).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "after SIG{signal}: settings {:?} (were {:?}), processes left {:?}",
            snapshot(),
            before,
            run_processes_of(pid)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigkill_mid_run_restores_settings() {
    kill_mid_run("KILL");
}

#[test]
fn sigterm_mid_run_restores_settings() {
    kill_mid_run("TERM");
}
