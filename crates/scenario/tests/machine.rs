//! The machine's size and limits (issue 16, "a machine size"): RAM and
//! the OOM killer, vm.overcommit_memory, vm.max_map_count, threads-max,
//! RLIMIT_MEMLOCK and RLIMIT_AS, each as the kernel answers at its limit.
//! Every run checks the model's invariants after every step.

use scenario::model::ModelBackend;
use scenario::report::Status;
use scenario::RunOptions;

/// Runs `text` on the model and returns the rendered trace, or panics with
/// it when an expectation failed.
fn passes(text: &str) -> String {
    let l = match scenario::load("machine.cow", text) {
        Ok(l) => l,
        Err((src, ds)) => panic!("{}", ds.iter().map(|d| d.render(&src)).collect::<String>()),
    };
    let mut be = ModelBackend::new().with_trace(true);
    let r = scenario::run_loaded(&l, &mut be, &RunOptions::default()).unwrap_or_else(|ds| panic!("{ds:?}"));
    let out = r.render(false);
    assert!(r.status == Status::Pass && r.summary.failed == 0, "{out}");
    out
}

#[test]
fn a_tebibyte_is_enomem_under_the_overcommit_heuristic() {
    // __vm_enough_memory(), mode 0: one request above RAM (4 GiB) plus swap
    // (none) is refused; MAP_NORESERVE is not charged at all.
    passes(
        "task P\nP: A = mmap 0x10000000000 expect ENOMEM\nP: B = mmap 0x10000000000 noreserve\n\
         P: C = mmap 0x100001000 expect ENOMEM\nP: D = mmap 4G\n",
    );
}

#[test]
fn a_tebibyte_fill_ends_in_the_oom_killer() {
    // Overcommit always: the mapping is granted, the writes fill RAM, and
    // the OOM killer takes the only task (the largest). The model's memory
    // follows the RAM it fills, not the size mapped: 256 MiB here keeps the
    // debug build quick; the default 4 GiB is measured in the README.
    let out = passes(
        "set ram=256M\nset overcommit_memory=1\ntask P\nP: A = mmap 0x10000000000\nP: write A fill 0x01 expect SIGKILL\n\
         expect P killed SIGKILL\n",
    );
    assert!(out.contains("P: out_of_memory") && out.contains("P: oom_kill_process"), "{out}");
}

#[test]
fn the_oom_killer_takes_the_task_with_the_most_resident_pages() {
    // 64 MiB of RAM: P holds 40 MiB, Q's fill runs out after 24 MiB and the
    // OOM killer kills P (more resident pages); Q's write completes.
    let out = passes(
        "set ram=64M\nset overcommit_memory=1\ntask P\ntask Q\nP: A = mmap 40M\nP: write A fill 1\n\
         Q: B = mmap 40M\nQ: write B fill 2\nexpect P killed SIGKILL\nexpect Q running\nQ: read B expect fill 2\n",
    );
    assert!(out.contains("P: oom_kill_process"), "{out}");
}

#[test]
fn strict_overcommit_refuses_beyond_the_commit_limit() {
    // Mode 2 with 1 GiB of RAM and the ratio 50: 512 MiB may be committed,
    // less the user reserve (1/32 of the mm's size here). Only private
    // writable mappings are charged, MAP_NORESERVE is ignored, mprotect to
    // writable charges, and fork charges the child's copy.
    passes(
        "set ram=1G\nset overcommit_memory=2\ntask P\nP: A = mmap 256M\nP: B = mmap 256M expect ENOMEM\n\
         P: C = mmap 256M noreserve expect ENOMEM\nP: D = mmap 256M r\nP: mprotect D rw expect ENOMEM\n\
         P: E = mmap 128M\nP: fork K expect ENOMEM\n",
    );
    // overcommit_kbytes replaces the ratio.
    passes("set ram=1G\nset overcommit_memory=2\nset overcommit_kbytes=3145728\ntask P\nP: A = mmap 1G\nP: fork K\n");
}

#[test]
fn max_map_count_limits_mmap_and_splits() {
    // do_mmap() refuses once the count is above the limit; split_vma()
    // (mprotect) and munmap's split at the limit; munmap of a whole VMA and
    // an mprotect that splits nothing still work.
    let mut text = String::from("set max_map_count=4\ntask P\n");
    for (i, prot) in ["rw", "r", "rw", "r"].iter().enumerate() {
        text.push_str(&format!("P: A{i} = mmap 16K {prot}\n"));
    }
    text.push_str(
        "P: A4 = mmap 16K rw\nP: A5 = mmap 16K r expect ENOMEM\n\
         P: mprotect A0+4K 4K r expect ENOMEM\nP: munmap A0+4K 4K expect ENOMEM\n\
         P: mprotect A1 rw\nP: munmap A2\nP: munmap A0+4K 4K\n",
    );
    passes(&text);
}

