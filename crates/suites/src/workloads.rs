//! The policy lab's workload suite: small programs of the kinds the April
//! 2024 linux-mm thread argued about, generated as scenario families with
//! parameters.
//!
//! Every workload is an ordinary scenario (`cowlab policy --emit-scenarios`
//! writes them out for `cowlab run`), and states what a *leak* and a *lost
//! pin* mean for it: the lines whose failed expectation is one are tagged
//! ([`Harm`]). A tagged check only counts when its step ran and returned
//! data; a step that did not run because its task was killed, or that
//! failed (EFAULT, ENOMEM, a livelock), is a cost counted elsewhere (kills,
//! failed operations), never a leak. Steps whose outcome is a policy's
//! business (a write that may need a hugetlb page the pool does not have, a
//! fork that must copy a pinned page) say `expect any`.
//!
//! Families:
//! - `fork-exit-server`: a server keeps state in a private mapping and
//!   forks a handler per request that reads it and exits; the server writes
//!   before, after or while the handler exits; the handler's address space
//!   is torn down at once, or late (another task holds it, `mmget`).
//! - `fork-exec-server`: the same, the handler execs at once (exec drops the
//!   old mm as exit does) and never reads the mapping.
//! - `vmsplice-producer`: a forked producer vmsplices the shared buffer into
//!   a pipe a consumer reads, then unmaps it or exits (promptly or late),
//!   and the server writes.
//! - `io-uring-fixed-buffer`: an RDMA-like long-term pin (io_uring fixed
//!   buffer) registered before fork; the device writes from or into it.
//!
//! Each over private hugetlb (the pool exactly full, or one page spare), and
//! over small pages and THP for reference.

use crate::builder::{sz, Text};
use scenario::report::{Entry, Report, Status};
use serde::Serialize;

/// What a failed expectation on a tagged line means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Harm {
    /// One process saw data another wrote after they parted.
    Leak,
    /// A pinned buffer and the process's mapping of it no longer agree.
    LostPin,
}

/// The memory a workload runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backing {
    /// 4 KiB anonymous pages (64 KiB), THP off.
    Small,
    /// One PMD-mapped 2 MiB THP.
    Thp,
    /// One private 2 MiB hugetlb page; the pool has exactly the pages the
    /// mappings reserve (`spare: false`) or one more.
    Hugetlb { spare: bool },
}

impl Backing {
    pub const ALL: [Backing; 4] = [Backing::Small, Backing::Thp, Backing::Hugetlb { spare: false }, Backing::Hugetlb { spare: true }];

    pub fn name(self) -> &'static str {
        match self {
            Backing::Small => "small",
            Backing::Thp => "thp",
            Backing::Hugetlb { spare: false } => "hugetlb-exact",
            Backing::Hugetlb { spare: true } => "hugetlb-spare",
        }
    }

    fn size(self) -> u64 {
        match self {
            Backing::Small => 64 << 10,
            _ => 2 << 20,
        }
    }

    /// System settings and the mapping of `A` by task P.
    fn setup(self, t: &mut Text, extra_pages: u64) {
        match self {
            Backing::Small => t.line("thp all never"),
            Backing::Thp => t.line("thp 2M always"),
            Backing::Hugetlb { spare } => t.line(format_args!("hugetlb 2M pages={}", 1 + extra_pages + u64::from(spare))),
        };
    }

    fn map(self, t: &mut Text) {
        let s = sz(self.size());
        match self {
            Backing::Small => t.line(format_args!("P: A = mmap {s} private anon")),
            Backing::Thp => t.line(format_args!("P: A = mmap {s} private anon align={s}")),
            Backing::Hugetlb { .. } => t.line(format_args!("P: A = mmap {s} private anon hugetlb=2M")),
        };
    }
}

/// When the handler exits relative to the server's write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitWhen {
    Before,
    After,
    /// Between the server's write to the first and the second half.
    While,
}

impl ExitWhen {
    pub const ALL: [ExitWhen; 3] = [ExitWhen::Before, ExitWhen::After, ExitWhen::While];

