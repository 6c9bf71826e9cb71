//! kmem on Linux userspace.
