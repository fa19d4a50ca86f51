//! The whole simulated system as one value.

use crate::contents::Contents;
use crate::events::{Event, EventKind, EventLog, Stats};
use crate::folio::{FolioArena, FolioId, FolioKind, InodeId, MmId};
use crate::hugetlb::Hstates;
use crate::io_uring::Ring;
use crate::pgtable::PageTable;
use crate::policy::Policy;
use crate::shmem::Inode;
use crate::splice::Pipe;
use crate::swap::SwapDevice;
use crate::types::*;
use crate::vma::Vma;
use std::collections::BTreeMap;

/// Per-size THP setting (`/sys/kernel/mm/transparent_hugepage/…/enabled`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ThpMode {
    Always,
    Madvise,
    Never,
    /// Per-size only: follow the global setting.
    Inherit,
}

impl ThpMode {
    pub fn parse(s: &str) -> Option<ThpMode> {
        Some(match s {
            "always" => ThpMode::Always,
            "madvise" => ThpMode::Madvise,
            "never" => ThpMode::Never,
            "inherit" => ThpMode::Inherit,
            _ => return None,
        })
    }
}

/// Smallest and largest mTHP order this machine offers (16 KiB … 2 MiB).
pub const THP_MIN_ORDER: u8 = 2;
pub const THP_PMD_ORDER: u8 = 9;

/// System settings a scenario may change (sysfs / sysctl in the real kernel).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Settings {
    /// `transparent_hugepage/enabled`.
    pub thp_global: ThpMode,
    /// `transparent_hugepage/hugepages-<size>kB/enabled`, index = order.
    pub thp_order: [ThpMode; 10],
    /// `transparent_hugepage/use_zero_page`.
    pub use_zero_page: bool,
}

impl Default for Settings {
    /// The kernel's defaults as this machine boots: global `madvise`, the PMD
    /// size `inherit`, every other mTHP size `never`.
    fn default() -> Self {
        let mut thp_order = [ThpMode::Never; 10];
        thp_order[THP_PMD_ORDER as usize] = ThpMode::Inherit;
        Settings { thp_global: ThpMode::Madvise, thp_order, use_zero_page: true }
    }
}

impl Settings {
    /// The effective mode of one THP order.
    pub fn thp_mode(&self, order: u8) -> ThpMode {
        match self.thp_order.get(order as usize).copied().unwrap_or(ThpMode::Never) {
            ThpMode::Inherit => self.thp_global,
            m => m,
        }
    }
}

/// The size and limits of the modelled machine: what the kernel's answers
/// to "is there memory for this?" depend on. Set with `set KNOB=VALUE` (a
/// scenario line) or `--set` like the policy knobs, see [`MACHINE_LIMITS`].
///
/// The RAM counts what the model represents: anonymous, page-cache and
/// swap-cache folios and the hugetlb pools. Kernel memory (page tables,
/// task structures, slab) is left out, so a machine fills up later than a
/// real one of the same size would.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Machine {
    /// Bytes of RAM (MemTotal).
    pub ram: u64,
    /// `vm.overcommit_memory` (mm/util.c: __vm_enough_memory()).
    pub overcommit: Overcommit,
    /// `vm.overcommit_ratio`, percent of RAM (without hugetlb pools) that
    /// mode 2 lets be committed (mm/util.c: vm_commit_limit()).
    pub overcommit_ratio: u64,
    /// `vm.overcommit_kbytes`: when not 0, the commit limit of mode 2 in KiB
    /// instead of the ratio.
    pub overcommit_kbytes: u64,
    /// `vm.max_map_count`: VMAs one mm may have (DEFAULT_MAX_MAP_COUNT).
    pub max_map_count: u64,
    /// `kernel.threads-max`; None: as the kernel sizes it at boot from RAM
    /// ([`Machine::threads_max`]).
    pub threads_max: Option<u64>,
    /// RLIMIT_MEMLOCK of the scenario's tasks in bytes; None: the check is
    /// skipped, as for the root tasks the live backend runs (CAP_IPC_LOCK).
    pub rlimit_memlock: Option<u64>,
    /// RLIMIT_AS of the scenario's tasks in bytes; None: RLIM_INFINITY.
    pub rlimit_as: Option<u64>,
}

