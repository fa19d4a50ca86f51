//! System settings a scenario changes, and how they are put back.
//!
//! Rule: before the first write to a sysfs file, its original value is
//! recorded in a *journal* file (with the controller's and the zygote's
//! pids) and the journal is synced; so is swap space before it is created
//! (see [`crate::swap`]). Restoring undoes the changes in reverse order —
//! writes the originals back, swaps off and removes a swap file, swaps off
//! and resets a zram device — and then removes the journal. Four paths
//! restore:
//!
//! - [`Settings::restore`] when the backend is dropped (normal end, error,
//!   panic unwinding);
//! - the controller's SIGINT/SIGTERM handler (see `crate::signals`);
//! - the zygote, when its socket to the controller reaches EOF (the
//!   controller died, even by SIGKILL): [`restore_journal_of`];
//! - the next live run, for a journal whose owner is dead:
//!   [`restore_stale`].

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One change to the host, as journaled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A sysfs or procfs file and the value it had.
    File(PathBuf, String),
    /// A swap file this run created (and enabled).
    SwapFile(PathBuf),
    /// A zram device (`zram0`) this run configured as swap.
    Zram(String),
    /// A SysV shm segment a scenario created (`shmget`): segments outlive
    /// their processes, so restoring removes it (IPC_RMID; one already
    /// removed is gone, which is fine).
    ShmSegment(i32),
}

impl Change {
    fn undo(&self) -> Result<(), String> {
        match self {
            Change::File(p, v) => fs::write(p, v).map_err(|e| format!("cannot restore {} to {v}: {e}", p.display())),
            Change::SwapFile(p) => crate::swap::remove_file(p),
            Change::Zram(name) => crate::swap::reset_zram(name),
            Change::ShmSegment(id) => {
                // SAFETY: shmctl(2) IPC_RMID takes no buffer.
                let r = unsafe { libc::shmctl(*id, libc::IPC_RMID, std::ptr::null_mut()) };
                let e = std::io::Error::last_os_error();
                if r == 0 || matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIDRM)) {
                    Ok(())
                } else {
                    Err(format!("cannot remove SysV shm segment {id}: {e}"))
                }
            }
        }
    }
}

/// The changes made so far, journaled.
pub struct Settings {
    journal: PathBuf,
    owner: i32,
    zygote: i32,
    saved: Vec<Change>,
}

/// The value a sysfs file shows: the bracketed word of a choice file
/// (`always [madvise] never` → `madvise`), otherwise the trimmed text.
pub fn current_value(text: &str) -> String {
    if let (Some(a), Some(b)) = (text.find('['), text.find(']')) {
        if a < b {
            return text[a + 1..b].to_string();
        }
    }
    text.trim().to_string()
}

impl Settings {
    pub fn new(journal: PathBuf, owner: i32) -> Settings {
        Settings { journal, owner, zygote: 0, saved: Vec::new() }
    }

    pub fn set_zygote(&mut self, pid: i32) {
        self.zygote = pid;
    }

    /// Writes `value` to `path`, journaling the original first.
    pub fn write(&mut self, path: &Path, value: &str) -> Result<(), String> {
        if !self.saved.iter().any(|c| matches!(c, Change::File(p, _) if p == path)) {
            let orig = fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            self.record(Change::File(path.to_path_buf(), current_value(&orig)))?;
        }
        fs::write(path, value).map_err(|e| format!("cannot write {value} to {}: {e}", path.display()))
    }

    /// Journals a change the caller is about to make (swap space), so that
    /// every restore path undoes it even if the caller dies halfway.
    pub fn record(&mut self, c: Change) -> Result<(), String> {
        self.saved.push(c);
        self.sync_journal().map_err(|e| format!("cannot write the journal {}: {e}", self.journal.display()))
    }

    /// Whether a change of this kind is journaled (swap this run set up).
    pub fn has(&self, f: impl Fn(&Change) -> bool) -> bool {
        self.saved.iter().any(f)
    }

