//! Divergences that docs/divergences.md already explains.
//!
//! `cowlab diff` and `cowlab fuzz` must tell a new disagreement between the
//! model and the kernel from one that has been investigated and written
//! up. Each rule here recognises one documented entry by the shape of the
//! observations (and, for §1, by whether the scenario sets up a 1 GiB pool,
//! because the observed facts do not carry a page size) and names its
//! section. A rule matches only the observation the entry explains;
//! anything the documented cause leads to further down a scenario is still
//! reported as new — except for §1, below.
//!
//! §1 (6.18's fork sometimes skips a 1 GiB hugetlb entry) has no shape of
//! its own: a child without the mapping, zeroed data, odd exclusive bits.
//! It is recognised by the model instead: when a scenario with a 1 GiB pool
//! diverges, the diff (`diff_loaded`) runs the model again with
//! `hugetlb_pud_fork=skip`, and if the kernel agrees with that run, every
//! divergence from the default run is [`PUD_FORK_SKIPPED`].
//!
//! §29 (a dead task's io_uring buffers are released by a workqueue after
//! the observation) is kernel timing the model does not follow: recognised
//! by the pool's shape once a task that registered buffers has ended.
//! §22 (zram swaps a PTE-mapped mTHP back in as one large folio) is
//! recognised by its one observation in a scenario that pages out to zram.
//!
//! Model bugs the fuzzer found (§6–§19) and §2 (pagemap's exclusive bit of
//! a PMD-mapped THP) were fixed in the model, so their shapes are news
//! again and have no rule here.

use crate::record::Facts;
use scenario::backend::PoolObs;

/// A documented divergence: the section of docs/divergences.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Known {
    pub section: u32,
    /// The entry's subject, for reports that want more than the number.
    pub title: &'static str,
}

impl std::fmt::Display for Known {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "documented: divergences.md §{}", self.section)
    }
}

/// §1: the kernel's fork skipped a 1 GiB hugetlb entry (stale
/// `pt_share_count` of the child's PUD table), which the model reproduces
/// with `hugetlb_pud_fork=skip`.
pub const PUD_FORK_SKIPPED: Known = Known {
    section: 1,
    title: "6.18's fork skipped the 1 GiB hugetlb entry (the kernel agrees with the model under hugetlb_pud_fork=skip)",
};

/// §1: pagemap's "exclusively mapped" bit of a 1 GiB hugetlb page asks
/// `hugetlb_pmd_shared()`, which reads the same stale share count of the
/// PUD table page: on 6.18 the bit is noise for 1 GiB pages.
pub const PAGEMAP_PUD_EXCLUSIVE: Known =
    Known { section: 1, title: "pagemap \"exclusive\" of a 1 GiB hugetlb page reads the PUD table's stale share count" };

/// §29: io_uring tears a ring down from a workqueue after its last
/// descriptor closes, so right after the owner exits or is killed the
/// kernel may still hold the hugetlb pages it pinned for the ring's buffers.
pub const RING_TEARDOWN_RUNS: Known =
    Known { section: 29, title: "the kernel releases a dead task's io_uring buffers from a workqueue, after the observation" };

/// Which documented entry explains a difference in a hugetlb pool, if any.
/// `owner_gone`: a task that registered io_uring buffers has ended on the
/// kernel by this step. Only a kernel holding more pages than the model,
/// with the same reservations, is §29.
pub fn pool_while_ring_teardown_runs(model: &PoolObs, kernel: &PoolObs, owner_gone: bool) -> Option<Known> {
    let in_use = |p: &PoolObs| p.total - p.free;
    let more_held = in_use(kernel) > in_use(model) && kernel.resv == model.resv && kernel.total - model.total == kernel.surp - model.surp;
    (owner_gone && more_held).then_some(RING_TEARDOWN_RUNS)
}

/// §22: zram (SWP_SYNCHRONOUS_IO) swaps a PTE-mapped mTHP whose slots
/// have one user back in whole (`alloc_swap_folio()`), so the kernel maps
/// a large folio where the model, which swaps page by page, maps small
/// pages: a present anon page that is `thp` on the kernel only.
pub const ZRAM_MTHP_SWAPIN: Known =
    Known { section: 22, title: "zram swaps a PTE-mapped mTHP back in as one large folio; the model swaps in page by page" };

