//! The reproducers of issue 16 ("Bounded and unbreakable"), each as a
//! scenario on the model with invariants after every step: what used to
//! panic, livelock or break an invariant now gives the kernel's answer,
//! written as the scenario's expectations.

use scenario::model::ModelBackend;
use scenario::report::Status;
use scenario::RunOptions;

/// Runs `text` on the model; returns the rendered report if it did not pass.
fn run(text: &str) -> Result<(), String> {
    let l = match scenario::load("regression.cow", text) {
        Ok(l) => l,
        Err((src, ds)) => return Err(ds.iter().map(|d| d.render(&src)).collect()),
    };
    let mut be = ModelBackend::new();
    let r = scenario::run_loaded(&l, &mut be, &RunOptions::default()).map_err(|ds| format!("{ds:?}"))?;
    if r.status == Status::Pass && r.summary.failed == 0 {
        Ok(())
    } else {
        Err(r.render(false))
    }
}

fn passes(text: &str) {
    if let Err(e) = run(text) {
        panic!("{e}");
    }
}

/// Parse and check errors of `text`, rendered.
fn load_errors(text: &str) -> String {
    match scenario::load("regression.cow", text) {
        Ok(_) => String::new(),
        Err((src, ds)) => ds.iter().map(|d| d.render(&src)).collect(),
    }
}

#[test]
fn hugetlb_size_zero_is_a_check_error_not_a_division_by_zero() {
    let e = load_errors("task P\nP: A = mmap 4K hugetlb=0 expect any\nP: munmap A+4K 4K expect any\n");
    assert!(e.contains("no hugetlb page size 0"), "{e}");
}

#[test]
fn mremap_zero_old_length_onto_itself_is_einval_for_private() {
    // check_prep_vma(): a private mapping cannot be duplicated.
    passes("task P\nP: A = mmap 8K\nP: mremap A 0 4K to A expect EINVAL\nP: write A fill 1\n");
}

#[test]
fn mremap_zero_old_length_private_is_einval_and_keeps_the_mapping() {
    passes("task P\nP: A = mmap 8K\nP: write A fill 7\nP: mremap A 0 8K expect EINVAL\nP: read A expect fill 7\n");
}

#[test]
fn mremap_zero_old_length_shared_duplicates_the_mapping() {
    // The new mapping shows the same shmem pages; the old one stays.
    passes(
        "task P\nP: A = mmap 8K shared\nP: write A fill 7\nP: B = mremap A 0 8K\nP: read B expect fill 7\nP: write B fill 9\nP: read A expect fill 9\n",
    );
}

#[test]
fn mremap_huge_lengths_and_top_addresses_are_einval() {
    passes(
        "task P\nP: A = mmap 4K\n\
         P: mremap A 4K 0xfffffffffffff000 expect EINVAL\n\
         P: mremap A 4K 0xffffffffffffffff expect EINVAL\n\
         P: mremap A 4K 4K to 0xfffffffffffff000 expect EINVAL\n\
         P: mremap A 4K 0x800000001000 expect EINVAL\n\
         P: mremap A 0xffffffffffffffff 4K to 0x7f0000000000 expect EINVAL\n\
         P: write A fill 1\n",
    );
}

#[test]
fn hugetlb_mremap_to_an_unaligned_address_is_einval_then_fork_works() {
    passes(
        "hugetlb 2M pages=4\ntask P\nP: A = mmap 4M hugetlb=2M\nP: write A fill 1\n\
         P: mremap A 2M 2M to 0x7f0000001000 expect EINVAL\n\
         P: fork C\nC: write A fill 2\nC: exit\nP: read A expect fill 1\n",
    );
}

#[test]
fn owner_steals_back_from_the_child_after_moving_its_mapping() {
    // Pool of one page: the owner's COW after mremap finds no page and
    // unmaps it from the child (unmap_ref_private() by file offset), which
    // then gets SIGBUS.
    passes(
        "hugetlb 2M pages=1\ntask P\nP: A = mmap 2M hugetlb=2M\nP: write A fill 1\nP: fork C\n\
         P: B = mremap A 2M 2M to 0x7f0000000000\nP: write B fill 2\nC: read A expect SIGBUS\n\
         expect hugetlb 2M free == 0\nP: read B expect fill 2\n",
    );
}