    fn sync_journal(&self) -> std::io::Result<()> {
        let tmp = self.journal.with_extension("tmp");
        let mut f = fs::File::create(&tmp)?;
        writeln!(f, "{JOURNAL_HEADER}")?;
        writeln!(f, "owner {}", self.owner)?;
        writeln!(f, "zygote {}", self.zygote)?;
        for c in &self.saved {
            match c {
                Change::File(p, v) => writeln!(f, "{}\t{}", p.display(), v)?,
                Change::SwapFile(p) => writeln!(f, "!swapfile\t{}", p.display())?,
                Change::Zram(n) => writeln!(f, "!zram\t{n}")?,
                Change::ShmSegment(id) => writeln!(f, "!shm\t{id}")?,
            }
        }
        f.sync_all()?;
        fs::rename(&tmp, &self.journal)
    }

    /// Puts every original back (last changed first); removes the journal.
    /// Returns what could not be restored.
    pub fn restore(&mut self) -> Vec<String> {
        let errs = write_back(&self.saved);
        if errs.is_empty() {
            let _ = fs::remove_file(&self.journal);
            self.saved.clear();
        }
        errs
    }

    pub fn is_empty(&self) -> bool {
        self.saved.is_empty()
    }
}

impl Drop for Settings {
    fn drop(&mut self) {
        if !self.saved.is_empty() {
            for e in self.restore() {
                eprintln!("cowlab: live: {e}");
            }
        }
    }
}

fn write_back(saved: &[Change]) -> Vec<String> {
    saved.iter().rev().filter_map(|c| c.undo().err()).collect()
}

/// Version 2 added swap lines (`!swapfile`, `!zram`), version 3 SysV shm
/// segments (`!shm`); older journals are still read.
const JOURNAL_HEADER: &str = "cowlab-live-journal 3";

/// A parsed journal.
#[derive(Debug, PartialEq, Eq)]
pub struct Journal {
    pub owner: i32,
    pub zygote: i32,
    pub saved: Vec<Change>,
}

pub fn read_journal(path: &Path) -> Option<Journal> {
    let text = fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    if !matches!(lines.next()?, JOURNAL_HEADER | "cowlab-live-journal 2" | "cowlab-live-journal 1") {
        return None;
    }
    let owner = lines.next()?.strip_prefix("owner ")?.parse().ok()?;
    let zygote = lines.next()?.strip_prefix("zygote ")?.parse().ok()?;
    let saved = lines
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| match k {
            "!swapfile" => Change::SwapFile(PathBuf::from(v)),
            "!zram" => Change::Zram(v.to_string()),
            // A garbled id names no segment (IPC_RMID of -1 is EINVAL).
            "!shm" => Change::ShmSegment(v.parse().unwrap_or(-1)),
            p => Change::File(PathBuf::from(p), v.to_string()),
        })
        .collect();
    Some(Journal { owner, zygote, saved })
}

/// The zygote's watchdog restore: only the journal of its own controller.
pub fn restore_journal_of(path: &Path, controller: i32) {
    if let Some(j) = read_journal(path) {
        if j.owner == controller {
            let errs = write_back(&j.saved);
            for e in &errs {
                eprintln!("cowlab: live watchdog: {e}");
            }
            // Remove only if it is still ours.
            if read_journal(path).is_some_and(|k| k.owner == controller) {
                let _ = fs::remove_file(path);
            }
        }
    }
}

fn alive(pid: i32) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists() && crate::agent::session_of(pid).is_some()
}