/// `vm.overcommit_memory`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Overcommit {
    /// 0, OVERCOMMIT_GUESS: refuse only a single request larger than RAM
    /// plus swap.
    Guess,
    /// 1, OVERCOMMIT_ALWAYS: never refuse; running out ends in the OOM
    /// killer.
    Always,
    /// 2, OVERCOMMIT_NEVER: refuse when the committed address space would
    /// reach the commit limit.
    Never,
}

/// RAM of the modelled machine unless a scenario says otherwise: 4 GiB.
/// Room for the selftests' largest pools (two 1 GiB hugetlb pages), small
/// enough that filling all of it with 4 KiB pages (a million folios) stays
/// within the model's own budget of 512 MiB and a few seconds, and a
/// machine size the kernel's sizing rules (threads-max, reserves) apply to
/// as they do on this 24 GiB host.
pub const DEFAULT_RAM: u64 = 4 << 30;

/// DEFAULT_MAX_MAP_COUNT (include/linux/mm.h): USHRT_MAX - 5.
pub const DEFAULT_MAX_MAP_COUNT: u64 = 65530;

/// THREAD_SIZE on x86-64 without KASAN: 16 KiB of kernel stack per task.
const THREAD_SIZE: u64 = 16 << 10;

impl Default for Machine {
    fn default() -> Self {
        Machine {
            ram: DEFAULT_RAM,
            overcommit: Overcommit::Guess,
            overcommit_ratio: 50,
            overcommit_kbytes: 0,
            max_map_count: DEFAULT_MAX_MAP_COUNT,
            threads_max: None,
            rlimit_memlock: None,
            rlimit_as: None,
        }
    }
}

/// One machine knob, for `cowlab knobs` and error messages.
pub struct MachineKnob {
    pub name: &'static str,
    pub takes: &'static str,
    pub about: &'static str,
}

/// The knobs that size the machine (`set ram=8G`, `--set overcommit_memory=2`).
pub const MACHINE_LIMITS: &[MachineKnob] = &[
    MachineKnob {
        name: "ram",
        takes: "a size (default 4G)",
        about: "MemTotal: anonymous, page-cache and swap-cache folios and the hugetlb pools share it",
    },
    MachineKnob {
        name: "overcommit_memory",
        takes: "0, 1 or 2 (default 0)",
        about: "vm.overcommit_memory: heuristic, always, or strict accounting",
    },
    MachineKnob {
        name: "overcommit_ratio",
        takes: "a percentage (default 50)",
        about: "vm.overcommit_ratio: mode 2's commit limit as a share of RAM",
    },
    MachineKnob {
        name: "overcommit_kbytes",
        takes: "KiB (default 0: use the ratio)",
        about: "vm.overcommit_kbytes: mode 2's commit limit",
    },
    MachineKnob {
        name: "max_map_count",
        takes: "a number (default 65530)",
        about: "vm.max_map_count: VMAs per mm; mmap and splits beyond it are ENOMEM",
    },
    MachineKnob { name: "threads_max", takes: "a number (default RAM / 128 KiB)", about: "kernel.threads-max: fork beyond it is EAGAIN" },
    MachineKnob {
        name: "rlimit_memlock",
        takes: "a size or unlimited (default unlimited: root)",
        about: "RLIMIT_MEMLOCK: io_uring buffer registration beyond it is ENOMEM",
    },
    MachineKnob {
        name: "rlimit_as",
        takes: "a size or unlimited (default unlimited)",
        about: "RLIMIT_AS: mmap and mremap growing the address space beyond it are ENOMEM",
    },
];

