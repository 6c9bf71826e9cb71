//! libkmem_malloc.so loaded with `dlopen` after the process started, while another thread
//! runs. The library's per-thread block (kmem-hosted's CPU state and the fork slot) uses the
//! initial-exec TLS model on x86-64 Linux, which takes static TLS (`DF_STATIC_TLS`): the
//! dynamic linker must find room in glibc's static TLS surplus and initialise the block in
//! every thread already running, or refuse the `dlopen` with an error (never crash). Its
//! `malloc`/`free`, reached through `dlsym` (the library is `RTLD_LOCAL`, so it replaces
//! nobody's allocator), must work in both threads, and a thread that used it must exit
//! cleanly (its CPU is taken offline by a pthread key destructor that reads the block).

use std::ffi::{c_void, CStr, CString};
use std::sync::{Arc, Barrier};

mod common;
use common::lib;

type MallocFn = unsafe extern "C" fn(usize) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void);

/// Allocates, fills, checks and frees blocks of several sizes through the library.
fn churn(m: MallocFn, f: FreeFn, salt: u8) {
    let mut live = Vec::new();
    for i in 0..2000usize {
        let size = 8 + (i * 37) % 2000;
        // SAFETY: the library's `malloc`, as C's.
        let p = unsafe { m(size) }.cast::<u8>();
        assert!(!p.is_null(), "malloc({size}) failed");
        // SAFETY: `p` is a fresh block of `size` bytes.
        unsafe { p.write_bytes(salt, size) };
        live.push((p, size));
        if i % 3 == 0 {
            let (q, n) = live.swap_remove(live.len() / 2);
            // SAFETY: `q` is a live block of `n` bytes from the library.
            unsafe {
                assert!(std::slice::from_raw_parts(q, n).iter().all(|&b| b == salt));
                f(q.cast());
            }
        }
    }
    for (q, n) in live {
        // SAFETY: every block left in `live` is a live block of `n` bytes from the library's
        // `malloc`, written with `salt`, freed once here.
        unsafe {
            assert!(std::slice::from_raw_parts(q, n).iter().all(|&b| b == salt));
            f(q.cast());
        }
    }
}

/// `dlsym` of a C function of the library.
fn sym(h: *mut c_void, name: &CStr) -> *mut c_void {
    // SAFETY: `h` is a live handle; `name` is NUL-terminated.
    let p = unsafe { libc::dlsym(h, name.as_ptr()) };
    assert!(!p.is_null(), "{name:?} missing");
    p
}

#[test]
fn dlopen_after_start_with_a_thread_running() {
    let path = CString::new(lib().into_os_string().into_encoded_bytes()).unwrap();
    let started = Arc::new(Barrier::new(2));
    let (tx, rx) = std::sync::mpsc::channel::<(MallocFn, FreeFn)>();
    // A thread that exists before the library is loaded: its static TLS block must be
    // initialised by `dlopen` itself.
    let s = started.clone();
    let early = std::thread::spawn(move || {
        s.wait();
        let (m, f) = rx.recv().unwrap();
        churn(m, f, 0x11);
    });
    started.wait();
    // SAFETY: a valid NUL-terminated path; the handle is never closed (the library's threads
    // and handlers stay for the life of the process).
    let h = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if h.is_null() {
        // SAFETY: dlerror returns a NUL-terminated message after a failed dlopen.
        let err = unsafe { CStr::from_ptr(libc::dlerror()) };
        panic!("dlopen failed: {}", err.to_string_lossy());
    }
    // SAFETY: the library's `malloc` and `free` have these C signatures.
    let (m, f) = unsafe {
        (
            std::mem::transmute::<*mut c_void, MallocFn>(sym(h, c"malloc")),
            std::mem::transmute::<*mut c_void, FreeFn>(sym(h, c"free")),
        )
    };
    tx.send((m, f)).unwrap();
    churn(m, f, 0x5a);
    early.join().unwrap();
    // Threads started after the load, each exiting (CPU offline) while the others work.
    let threads: Vec<_> = (0..4u8)
        .map(|i| std::thread::spawn(move || churn(m, f, i)))
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    churn(m, f, 0xa5);
}
