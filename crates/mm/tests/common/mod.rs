//! Test harness: a kernel that checks its invariants after every step.
#![allow(dead_code)]

use mm::*;

pub const K4: u64 = PAGE_SIZE;
pub const M2: u64 = PMD_SIZE;

pub struct Sys {
    pub k: Kernel,
}

impl Sys {
    pub fn new() -> Self {
        Sys { k: Kernel::new(Policy::default()) }
    }

    pub fn with(policy: Policy) -> Self {
        Sys { k: Kernel::new(policy) }
    }

    pub fn set(mut self, knob: &str, v: &str) -> Self {
        self.k.policy.set(knob, v).unwrap();
        self
    }

    /// Runs one step and checks every invariant afterwards.
    pub fn step<R>(&mut self, f: impl FnOnce(&mut Kernel) -> R) -> R {
        let r = f(&mut self.k);
        if let Err(e) = self.k.check_invariants() {
            panic!("{e}\nevents:\n{}", self.k.events().iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"));
        }
        r
    }

    pub fn spawn(&mut self) -> Pid {
        self.step(|k| k.spawn())
    }

    pub fn mmap(&mut self, p: Pid, req: MmapRequest) -> u64 {
        self.step(|k| k.mmap(p, req)).expect("mmap")
    }

    pub fn anon(&mut self, p: Pid, len: u64) -> u64 {
        self.mmap(p, MmapRequest::anon(len))
    }

    /// Anonymous private memory aligned to and covering whole THPs, with
    /// MADV_HUGEPAGE (THP then depends on the settings).
    pub fn thp_area(&mut self, p: Pid, len: u64) -> u64 {
        let a = self.anon(p, len);
        assert_eq!(a % M2, 0);
        self.step(|k| k.madvise(p, a, len, Advice::HugePage)).unwrap();
        a
    }

    pub fn fill(&mut self, p: Pid, a: u64, len: u64, b: u8) -> SysResult<()> {
        self.step(|k| k.write_mem(p, a, &Contents::filled(len, b)))
    }

    pub fn read(&mut self, p: Pid, a: u64, len: u64) -> SysResult<Contents> {
        self.step(|k| k.read_mem(p, a, len))
    }

    pub fn fork(&mut self, p: Pid) -> Pid {
        self.step(|k| k.fork(p)).expect("fork")
    }

    pub fn info(&self, p: Pid, a: u64) -> FolioInfo {
        self.k.folio_info(p, a).unwrap().expect("a folio is mapped")
    }

    pub fn pfn(&self, p: Pid, a: u64) -> Option<u64> {
        self.k.pagemap(p, a).unwrap().pfn
    }

    pub fn copied(&self) -> u64 {
        self.k.stats.pages_copied
    }

    pub fn hugetlb_pool(&mut self, h: HugeSize, n: u64) {
        self.step(|k| k.set_nr_hugepages(h, n));
    }

    pub fn pool(&self, h: HugeSize) -> (u64, u64, u64, u64) {
        let s = self.k.hugetlb_pool(h);
        (s.nr, s.free, s.resv, s.surplus)
    }

    pub fn huge(&mut self, p: Pid, len: u64, h: HugeSize) -> SysResult<u64> {
        self.step(|k| k.mmap(p, MmapRequest { hugetlb: Some(h), ..MmapRequest::anon(len) }))
    }

    pub fn pin(&mut self, p: Pid, a: u64, nr: u64, flags: GupFlags, fast: bool) -> SysResult<GupHandle> {
        self.step(|k| k.gup(p, a, nr, flags, fast))
    }

    pub fn thp_enable_pmd(&mut self) {
        self.k.settings.thp_global = ThpMode::Madvise;
    }

    pub fn thp_disable(&mut self) {
        self.k.settings.thp_global = ThpMode::Never;
    }
}

pub fn ro_longterm() -> GupFlags {
    GupFlags::PIN.with_longterm()
}

pub fn rw_longterm() -> GupFlags {
    GupFlags::PIN.with_longterm().with_write()
}
