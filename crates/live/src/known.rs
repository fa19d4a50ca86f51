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
//! Not here: §1 (1 GiB hugetlb fork skipping the PUD copy): its effects
//! (a child without the mapping, SIGBUS, zero-filled data, wrong exclusive
//! bits) look like any other bug, so no shape test can tell it apart. The
//! fuzzer does not use 1 GiB pages for that reason. Nor §4: the model was
//! fixed, so a pool difference is news again.

use crate::diff::Facts;

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

/// Which documented entry explains a difference in pagemap facts, if any.
pub fn pagemap_facts(model: &Option<Facts>, kernel: &Option<Facts>) -> Option<Known> {
    let (Some(m), Some(k)) = (model, kernel) else { return None };
    let only_exclusive = m.exclusive != k.exclusive && Facts { exclusive: k.exclusive, ..m.clone() } == *k;
    (only_exclusive && m.present && m.thp).then_some(PAGEMAP_PMD_EXCLUSIVE)
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
    fn other_page_differences_are_new() {
        let small = |exclusive| Some(Facts { thp: false, ..thp(exclusive).unwrap() });
        assert_eq!(pagemap_facts(&small(false), &small(true)), None);
        assert_eq!(pagemap_facts(&thp(false), &None), None);
        let not_thp_on_kernel = Some(Facts { thp: false, ..thp(true).unwrap() });
        assert_eq!(pagemap_facts(&thp(false), &not_thp_on_kernel), None);
    }
}