#[test]
fn pinned_hugetlb_page_freed_as_surplus() {
    // The pinned page is copied for the child at fork (the last free page);
    // the child's reservation for B takes two surplus pages. With surplus
    // pages around, the owner's unmap restores no reservation
    // (__unmap_hugepage_range()), and free_huge_folio() dissolves the page
    // unpinned at exit as a surplus one: 3 pages, 2 free, both reserved.
    // (With B mapped after the unmap instead, resv would be below zero and
    // hugetlb_acct_memory() would refuse B: checked live without the pin.)
    passes(
        "hugetlb 2M pages=2 overcommit=2\ntask P\nP: A = mmap 2M hugetlb=2M\nP: write A fill 1\n\
         P: h = pin_user_pages A 2M FOLL_WRITE|FOLL_LONGTERM\nP: fork C\nC: B = mmap 4M hugetlb=2M\n\
         expect hugetlb 2M surp == 2\nP: munmap A\nP: exit\n\
         expect hugetlb 2M total == 3\nexpect hugetlb 2M resv == 2\nexpect hugetlb 2M free == 2\nexpect hugetlb 2M surp == 1\n\
         C: write B fill 3\nexpect hugetlb 2M free == 0\nexpect hugetlb 2M surp == 1\nC: read B expect fill 3\n",
    );
}

#[test]
fn a_reservation_is_backed_by_surplus_pages_with_overcommit() {
    // gather_surplus_pages(): mmap takes surplus pages for its reservation.
    passes(
        "hugetlb 2M pages=0 overcommit=2\ntask P\nP: A = mmap 4M hugetlb=2M\n\
         expect hugetlb 2M total == 2\nexpect hugetlb 2M surp == 2\nexpect hugetlb 2M resv == 2\n\
         P: write A fill 1\nexpect hugetlb 2M free == 0\nP: B = mmap 2M hugetlb=2M expect ENOMEM\n",
    );
}

#[test]
fn an_enormous_hugetlb_pool_is_capped_by_ram() {
    // set_max_huge_pages() stops at the first failed allocation: the pool
    // holds what the machine's RAM (4 GiB by default) holds.
    passes(
        "hugetlb 2M pages=9223372036854775808\ntask P\nP: A = mmap 2M hugetlb=2M\nP: write A fill 1\n\
         expect hugetlb 2M total == 2048\nexpect hugetlb 2M free == 2047\n",
    );
}

#[test]
fn io_uring_fixed_ranges_that_wrap_are_efault() {
    passes(
        "task P\nP: A = mmap 4K\nP: F = memfd 4K\nP: r = io_uring\nP: io_uring register r A 4K\n\
         P: io_uring write_fixed r A 0xfffffffffffff000 to F expect EFAULT\n\
         P: io_uring read_fixed r A 0xfffffffffffff000 from F expect EFAULT\n\
         P: io_uring write_fixed r A 4K to F\n",
    );
}

#[test]
fn io_uring_registration_of_more_than_1g_is_efault() {
    // io_validate_user_buf_range(): at most 1 GiB per buffer.
    passes("task P\nP: A = mmap 0x40001000 noreserve\nP: r = io_uring\nP: io_uring register r A expect EFAULT\n");
}

#[test]
fn pin_of_64_tib_is_enomem_from_the_page_array() {
    // gup_test allocates one pointer per page with kvcalloc(): > INT_MAX
    // bytes is refused before any page is touched.
    passes("task P\nP: A = mmap 0x400000000000 noreserve\nP: h = pin_user_pages A expect ENOMEM\nP: write A 4K fill 1\n");
}

#[test]
fn huge_lengths_in_mprotect_and_madvise_give_the_kernels_errno() {
    passes(
        "task P\nP: A = mmap 8K\n\
         P: mprotect A 0xfffffffffffff001 r expect ENOMEM\n\
         P: mprotect A 0xffffffffffffffff r expect ENOMEM\n\
         P: madvise A 0xffffffffffffffff dontneed expect EINVAL\n\
         P: madvise A 0xfffffffffffff000 dontneed expect EINVAL\n\
         P: write A fill 1\n",
    );
}

#[test]
fn align_must_be_a_power_of_two_and_huge_aligns_are_enomem() {
    let e = load_errors("task P\nP: A = mmap 4K align=12K\n");
    assert!(e.contains("power of two"), "{e}");
    passes("task P\nP: A = mmap 0xfffffffffffff000 align=2M expect ENOMEM\nP: B = mmap 4K align=2M\nP: write B fill 1\n");
}