impl Machine {
    /// `kernel.threads-max`: as set, or as `set_max_threads()`
    /// (kernel/fork.c) sizes it at boot: the thread structures may take an
    /// eighth of memory, between MIN_THREADS (20) and FUTEX_TID_MASK. The
    /// kernel counts the free pages at boot; the model counts all of RAM.
    pub fn threads_max(&self) -> u64 {
        self.threads_max.unwrap_or_else(|| (self.ram / (THREAD_SIZE * 8)).clamp(20, 0x3fff_ffff))
    }

    /// Sets one machine knob; None when `knob` is not one (a policy knob,
    /// say), else the outcome.
    pub fn set(&mut self, knob: &str, value: &str) -> Option<Result<(), String>> {
        let k = MACHINE_LIMITS.iter().find(|k| k.name == knob)?;
        let bad = || format!("knob `{knob}` takes {}", k.takes);
        let number = |v: &str| parse_size(v).ok_or_else(bad);
        let limit = |v: &str| if v == "unlimited" { Ok(None) } else { number(v).map(Some) };
        let r = (|| {
            match knob {
                "ram" => {
                    let b = number(value)?;
                    if b < PAGE_SIZE {
                        return Err(format!("knob `ram` takes a size of at least 4K, not {value}"));
                    }
                    self.ram = b;
                }
                "overcommit_memory" => {
                    self.overcommit = match value {
                        "0" => Overcommit::Guess,
                        "1" => Overcommit::Always,
                        "2" => Overcommit::Never,
                        _ => return Err(bad()),
                    }
                }
                "overcommit_ratio" => self.overcommit_ratio = number(value)?,
                "overcommit_kbytes" => self.overcommit_kbytes = number(value)?,
                "max_map_count" => self.max_map_count = number(value)?,
                "threads_max" => self.threads_max = Some(number(value)?),
                "rlimit_memlock" => self.rlimit_memlock = limit(value)?,
                "rlimit_as" => self.rlimit_as = limit(value)?,
                _ => return Err(bad()),
            }
            Ok(())
        })();
        Some(r)
    }

    /// The textual value of one machine knob, as `set` takes it.
    pub fn get(&self, knob: &str) -> Option<String> {
        let limit = |l: Option<u64>| l.map_or("unlimited".to_string(), |b| b.to_string());
        Some(match knob {
            "ram" => self.ram.to_string(),
            "overcommit_memory" => match self.overcommit {
                Overcommit::Guess => "0",
                Overcommit::Always => "1",
                Overcommit::Never => "2",
            }
            .to_string(),
            "overcommit_ratio" => self.overcommit_ratio.to_string(),
            "overcommit_kbytes" => self.overcommit_kbytes.to_string(),
            "max_map_count" => self.max_map_count.to_string(),
            "threads_max" => self.threads_max().to_string(),
            "rlimit_memlock" => limit(self.rlimit_memlock),
            "rlimit_as" => limit(self.rlimit_as),
            _ => return None,
        })
    }
}

/// A byte count or plain number as knobs take it: decimal or `0x` hex,
/// with an optional binary unit K, M, G or T; None on overflow.
fn parse_size(v: &str) -> Option<u64> {
    let (digits, shift) = match v.as_bytes().last()? {
        b'K' => (&v[..v.len() - 1], 10),
        b'M' => (&v[..v.len() - 1], 20),
        b'G' => (&v[..v.len() - 1], 30),
        b'T' => (&v[..v.len() - 1], 40),
        _ => (v, 0),
    };
    let n = match digits.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok()?,
        None => digits.parse().ok()?,
    };
    n.checked_mul(1u64 << shift)
}

/// Lifecycle of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskState {
    Running,
    Exited,
    Killed(Signal),
}

/// Identifier of a pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PipeId(pub u32);

/// Identifier of an io_uring instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RingId(pub u32);

/// What a file descriptor refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum File {
    PipeRead(PipeId),
    PipeWrite(PipeId),
    Inode(InodeId),
    Ring(RingId),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Task {
    pub pid: Pid,
    pub parent: Option<Pid>,
    pub mm: MmId,
    pub state: TaskState,
    pub fds: BTreeMap<i32, File>,
}