    fn name(self) -> &'static str {
        match self {
            ExitWhen::Before => "before",
            ExitWhen::After => "after",
            ExitWhen::While => "while",
        }
    }
}

/// When an exited task's address space is torn down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Teardown {
    /// At exit (`exit_mm()` drops the last user).
    Prompt,
    /// Only after the server's writes: another task holds the mm
    /// (`mmget`, e.g. a /proc/PID/mem reader mid-access).
    Late,
}

impl Teardown {
    pub const ALL: [Teardown; 2] = [Teardown::Prompt, Teardown::Late];

    fn name(self) -> &'static str {
        match self {
            Teardown::Prompt => "prompt",
            Teardown::Late => "late",
        }
    }
}

/// One generated workload.
#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    pub family: &'static str,
    /// `fork-exit-server backing=hugetlb-exact exit=while teardown=late`.
    pub name: String,
    /// What a leak means here ("none possible" when nothing can leak).
    pub leak: &'static str,
    /// What a lost pin means here.
    pub lost_pin: &'static str,
    pub scenario: String,
    /// Line → what its failed expectation means.
    pub harms: Vec<(usize, Harm)>,
}

/// What one run of a workload showed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Judgement {
    pub leaks: u64,
    pub lost_pins: u64,
    /// Steps that did not succeed (a refused fork, an EFAULT vmsplice, a
    /// livelock, a step of a killed task): a cost, not a harm.
    pub failed_ops: u64,
    /// Failed expectations on untagged lines: the workload did not behave as
    /// any policy should (a model or workload bug, reported by name).
    pub unexplained: Vec<String>,
}