// ----- input forms -----------------------------------------------------

#[test]
fn cr_only_crlf_and_a_bom_read_as_lines() {
    let body = ["# a comment line first", "task P", "P: A = mmap 4K", "P: write A fill 1", "P: read A expect fill 1"];
    for (what, text) in [
        ("CR", body.join("\r")),
        ("CRLF", body.join("\r\n") + "\r\n"),
        ("BOM", format!("\u{feff}{}\n", body.join("\n"))),
        ("BOM+CRLF", format!("\u{feff}{}\r\n", body.join("\r\n"))),
    ] {
        let l = scenario::load("forms.cow", &text).unwrap_or_else(|(src, ds)| panic!("{what}: {}", ds[0].render(&src)));
        assert_eq!(l.checked.step_of_item.iter().flatten().count(), 3, "{what}");
        assert!(!l.checks_nothing(), "{what}");
        passes(&text);
    }
    // Positions after a BOM count as an editor shows them.
    let e = load_errors("\u{feff}task P\r\nP: mmapp 4K\r\n");
    assert!(e.starts_with("regression.cow:2:4: error: unknown operation `mmapp`"), "{e}");
}

#[test]
fn a_file_of_comments_checks_nothing() {
    let l = scenario::load("c.cow", "# one\n# two\n").ok().unwrap();
    assert!(l.checks_nothing());
    let l = scenario::load("c.cow", "task P\n").ok().unwrap();
    assert!(l.checks_nothing());
}

// ----- sizes that would show a quadratic cost (no timing asserted) -----

#[test]
fn errors_are_capped_with_a_count_of_the_rest() {
    let mut text = String::from("task P\n");
    for i in 0..5000 {
        text.push_str(&format!("P: munmap X{i}\n"));
    }
    let Err((src, ds)) = scenario::load("many.cow", &text) else { panic!("loads") };
    assert_eq!(ds.len(), 21);
    assert!(ds[20].message.contains("4980 more error(s)"), "{}", ds[20].message);
    assert!(src.position(ds[20].span).starts_with("many.cow:22:"), "{}", src.position(ds[20].span));
}

#[test]
fn a_100k_step_run() {
    let mut text = String::from("task P\nP: A = mmap 4K\n");
    for i in 0..100_000 {
        text.push_str(&format!("P: write A fill {}\n", i % 256));
    }
    text.push_str("P: read A expect fill 159\n");
    let l = scenario::load("long.cow", &text).ok().unwrap();
    // Invariants are checked by the tests above; here only the runner's
    // own costs are exercised, at a size where a quadratic one shows.
    let mut be = ModelBackend::new().with_self_check(false);
    let r = scenario::run_loaded(&l, &mut be, &RunOptions::default()).unwrap();
    assert_eq!((r.status, r.summary.passed), (Status::Pass, 1));
}