/// An address space (`struct mm_struct`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mm {
    pub id: MmId,
    /// VMAs keyed by start address; they never overlap.
    pub vmas: BTreeMap<u64, Vma>,
    pub pt: PageTable,
    /// MMF_HAS_PINNED: set by the first FOLL_PIN, never cleared.
    pub has_pinned: bool,
    /// `write_protect_seq`: odd while fork write-protects this mm.
    pub write_protect_seq: u64,
    /// Whether the soft-dirty tracking cleared by `clear_refs` is armed.
    pub softdirty_armed: bool,
    /// Who holds the mmap lock across steps (a fork, while it copies).
    pub mmap_lock: crate::mmap_lock::MmapLock,
}

impl Mm {
    pub fn new(id: MmId) -> Self {
        Mm {
            id,
            vmas: BTreeMap::new(),
            pt: PageTable::default(),
            has_pinned: false,
            write_protect_seq: 0,
            softdirty_armed: false,
            mmap_lock: Default::default(),
        }
    }

    /// `vma_lookup()`: the VMA containing `addr`.
    pub fn vma(&self, addr: u64) -> Option<&Vma> {
        self.vmas.range(..=addr).next_back().map(|(_, v)| v).filter(|v| addr < v.end)
    }

    pub fn vma_mut(&mut self, addr: u64) -> Option<&mut Vma> {
        self.vmas.range_mut(..=addr).next_back().map(|(_, v)| v).filter(|v| addr < v.end)
    }
}

/// The live address spaces by id, in id order: the map's interface over a
/// sorted vector. A system has one or a few mms and every fault, store
/// and zap step looks its own up (often several times), so a search of a
/// short slice beats a B-tree descent. One entry per id in id order, so
/// equal tables are equal vectors and hash as the map did (length, then
/// each pair).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct MmTable(Vec<(MmId, Mm)>);

impl MmTable {
    fn pos(&self, id: &MmId) -> Result<usize, usize> {
        self.0.binary_search_by_key(id, |(k, _)| *k)
    }

    pub(crate) fn get(&self, id: &MmId) -> Option<&Mm> {
        self.pos(id).ok().map(|i| &self.0[i].1)
    }

    pub(crate) fn get_mut(&mut self, id: &MmId) -> Option<&mut Mm> {
        self.pos(id).ok().map(|i| &mut self.0[i].1)
    }

    pub(crate) fn insert(&mut self, id: MmId, mm: Mm) -> Option<Mm> {
        match self.pos(&id) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, mm)),
            Err(i) => {
                self.0.insert(i, (id, mm));
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, id: &MmId) -> Option<Mm> {
        self.pos(id).ok().map(|i| self.0.remove(i).1)
    }

    pub(crate) fn values(&self) -> impl DoubleEndedIterator<Item = &Mm> + '_ {
        self.0.iter().map(|(_, m)| m)
    }
}

impl std::ops::Index<&MmId> for MmTable {
    type Output = Mm;

    fn index(&self, id: &MmId) -> &Mm {
        self.get(id).expect("mm ids handed out by the kernel stay valid")
    }
}

impl<'a> IntoIterator for &'a MmTable {
    type Item = (&'a MmId, &'a Mm);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (MmId, Mm)>, fn(&'a (MmId, Mm)) -> (&'a MmId, &'a Mm)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, m)| (k, m))
    }
}

/// A set of pages held by get_user_pages / pin_user_pages (the model's
/// gup_test handle): the caller's references, released by `unpin`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GupRecord {
    pub pid: Pid,
    pub pin: bool,
    pub longterm: bool,
    pub write: bool,
    pub pages: crate::gup::PageList,
}

/// Handle to a [`GupRecord`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GupHandle(pub u32);

/// A reference one task holds on another task's address space
/// (`mm_users`, taken by `mmget()`), see [`Kernel::mmget`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MmHold(pub u32);

