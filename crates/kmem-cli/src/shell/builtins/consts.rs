//! Named constants of the process API with Linux's values, for the shell's expressions:
//! `PROT_READ|PROT_WRITE`, `MAP_PRIVATE|MAP_ANONYMOUS`, `MADV_DONTNEED`, `IPC_CREAT|0600`,
//! `SIGKILL`, and the error names (`ENOMEM`, positive as in C: a failed call returns
//! `-ENOMEM`).

use crate::shell::value::ERRNO_NAMES;

/// (name, value), from include/uapi/asm-generic/mman-common.h, include/uapi/linux/mman.h,
/// include/uapi/linux/memfd.h, include/uapi/linux/mempolicy.h, include/uapi/linux/ipc.h,
/// include/uapi/linux/shm.h and arch/x86/include/uapi/asm/signal.h.
pub const CONSTANTS: &[(&str, u64)] = &[
    // mman-common.h: protections.
    ("PROT_NONE", 0x0),
    ("PROT_READ", 0x1),
    ("PROT_WRITE", 0x2),
    ("PROT_EXEC", 0x4),
    ("PROT_GROWSDOWN", 0x0100_0000),
    ("PROT_GROWSUP", 0x0200_0000),
    // linux/mman.h and mman-common.h: mapping flags.
    ("MAP_SHARED", 0x01),
    ("MAP_PRIVATE", 0x02),
    ("MAP_SHARED_VALIDATE", 0x03),
    ("MAP_FIXED", 0x10),
    ("MAP_ANONYMOUS", 0x20),
    ("MAP_ANON", 0x20),
    ("MAP_GROWSDOWN", 0x0100),
    ("MAP_DENYWRITE", 0x0800),
    ("MAP_EXECUTABLE", 0x1000),
    ("MAP_LOCKED", 0x2000),
    ("MAP_NORESERVE", 0x4000),
    ("MAP_POPULATE", 0x8000),
    ("MAP_NONBLOCK", 0x10000),
    ("MAP_STACK", 0x20000),
    ("MAP_HUGETLB", 0x40000),
    ("MAP_SYNC", 0x80000),
    ("MAP_FIXED_NOREPLACE", 0x100000),
    ("MAP_UNINITIALIZED", 0x4000000),
    // linux/mman.h: mremap flags.
    ("MREMAP_MAYMOVE", 1),
    ("MREMAP_FIXED", 2),
    ("MREMAP_DONTUNMAP", 4),
    // mman-common.h: madvise advice.
    ("MADV_NORMAL", 0),
    ("MADV_RANDOM", 1),
    ("MADV_SEQUENTIAL", 2),
    ("MADV_WILLNEED", 3),
    ("MADV_DONTNEED", 4),
    ("MADV_FREE", 8),
    ("MADV_REMOVE", 9),
    ("MADV_DONTFORK", 10),
    ("MADV_DOFORK", 11),
    ("MADV_MERGEABLE", 12),
    ("MADV_UNMERGEABLE", 13),
    ("MADV_HUGEPAGE", 14),
    ("MADV_NOHUGEPAGE", 15),
    ("MADV_DONTDUMP", 16),
    ("MADV_DODUMP", 17),
    ("MADV_WIPEONFORK", 18),
    ("MADV_KEEPONFORK", 19),
    ("MADV_COLD", 20),
    ("MADV_PAGEOUT", 21),
    ("MADV_POPULATE_READ", 22),
    ("MADV_POPULATE_WRITE", 23),
    // include/linux/mm_types.h (enum foll_flags): pin_user_pages flags.
    ("FOLL_WRITE", 0x01),
    ("FOLL_LONGTERM", 0x100),
    // linux/mempolicy.h: policy modes, mode flags, get_mempolicy and mbind flags.
    ("MPOL_DEFAULT", 0),
    ("MPOL_PREFERRED", 1),
    ("MPOL_BIND", 2),
    ("MPOL_INTERLEAVE", 3),
    ("MPOL_LOCAL", 4),
    ("MPOL_PREFERRED_MANY", 5),
    ("MPOL_WEIGHTED_INTERLEAVE", 6),
    ("MPOL_F_STATIC_NODES", 1 << 15),
    ("MPOL_F_RELATIVE_NODES", 1 << 14),
    ("MPOL_F_NUMA_BALANCING", 1 << 13),
    ("MPOL_F_NODE", 1),
    ("MPOL_F_ADDR", 2),
    ("MPOL_F_MEMS_ALLOWED", 4),
    ("MPOL_MF_STRICT", 1),
    ("MPOL_MF_MOVE", 2),
    ("MPOL_MF_MOVE_ALL", 4),
    // linux/memfd.h.
    ("MFD_CLOEXEC", 0x1),
    ("MFD_ALLOW_SEALING", 0x2),
    ("MFD_HUGETLB", 0x4),
    // linux/ipc.h (octal there).
    ("IPC_PRIVATE", 0),
    ("IPC_CREAT", 0o1000),
    ("IPC_EXCL", 0o2000),
    ("IPC_NOWAIT", 0o4000),
    ("IPC_RMID", 0),
    ("IPC_SET", 1),
    ("IPC_STAT", 2),
    ("IPC_INFO", 3),
    // linux/shm.h: shmat flags.
    ("SHM_RDONLY", 0o10000),
    ("SHM_RND", 0o20000),
    ("SHM_REMAP", 0o40000),
    ("SHM_EXEC", 0o100000),
    // x86 asm/signal.h.
    ("SIGHUP", 1),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGILL", 4),
    ("SIGTRAP", 5),
    ("SIGABRT", 6),
    ("SIGBUS", 7),
    ("SIGFPE", 8),
    ("SIGKILL", 9),
    ("SIGUSR1", 10),
    ("SIGSEGV", 11),
    ("SIGUSR2", 12),
    ("SIGPIPE", 13),
    ("SIGALRM", 14),
    ("SIGTERM", 15),
    ("SIGCHLD", 17),
    ("SIGCONT", 18),
    ("SIGSTOP", 19),
];

/// The value of constant `name` (an error name gives its positive number).
pub fn lookup(name: &str) -> Option<u64> {
    if let Some((_, v)) = CONSTANTS.iter().find(|(n, _)| *n == name) {
        return Some(*v);
    }
    ERRNO_NAMES
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(e, _)| *e as u64)
}

/// Every constant's name (for completion).
pub fn names() -> impl Iterator<Item = &'static str> {
    CONSTANTS
        .iter()
        .map(|(n, _)| *n)
        .chain(ERRNO_NAMES.iter().map(|(_, n)| *n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_values_linuxs() {
        let mut seen = std::collections::BTreeSet::new();
        for n in names() {
            assert!(seen.insert(n), "{n} twice");
        }
        // Spot checks against the uapi headers.
        assert_eq!(lookup("MAP_ANONYMOUS"), Some(0x20));
        assert_eq!(lookup("IPC_CREAT"), Some(512));
        assert_eq!(lookup("SHM_RDONLY"), Some(4096));
        assert_eq!(lookup("MADV_PAGEOUT"), Some(21));
        assert_eq!(lookup("SIGKILL"), Some(9));
        assert_eq!(lookup("MPOL_WEIGHTED_INTERLEAVE"), Some(6));
        assert_eq!(lookup("MPOL_F_STATIC_NODES"), Some(0x8000));
        assert_eq!(lookup("ENOMEM"), Some(12));
        assert_eq!(lookup("PROT_BOGUS"), None);
    }
}
