//! Live-kernel tests. `harness = false`: the zygote is this binary
//! re-executed, so `main` must hand over to it before anything else. Tests
//! run one after another (the live backend takes a machine-wide lock
//! anyway). They touch the host kernel only with `COWLAB_LIVE_TESTS=1`;
//! without it, or without root, the binary prints one line and passes.

use live::{LiveBackend, LiveOptions};
use scenario::backend::{Backend, TaskObs};
use scenario::Status;

fn backend() -> Option<LiveBackend> {
    match LiveBackend::new(LiveOptions::default()) {
        Ok(b) => Some(b),
        Err(e) => {
            println!("skip: {e}");
            None
        }
    }
}

fn run(text: &str) -> Option<scenario::Report> {
    let mut be = backend()?;
    let l = scenario::load("t.cow", text).map_err(|(_, d)| format!("{d:?}")).expect("scenario parses");
    Some(scenario::run_loaded(&l, &mut be, &scenario::RunOptions::default()).expect("runs"))
}

fn assert_pass(r: &scenario::Report) {
    assert_eq!(r.status, Status::Pass, "{}", r.render(false));
}

fn anon_cow_fork() {
    let Some(r) = run("thp all never\ntask P\nP: A = mmap 8K\nP: write A fill 0x11\nexpect A in P exclusive\nP: fork C\n\
        expect A in P same page as A in C\nexpect A in P not exclusive\nC: write A 4K fill 0x22\n\
        expect A in P different page from A in C\nexpect A+4K in P same page as A+4K in C\n\
        P: read A expect fill 0x11\nC: read A 4K expect fill 0x22\nC: exit\nexpect C exited\n")
    else {
        return;
    };
    assert_pass(&r);
}

fn zero_page_and_sigsegv() {
    let Some(r) = run("task P\nP: A = mmap 4K\nP: read A expect fill 0x00\nexpect A in P zero_page\n\
        P: mprotect A r\nP: write A fill 0x01 expect SIGSEGV\nexpect P killed SIGSEGV\n")
    else {
        return;
    };
    assert_pass(&r);
}

fn pipes_files_and_io_uring() {
    let Some(r) = run("task P\nP: A = mmap 4K\nP: write A fill 0x33\nP: p = pipe\nP: vmsplice p A 4K\n\
        P: write A fill 0x44\nP: read p 4K expect fill 0x44\nP: read p 4K expect EAGAIN\n\
        P: F = memfd 8K\nP: write F 4K fill 0x55\nP: read F 4K expect fill 0x55\n\
        P: D = tmpfile 4K\nP: r = io_uring\nP: io_uring register r A 4K\nP: io_uring write_fixed r A 4K to D\n\
        P: read D expect fill 0x44\nP: io_uring read_fixed r A 4K from F\nP: read A expect fill 0x55\nP: io_uring unregister r\n")
    else {
        return;
    };
    assert_pass(&r);
}

/// SIGPIPE kills the task on the live kernel too (the agent lets it), and
/// a closed pipe end, file and ring are closed for real.
fn close_and_sigpipe() {
    let Some(r) = run("task P\nP: A = mmap 4K\nP: write A fill 0x33\nP: p = pipe\nP: F = memfd 4K\nP: r = io_uring\n\
        P: close F\nP: close r\nP: fork C\nC: close p read\nC: vmsplice p A 4K\nP: read p 4K expect fill 0x33\n\
        P: close p read\nC: vmsplice p A 4K expect SIGPIPE\nexpect C killed SIGPIPE\nexpect P running\n")
    else {
        return;
    };
    assert_pass(&r);
}

fn foreign_memory_is_refused() {
    let Some(mut be) = backend() else { return };
    be.configure("linux-6.18", &[]).ok();
    let t = be.spawn().expect("spawn");
    let pid = be.pid(t).expect("pid");
    // The agent's own stack: a scenario must never reach it.
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    let stack = maps.lines().find(|l| l.ends_with("[stack]")).expect("stack line");
    let start = u64::from_str_radix(stack.split('-').next().unwrap(), 16).unwrap();
    let r = be.call(t, &scenario::backend::Call::Munmap { addr: start, len: 4096 });
    assert!(matches!(r, Err(scenario::backend::Failure::Backend(ref m)) if m.contains("refused")), "{r:?}");
    assert_eq!(be.task_state(t), Ok(TaskObs::Running));
}

/// A SysV segment outlives its processes; the backend journals every one
/// it creates and removes it when the run ends, even left attached.
fn shm_segments_do_not_outlive_the_run() {
    use scenario::backend::{Call, Ret};
    let Some(mut be) = backend() else { return };
    let t = be.spawn().expect("a task");
    let Ok(Ret::Shm(id)) = be.call(t, &Call::Shmget { size: 8192, hugetlb: None }) else { panic!("shmget") };
    assert!(matches!(be.call(t, &Call::Shmat { shm: id }), Ok(Ret::Addr(_))));
    let listed = |id: u64| {
        std::fs::read_to_string("/proc/sysvipc/shm")
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some(id.to_string().as_str()))
    };
    assert!(listed(id), "the segment exists while the run lasts");
    drop(be);
    assert!(!listed(id), "segment {id} was left behind");
}

/// The program-level pins and the mm hold as the kernel does them: the
/// scenarios that hold its answers (and pass on the model too, see
/// crates/scenario/tests/live_scenarios.rs) pass here.
fn program_pins_and_mm_holds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    for f in [
        "process-vm-readv-unshares-the-targets-page.cow",
        "process-vm-short-copies-odirect-memfd-hugetlbfs.cow",
        "odirect-pwrite-unshares-pread-breaks-cow.cow",
        "mm-hold-keeps-exited-childs-pages-shared.cow",
    ] {
        let text = std::fs::read_to_string(dir.join(f)).expect("scenario file");
        let Some(r) = run(&text) else { return };
        assert_pass(&r);
    }
}

/// MADV_FREE, MADV_COLD and the folio splits of MADV_PAGEOUT as the
/// kernel does them: the scenarios that hold its answers pass here (and on
/// the model, crates/scenario/tests/live_scenarios.rs).
fn madvise_free_cold_and_partial_splits() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("scenario dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("madvise-")))
        .collect();
    files.sort();
    assert!(files.len() >= 9, "scenarios went missing: {files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).expect("scenario file");
        let Some(r) = run(&text) else { return };
        assert_pass(&r);
    }
}

fn main() {
    live::enter_if_zygote();
    if let Some(skip) = live::live_tests_skip() {
        println!("{skip}");
        return;
    }
    let tests: &[(&str, fn())] = &[
        ("anon_cow_fork", anon_cow_fork),
        ("zero_page_and_sigsegv", zero_page_and_sigsegv),
        ("pipes_files_and_io_uring", pipes_files_and_io_uring),
        ("close_and_sigpipe", close_and_sigpipe),
        ("foreign_memory_is_refused", foreign_memory_is_refused),
        ("shm_segments_do_not_outlive_the_run", shm_segments_do_not_outlive_the_run),
        ("program_pins_and_mm_holds", program_pins_and_mm_holds),
        ("madvise_free_cold_and_partial_splits", madvise_free_cold_and_partial_splits),
    ];
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    for (name, f) in tests {
        if !filter.is_empty() && !filter.iter().any(|x| name.contains(x.as_str())) {
            continue;
        }
        println!("test {name} ...");
        f();
        println!("test {name} ... ok");
    }
}
