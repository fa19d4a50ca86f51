//! Virtual memory areas (`struct vm_area_struct`) and the flags that matter.

use crate::folio::InodeId;
use crate::hugetlb::VmaResv;
use crate::types::{HugeSize, Prot, PAGE_SIZE};

/// What backs a VMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backing {
    /// Private anonymous memory (`vma_is_anonymous()`).
    Anon,
    /// A file, memfd or shmem object (anonymous MAP_SHARED is shmem too).
    File(InodeId),
}

/// One VMA. Flags are plain booleans named after the kernel's VM_* bits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Vma {
    pub start: u64,
    pub end: u64,
    /// VM_READ / VM_WRITE / VM_EXEC. VM_MAYREAD is always set in the model
    /// (no file is opened without read access).
    pub prot: Prot,
    /// VM_SHARED / VM_MAYSHARE (the model does not distinguish read-only
    /// shared file mappings).
    pub shared: bool,
    /// VM_MAYWRITE: with `!shared`, this is a COW mapping.
    pub maywrite: bool,
    /// VM_DONTCOPY (MADV_DONTFORK).
    pub dontcopy: bool,
    /// VM_WIPEONFORK.
    pub wipeonfork: bool,
    /// VM_HUGEPAGE / VM_NOHUGEPAGE.
    pub hugepage: bool,
    pub nohugepage: bool,
    /// VM_NORESERVE.
    pub noreserve: bool,
    /// VM_ACCOUNT: the VMA's pages count in the committed address space
    /// (`vm_committed_as`, see [`Kernel::vm_enough_memory`](crate::kernel::Kernel)).
    pub account: bool,
    /// VM_SOFTDIRTY: new VMAs are soft-dirty until `clear_refs` clears it.
    pub softdirty: bool,
    pub backing: Backing,
    /// File offset of `start`, in pages (for anon: `start / PAGE_SIZE`).
    pub pgoff: u64,
    /// Identity of the anon_vma once one exists (first anon fault or fork).
    pub anon_vma: Option<u32>,
    /// The VMA's anon_vma chain holds more than its own anon_vma: it was
    /// copied at fork from a VMA that had one (`anon_vma_fork()`), or split
    /// or moved from such a VMA. mm/vma.c `vma_is_fork_child()`; such a
    /// VMA never merges with one that has no anon_vma (see
    /// [`Vma::can_merge_with`]). Left out: `anon_vma_clone()` reusing an
    /// ancestor's anon_vma whose VMAs are all gone.
    pub fork_child: bool,
    /// VM_HUGETLB with its page size.
    pub hugetlb: Option<HugeSize>,
    /// hugetlb private reservation map and its HPAGE_RESV_* flags.
    pub resv: Option<VmaResv>,
}

impl Vma {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// `is_cow_mapping()`: private and may become writable.
    pub fn is_cow_mapping(&self) -> bool {
        self.maywrite && !self.shared
    }

    /// `vma_is_accessible()` (include/linux/mm.h): any of VM_READ,
    /// VM_WRITE, VM_EXEC — what PROT_NONE lacks.
    pub fn is_accessible(&self) -> bool {
        self.prot.read || self.prot.write || self.prot.exec
    }

    /// `vma_is_anonymous()`.
    pub fn is_anonymous(&self) -> bool {
        self.backing == Backing::Anon
    }

    pub fn inode(&self) -> Option<InodeId> {
        match self.backing {
            Backing::File(i) => Some(i),
            Backing::Anon => None,
        }
    }

    /// File page index mapped at `addr` (`linear_page_index()`).
    pub fn page_index(&self, addr: u64) -> u64 {
        self.pgoff + (addr - self.start) / PAGE_SIZE
    }

    /// Whether `other`, starting where `self` ends, could be one VMA with it
    /// (`vma_merge` compatibility in the parts the model keeps).
    pub fn can_merge_with(&self, other: &Vma) -> bool {
        self.end == other.start
            && self.prot == other.prot
            && self.shared == other.shared
            && self.maywrite == other.maywrite
            && self.dontcopy == other.dontcopy
            && self.wipeonfork == other.wipeonfork
            && self.hugepage == other.hugepage
            && self.nohugepage == other.nohugepage
            && self.noreserve == other.noreserve
            && self.account == other.account
            && self.softdirty == other.softdirty
            && self.backing == other.backing
            && self.hugetlb.is_none()
            && other.hugetlb.is_none()
            && other.pgoff == self.pgoff + self.len() / PAGE_SIZE
            && self.anon_vma_mergeable(other)
    }

    /// mm/vma.c `is_mergeable_anon_vma()`: two VMAs with anon_vmas merge
    /// only when it is the same one; when one side has none, it takes the
    /// other's, which the kernel refuses when the other is a fork child
    /// (its anon_vma root lock is shared with the parent's).
    fn anon_vma_mergeable(&self, other: &Vma) -> bool {
        match (self.anon_vma, other.anon_vma) {
            (None, None) => true,
            (Some(_), None) => !self.fork_child,
            (None, Some(_)) => !other.fork_child,
            (Some(a), Some(b)) => a == b,
        }
    }

    /// Cuts the VMA at `addr`, returning the upper part (`split_vma()`).
    /// Both parts keep the hugetlb reservation state: in the kernel they
    /// share one resv_map, and each accounts only its own range on close.
    pub fn split_off(&mut self, addr: u64) -> Vma {
        let mut hi = self.clone();
        hi.start = addr;
        hi.pgoff = self.page_index(addr);
        self.end = addr;
        hi
    }
}
