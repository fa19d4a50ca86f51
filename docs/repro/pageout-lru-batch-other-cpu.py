#!/usr/bin/env python3
# docs/divergences.md §32: MADV_PAGEOUT drains only the calling CPU's batch
# of folios waiting to go on the LRU (mm/madvise.c madvise_pageout() ->
# lru_add_drain()). A private anon page faulted in on CPU 0 and paged out
# from CPU 1 right after is still in CPU 0's batch, folio_isolate_lru()
# fails, and the page stays. Needs swap on (a swap file; swapon needs root)
# and two CPUs. On this machine (6.18): same CPU {'swapped': 40}, other CPU
# {'present': 39, 'swapped': 1}.
import ctypes, mmap, os, struct
libc = ctypes.CDLL(None, use_errno=True)
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
MADV_PAGEOUT = 21
def state(addr):
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(addr // 4096 * 8)
        v = struct.unpack("<Q", f.read(8))[0]
    return "swapped" if v >> 62 & 1 else ("present" if v >> 63 & 1 else "none")
for other in (0, 1):
    seen = {}
    for _ in range(40):
        m = mmap.mmap(-1, 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
        os.sched_setaffinity(0, {0})
        m[0:4096] = b"\x5a" * 4096
        os.sched_setaffinity(0, {other})
        libc.madvise(addr, 4096, MADV_PAGEOUT)
        s = state(addr)
        seen[s] = seen.get(s, 0) + 1
    print(f"fault on CPU 0, pageout on CPU {other}: {seen}")
