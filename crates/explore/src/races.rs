//! The historical races, built in: `cowlab explore --race NAME`.
//!
//! Each is two tasks over two pages: a process P with two private anonymous
//! pages it wrote, and GUP-fast pinning both (FOLL_PIN, writable unless the
//! race needs a read-only pin) against the path that once raced it. Each
//! names the checks that close it: with one of those switched off the
//! explorer finds the race; with all on it exhausts the interleavings.

use crate::model::Race;
use crate::task::{Op, TaskSpec};
use mm::{Contents, GupFlags, Kernel, MmapRequest, Pid, Policy, PAGE_SIZE, PMD_SIZE};
use std::collections::BTreeMap;

/// A built-in race and the knobs whose absence lets it happen.
pub struct BuiltIn {
    pub name: &'static str,
    pub about: &'static str,
    /// Knob sets: each set switched off (together) breaks a property.
    pub breaks: &'static [&'static [&'static str]],
    /// Knobs that, switched off alone, are covered by another check here
    /// (the explorer proves the race closed without them).
    pub redundant: &'static [&'static str],
    build: fn(Policy) -> Race,
}

pub const BUILT_IN: &[BuiltIn] = &[
    BuiltIn {
        name: "fork-vs-gup-fast",
        about: "fork write-protects P's pages while GUP-fast pins them (57efa1fe5957)",
        breaks: &[&["gup_fast_seqcount"]],
        redundant: &[],
        build: fork_vs_gup_fast,
    },
    BuiltIn {
        name: "zap-vs-gup-fast",
        about: "MADV_DONTNEED zaps P's pages while GUP-fast pins them (the PTE recheck)",
        breaks: &[&["gup_fast_recheck"]],
        redundant: &[],
        build: zap_vs_gup_fast,
    },
    BuiltIn {
        name: "cow-vs-gup-fast",
        about: "P's write fault copies pages it shares with its child while it R/O-pins them with GUP-fast (a7f226604170)",
        breaks: &[&["gup_fast_ae_recheck"]],
        redundant: &[],
        build: cow_vs_gup_fast,
    },
    BuiltIn {
        name: "collapse-vs-gup-fast",
        about: "MADV_COLLAPSE replaces P's PTE table while GUP-fast pins its pages (70cbc3cc78a9, 2ba99c5e0881, ba76149f47d8)",
        breaks: &[&["collapse_refcount_check"], &["gup_fast_pmd_recheck", "collapse_table_sync"]],
        redundant: &["gup_fast_pmd_recheck", "collapse_table_sync"],
        build: collapse_vs_gup_fast,
    },
    BuiltIn {
        name: "swapout-vs-gup-fast",
        about: "reclaim swaps out P's pages while GUP-fast pins them (088b8aa537c2)",
        breaks: &[&["swapout_clear_pte_first"]],
        redundant: &[],
        build: swapout_vs_gup_fast,
    },
];

impl BuiltIn {
    pub fn by_name(name: &str) -> Option<&'static BuiltIn> {
        BUILT_IN.iter().find(|b| b.name == name)
    }

    /// The race under `policy`.
    pub fn build(&self, policy: Policy) -> Race {
        (self.build)(policy)
    }
}

const LEN: u64 = 2 * PAGE_SIZE;

/// P with `len` bytes of private anonymous memory written with 0x11.
fn setup(policy: Policy, len: u64) -> (Kernel, Pid, u64) {
    let mut k = Kernel::new(policy);
    let p = k.spawn();
    let a = k.mmap(p, MmapRequest::anon(len)).expect("a fresh address space has room");
    k.write_mem(p, a, &Contents::filled(LEN, 0x11)).expect("the pages were just mapped writable");
    (k, p, a)
}

fn race(name: &str, k: Kernel, names: &[(Pid, &str)], tasks: Vec<TaskSpec>, a: u64) -> Race {
    Race {
        name: name.into(),
        init: k,
        tasks,
        names: names.iter().map(|&(p, n)| (p, n.to_string())).collect::<BTreeMap<_, _>>(),
        watch: vec![a, a + PAGE_SIZE],
        expectations: Vec::new(),
        roots: Vec::new(),
        claimed: Default::default(),
    }
}

fn pin_rw(a: u64) -> Op {
    Op::GupFast { addr: a, nr: 2, flags: GupFlags::PIN.with_write() }
}

fn fork_vs_gup_fast(policy: Policy) -> Race {
    let (k, p, a) = setup(policy, LEN);
    let tasks = vec![TaskSpec { pid: p, op: Op::Fork }, TaskSpec { pid: p, op: pin_rw(a) }];
    race("fork-vs-gup-fast", k, &[(p, "P")], tasks, a)
}

fn zap_vs_gup_fast(policy: Policy) -> Race {
    let (k, p, a) = setup(policy, LEN);
    let tasks = vec![TaskSpec { pid: p, op: Op::DontNeed { addr: a, len: LEN } }, TaskSpec { pid: p, op: pin_rw(a) }];
    race("zap-vs-gup-fast", k, &[(p, "P")], tasks, a)
}

fn cow_vs_gup_fast(policy: Policy) -> Race {
    let (mut k, p, a) = setup(policy, LEN);
    let c = k.fork(p).expect("fork of a small process succeeds");
    let tasks = vec![
        TaskSpec { pid: p, op: Op::Write { addr: a, len: LEN, fill: 0x22 } },
        TaskSpec { pid: p, op: Op::GupFast { addr: a, nr: 2, flags: GupFlags::PIN } },
    ];
    race("cow-vs-gup-fast", k, &[(p, "P"), (c, "C")], tasks, a)
}

fn collapse_vs_gup_fast(policy: Policy) -> Race {
    // A PMD-sized, PMD-aligned VMA whose first two pages are small pages.
    let (k, p, a) = setup(policy, PMD_SIZE);
    debug_assert_eq!(a % PMD_SIZE, 0);
    let tasks = vec![TaskSpec { pid: p, op: Op::Collapse { addr: a } }, TaskSpec { pid: p, op: pin_rw(a) }];
    race("collapse-vs-gup-fast", k, &[(p, "P")], tasks, a)
}

fn swapout_vs_gup_fast(policy: Policy) -> Race {
    let (k, p, a) = setup(policy, LEN);
    let tasks = vec![TaskSpec { pid: p, op: Op::PageOut { addr: a, len: LEN } }, TaskSpec { pid: p, op: pin_rw(a) }];
    race("swapout-vs-gup-fast", k, &[(p, "P")], tasks, a)
}