/// The simulated system.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Kernel {
    pub policy: Policy,
    pub settings: Settings,
    pub(crate) tasks: BTreeMap<Pid, Task>,
    /// How many of `tasks` are running (the kernel's `nr_threads`, which
    /// copy_process() holds against `threads-max`): kept as tasks start
    /// and end, so fork need not count them (checked by
    /// [`Kernel::check_invariants`]).
    pub(crate) nr_running: u64,
    pub(crate) mms: MmTable,
    pub folios: FolioArena,
    pub(crate) swap: SwapDevice,
    pub(crate) inodes: BTreeMap<InodeId, Inode>,
    pub(crate) pipes: BTreeMap<PipeId, Pipe>,
    pub(crate) rings: BTreeMap<RingId, Ring>,
    pub(crate) gup: BTreeMap<GupHandle, GupRecord>,
    /// `mm_users` references held by other tasks: hold → (holder, mm).
    pub(crate) mm_holds: BTreeMap<MmHold, (Pid, MmId)>,
    /// SysV shared memory segments (ipc/shm.c).
    pub(crate) shm_segs: BTreeMap<crate::shm::ShmId, crate::shm::ShmSeg>,
    pub hstates: Hstates,
    pub machine: Machine,
    pub(crate) next_id: u32,
    pub(crate) log: EventLog,
    pub stats: Stats,
    /// Pages the long loops have handled, for a progress display (not
    /// state: see [`crate::work`]).
    pub(crate) work: crate::work::WorkCounter,
}

impl Kernel {
    pub fn new(policy: Policy) -> Self {
        Kernel {
            policy,
            settings: Settings::default(),
            tasks: BTreeMap::new(),
            nr_running: 0,
            mms: MmTable::default(),
            folios: FolioArena::new(),
            swap: SwapDevice::default(),
            inodes: BTreeMap::new(),
            pipes: BTreeMap::new(),
            rings: BTreeMap::new(),
            gup: BTreeMap::new(),
            mm_holds: BTreeMap::new(),
            shm_segs: BTreeMap::new(),
            hstates: Hstates::default(),
            machine: Machine::default(),
            next_id: 1,
            log: EventLog::default(),
            stats: Stats::default(),
            work: crate::work::WorkCounter::default(),
        }
    }

    /// The count of pages handled so far, shared with this kernel (and its
    /// clones): another thread may read it while an operation runs.
    pub fn work_counter(&self) -> crate::work::WorkCounter {
        self.work.clone()
    }

