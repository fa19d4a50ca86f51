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

/// The size of the modelled machine. The kernel's answers to "is there
/// memory for this?" depend on it; the model uses it where it models such a
/// check.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Machine {
    /// Bytes of RAM (MemTotal).
    pub ram: u64,
}

/// RAM of the modelled machine unless a scenario says otherwise: 4 GiB,
/// room for the selftests' largest pools (two 1 GiB hugetlb pages).
pub const DEFAULT_RAM: u64 = 4 << 30;

impl Default for Machine {
    fn default() -> Self {
        Machine { ram: DEFAULT_RAM }
    }
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

/// A set of pages held by get_user_pages / pin_user_pages (the model's
/// gup_test handle): the caller's references, released by `unpin`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GupRecord {
    pub pid: Pid,
    pub pin: bool,
    pub longterm: bool,
    pub write: bool,
    pub pages: Vec<(FolioId, u64)>,
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
    pub(crate) mms: BTreeMap<MmId, Mm>,
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
}

impl Kernel {
    pub fn new(policy: Policy) -> Self {
        Kernel {
            policy,
            settings: Settings::default(),
            tasks: BTreeMap::new(),
            mms: BTreeMap::new(),
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
        }
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
        &self.mms[&id]
    }

    pub(crate) fn mm_mut(&mut self, id: MmId) -> &mut Mm {
        self.mms.get_mut(&id).expect("mm ids handed out by the kernel stay valid")
    }

    pub(crate) fn pid_of_mm(&self, mm: MmId) -> Pid {
        self.tasks.values().find(|t| t.mm == mm).map(|t| t.pid).unwrap_or(Pid(0))
    }

    // ----- events -------------------------------------------------------

    pub(crate) fn event(&mut self, pid: Pid, kind: EventKind, func: &'static str, addr: Option<u64>, detail: impl FnOnce() -> String) {
        if !self.log.disabled {
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

    /// Turns the event log off (benchmarks) or on.
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

    fn free_folio(&mut self, id: FolioId) {
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
        let folios: u64 = self.folios.iter().filter(|(_, f)| f.hugetlb.is_none() && !f.is_zero()).map(|(_, f)| f.nr_pages()).sum();
        (self.machine.ram / PAGE_SIZE).saturating_sub(pools).saturating_sub(folios)
    }

    /// Allocates an order-`order` anonymous folio, zeroed, refcount 1.
    pub(crate) fn alloc_anon_folio(&mut self, order: u8) -> FolioId {
        self.folios.alloc(order, FolioKind::Anon, None)
    }

    pub(crate) fn copy_page_data(&mut self, dst: FolioId, dst_page: u64, src: FolioId, src_page: u64) {
        let data: Contents = self.folios.get(src).page_data(src_page);
        self.folios.get_mut(dst).data.overwrite(dst_page * PAGE_SIZE, &data);
    }
}