/// At the start of a live run (holding the run lock): a journal left by a
/// dead controller is restored. Its zygote, if still ending the old run's
/// processes, is given up to 15 s to restore it first.
pub fn restore_stale(path: &Path) -> Option<String> {
    let j = read_journal(path)?;
    if alive(j.owner) {
        return Some(format!("a journal of a running cowlab (pid {}) exists at {}; left alone", j.owner, path.display()));
    }
    for _ in 0..300 {
        if !(j.zygote > 0 && crate::agent::session_of(j.zygote) == Some(j.zygote)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let j = read_journal(path)?;
    let errs = write_back(&j.saved);
    let _ = fs::remove_file(path);
    Some(if errs.is_empty() {
        format!("restored {} setting(s) left changed by cowlab pid {}", j.saved.len(), j.owner)
    } else {
        errs.join("; ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory for one test, removed when the test ends (also
    /// when it fails), so test runs leave nothing behind in /tmp.
    struct Scratch(PathBuf);

    impl std::ops::Deref for Scratch {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn tmpdir(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("cowlab-settings-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }

    #[test]
    fn choice_files_show_the_bracketed_word() {
        assert_eq!(current_value("always [madvise] never\n"), "madvise");
        assert_eq!(current_value("0\n"), "0");
    }

    #[test]
    fn restore_puts_originals_back_and_removes_the_journal() {
        let d = tmpdir("restore");
        let a = d.join("enabled");
        let b = d.join("nr_hugepages");
        fs::write(&a, "always [madvise] never\n").unwrap();
        fs::write(&b, "0\n").unwrap();
        let j = d.join("journal");
        let mut s = Settings::new(j.clone(), 4242);
        s.write(&a, "always").unwrap();
        s.write(&b, "2").unwrap();
        s.write(&b, "3").unwrap();
        let jr = read_journal(&j).unwrap();
        assert_eq!(jr.owner, 4242);
        assert_eq!(jr.saved, vec![Change::File(a.clone(), "madvise".into()), Change::File(b.clone(), "0".into())]);
        assert_eq!(fs::read_to_string(&b).unwrap(), "3");
        assert!(s.restore().is_empty());
        assert_eq!(fs::read_to_string(&a).unwrap(), "madvise");
        assert_eq!(fs::read_to_string(&b).unwrap(), "0");
        assert!(!j.exists());
    }

    #[test]
    fn a_dead_owners_journal_is_restored_by_the_next_run() {
        let d = tmpdir("stale");
        let a = d.join("use_zero_page");
        fs::write(&a, "1\n").unwrap();
        let j = d.join("journal");
        let mut s = Settings::new(j.clone(), i32::MAX - 7);
        s.write(&a, "0").unwrap();
        std::mem::forget(s); // as if killed with SIGKILL
        assert_eq!(fs::read_to_string(&a).unwrap(), "0");
        let msg = restore_stale(&j).unwrap();
        assert!(msg.contains("restored 1"), "{msg}");
        assert_eq!(fs::read_to_string(&a).unwrap(), "1");
        assert!(!j.exists());
    }

    #[test]
    fn swap_lines_round_trip_and_a_version_1_journal_is_still_read() {
        let d = tmpdir("swaplines");
        let j = d.join("journal");
        let mut s = Settings::new(j.clone(), 99);
        s.record(Change::Zram("zram0".into())).unwrap();
        s.record(Change::SwapFile(d.join("cowlab-swap.99"))).unwrap();
        let jr = read_journal(&j).unwrap();
        assert_eq!(jr.saved, vec![Change::Zram("zram0".into()), Change::SwapFile(d.join("cowlab-swap.99"))]);
        std::mem::forget(s);
        fs::write(&j, "cowlab-live-journal 1\nowner 5\nzygote 6\n/sys/x\t1\n").unwrap();
        assert_eq!(read_journal(&j).unwrap().saved, vec![Change::File("/sys/x".into(), "1".into())]);
    }

    #[test]
    fn undoing_a_swap_file_that_is_not_swap_removes_it() {
        // swapoff of a file that is not swap fails with EINVAL, which undo
        // accepts (the run may have died before swapon); the file goes.
        let d = tmpdir("swapfile");
        let f = d.join("cowlab-swap.1");
        fs::write(&f, "x").unwrap();
        let j = d.join("journal");
        let mut s = Settings::new(j.clone(), 1);
        s.record(Change::SwapFile(f.clone())).unwrap();
        let errs = s.restore();
        // Without root swapoff says EPERM: then the file must stay.
        if errs.is_empty() {
            assert!(!f.exists());
            assert!(!j.exists());
        } else {
            assert!(errs[0].contains("swapoff"), "{errs:?}");
            assert!(f.exists(), "a file swapoff could not check is left alone");
            std::mem::forget(s);
        }
    }

    #[test]
    fn the_watchdog_restores_only_its_own_controllers_journal() {
        let d = tmpdir("watchdog");
        let a = d.join("x");
        fs::write(&a, "1").unwrap();
        let j = d.join("journal");
        let mut s = Settings::new(j.clone(), 77);
        s.write(&a, "0").unwrap();
        std::mem::forget(s);
        restore_journal_of(&j, 78);
        assert_eq!(fs::read_to_string(&a).unwrap(), "0");
        restore_journal_of(&j, 77);
        assert_eq!(fs::read_to_string(&a).unwrap(), "1");
        assert!(!j.exists());
    }
}
