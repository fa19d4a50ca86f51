#!/usr/bin/env python3
# docs/divergences.md §31: on 6.18, mremap() that moves (MREMAP_FIXED) and
# shrinks an accounted private mapping leaves the shrunk amount in
# Committed_AS for good. Each "shrink" round below leaks 256 MiB of
# Committed_AS (the counter is never corrected; with vm.overcommit_memory=0
# or 1 it is only reported, with 2 it counts against the commit limit).
import ctypes, mmap, os
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mremap.restype = ctypes.c_void_p
libc.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
def committed():
    for l in open('/proc/meminfo'):
        if l.startswith('Committed_AS'): return int(l.split()[1])
M=1<<20
PROT=3; PRIV_ANON=0x22
for shrink in [False, True]:
    res=[]
    for i in range(5):
        c0=committed()
        a=libc.mmap(None, 512*M, PROT, PRIV_ANON, -1, 0)
        t=libc.mmap(None, 512*M, PROT, PRIV_ANON, -1, 0)
        libc.munmap(t, 512*M)
        newlen = 256*M if shrink else 512*M
        r=libc.mremap(a, 512*M, newlen, 3, t)  # MAYMOVE|FIXED
        assert r==t, (r, ctypes.get_errno())
        libc.munmap(t, newlen)
        res.append(committed()-c0)
    print("shrink" if shrink else "move", "Committed_AS delta kB after unmap:", res)
