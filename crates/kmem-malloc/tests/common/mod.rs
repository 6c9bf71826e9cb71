//! Helpers shared by kmem-malloc's integration tests.

use std::path::PathBuf;

/// The library cargo built for these tests (next to the test binary, in `deps/`).
pub fn lib() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    for dir in [deps, deps.parent().unwrap()] {
        let p = dir.join("libkmem_malloc.so");
        if p.exists() {
            return p;
        }
    }
    panic!("libkmem_malloc.so not found beside {}", exe.display());
}