impl Workload {
    /// A file name for `--emit-scenarios`.
    pub fn file_name(&self) -> String {
        let mut slug = String::new();
        for c in self.name.chars() {
            if c.is_ascii_alphanumeric() {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.ends_with('-') {
                slug.push('-');
            }
        }
        format!("workload-{}.cow", slug.trim_matches('-'))
    }

    /// Judges a run by the workload's own tagged expectations.
    pub fn judge(&self, report: &Report) -> Judgement {
        let mut j = Judgement::default();
        for e in &report.entries {
            let (checks, ran) = match e {
                Entry::Step(s) => {
                    let ok = s.result.starts_with("ok");
                    if !ok {
                        j.failed_ops += 1;
                    }
                    (s.checks.iter().collect::<Vec<_>>(), ok)
                }
                Entry::Expect(c) => (vec![c], true),
                _ => continue,
            };
            for c in checks.into_iter().filter(|c| c.status == Status::Fail) {
                match self.harms.iter().find(|(l, _)| *l == c.line).map(|(_, h)| *h) {
                    Some(_) if !ran => {}
                    Some(Harm::Leak) => j.leaks += 1,
                    Some(Harm::LostPin) => j.lost_pins += 1,
                    // A step that failed is counted above; its "must
                    // succeed" check is not a second finding.
                    None if !ran => {}
                    None => j.unexplained.push(format!("line {}: {} — {}", c.line, c.text, c.detail.clone().unwrap_or_default())),
                }
            }
        }
        j
    }
}

fn header(t: &mut Text, name: &str, what: &str, leak: &str, lost_pin: &str) {
    t.line(format_args!("# workload {name}"));
    for l in what.lines() {
        t.line(format_args!("# {l}"));
    }
    t.line(format_args!("# leak: {leak}"));
    t.line(format_args!("# lost pin: {lost_pin}"));
}

/// Every workload, in a fixed order.
pub fn generate() -> Vec<Workload> {
    let mut out = Vec::new();
    for b in Backing::ALL {
        for when in ExitWhen::ALL {
            for td in Teardown::ALL {
                out.push(fork_server(b, when, td, false));
                out.push(fork_server(b, when, td, true));
            }
        }
    }
    for b in Backing::ALL {
        for end in [VmspliceEnd::Munmap, VmspliceEnd::Exit(Teardown::Prompt), VmspliceEnd::Exit(Teardown::Late)] {
            out.push(vmsplice_producer(b, end));
        }
    }
    for b in Backing::ALL {
        for to_device in [true, false] {
            for child_writes in [false, true] {
                out.push(io_uring_fixed(b, to_device, child_writes));
            }
        }
    }
    out
}

const SERVER_LEAK: &str = "the handler reads the server's write made after the fork (its snapshot changed under it)";
const EXEC_LEAK: &str = "none possible: the handler execs and never reads the mapping";
const NO_PIN: &str = "none possible: nothing is pinned";

/// fork+exit / fork+exec server over one private mapping.
fn fork_server(b: Backing, when: ExitWhen, td: Teardown, exec: bool) -> Workload {
    let family = if exec { "fork-exec-server" } else { "fork-exit-server" };
    let name = format!("{family} backing={} exit={} teardown={}", b.name(), when.name(), td.name());
    let leak = if exec { EXEC_LEAK } else { SERVER_LEAK };
    let mut t = Text::default();
    let mut harms = Vec::new();
    header(
        &mut t,
        &name,
        "A server (P) keeps its state in a private mapping and forks a handler (C) per request,\n\
         which then exits (or execs: exec drops the old mm as exit does). The server updates its\n\
         state before, after or while the handler goes away; with late teardown another task (H)\n\
         holds the handler's mm until the server's writes are done.",
        leak,
        NO_PIN,
    );
    b.setup(&mut t, 0);
    t.line("task P");
    if td == Teardown::Late {
        t.line("task H");
    }
    b.map(&mut t);
    let size = b.size();
    let half = size / 2;
    t.line("P: write A fill 0x11");
    t.line("P: fork C");
    if !exec {
        t.line("C: read A expect fill 0x11");
    }
    if td == Teardown::Late {
        t.line("H: m = mmget C");
    }
    let gone = if exec { "C: exit                       # execve(): exec_mmap() drops the old mm" } else { "C: exit" };
    let write_all = "P: write A fill 0x22 expect any   # may need a copy the pool cannot give";
    match when {
        ExitWhen::Before => {
            t.line(gone);
            t.line(write_all);
        }
        ExitWhen::After => {
            t.line(write_all);
            if !exec {
                t.line("C: read A expect fill 0x11");
                harms.push((t.last_line(), Harm::Leak));
            }
            t.line(gone);
        }
        ExitWhen::While => {
            t.line(format_args!("P: write A {} fill 0x22 expect any", sz(half)));
            if !exec {
                t.line("C: read A expect fill 0x11");
                harms.push((t.last_line(), Harm::Leak));
            }
            t.line(gone);
            t.line(format_args!("P: write A+{} {} fill 0x22 expect any", sz(half), sz(half)));
        }
    }
    if td == Teardown::Late {
        t.line("H: mmput m");
    }
    finish(family, name, leak, NO_PIN, t, harms)
}

/// How the vmsplice producer lets go of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VmspliceEnd {
    Munmap,
    Exit(Teardown),
}

const SPLICE_LEAK: &str = "the consumer reads from the pipe the server's write made after the producer spliced its snapshot";