#[test]
fn fork_beyond_threads_max_is_eagain() {
    passes("set threads_max=3\ntask P\nP: fork C\nP: fork D\nP: fork E expect EAGAIN\nC: exit\nP: fork F\n");
}

/// fork_begin() holds `threads-max` against a running-task count kept as
/// tasks start and end (the invariant check after every step compares it
/// with a count of the tasks): a task killed by a signal or by the OOM
/// killer frees its place like one that exits.
#[test]
fn tasks_killed_by_a_signal_or_the_oom_killer_free_their_place_under_threads_max() {
    passes(
        "set threads_max=3\nset ram=16M\nset overcommit_memory=1\ntask P\nP: A = mmap 4K r\nP: fork C\nP: fork D\n\
         P: fork E expect EAGAIN\nC: write A fill 1 expect SIGSEGV\nP: fork F\nP: fork G expect EAGAIN\n\
         F: B = mmap 64M\nF: write B fill 1 expect SIGKILL\nP: fork H\nP: fork I expect EAGAIN\n",
    );
}

#[test]
fn io_uring_buffers_beyond_rlimit_memlock_are_enomem() {
    // io_account_mem(): 16 pages may be locked; the failed registration
    // unpins what it pinned.
    passes(
        "set rlimit_memlock=64K\ntask P\nP: A = mmap 128K\nP: write A fill 1\nP: r = io_uring\n\
         P: io_uring register r A expect ENOMEM\nexpect A in P refcount == 1\n\
         P: io_uring register r A 64K\nexpect A in P refcount == 1025\n",
    );
    // Unlimited (root, CAP_IPC_LOCK) by default.
    passes("task P\nP: A = mmap 8M\nP: r = io_uring\nP: io_uring register r A\n");
}

#[test]
fn rlimit_as_limits_mmap_and_mremap() {
    passes(
        "set rlimit_as=1M\ntask P\nP: A = mmap 512K\nP: B = mmap 512K r\nP: C = mmap 4K expect ENOMEM\n\
         P: mremap B 512K 516K expect ENOMEM\nP: munmap B\nP: C2 = mmap 4K\n",
    );
}

#[test]
fn mremap_dontunmap_charges_the_whole_new_length() {
    // vrm_calc_charge(): a move charges the growth only (none here), while
    // MREMAP_DONTUNMAP keeps the source, so it charges all of the new
    // length: 384M committed + 128M reaches the 512M commit limit.
    passes(
        "set ram=1G\nset overcommit_memory=2\ntask P\nP: A = mmap 256M\nP: B = mmap 128M\nP: T = mmap 256M r\n\
         P: mremap B 128M dontunmap expect ENOMEM\nP: mremap A 256M 256M to T\nP: C = mremap B 64M 64M dontunmap\n\
         P: mremap C 64M dontunmap expect ENOMEM\n",
    );
    // The kept source counts against RLIMIT_AS too (mremap_to()).
    passes("set rlimit_as=1M\ntask P\nP: A = mmap 512K\nP: B = mmap 4K\nP: mremap A 512K dontunmap expect ENOMEM\nP: munmap B\nP: mremap A 512K dontunmap\n");
}

#[test]
fn machine_knobs_say_what_they_take() {
    let l = scenario::load("machine.cow", "set ram=lots\ntask P\n").ok().unwrap();
    let mut be = ModelBackend::new();
    let e = format!("{:?}", scenario::run_loaded(&l, &mut be, &RunOptions::default()).err().unwrap());
    assert!(e.contains("knob `ram` takes a size"), "{e}");
}

#[test]
fn vmsplice_whose_fault_ends_in_the_oom_killer() {
    // Fuzz finding: GUP for vmsplice faults a page-cache page in with RAM
    // full; the OOM killer takes the splicing task, whose pipe is gone with
    // it. The pages GUP had collected go back; the outcome is the SIGKILL.
    passes(
        "set ram=1M\nset overcommit_memory=1\ntask P\nP: F = memfd 2M sparse\nP: M = mmap 2M shared file F\n\
         P: A = mmap 1M\nP: write A fill 1\nP: p = pipe\nP: vmsplice p M 8K expect SIGKILL\nexpect P killed SIGKILL\n",
    );
}
