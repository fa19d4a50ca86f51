//! Divergences that docs/divergences.md already explains.
//!
//! `cowlab diff` and `cowlab fuzz` must tell a new disagreement between the
//! model and the kernel from one that has been investigated and written
//! up. Each rule here recognises one documented entry by the shape of the
//! observations (never by scenario text, so it also catches the entry in
//! scenarios nobody wrote by hand) and names its section. A rule matches
//! only the observation the entry explains; anything the documented cause
//! leads to further down a scenario is still reported as new.
//!
//! Model bugs the fuzzer runs into are documented the same way; those with
//! an observable shape that is not the model's own report are kept out of
//! the generator instead (see `crate::fuzz`), because their effects spread
//! to later steps where no shape test could follow them.
//!
//! Not here: §1 (1 GiB hugetlb fork skipping the PUD copy): its effects
//! (a child without the mapping, SIGBUS, zero-filled data, wrong exclusive
//! bits) look like any other bug, so no shape test can tell it apart. The
//! fuzzer does not use 1 GiB pages for that reason. Nor §4: the model was
//! fixed; its shape (the model's `resv` too high) is now §8's.

use crate::diff::Facts;
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

/// §2: for a PMD-mapped THP, 6.18's pagemap takes the "exclusively mapped"
/// bit of the PMD's first page for all 512 entries; the model reports each
/// page's own. The two sides agree on everything but that bit, and both see
/// a THP page.
pub const PAGEMAP_PMD_EXCLUSIVE: Known =
    Known { section: 2, title: "pagemap \"exclusive\" of a PMD-mapped THP follows the PMD's first page" };

/// §15: a read fault that maps the huge zero page prepares the VMA's
/// anon_vma in the kernel (`vmf_anon_prepare()` in
/// `do_huge_pmd_anonymous_page()`), so fork copies the PMD; the model does
/// not, so its child has no entry there.
pub const HUGE_ZERO_NOT_FORKED: Known = Known { section: 15, title: "fork does not copy a huge zero page PMD in the model" };

/// Which documented entry explains a difference in pagemap facts, if any.
pub fn pagemap_facts(model: &Option<Facts>, kernel: &Option<Facts>) -> Option<Known> {
    let model_unmapped = model.as_ref().is_none_or(|m| !m.present);
    if model_unmapped && kernel.as_ref().is_some_and(|k| k.present && k.zero_page) {
        return Some(HUGE_ZERO_NOT_FORKED);
    }
    let (Some(m), Some(k)) = (model, kernel) else { return None };
    let only_exclusive = m.exclusive != k.exclusive && Facts { exclusive: k.exclusive, ..m.clone() } == *k;
    (only_exclusive && m.present && m.thp).then_some(PAGEMAP_PMD_EXCLUSIVE)
}

/// §8: the model never frees a hugetlbfs file (the one behind a shared
/// anonymous hugetlb mapping, a hugetlb memfd) when its last reference
/// goes, nor the pages a failed fallocate got: its pool shows more pages
/// in use, or more reserved, than the kernel's.
pub const HUGETLB_FILE_KEPT: Known = Known { section: 8, title: "hugetlb files are never freed in the model" };

/// Which documented entry explains a difference in a hugetlb pool, if any.
pub fn pool(model: &PoolObs, kernel: &PoolObs) -> Option<Known> {
    let (mu, ku) = (model.total - model.free, kernel.total - kernel.free);
    (mu > ku || (mu == ku && model.resv > kernel.resv)).then_some(HUGETLB_FILE_KEPT)
}

/// §10: the model's invariant check counts a FOLL_GET reference to the
/// shared zero page (a vmsplice of memory only ever read) as a reference
/// to a freed folio. The zero folios are the arena's first two (4K, huge).
pub const ZERO_PAGE_HOLDERS: Known = Known { section: 10, title: "invariant check: references to the shared zero page" };

/// Which documented entry explains a model panic or broken invariant (as
/// `fuzz::model_bug` words it), if any.
pub fn model_bug(msg: &str) -> Option<Known> {
    let (_, ids) = msg.split_once("holders refer to freed folios: [")?;
    let ids = ids.split(']').next()?;
    ids.split(", ").all(|id| id == "FolioId(0)" || id == "FolioId(1)").then_some(ZERO_PAGE_HOLDERS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thp(exclusive: bool) -> Option<Facts> {
        Some(Facts { present: true, swapped: false, zero_page: false, thp: true, hugetlb: false, exclusive })
    }

    #[test]
    fn exclusive_bit_of_a_thp_is_section_2_either_way() {
        assert_eq!(pagemap_facts(&thp(false), &thp(true)), Some(PAGEMAP_PMD_EXCLUSIVE));
        assert_eq!(pagemap_facts(&thp(true), &thp(false)), Some(PAGEMAP_PMD_EXCLUSIVE));
    }

    #[test]
    fn zero_page_references_are_section_10_other_freed_folios_are_new() {
        let m = |ids: &str| {
            format!("[4] P: vmsplice p1 R2 4K expect any: model invariants: invariant violated: holders refer to freed folios: [{ids}]")
        };
        assert_eq!(model_bug(&m("FolioId(0)")), Some(ZERO_PAGE_HOLDERS));
        assert_eq!(model_bug(&m("FolioId(0), FolioId(1)")), Some(ZERO_PAGE_HOLDERS));
        assert_eq!(model_bug(&m("FolioId(0), FolioId(7)")), None);
        assert_eq!(model_bug("the model panicked: x"), None);
    }

    #[test]
    fn the_model_holding_more_hugetlb_memory_is_section_8() {
        let p = |total, free, resv, surp| PoolObs { total, free, resv, surp };
        assert_eq!(pool(&p(1, 0, 0, 0), &p(1, 1, 0, 0)), Some(HUGETLB_FILE_KEPT));
        assert_eq!(pool(&p(1, 0, 0, 1), &p(0, 0, 0, 0)), Some(HUGETLB_FILE_KEPT));
        assert_eq!(pool(&p(2, 2, 1, 0), &p(2, 2, 0, 0)), Some(HUGETLB_FILE_KEPT));
        assert_eq!(pool(&p(2, 2, 0, 0), &p(2, 1, 0, 0)), None);
        assert_eq!(pool(&p(2, 2, 0, 0), &p(2, 2, 1, 0)), None);
    }

    #[test]
    fn a_zero_page_only_the_kernel_maps_is_section_15() {
        let zero = Some(Facts { zero_page: true, thp: false, ..thp(false).unwrap() });
        assert_eq!(pagemap_facts(&None, &zero), Some(HUGE_ZERO_NOT_FORKED));
        assert_eq!(pagemap_facts(&zero, &None), None);
    }

    #[test]
    fn other_page_differences_are_new() {
        let small = |exclusive| Some(Facts { thp: false, ..thp(exclusive).unwrap() });
        assert_eq!(pagemap_facts(&small(false), &small(true)), None);
        assert_eq!(pagemap_facts(&thp(false), &None), None);
        let not_thp_on_kernel = Some(Facts { thp: false, ..thp(true).unwrap() });
        assert_eq!(pagemap_facts(&thp(false), &not_thp_on_kernel), None);
    }
}