/// Every fork changes the counters of the page the whole chain shares; the
/// trace says so once per step, on the page's own line, next to the new
/// child's entry: two Δ lines per fork however long the chain (it used to
/// repeat the change for every task that maps the page, N² lines and
/// observations for N forks). A write in the middle of the chain copies
/// the page: the writer's entry moves, and the old page, found where the
/// chain's first task still maps it, loses one reference and one mapping.
#[test]
fn a_fork_chain_sharing_one_page() {
    let mut text = String::from("task T0\nT0: A = mmap 4K\nT0: write A fill 1\n");
    for i in 0..400 {
        if i == 200 {
            text.push_str("T200: write A fill 2\n");
        }
        text.push_str(&format!("T{i}: fork T{}\n", i + 1));
    }
    text.push_str(
        "T400: read A expect fill 2\nT0: read A expect fill 1\n\
         expect A in T400 mapcount == 201\nexpect A in T0 mapcount == 200\nexpect A in T0 different page from A in T400\n",
    );
    let l = scenario::load("chain.cow", &text).ok().unwrap();
    let mut be = ModelBackend::new().with_self_check(false);
    let r = scenario::run_loaded(&l, &mut be, &RunOptions::default()).unwrap();
    assert_eq!((r.status, r.summary.passed), (Status::Pass, 5), "{}", r.render(true));
    let steps: Vec<_> = r
        .entries
        .iter()
        .filter_map(|e| match e {
            scenario::report::Entry::Step(s) => Some(s),
            _ => None,
        })
        .collect();
    let pfn = |d: &str| d.split("pfn ").nth(1).and_then(|p| p.split([',', ' ', ':']).next()).map(str::to_string);
    let old = pfn(&steps[1].deltas[0]).unwrap();
    // [3] T0: fork T1 — the parent loses write access and exclusivity.
    assert_eq!(
        steps[2].deltas,
        [
            format!("A in T0: pfn {old}: writable yes → no"),
            format!("A in T1: now pfn {old}, refcount 2, mapcount 2"),
            format!("pfn {old} (A): refcount 1 → 2, mapcount 1 → 2, anon_exclusive yes → no"),
        ]
    );
    // T100: fork T101, deep in the chain.
    let s = steps.iter().find(|s| s.text == "T100: fork T101").unwrap();
    assert_eq!(
        s.deltas,
        [format!("A in T101: now pfn {old}, refcount 102, mapcount 102"), format!("pfn {old} (A): refcount 101 → 102, mapcount 101 → 102")]
    );
    let w = steps.iter().find(|s| s.text == "T200: write A fill 2").unwrap();
    let new = pfn(&w.deltas[0].replace(&format!("pfn {old} → "), "")).unwrap();
    assert_ne!(new, old);
    assert_eq!(
        w.deltas,
        [
            format!("A in T200: pfn {old} → pfn {new}, refcount 1, mapcount 1, anon_exclusive, writable"),
            format!("pfn {old} (A): refcount 201 → 200, mapcount 201 → 200"),
        ]
    );
}

#[test]
fn ten_thousand_mappings() {
    let mut text = String::from("task P\n");
    for i in 0..10_000 {
        text.push_str(&format!("P: A{i} = mmap 4K{}\n", if i % 2 == 0 { " r" } else { "" }));
    }
    text.push_str("P: write A9999 fill 3\nP: read A9999 expect fill 3\nP: read A0 expect fill 0\n");
    let l = scenario::load("maps.cow", &text).ok().unwrap();
    let mut be = ModelBackend::new().with_self_check(false);
    let r = scenario::run_loaded(&l, &mut be, &RunOptions::default()).unwrap();
    assert_eq!((r.status, r.summary.passed), (Status::Pass, 2), "{}", r.render(true));
}

#[test]
fn a_fixed_hugetlb_mmap_that_cannot_split_takes_no_reservation() {
    // Fuzz finding: MAP_FIXED over a 1 GiB hugetlb VMA at a 2 MiB boundary
    // is EINVAL from the split, before hugetlb_reserve_pages() runs.
    passes(
        "hugetlb 1G pages=0\nhugetlb 2M pages=1 overcommit=1\ntask P\n\
         P: R1 = mmap 6M noreserve fixed=0x7f0000000000 hugetlb=1G expect any\n\
         P: R3 = mmap 4K fixed=0x7f0000200000 hugetlb=2M expect EINVAL\n\
         expect hugetlb 2M resv == 0\n",
    );
}

/// Found by the FOLL_FORCE fuzz campaign (100,000 cases): an O_DIRECT
/// pwrite at a file position past `LLONG_MAX` overflowed the model's disk
/// write (a panic), and a buffered one wrapped and succeeded. The kernel
/// refuses both before a byte moves: `ksys_pwrite64()` /
/// `ksys_pread64()` take a negative `loff_t` for EINVAL, and
/// `rw_verify_area()` (fs/read_write.c) an end past `LLONG_MAX`.
#[test]
fn file_positions_past_llong_max_are_einval() {
    passes(
        "task P\nP: F = tmpfile 4K\nP: A = mmap 8K\nP: write A fill 1\n\
         P: odirect pwrite A+4K 2M to F+0xfffffffffffff000 expect EINVAL\n\
         P: odirect pwrite A 4K to F+0xfffffffffffff000 expect EINVAL\n\
         P: odirect pread A 4K from F+0x7ffffffffffff000 expect EINVAL\n\
         P: write F+0xfffffffffffff000 8K fill 1 expect EINVAL\n\
         P: read F+0x7ffffffffffff000 8K expect EINVAL\n\
         P: odirect pwrite A 4K to F expect count 4096\nP: read F 4K expect fill 1\n",
    );
}
