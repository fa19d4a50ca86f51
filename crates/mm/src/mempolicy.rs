//! NUMA memory policies (mm/mempolicy.c): only what `mbind(MPOL_LOCAL,
//! MPOL_MF_MOVE)` does on a machine with one node.

use crate::kernel::Kernel;
use crate::types::*;
use std::collections::BTreeSet;

impl Kernel {
    /// `do_mbind()` (mm/mempolicy.c) with mode MPOL_LOCAL, an empty node
    /// mask and MPOL_MF_MOVE, as mkdirty.c calls it to force a migration.
    /// The start must be page aligned (EINVAL), the length is rounded up to
    /// pages, an empty range does nothing; a range with a hole is EFAULT
    /// (no MPOL_MF_DISCONTIG_OK). The pages to move are queued
    /// (`queue_pages_range()`): do_mbind() inverts the empty user mask,
    /// so every page is on a node outside it and is queued — except folios
    /// that may be mapped by more than one process
    /// (`folio_maybe_mapped_shared()`: MPOL_MF_MOVE is not MOVE_ALL) and
    /// special entries (the zero pages). Each queued folio is migrated
    /// ([`Kernel::migrate_pages`]) to the local node; on this one-node
    /// machine that is the node it is on, but the kernel moves it anyway.
    /// Folios that fail to move are not an error without MPOL_MF_STRICT.
    ///
    /// Left out: the policy itself (the model records no VMA policy, so it
    /// neither splits the VMAs at the range's ends nor keeps them from
    /// merging — docs/divergences.md), other modes, node masks and flags,
    /// and the migration of page-cache and hugetlb folios.
    pub fn do_mbind(&mut self, pid: Pid, start: u64, len: u64) -> SysResult<()> {
        let mm = self.mm_of(pid)?;
        if !is_aligned(start, PAGE_SIZE) {
            return Err(Errno::EINVAL.into());
        }
        let Some(end) = len.checked_next_multiple_of(PAGE_SIZE).and_then(|l| start.checked_add(l)) else {
            return Err(Errno::EINVAL.into());
        };
        if end == start {
            return Ok(());
        }
        let mut at = start;
        while at < end {
            match self.mm(mm).vma(at) {
                Some(v) => at = v.end,
                None => return Err(Errno::EFAULT.into()),
            }
        }
        let mut queued = Vec::new();
        let mut seen = BTreeSet::new();
        for l in self.mm(mm).pt.leaves(start, end) {
            let Some(p) = l.entry.present() else { continue };
            let f = self.folios.get(p.folio);
            if p.special || f.is_zero() || f.maybe_mapped_shared() || !seen.insert(p.folio) {
                continue;
            }
            queued.push(p.folio);
        }
        for folio in queued {
            self.migrate_pages(pid, mm, folio);
        }
        Ok(())
    }
}