/// Which documented entry explains a difference in pagemap facts, if any.
/// `pool_1g`: the scenario uses 1 GiB hugetlb pages (the facts do not say
/// which hugetlb size a page has); `zram_swap`: it pages out to zram.
pub fn pagemap_facts(model: &Option<Facts>, kernel: &Option<Facts>, pool_1g: bool, zram_swap: bool) -> Option<Known> {
    let (Some(m), Some(k)) = (model, kernel) else { return None };
    if !m.present {
        return None;
    }
    let only_thp = !m.thp && k.thp && !m.hugetlb && Facts { thp: true, ..m.clone() } == *k;
    if only_thp {
        return zram_swap.then_some(ZRAM_MTHP_SWAPIN);
    }
    let only_exclusive = m.exclusive != k.exclusive && Facts { exclusive: k.exclusive, ..m.clone() } == *k;
    (only_exclusive && m.hugetlb && pool_1g).then_some(PAGEMAP_PUD_EXCLUSIVE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thp(exclusive: bool) -> Option<Facts> {
        Some(Facts { present: true, swapped: false, zero_page: false, thp: true, hugetlb: false, exclusive })
    }

    #[test]
    fn exclusive_bit_of_a_thp_is_news_since_section_2_was_fixed() {
        assert_eq!(pagemap_facts(&thp(false), &thp(true), false, true), None);
        assert_eq!(pagemap_facts(&thp(true), &thp(false), true, true), None);
    }

    #[test]
    fn exclusive_bit_of_a_hugetlb_page_is_section_1_only_with_1g_pages() {
        let huge = |exclusive| Some(Facts { thp: false, hugetlb: true, ..thp(exclusive).unwrap() });
        assert_eq!(pagemap_facts(&huge(true), &huge(false), true, false), Some(PAGEMAP_PUD_EXCLUSIVE));
        assert_eq!(pagemap_facts(&huge(true), &huge(false), false, false), None);
    }

    #[test]
    fn a_kernel_still_holding_a_dead_ring_owners_pages_is_section_29() {
        let pool = |total, free, surp| PoolObs { total, free, resv: 0, surp };
        assert_eq!(pool_while_ring_teardown_runs(&pool(2, 2, 0), &pool(2, 1, 0), true), Some(RING_TEARDOWN_RUNS));
        assert_eq!(pool_while_ring_teardown_runs(&pool(1, 1, 1), &pool(2, 1, 2), true), Some(RING_TEARDOWN_RUNS), "a surplus page");
        assert_eq!(pool_while_ring_teardown_runs(&pool(2, 2, 0), &pool(2, 1, 0), false), None, "the owner lives");
        assert_eq!(pool_while_ring_teardown_runs(&pool(2, 1, 0), &pool(2, 2, 0), true), None, "the model holds more");
        let resv = PoolObs { resv: 1, ..pool(2, 1, 0) };
        assert_eq!(pool_while_ring_teardown_runs(&pool(2, 2, 0), &resv, true), None, "reservations differ");
    }

    #[test]
    fn other_page_differences_are_new() {
        let small = |exclusive| Some(Facts { thp: false, ..thp(exclusive).unwrap() });
        assert_eq!(pagemap_facts(&small(false), &small(true), true, true), None);
        assert_eq!(pagemap_facts(&thp(false), &None, false, true), None);
        let not_thp_on_kernel = Some(Facts { thp: false, ..thp(true).unwrap() });
        assert_eq!(pagemap_facts(&thp(false), &not_thp_on_kernel, false, true), None);
    }

    #[test]
    fn a_large_folio_after_a_zram_swap_in_is_section_22_only_with_zram() {
        let small = Some(Facts { thp: false, ..thp(true).unwrap() });
        assert_eq!(pagemap_facts(&small, &thp(true), false, true), Some(ZRAM_MTHP_SWAPIN));
        assert_eq!(pagemap_facts(&small, &thp(true), false, false), None, "a swap file swaps in page by page: news");
        let small_shared = Some(Facts { exclusive: false, ..small.clone().unwrap() });
        assert_eq!(pagemap_facts(&small_shared, &thp(true), false, true), None, "more than the folio size differs");
        assert_eq!(pagemap_facts(&thp(true), &small, false, true), None, "the model's THP the kernel split is news");
    }
}
