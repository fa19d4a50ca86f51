//! Page migration (mm/migrate.c): a folio's contents moved to a newly
//! allocated folio, every mapping of the old one switched to the new one.

use crate::events::EventKind;
use crate::folio::{FolioId, MmId};
use crate::kernel::Kernel;
use crate::rmap::MmIdSlot;
use crate::types::*;

impl Kernel {
    /// `migrate_pages()` (mm/migrate.c) of one anonymous folio mapped only
    /// by `mm`, as `do_mbind()` queues them: `try_to_migrate()` replaces
    /// every mapping with a migration entry that remembers the entry's
    /// write, dirty, young and soft-dirty bits and whether the page was
    /// anon-exclusive; the data is copied into a new folio of the same
    /// order; `remove_migration_ptes()` / `remove_migration_pmd()` map the
    /// new folio in the old one's place with exactly those bits (a
    /// read-only dirty entry stays read-only and dirty), and the old folio
    /// is freed. A folio with references beyond its mappings (a GUP
    /// reference or pin, a pipe buffer) fails `folio_migrate_mapping()`'s
    /// reference check and stays where it is: false.
    ///
    /// The migration entries are never seen by anyone (the model runs the
    /// whole migration as one step). Left out: folios in the swap cache
    /// (the kernel moves the swap-cache entry too; the model does not
    /// migrate them), page-cache and hugetlb folios, the split of a large
    /// folio whose new folio cannot be allocated (the model's allocation of
    /// the new folio does not fail), deferred-split and LRU state.
    pub(crate) fn migrate_pages(&mut self, pid: Pid, mm: MmId, old: FolioId) -> bool {
        let f = self.folios.get(old);
        if !f.is_anon() || f.hugetlb.is_some() || f.refcount != f.mapcount || self.swap_cache_of(old).is_some() {
            return false;
        }
        let (order, total) = (f.order, f.mapcount);
        let new = self.folios.alloc(order, f.kind, None);
        let pfn = self.folios.get(new).pfn;
        let mut moved = self.folios.get(old).clone();
        moved.pfn = pfn;
        // The new folio's rmap is built afresh by `mm` alone, which takes
        // slot 0 with every mapping.
        if moved.is_large() {
            moved.mm_ids = Default::default();
            moved.mm_ids.slots[0] = Some(MmIdSlot { mm, mapcount: total as u32 });
        }
        *self.folios.get_mut(new) = moved;
        for l in self.folio_leaves(mm, old) {
            self.mm_mut(mm).pt.update_present(l.level, l.addr, |p| p.folio = new);
        }
        let o = self.folios.get_mut(old);
        o.mapcount = 0;
        o.entire_mapcount = 0;
        self.folio_put_refs(old, total);
        self.event(pid, EventKind::Note, "migrate_pages", None, || {
            format!("{}K folio moved to a new folio, its entries' bits kept", (PAGE_SIZE << order) / 1024)
        });
        true
    }
}