/// A forked producer vmsplices the shared buffer into a pipe, lets go of
/// it, the server writes, a consumer reads the pipe.
fn vmsplice_producer(b: Backing, end: VmspliceEnd) -> Workload {
    let family = "vmsplice-producer";
    let end_name = match end {
        VmspliceEnd::Munmap => "munmap".to_string(),
        VmspliceEnd::Exit(td) => format!("exit-{}", td.name()),
    };
    let name = format!("{family} backing={} producer={end_name}", b.name());
    let mut t = Text::default();
    let mut harms = Vec::new();
    header(
        &mut t,
        &name,
        "A server (P) forks a producer (C) that vmsplice()s 64K of the inherited buffer into a\n\
         pipe read by a consumer (K, forked before the buffer existed), then unmaps the buffer\n\
         or exits (with late teardown K holds C's mm meanwhile). Then the server writes.",
        SPLICE_LEAK,
        "none possible: vmsplice's references are not pins the program relies on for coherency",
    );
    b.setup(&mut t, 0);
    t.line("task P");
    t.line("P: p = pipe");
    t.line("P: fork K");
    b.map(&mut t);
    t.line("P: write A fill 0x11");
    t.line("P: fork C");
    t.line("C: vmsplice p A 64K expect any   # FOLL_PIN must unshare first: a copy the pool may not have");
    match end {
        VmspliceEnd::Munmap => {
            t.line("C: munmap A");
        }
        VmspliceEnd::Exit(Teardown::Prompt) => {
            t.line("C: exit");
        }
        VmspliceEnd::Exit(Teardown::Late) => {
            t.line("K: m = mmget C");
            t.line("C: exit");
        }
    }
    t.line("P: write A fill 0x22 expect any");
    t.line("K: read p 64K expect fill 0x11");
    harms.push((t.last_line(), Harm::Leak));
    if end == VmspliceEnd::Exit(Teardown::Late) {
        t.line("K: mmput m");
    }
    finish(family, name, SPLICE_LEAK, "none possible: vmsplice's references are not pins the program relies on for coherency", t, harms)
}

const URING_LEAK: &str = "the child reads what the parent (or the device through the parent's pin) wrote after the fork";
const URING_PIN: &str = "the device and the parent's mapping disagree: the file gets other bytes than the parent last wrote to the buffer, or the parent does not see what the device read into it";

/// An io_uring fixed buffer (a long-term R/W pin, like an RDMA
/// registration) taken before fork.
fn io_uring_fixed(b: Backing, to_device: bool, child_writes: bool) -> Workload {
    let family = "io-uring-fixed-buffer";
    let name = format!(
        "{family} backing={} io={} child={}",
        b.name(),
        if to_device { "write_fixed" } else { "read_fixed" },
        if child_writes { "writes" } else { "reads" }
    );
    let mut t = Text::default();
    let mut harms = Vec::new();
    header(
        &mut t,
        &name,
        "A process (P) registers its buffer as an io_uring fixed buffer (FOLL_WRITE|FOLL_LONGTERM\n\
         pin, as an RDMA registration does), forks a child (C) that reads or writes its copy, and\n\
         the device writes the buffer to a file (write_fixed) or fills it from one (read_fixed).",
        URING_LEAK,
        URING_PIN,
    );
    // Fork copies the pinned page for the child: the exact pool has none.
    b.setup(&mut t, 0);
    t.line("task P");
    b.map(&mut t);
    let s = sz(b.size());
    t.line("P: write A fill 0x11");
    t.line(format_args!("P: F = memfd {s}"));
    t.line("P: r = io_uring");
    t.line(format_args!("P: io_uring register r A {s}"));
    t.line("P: fork C expect any   # the pinned page is copied for the child now");
    if child_writes {
        t.line("C: write A fill 0x33 expect any");
    }
    let device = if to_device { "0x22" } else { "0x44" };
    if to_device {
        t.line("P: write A fill 0x22");
        t.line(format_args!("P: io_uring write_fixed r A {s} to F"));
        t.line(format_args!("P: read F {s} expect fill {device}"));
    } else {
        t.line("P: write F fill 0x44");
        t.line(format_args!("P: io_uring read_fixed r A {s} from F"));
        t.line(format_args!("P: read A expect fill {device}"));
    }
    harms.push((t.last_line(), Harm::LostPin));
    t.line(format_args!("C: read A expect fill {}", if child_writes { "0x33" } else { "0x11" }));
    harms.push((t.last_line(), Harm::Leak));
    t.line("P: io_uring unregister r");
    finish(family, name, URING_LEAK, URING_PIN, t, harms)
}

fn finish(family: &'static str, name: String, leak: &'static str, lost_pin: &'static str, t: Text, harms: Vec<(usize, Harm)>) -> Workload {
    let (scenario, _) = t.finish();
    Workload { family, name, leak, lost_pin, scenario, harms }
}
