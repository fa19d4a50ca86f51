//! `cowlab selftest NAME` for mkdirty, madv_populate, map_populate,
//! map_fixed_noreplace and mremap_dontunmap: on the model every test
//! passes with the C tests' own KTAP lines; with `--backend both` (root and
//! `COWLAB_LIVE_TESTS=1`, else that half prints one line and passes) the
//! kernel decides every test here and agrees with the model on each.

use std::process::Command;

const SUITES: [(&str, usize); 5] =
    [("mkdirty", 6), ("madv_populate", 16), ("map_populate", 2), ("map_fixed_noreplace", 9), ("mremap_dontunmap", 5)];

fn cowlab(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cowlab")).args(args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn every_test_passes_on_the_model() {
    for (name, plan) in SUITES {
        let (code, out) = cowlab(&["selftest", name]);
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains(&format!("\n1..{plan}\n")), "{out}");
        assert!(out.contains(&format!("# Totals: pass:{plan} fail:0 xfail:0 xpass:0 skip:0 error:0")), "{out}");
    }
    let (_, out) = cowlab(&["selftest", "map_fixed_noreplace"]);
    assert!(out.contains("ok 5 mmap() 2*PAGE_SIZE  at base+(3*PAGE_SIZE)\n"), "{out}");
    let (code, out) = cowlab(&["selftest", "no_such_suite"]);
    assert_eq!(code, Some(2), "{out}");
}

#[test]
fn the_kernel_decides_every_test_and_agrees_with_the_model() {
    if let Some(skip) = live::live_tests_skip() {
        println!("{skip}");
        return;
    }
    for (name, plan) in SUITES {
        let (code, out) = cowlab(&["selftest", name, "--backend", "both"]);
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains(&format!("#   kernel: pass {plan} fail 0 xfail 0 skip 0 in ")), "{name}: {out}");
        assert!(out.contains("#   0 test(s) with different outcomes; 0 the kernel skipped here"), "{name}: {out}");
    }
}
