//! Random valid scenarios over the whole language, run on the model with its
//! invariants checked after every step: no panic, no invariant violation,
//! no livelock. Every operation ends in `expect any`, so the checker lets
//! any argument through (huge sizes, misaligned offsets, names of the wrong
//! state) and the model must answer each with an outcome.
//!
//! CI runs a bounded number of cases; a campaign sets the count:
//! `COWLAB_FUZZ_CASES=100000 cargo test --release -p scenario --test fuzz_model`.

use proptest::prelude::*;
use scenario::report::{Entry, Status};

fn cases(default: u32) -> u32 {
    std::env::var("COWLAB_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Sizes from the ordinary to the absurd.
fn size(r: u64) -> String {
    const SIZES: [&str; 16] = [
        "4K",
        "8K",
        "12K",
        "64K",
        "2M",
        "4M",
        "0",
        "1",
        "4097",
        "1G",
        "0x40000000000",
        "0x800000000000",
        "0xfffffffffffff000",
        "0xffffffffffffffff",
        "0x8000000000000000",
        "6M",
    ];
    SIZES[(r % SIZES.len() as u64) as usize].to_string()
}

/// Lengths for operations that touch every page they cover (faults, GUP,
/// population) on a machine of the default size (4 GiB): filling it takes
/// a second, too long for a case. On a small machine ([`MACHINES`]) writes
/// get terabytes too ([`Gen::touch`]), so running out of RAM is fuzzed.
fn small(r: u64) -> String {
    const SIZES: [&str; 9] = ["4K", "8K", "12K", "64K", "2M", "4M", "0", "1", "4097"];
    SIZES[(r % SIZES.len() as u64) as usize].to_string()
}

fn offset(r: u64) -> String {
    match r % 6 {
        0 | 1 => String::new(),
        2 => "+4K".into(),
        3 => "+2M".into(),
        4 => "+0x1000".into(),
        _ => format!("+{}", size(r / 6)),
    }
}

/// Every protection the language writes (`w`, `x`, `wx` and `none` are
/// where FOLL_FORCE differs from a plain access).
const PROTS: [&str; 8] = ["r", "rw", "w", "none", "rx", "rwx", "x", "wx"];

/// What the generator knows, to name only things a task can see.
#[derive(Default)]
struct Gen {
    out: String,
    /// The machine has little RAM: touching lengths may be huge.
    small_ram: bool,
    /// Live tasks, each with the names it sees: (name, kind).
    tasks: Vec<(String, Vec<(String, char)>)>,
    next: usize,
}

/// Machine sizes and limits a case may start with (the first is the
/// default machine): small RAM under each overcommit mode, few VMAs, few
/// tasks, RLIMIT_MEMLOCK and RLIMIT_AS.
const MACHINES: [&str; 5] = [
    "",
    "set ram=32M\nset overcommit_memory=1\n",
    "set ram=64M\nset overcommit_memory=2\nset max_map_count=6\n",
    "set ram=16M\nset threads_max=3\nset rlimit_memlock=64K\n",
    "set rlimit_as=64M\nset max_map_count=12\n",
];

impl Gen {
    /// A length for a write or an io_uring registration: [`small`], or on a
    /// small machine also far more than it has, so the fill ends in the OOM
    /// killer. (Reads, read-only GUP and MADV_POPULATE_READ of untouched
    /// anonymous memory map the zero page, which takes no RAM but a page
    /// table entry per page: they stay small.)
    fn touch(&self, r: u64) -> String {
        match (self.small_ram, r % 4) {
            (true, 0) => "0x10000000000".into(),
            (true, 1) => "64M".into(),
            _ => small(r),
        }
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next)
    }

    fn pick(&self, t: usize, kind: char, r: u64) -> Option<String> {
        let v: Vec<&String> = self.tasks[t].1.iter().filter(|(_, k)| *k == kind).map(|(n, _)| n).collect();
        (!v.is_empty()).then(|| v[(r % v.len() as u64) as usize].clone())
    }

    fn define(&mut self, t: usize, name: &str, kind: char) {
        self.tasks[t].1.push((name.to_string(), kind));
    }

    fn op(&mut self, w: [u64; 4]) {
        let [a, b, c, d] = w;
        if self.tasks.is_empty() {
            self.out.push_str("task P\n");
            self.tasks.push(("P".into(), Vec::new()));
        }
        let t = (b % self.tasks.len() as u64) as usize;
        let tn = self.tasks[t].0.clone();
        let region = |g: &Gen, r: u64| g.pick(t, 'R', r);
        let line = match a % 28 {
            0 | 1 => {
                let n = self.fresh("R");
                let mut opts = vec![size(c)];
                let prot = PROTS[((d >> 20) % PROTS.len() as u64) as usize];
                for (bit, o) in [(1, "shared"), (2, "noreserve"), (16, prot), (32, "align=2M"), (64, "fixed=0x7f0000000000")] {
                    // align= places a mapping the kernel chooses: not with fixed=.
                    if d & bit != 0 && (d >> 12) % 3 != 0 && !(bit == 64 && d & 32 != 0) {
                        opts.push(o.into());
                    }
                }
                match (d >> 9) % 5 {
                    2 => opts.push("hugetlb=2M".into()),
                    3 => opts.push("hugetlb=1G".into()),
                    _ => {}
                }
                if d & 256 != 0 {
                    if let Some(f) = self.pick(t, 'F', d) {
                        opts.push(format!("file {f}"));
                    }
                }
                self.define(t, &n, 'R');
                Some(format!("{n} = mmap {}", opts.join(" ")))
            }
            2 => region(self, c).map(|r| format!("munmap {r}{} {}", offset(d), size(d >> 8))),
            3 => {
                region(self, c).map(|r| format!("mprotect {r}{} {} {}", offset(d), size(d >> 8), PROTS[(d % PROTS.len() as u64) as usize]))
            }
            4 | 5 => region(self, c).map(|r| {
                const ADV: [&str; 14] = [
                    "dontneed",
                    "dontfork",
                    "dofork",
                    "wipeonfork",
                    "keeponfork",
                    "hugepage",
                    "nohugepage",
                    "collapse",
                    "pageout",
                    "populate_read",
                    "populate_write",
                    "free",
                    "remove",
                    "cold",
                ];
                format!("madvise {r}{} {} {}", offset(d), small(d >> 4), ADV[((d >> 8) % ADV.len() as u64) as usize])
            }),
            6 => region(self, c).map(|r| {
                let n = self.fresh("R");
                self.define(t, &n, 'R');
                let to = if d % 3 == 0 {
                    format!(" to {}", ["0x7f0000000000", "0x7e0000200000", "0x7f0000001000"][((d >> 2) % 3) as usize])
                } else {
                    String::new()
                };
                format!("{n} = mremap {r}{} {} {}{to}", offset(d >> 4), size(d >> 8), size(d >> 16))
            }),
            7 => {
                if self.tasks.len() >= 6 {
                    None
                } else {
                    let n = self.fresh("T");
                    let names = self.tasks[t].1.iter().filter(|(_, k)| *k != 'H').cloned().collect();
                    self.tasks.push((n.clone(), names));
                    Some(format!("fork {n}"))
                }
            }
            8 if self.tasks.len() > 1 && c % 4 == 0 => {
                self.out.push_str(&format!("{tn}: exit expect any\n"));
                self.tasks.remove(t);
                None
            }
            8..=10 => region(self, c).map(|r| format!("write {r}{} {} fill {}", offset(d), self.touch(d >> 8), d % 256)),
            11 | 12 => region(self, c).map(|r| format!("read {r}{} {}", offset(d), small(d >> 8))),
            13 => {
                let n = self.fresh("p");
                self.define(t, &n, 'P');
                Some(format!("{n} = pipe"))
            }
            14 => match (self.pick(t, 'P', c), region(self, d)) {
                (Some(p), Some(r)) => Some(format!("vmsplice {p} {r}{} {}", offset(d >> 4), small(d >> 8))),
                _ => None,
            },
            15 => {
                let n = self.fresh("F");
                self.define(t, &n, 'F');
                Some(match d % 3 {
                    0 => format!("{n} = memfd {}", small(c)),
                    1 => format!("{n} = memfd {} hugetlb=2M", small(c)),
                    _ => format!("{n} = tmpfile {}", small(c)),
                })
            }
            16 => {
                let n = self.fresh("u");
                self.define(t, &n, 'U');
                Some(format!("{n} = io_uring"))
            }
            17 => match (self.pick(t, 'U', c), region(self, d)) {
                (Some(u), Some(r)) => Some(format!("io_uring register {u} {r}{} {}", offset(d >> 4), self.touch(d >> 8))),
                _ => None,
            },
            18 => match (self.pick(t, 'U', c), region(self, d), self.pick(t, 'F', d >> 3)) {
                (Some(u), Some(r), Some(f)) => Some(if d % 2 == 0 {
                    format!("io_uring write_fixed {u} {r}{} {} to {f}", offset(d >> 4), size(d >> 8))
                } else {
                    format!("io_uring read_fixed {u} {r}{} {} from {f}", offset(d >> 4), size(d >> 8))
                }),
                _ => None,
            },
            19 => self.pick(t, 'U', c).map(|u| format!("io_uring unregister {u}")),
            20 => region(self, c).map(|r| {
                let n = self.fresh("h");
                self.define(t, &n, 'H');
                let kind = ["get_user_pages", "get_user_pages_fast", "pin_user_pages", "pin_user_pages_fast"][(d % 4) as usize];
                // Any subset of the flags, FOLL_FORCE|FOLL_WRITE (ptrace's
                // write through read-only memory) included.
                let flags: Vec<&str> = [(4, "FOLL_WRITE"), (8, "FOLL_LONGTERM"), (16, "FOLL_FORCE")]
                    .into_iter()
                    .filter(|(bit, _)| d & bit != 0)
                    .map(|(_, f)| f)
                    .collect();
                let flags = if flags.is_empty() { String::new() } else { format!(" {}", flags.join("|")) };
                format!("{n} = {kind} {r}{} {}{flags}", offset(d >> 5), small(d >> 8))
            }),
            21 => self.pick(t, 'H', c).map(|h| {
                self.tasks[t].1.retain(|(n, _)| *n != h);
                format!("unpin {h}")
            }),
            22 => Some("clear_soft_dirty".into()),
            23 => {
                // The target may be any live task, the caller itself too.
                let tt = (c % self.tasks.len() as u64) as usize;
                let target = self.tasks[tt].0.clone();
                match (self.pick(tt, 'R', d), region(self, c >> 3)) {
                    (Some(r), Some(l)) => Some(if d % 2 == 0 {
                        format!("process_vm_readv {target} {r}{} {} into {l}{}", offset(d >> 4), small(d >> 8), offset(c >> 5))
                    } else {
                        format!("process_vm_writev {target} {r}{} {} from {l}{}", offset(d >> 4), small(d >> 8), offset(c >> 5))
                    }),
                    _ => None,
                }
            }
            24 => match (region(self, c), self.pick(t, 'F', d >> 3)) {
                (Some(r), Some(f)) => Some(if d % 2 == 0 {
                    format!("odirect pread {r}{} {} from {f}{}", offset(d >> 4), small(d >> 8), offset(c >> 7))
                } else {
                    format!("odirect pwrite {r}{} {} to {f}{}", offset(d >> 4), small(d >> 8), offset(c >> 7))
                }),
                _ => None,
            },
            25 | 26 => {
                // /proc/PID/mem: GUP with FOLL_FORCE (FOLL_WRITE too for a
                // write) into any live task, the caller itself too.
                let tt = (c % self.tasks.len() as u64) as usize;
                let target = self.tasks[tt].0.clone();
                self.pick(tt, 'R', d).map(|r| {
                    if d % 2 == 0 {
                        format!("proc_mem_write {target} {r}{} {} fill {}", offset(d >> 4), self.touch(d >> 8), (d >> 16) % 256)
                    } else {
                        format!("proc_mem_read {target} {r}{} {}", offset(d >> 4), small(d >> 8))
                    }
                })
            }
            _ => {
                // A system setting between steps.
                let s = match c % 5 {
                    0 => format!(
                        "thp {} {}",
                        ["2M", "64K", "all", "16K"][(d % 4) as usize],
                        ["always", "madvise", "never"][((d >> 2) % 3) as usize]
                    ),
                    1 => format!("thp use_zero_page {}", if d % 2 == 0 { "on" } else { "off" }),
                    2 => format!("hugetlb 2M pages={} overcommit={}", d % 5, (d >> 3) % 3),
                    3 => format!("hugetlb 1G pages={}", d % 3),
                    _ => format!("hugetlb 2M pages={}", d),
                };
                self.out.push_str(&s);
                self.out.push('\n');
                None
            }
        };
        if let Some(l) = line {
            self.out.push_str(&format!("{tn}: {l} expect any\n"));
        }
    }
}

fn scenario_text(ops: &[[u64; 4]]) -> String {
    let mut g = Gen::default();
    let machine = MACHINES[(ops.first().map_or(0, |w| w[3] >> 40) % MACHINES.len() as u64) as usize];
    g.out.push_str(machine);
    g.small_ram = machine.contains("ram=");
    for &w in ops {
        g.op(w);
    }
    g.out
}

/// Runs the text on the model; panics (a failure) on anything but a clean
/// run: a checker error, an invariant violation, a livelock.
fn run_clean(text: &str) {
    let l = match scenario::load("fuzz.cow", text) {
        Ok(l) => l,
        Err((src, ds)) => panic!("the generator made an invalid scenario:\n{text}\n{}", ds[0].render(&src)),
    };
    let mut be = scenario::model::ModelBackend::new();
    let r = scenario::run_loaded(&l, &mut be, &scenario::RunOptions::default()).unwrap();
    for e in &r.entries {
        if let Entry::Step(s) = e {
            assert!(!s.result.contains("livelock"), "livelock at step {}:\n{text}\n{}", s.step, r.render(false));
            for c in &s.checks {
                assert!(
                    !(c.text == "model invariants" && c.status == Status::Fail),
                    "invariant violated at step {}:\n{text}\n{}",
                    s.step,
                    r.render(false)
                );
            }
        }
    }
}

/// The generator writes the FOLL_FORCE forms: every GUP with FOLL_FORCE
/// alone and with FOLL_WRITE (and FOLL_LONGTERM), /proc/PID/mem reads and
/// writes, and the protections where forcing matters.
#[test]
fn the_generator_writes_every_foll_force_form() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut all = String::new();
    for _ in 0..500 {
        let ops: Vec<[u64; 4]> = (0..30).map(|_| [next(), next(), next(), next()]).collect();
        all.push_str(&scenario_text(&ops));
    }
    for form in [
        " FOLL_FORCE expect",
        " FOLL_WRITE|FOLL_FORCE expect",
        " FOLL_LONGTERM|FOLL_FORCE expect",
        " FOLL_WRITE|FOLL_LONGTERM|FOLL_FORCE expect",
        "get_user_pages_fast",
        "pin_user_pages ",
        ": proc_mem_write ",
        ": proc_mem_read ",
        " wx",
        " x expect",
        " w expect",
        " none expect",
    ] {
        assert!(all.contains(form), "no `{form}` in 500 generated scenarios");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_valid_scenarios_keep_the_model_whole(ops in prop::collection::vec(any::<[u64; 4]>(), 1..40)) {
        run_clean(&scenario_text(&ops));
    }
}
