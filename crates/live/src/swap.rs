//! Swap space for a live run: a swap file or a zram device, created when a
//! scenario pages memory out on a host without swap, and taken down after.
//!
//! Creation is journaled *before* it happens (see [`crate::settings`]), so
//! every restore path takes down exactly what this run set up: `swapoff`,
//! then the file is removed or the zram device reset. Only a zram device
//! that is unused (disksize 0, not in /proc/swaps) is ever configured, and
//! only a file this run created is removed; swap the host had is used as it
//! is, when it is of the kind the scenario asks for, and never touched.

use scenario::backend::SwapKind;
use std::ffi::CString;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Size of the swap space a run creates: scenarios swap out at most a few
/// huge pages, and the bound keeps a runaway run from eating the disk.
pub const SWAP_BYTES: u64 = 64 << 20;

/// The zram device a run may configure.
pub const ZRAM: &str = "zram0";

const PAGE: usize = 4096;

/// One line of /proc/swaps: the device or file, and its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveSwap {
    pub name: String,
    pub kind: SwapKind,
}

/// The swap areas the kernel uses now. A zram device is synchronous
/// (SWP_SYNCHRONOUS_IO); a file or a disk partition is not, so it behaves
/// as `swap=file`.
pub fn active() -> Vec<ActiveSwap> {
    let text = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(|name| {
            let zram = name.strip_prefix("/dev/").is_some_and(|d| d.starts_with("zram"));
            ActiveSwap { name: name.to_string(), kind: if zram { SwapKind::Zram } else { SwapKind::File } }
        })
        .collect()
}

/// The swap header `mkswap` writes (include/linux/swap.h: union
/// swap_header, version 1): the last usable page and the SWAPSPACE2 magic
/// at the end of the first page; no bad pages, no UUID or label.
fn header(bytes: u64) -> Vec<u8> {
    let mut h = vec![0u8; PAGE];
    let last_page = (bytes / PAGE as u64 - 1) as u32;
    h[1024..1028].copy_from_slice(&1u32.to_ne_bytes());
    h[1028..1032].copy_from_slice(&last_page.to_ne_bytes());
    h[PAGE - 10..].copy_from_slice(b"SWAPSPACE2");
    h
}

fn c_path(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| format!("{} contains a NUL byte", p.display()))
}

fn swapon(p: &Path) -> Result<(), String> {
    let c = c_path(p)?;
    // SAFETY: swapon(2) with a NUL-terminated path that outlives the call.
    if unsafe { libc::swapon(c.as_ptr(), 0) } != 0 {
        return Err(format!("swapon {}: {}", p.display(), std::io::Error::last_os_error()));
    }
    Ok(())
}

/// swapoff(2); a path that is not (or no longer) swap is not an error.
pub fn swapoff(p: &Path) -> Result<(), String> {
    let c = c_path(p)?;
    // SAFETY: swapoff(2) with a NUL-terminated path that outlives the call.
    if unsafe { libc::swapoff(c.as_ptr()) } != 0 {
        let e = std::io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) {
            return Err(format!("swapoff {}: {e}", p.display()));
        }
    }
    Ok(())
}

/// Takes down a swap file this run created.
pub fn remove_file(p: &Path) -> Result<(), String> {
    swapoff(p)?;
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("cannot remove {}: {e}", p.display())),
        _ => Ok(()),
    }
}

/// Takes down a zram device this run configured: swapoff, then reset (which
/// frees its memory and sets disksize back to 0).
pub fn reset_zram(name: &str) -> Result<(), String> {
    swapoff(&Path::new("/dev").join(name))?;
    let reset = Path::new("/sys/block").join(name).join("reset");
    std::fs::write(&reset, "1").map_err(|e| format!("cannot reset {name} ({}): {e}", reset.display()))
}

/// Why this run cannot configure the zram device, if it cannot.
pub fn zram_unusable() -> Option<String> {
    let dir = Path::new("/sys/block").join(ZRAM);
    if !dir.is_dir() || !Path::new("/dev").join(ZRAM).exists() {
        return Some(format!("no zram device /dev/{ZRAM} (modprobe zram)"));
    }
    let size = std::fs::read_to_string(dir.join("disksize")).unwrap_or_default();
    if size.trim() != "0" || active().iter().any(|s| s.name == format!("/dev/{ZRAM}")) {
        return Some(format!("/dev/{ZRAM} is in use (disksize {}); cowlab only uses an unconfigured one", size.trim()));
    }
    None
}

/// Creates and enables a swap file at `path` (which must not exist). The
/// caller has journaled it already.
pub fn create_file(path: &Path) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create the swap file {}: {e}", path.display()))?;
    rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, SWAP_BYTES)
        .map_err(|e| format!("cannot allocate {} MiB for {}: {e}", SWAP_BYTES >> 20, path.display()))?;
    f.write_all(&header(SWAP_BYTES)).and_then(|_| f.sync_all()).map_err(|e| format!("cannot write the swap header: {e}"))?;
    drop(f);
    swapon(path)
}

/// Configures the zram device as swap and enables it. The caller has
/// journaled it already.
pub fn create_zram() -> Result<(), String> {
    let dir = Path::new("/sys/block").join(ZRAM);
    std::fs::write(dir.join("disksize"), SWAP_BYTES.to_string()).map_err(|e| format!("cannot size /dev/{ZRAM}: {e}"))?;
    let dev = Path::new("/dev").join(ZRAM);
    let mut f = std::fs::OpenOptions::new().write(true).open(&dev).map_err(|e| format!("cannot open {}: {e}", dev.display()))?;
    f.write_all(&header(SWAP_BYTES)).and_then(|_| f.sync_all()).map_err(|e| format!("cannot write the swap header: {e}"))?;
    drop(f);
    swapon(&dev)
}

/// Where a run's swap file goes: a local disk filesystem (swapon refuses
/// tmpfs), one name per controller.
pub fn file_path(dir: &Path, owner: i32) -> PathBuf {
    dir.join(format!("cowlab-swap.{owner}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_mkswaps() {
        let h = header(SWAP_BYTES);
        assert_eq!(h.len(), PAGE);
        assert_eq!(&h[PAGE - 10..], b"SWAPSPACE2");
        assert_eq!(u32::from_ne_bytes(h[1024..1028].try_into().unwrap()), 1, "version 1");
        assert_eq!(u32::from_ne_bytes(h[1028..1032].try_into().unwrap()), (SWAP_BYTES / 4096 - 1) as u32, "last page");
        assert!(h[..1024].iter().all(|b| *b == 0), "no boot bits");
    }
}
