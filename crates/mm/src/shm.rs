//! System V shared memory (ipc/shm.c): shmget, shmat, shmdt, shmctl(IPC_RMID).
//!
//! A segment is a kernel-internal file (S_PRIVATE) on shmem, or with
//! SHM_HUGETLB on hugetlbfs; attaching maps that file MAP_SHARED, so every
//! rule of shared file mappings (and of hugetlb) applies to it unchanged.
//! The attach count `shm_nattch` is the number of VMAs mapping the
//! segment's file: the kernel counts one per VMA too (`shm_open()` runs for
//! every new VMA, by attach, split or fork; `shm_close()` for every VMA
//! that goes). Left out: keys (every segment is IPC_PRIVATE; the live
//! backend creates them so as well), permissions and owners, IPC_STAT /
//! IPC_SET / SHM_LOCK, SHM_RDONLY / SHM_EXEC / SHM_REMAP / SHM_RND, the
//! shmmax/shmall/shmmni limits (this machine's defaults are out of reach),
//! `shm_rmid_forced`, IPC namespaces.

use crate::folio::InodeId;
use crate::kernel::Kernel;
use crate::mmap::MmapRequest;
use crate::shmem::InodeKind;
use crate::types::*;

/// Identifier of a segment (the shmid shmget returns).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShmId(pub u32);

/// One segment (`struct shmid_kernel`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShmSeg {
    /// The segment's file (`shm_file`); the segment holds one open
    /// reference on it until it is destroyed.
    pub inode: InodeId,
    /// SHM_DEST: IPC_RMID came while attached; destroyed at the last detach.
    pub dest: bool,
}

impl Kernel {
    /// shmget(IPC_PRIVATE, size, IPC_CREAT [| SHM_HUGETLB]) (ipc/shm.c:
    /// `newseg()`): a size of 0 is EINVAL; with SHM_HUGETLB the file is a
    /// hugetlbfs file of the size rounded up to whole huge pages
    /// (`hugetlb_file_setup()`), whose pages are all reserved now
    /// (`hugetlb_reserve_pages()` with no VMA: ENOMEM if the pool cannot
    /// promise them, unless `noreserve` — SHM_NORESERVE); otherwise a shmem
    /// file of exactly `size` (`shmem_kernel_file_setup()`).
    pub fn shmget(&mut self, pid: Pid, size: u64, hugetlb: Option<HugeSize>, noreserve: bool) -> SysResult<ShmId> {
        self.task(pid)?;
        if size == 0 || size.checked_next_multiple_of(PAGE_SIZE).is_none() {
            return Err(Errno::EINVAL.into());
        }
        let ino = match hugetlb {
            Some(h) => {
                if self.hstates.get(h).is_none() {
                    return Err(Errno::EINVAL.into());
                }
                let hugesize = size.checked_next_multiple_of(h.bytes()).ok_or(Errno::EINVAL)?;
                let ino = self.create_inode(InodeKind::Hugetlbfs, Some(h), hugesize);
                if !noreserve {
                    if let Err(e) = crate::hugetlb::hugetlb_reserve_inode_pages(self, pid, ino, h, 0, hugesize / h.bytes()) {
                        self.inodes.remove(&ino);
                        return Err(e);
                    }
                }
                ino
            }
            None => self.create_inode(InodeKind::Shmem, None, size),
        };
        let inode = self.inodes.get_mut(&ino).expect("just created");
        inode.s_private = true;
        inode.opens = 1;
        let id = ShmId(self.fresh_id());
        self.shm_segs.insert(id, ShmSeg { inode: ino, dest: false });
        Ok(id)
    }

    /// `shm_nattch`: the VMAs mapping the segment's file, in every mm.
    pub fn shm_nattch(&self, id: ShmId) -> u64 {
        let Some(seg) = self.shm_segs.get(&id) else { return 0 };
        self.mms.values().flat_map(|m| m.vmas.values()).filter(|v| v.inode() == Some(seg.inode)).count() as u64
    }

    /// A segment that still exists: not destroyed (SHM_DEST with nothing
    /// attached is destroyed).
    fn shm_live(&self, id: ShmId) -> SysResult<&ShmSeg> {
        match self.shm_segs.get(&id) {
            Some(s) if !s.dest || self.shm_nattch(id) > 0 => Ok(s),
            _ => Err(Errno::EINVAL.into()),
        }
    }

    /// shmat(id, NULL, 0) (ipc/shm.c: `do_shmat()`): maps the whole file
    /// (its size, which for hugetlb is the rounded-up size) MAP_SHARED,
    /// read/write, at an address the kernel picks. A segment marked for
    /// removal can still be attached while something is attached to it.
    pub fn shmat(&mut self, pid: Pid, id: ShmId) -> SysResult<u64> {
        let mm = self.mm_of(pid)?;
        let ino = self.shm_live(id)?.inode;
        let size = self.inodes[&ino].size;
        let req = MmapRequest { shared: true, ..MmapRequest::anon(size) };
        self.do_mmap(pid, mm, req, Some(ino))
    }

    /// shmdt(addr) (ipc/shm.c: `ksys_shmdt()`): the VMA of a segment that
    /// starts at `addr` with file offset 0 fixes the segment and its size;
    /// every VMA of that segment's file within `[addr, addr + size)` is
    /// unmapped. EINVAL if `addr` is not page-aligned or no such VMA
    /// starts there. The last detach of a segment marked for removal
    /// destroys it (`shm_close()` → `shm_destroy()`): its file goes, and
    /// with it the pages and reservations.
    pub fn shmdt(&mut self, pid: Pid, addr: u64) -> SysResult<()> {
        let mm = self.mm_of(pid)?;
        if !is_aligned(addr, PAGE_SIZE) {
            return Err(Errno::EINVAL.into());
        }
        let seg = |k: &Kernel, ino: InodeId| k.shm_segs.values().any(|s| s.inode == ino);
        let Some(ino) = self.mm(mm).vmas.get(&addr).and_then(|v| v.inode().filter(|&i| v.pgoff == 0 && seg(self, i))) else {
            return Err(Errno::EINVAL.into());
        };
        let size = self.inodes[&ino].size.next_multiple_of(PAGE_SIZE);
        let vmas: Vec<(u64, u64)> = self
            .mm(mm)
            .vmas
            .range(addr..)
            .take_while(|(_, v)| v.end - addr <= size)
            .filter(|(_, v)| v.inode() == Some(ino) && (v.start - addr) / PAGE_SIZE == v.pgoff)
            .map(|(_, v)| (v.start, v.len()))
            .collect();
        for (s, l) in vmas {
            self.do_munmap(pid, mm, s, l)?;
        }
        Ok(())
    }

    /// shmctl(id, IPC_RMID) (ipc/shm.c: `do_shm_rmid()`): with nothing
    /// attached the segment is destroyed at once, otherwise marked
    /// SHM_DEST and destroyed at the last detach. Either way the segment
    /// gives up its reference on the file now; the model's attach count
    /// is the file's VMAs, so the file (pages, reservations) goes exactly
    /// when the last of them does.
    pub fn shmctl_rmid(&mut self, pid: Pid, id: ShmId) -> SysResult<()> {
        self.task(pid)?;
        let ino = self.shm_live(id)?.inode;
        // A second IPC_RMID finds the segment by id and marks it again.
        if self.shm_segs[&id].dest {
            return Ok(());
        }
        self.shm_segs.get_mut(&id).expect("live").dest = true;
        self.file_put(crate::kernel::File::Inode(ino));
        Ok(())
    }
}
