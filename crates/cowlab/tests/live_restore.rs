//! `cowlab diff` changes hugetlb and THP settings for a live run and sets
//! up swap space (a swap file or zram) when a scenario pages out; killing
//! cowlab mid-run (SIGKILL, which cannot be caught, and SIGTERM) must still
//! leave the machine's settings and swap as they were and no process of the
//! run behind. They change the host, so they run only with
//! COWLAB_LIVE_TESTS=1, as root; otherwise they print one line and pass.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FILES: &[&str] = &[
    "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
    "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled",
    "/sys/kernel/mm/transparent_hugepage/use_zero_page",
];

/// The sysfs files above, then the host's swap: the swap areas in use,
/// the zram device's size, and the run's swap files (`cowlab-swap.PID`).
fn snapshot() -> Vec<String> {
    let mut v: Vec<String> = FILES.iter().map(|f| std::fs::read_to_string(f).unwrap_or_default()).collect();
    v.push(swap_state());
    v
}

fn swap_state() -> String {
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    let areas: Vec<&str> = swaps.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    let zram = std::fs::read_to_string("/sys/block/zram0/disksize").unwrap_or_default();
    let files: Vec<String> = std::fs::read_dir(SWAP_DIR)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("cowlab-swap.")).collect())
        .unwrap_or_default();
    format!("swaps {areas:?} zram0 {} files {files:?}", zram.trim())
}

/// Where the live backend puts a run's swap file (LiveOptions::swap_dir).
const SWAP_DIR: &str = "/var/tmp";

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

/// A scenario that changes all three settings, with `swap` also pages out
/// (so the run sets up swap of that kind), then runs for a long time.
fn scenario(dir: &Path, swap: Option<&str>) -> std::path::PathBuf {
    let mut s = String::new();
    if let Some(kind) = swap {
        s.push_str(&format!("set swap={kind}\n"));
    }
    s.push_str("hugetlb 2M pages=1\nthp 2M never\nthp use_zero_page off\ntask P\n");
    if swap.is_some() {
        s.push_str("P: S = mmap 64K\nP: write S fill 0x11\nP: madvise S pageout\n");
    }
    s.push_str("P: A = mmap 1G\n");
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

/// One test at a time: each compares the host against its own snapshot.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn kill_mid_run(signal: &str, swap: Option<&str>) {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run() {
        return;
    }
    if swap.is_some() && std::fs::read_to_string("/proc/swaps").unwrap_or_default().lines().nth(1).is_some() {
        println!("skip: the host has swap of its own; the run would use it and create none");
        return;
    }
    let before = snapshot();
    let dir = std::env::temp_dir().join(format!("cowlab-restore-{signal}-{}-{}", swap.unwrap_or("none"), std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = scenario(&dir, swap);
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
    // Wait until the live run has changed the settings (with swap: until
    // its swap is on).
    let t0 = Instant::now();
    let changed = |now: &Vec<String>| if swap.is_some() { now.last() != before.last() } else { *now != before };
    while !changed(&snapshot()) {
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
    kill_mid_run("KILL", None);
}

#[test]
fn sigterm_mid_run_restores_settings() {
    kill_mid_run("TERM", None);
}

#[test]
fn sigkill_mid_run_takes_a_swap_file_down() {
    kill_mid_run("KILL", Some("file"));
}

#[test]
fn sigterm_mid_run_takes_a_swap_file_down() {
    kill_mid_run("TERM", Some("file"));
}

#[test]
fn sigkill_mid_run_resets_zram() {
    kill_mid_run("KILL", Some("zram"));
}

#[test]
fn sigterm_mid_run_resets_zram() {
    kill_mid_run("TERM", Some("zram"));
}