    pub(crate) fn fresh_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }

    /// Starts a task with an empty address space (the scenario's first task).
    pub fn spawn(&mut self) -> Pid {
        let pid = Pid(self.fresh_id());
        let mm = MmId(self.fresh_id());
        self.mms.insert(mm, Mm::new(mm));
        self.tasks.insert(pid, Task { pid, parent: None, mm, state: TaskState::Running, fds: BTreeMap::new() });
        self.nr_running += 1;
        pid
    }

    pub fn task_state(&self, pid: Pid) -> Option<TaskState> {
        self.tasks.get(&pid).map(|t| t.state)
    }

    pub fn pids(&self) -> impl Iterator<Item = Pid> + '_ {
        self.tasks.keys().copied()
    }

    /// The running task `pid`, or ESRCH.
    pub(crate) fn task(&self, pid: Pid) -> SysResult<&Task> {
        match self.tasks.get(&pid) {
            Some(t) if t.state == TaskState::Running => Ok(t),
            _ => Err(Errno::ESRCH.into()),
        }
    }

    /// The address space of a task (for driving step machines).
    pub fn task_mm(&self, pid: Pid) -> Option<MmId> {
        self.tasks.get(&pid).map(|t| t.mm)
    }

    pub(crate) fn mm_of(&self, pid: Pid) -> SysResult<MmId> {
        self.task(pid).map(|t| t.mm)
    }

    pub fn mm(&self, id: MmId) -> &Mm {
        self.mms.get(&id).expect("mm ids handed out by the kernel stay valid")
    }

    pub(crate) fn mm_mut(&mut self, id: MmId) -> &mut Mm {
        self.mms.get_mut(&id).expect("mm ids handed out by the kernel stay valid")
    }

    pub(crate) fn pid_of_mm(&self, mm: MmId) -> Pid {
        self.tasks.values().find(|t| t.mm == mm).map(|t| t.pid).unwrap_or(Pid(0))
    }

    // ----- events -------------------------------------------------------

    /// Records what the kernel did. With the log off only kernel log lines
    /// (printk) are kept: they are what a task can observe (`/dev/kmsg`),
    /// the rest is narration.
    pub(crate) fn event(&mut self, pid: Pid, kind: EventKind, func: &'static str, addr: Option<u64>, detail: impl FnOnce() -> String) {
        if !self.log.disabled || kind == EventKind::Printk {
            self.log.events.push(Event { pid, kind, func, addr, detail: detail() });
        }
    }

    /// Removes and returns everything logged since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.log.events)
    }

    pub fn events(&self) -> &[Event] {
        &self.log.events
    }

    /// Turns the event log off (benchmarks, bulk runs) or on; kernel log
    /// lines are kept either way.
    pub fn set_event_log(&mut self, on: bool) {
        self.log.disabled = !on;
    }

    // ----- folio references ---------------------------------------------

    pub(crate) fn folio_ref_add(&mut self, id: FolioId, n: i64) {
        self.folios.get_mut(id).refcount += n;
    }

    /// Drops `n` references; the last one frees the folio (hugetlb folios go
    /// back to their pool, page-cache and swap-cache holders never reach 0).
    pub(crate) fn folio_put_refs(&mut self, id: FolioId, n: i64) {
        let f = self.folios.get_mut(id);
        f.refcount -= n;
        if f.refcount <= 0 && f.kind != FolioKind::Zero {
            self.free_folio(id);
        }
    }

    pub(crate) fn folio_put(&mut self, id: FolioId) {
        self.folio_put_refs(id, 1)
    }

    pub(crate) fn free_folio(&mut self, id: FolioId) {
        if let Some(size) = self.folios.get(id).hugetlb {
            let restore = self.folios.get(id).restore_reserve;
            crate::hugetlb::free_huge_folio(self, size, restore);
        }
        self.folios.release(id);
    }

    /// Base pages of RAM not in use: neither in a hugetlb pool (free or
    /// not) nor in a folio (anonymous, page cache). The shared zero page is
    /// not counted.
    pub fn free_ram_pages(&self) -> u64 {
        let pools: u64 = [HugeSize::Size2M, HugeSize::Size1G]
            .into_iter()
            .map(|h| self.hugetlb_pool(h).nr.saturating_mul(h.bytes() / PAGE_SIZE))
            .fold(0, u64::saturating_add);
        (self.machine.ram / PAGE_SIZE).saturating_sub(pools).saturating_sub(self.folios.ram_pages())
    }

    /// Allocates an order-`order` anonymous folio, zeroed, refcount 1.
    pub(crate) fn alloc_anon_folio(&mut self, order: u8) -> FolioId {
        self.folios.alloc(order, FolioKind::Anon, None)
    }

    /// A small anonymous folio, refcount 1, holding a copy of page
    /// `src_page` of `src` (`folio_prealloc()` without zeroing, then
    /// `__wp_page_copy_user()`): allocated with those bytes rather than
    /// zeroed and then overwritten.
    pub(crate) fn alloc_anon_folio_copy(&mut self, src: FolioId, src_page: u64) -> FolioId {
        let data = self.folios.get(src).page_data(src_page);
        self.folios.alloc_with(0, FolioKind::Anon, None, data)
    }

    pub(crate) fn copy_page_data(&mut self, dst: FolioId, dst_page: u64, src: FolioId, src_page: u64) {
        let data: Contents = self.folios.get(src).page_data(src_page);
        self.folios.get_mut(dst).data.overwrite_owned(dst_page * PAGE_SIZE, data);
    }
}
