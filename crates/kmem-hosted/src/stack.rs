//! Stack traces and symbols on the host: [`kmem::platform::Platform::stack_trace`] and
//! [`kmem::platform::Platform::symbolize`].
//!
//! Both run where kmem runs — inside `#[global_allocator]` and an `LD_PRELOAD` `malloc`, under
//! kmem's locks, in the `SIGSEGV` handler — so neither allocates through the global
//! allocator or takes a lock `malloc` takes, and neither can fault.
//!
//! ## Walkers ([`StackWalk`])
//! - **Unwind** (the default): `_Unwind_Backtrace` of the toolchain's unwinder (libgcc_s,
//!   which every Rust program links), driven by the `.eh_frame` tables, so it works through
//!   code built without frame pointers (Rust's default, and most distributions' C). With
//!   glibc ≥ 2.35 and libgcc ≥ 12 the FDE lookup is `_dl_find_object`: no lock, no `malloc`
//!   (older pairs take the loader's recursive lock in `dl_iterate_phdr`).
//! - **FramePointers**: follows the `rbp` chain (`[rbp]` = caller's `rbp`, `[rbp+8]` = return
//!   address), as Linux's frame-pointer unwinder. Every frame must lie inside the current
//!   thread's stack (`[sp, top)`, `top` being glibc's `__libc_stack_end` for the main thread
//!   and the thread descriptor, which sits right above a thread's stack, for the others), be
//!   8-aligned and above the previous one, so a corrupt or absent chain ends the walk and never
//!   faults or loops. Code built without frame pointers (kmem's own Rust code, unless built
//!   with `-C force-frame-pointers=yes`, and most packaged C programs) breaks the chain: the
//!   stack comes out short.
//! - **Off**: no stacks (reports name the Rust call site, as before).
//!
//! ## Symbols
//! `dladdr1` gives the object containing an address and the nearest dynamic symbol; when that
//! symbol does not cover the address (executables export few symbols, Rust ones none), the
//! object's ELF `.symtab` is searched in a read-only mapping of its file (mmap, no `malloc`).
//! Names are printed as `%pS` prints them: `name+0xoff/0xsize`, followed by ` [object]` for a
//! shared library (as Linux names a module); Rust names (legacy mangling) are demangled
//! without their hash.

use core::cell::Cell;
use core::ffi::{c_int, c_void, CStr};
use core::fmt::{self, Write};

/// How [`crate::HostedPlatform`] walks stacks; see the module documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum StackWalk {
    /// The toolchain's `.eh_frame` unwinder.
    #[default]
    Unwind = 0,
    /// The frame-pointer chain, bounded by the thread's stack.
    FramePointers = 1,
    /// No stack traces.
    Off = 2,
}

impl StackWalk {
    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            1 => StackWalk::FramePointers,
            2 => StackWalk::Off,
            _ => StackWalk::Unwind,
        }
    }
}

/// Fills `out` with return addresses of the current stack, innermost first, starting with
/// the return address into the caller of the function whose frame holds `frame`.
#[inline(never)]
pub(crate) fn stack_trace(walk: StackWalk, out: &mut [usize], frame: usize) -> usize {
    match walk {
        StackWalk::Unwind => walk_unwind(out, frame),
        StackWalk::FramePointers => walk_frame_pointers(out, frame),
        StackWalk::Off => 0,
    }
}

// ------------------------------------------------------------------ the unwinder

#[repr(C)]
struct UnwindContext {
    _opaque: [u8; 0],
}

/// `_URC_NO_REASON`: go on.
const URC_NO_REASON: c_int = 0;
/// `_URC_NORMAL_STOP`: any non-zero value stops the walk.
const URC_NORMAL_STOP: c_int = 4;

extern "C" {
    fn _Unwind_Backtrace(
        trace: extern "C" fn(*mut UnwindContext, *mut c_void) -> c_int,
        arg: *mut c_void,
    ) -> c_int;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
    fn _Unwind_GetCFA(ctx: *mut UnwindContext) -> usize;
}

struct UnwindState<'a> {
    out: &'a mut [usize],
    n: usize,
    /// Frames are kept once the previous frame's CFA (this frame's stack pointer) is above
    /// this address.
    frame: usize,
    /// The CFA of the previous frame.
    prev_cfa: usize,
}

extern "C" fn unwind_one(ctx: *mut UnwindContext, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `UnwindState` that `walk_unwind` passed, alive and not otherwise
    // used during `_Unwind_Backtrace`, which calls this on the same thread.
    let st = unsafe { &mut *arg.cast::<UnwindState<'_>>() };
    // SAFETY: `ctx` is the context the unwinder passes to its trace callback.
    let ip = unsafe { _Unwind_GetIP(ctx) };
    if ip == 0 {
        return URC_NORMAL_STOP;
    }
    // SAFETY: as for _Unwind_GetIP.
    let cfa = unsafe { _Unwind_GetCFA(ctx) };
    // Once past the asking function, every frame is kept: the walk may go on on another stack
    // (from a signal handler's alternate stack to the interrupted code's), at any address.
    let keep = st.n > 0 || st.prev_cfa > st.frame;
    st.prev_cfa = cfa;
    if !keep {
        return URC_NO_REASON;
    }
    st.out[st.n] = ip;
    st.n += 1;
    if st.n == st.out.len() {
        URC_NORMAL_STOP
    } else {
        URC_NO_REASON
    }
}

#[inline(never)]
fn walk_unwind(out: &mut [usize], frame: usize) -> usize {
    if out.is_empty() {
        return 0;
    }
    let mut st = UnwindState {
        out,
        n: 0,
        frame,
        prev_cfa: 0,
    };
    // SAFETY: `unwind_one` matches the callback type and only uses `arg` as the state above,
    // which outlives the call.
    unsafe { _Unwind_Backtrace(unwind_one, (&mut st as *mut UnwindState<'_>).cast()) };
    st.n
}

// ------------------------------------------------------------------ frame pointers

thread_local! {
    /// The top (exclusive) of this thread's stack, 0 until first needed.
    static STACK_TOP: Cell<usize> = const { Cell::new(0) };
}

extern "C" {
    /// glibc: the stack address at program start (just below argv), above every frame of the
    /// main thread.
    static __libc_stack_end: *mut c_void;
}

/// The current thread's stack top.
fn stack_top() -> usize {
    let compute = || {
        // SAFETY: getpid/gettid have no preconditions.
        let main = unsafe { libc::getpid() == libc::gettid() };
        if main {
            // SAFETY: glibc sets it before any user code runs and never changes it.
            unsafe { __libc_stack_end as usize }
        } else {
            // glibc places the thread descriptor (and the static TLS below it) at the top of
            // the thread's stack mapping, including for stacks the caller supplies.
            // SAFETY: pthread_self has no preconditions.
            unsafe { libc::pthread_self() as usize }
        }
    };
    STACK_TOP
        .try_with(|t| {
            if t.get() == 0 {
                t.set(compute());
            }
            t.get()
        })
        .unwrap_or_else(|_| compute())
}

/// Largest distance from the stack pointer to the top that is believed to be one stack.
const MAX_STACK: usize = 1 << 30;

#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn walk_frame_pointers(out: &mut [usize], frame: usize) -> usize {
    let (mut fp, sp): (usize, usize);
    // SAFETY: reads two registers into locals; no memory access, no side effects.
    unsafe {
        core::arch::asm!("mov {}, rbp", "mov {}, rsp", out(reg) fp, out(reg) sp,
            options(nomem, nostack, preserves_flags));
    }
    // Only on the thread's own stack, where `[sp, top)` is one mapping: not on a stack of
    // `with_own_stack` nor on the alternate signal stack (a `SIGSEGV` report), which may lie
    // anywhere below the thread's stack, with unmapped gaps in between.
    let top = stack_top();
    if top <= sp || top - sp > MAX_STACK || own_stack().1 != 0 || on_alt_stack() {
        return 0;
    }
    let mut n = 0;
    while n < out.len() {
        if fp < sp || !fp.is_multiple_of(8) || fp > top - 16 {
            break;
        }
        // SAFETY: `[fp, fp + 16)` lies inside `[sp, top)`, the live part of this thread's
        // stack (mapped and readable), and is 8-aligned.
        let (next, ret) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
        if ret < 4096 {
            break;
        }
        // The record at `fp` holds the return address into the caller of the function whose
        // frame it tops: kept from the asking function's own record on.
        if fp > frame {
            out[n] = ret;
            n += 1;
        }
        // Frames move strictly towards the top: no loop.
        if next <= fp {
            break;
        }
        fp = next;
    }
    n
}

#[cfg(not(target_arch = "x86_64"))]
fn walk_frame_pointers(_out: &mut [usize], _frame: usize) -> usize {
    0
}

// ------------------------------------------------------------------ symbols

/// `RTLD_DL_SYMENT` of glibc's <dlfcn.h>: `dladdr1` also returns the symbol's `ElfW(Sym)`.
const RTLD_DL_SYMENT: c_int = 1;

/// Writes `%pS` of `addr`; `false` when nothing is known of it.
///
/// On an alternate signal stack (a report from the `SIGSEGV` handler: Rust gives each thread
/// an 8 KiB one) the lookup runs on a stack of its own, mapped for the call.
pub(crate) fn symbolize(addr: usize, out: &mut dyn Write) -> bool {
    if addr < 4096 {
        return false;
    }
    if on_alt_stack() {
        let mut r = false;
        let mut f = || r = symbolize_here(addr, out);
        with_own_stack(&mut f);
        return r;
    }
    symbolize_here(addr, out)
}

/// Whether the thread runs on its alternate signal stack now.
fn on_alt_stack() -> bool {
    // SAFETY: a zeroed stack_t is valid; sigaltstack with a null new stack only reads the
    // current one into `ss`.
    unsafe {
        let mut ss: libc::stack_t = core::mem::zeroed();
        libc::sigaltstack(core::ptr::null(), &mut ss) == 0 && ss.ss_flags & libc::SS_ONSTACK != 0
    }
}

/// Stack for [`with_own_stack`].
const OWN_STACK: usize = 256 << 10;

thread_local! {
    /// `[bottom, top)` of the stack [`with_own_stack`] runs on now (0, 0 outside).
    static OWN: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

fn own_stack() -> (usize, usize) {
    OWN.try_with(Cell::get).unwrap_or((0, 0))
}

/// Runs `f` on a stack of its own when the thread is on its alternate signal stack (see
/// [`kmem::platform::Platform::run_on_report_stack`]), where it is otherwise.
pub(crate) fn run_on_report_stack(f: &mut dyn FnMut()) {
    // The system call only when no stack of our own is in use already.
    run_on_own_stack_if(own_stack().1 == 0 && on_alt_stack(), f);
}

/// Runs `f` on a stack of its own when `switch` is set and no stack of its own is in use
/// already (the fault handler's hooks on an alternate signal stack), where it is otherwise.
pub(crate) fn run_on_own_stack_if(switch: bool, f: &mut dyn FnMut()) {
    if switch && own_stack().1 == 0 {
        with_own_stack(f);
    } else {
        f();
    }
}

/// Runs `f` on a freshly mapped 256 KiB stack (or on this one if the mapping fails). `f`
/// must not unwind (nothing here panics: the callers only format into a writer).
fn with_own_stack(f: &mut dyn FnMut()) {
    with_stack_of(OWN_STACK, f);
}

/// Runs `f` on a stack of `size` bytes mapped for the call and unmapped after it (on this
/// stack if the mapping fails): the memory `f`'s frames touch is given back when it returns,
/// instead of staying in the thread's stack for the life of the process (the main thread's
/// stack never shrinks). For work done once with deep frames: `Machine::boot` builds the
/// machine's layers by value, about 150 KiB of frames, which `libkmem_malloc.so`'s first
/// `malloc` would otherwise leave resident in every program's stack. `f` must not unwind.
pub fn run_on_temporary_stack(size: usize, f: &mut dyn FnMut()) {
    with_stack_of(size, f);
}

// The stack switch: `kmem_hosted_call_on_stack(arg, top, f)` calls `f(arg)` with `rsp` at
// `top`. It keeps a frame-pointer frame on the caller's stack and describes it in its unwind
// information (the CFA is `rbp + 16`, wherever `rsp` points), so unwinders walk from `f`'s
// frames on the new stack back into the caller's as through any call: a stack trace taken on
// it (a kmemcheck report on a signal stack) still reaches the interrupted code.
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".pushsection .text.kmem_hosted_call_on_stack,\"ax\",@progbits",
    ".p2align 4",
    ".type kmem_hosted_call_on_stack,@function",
    "kmem_hosted_call_on_stack:",
    ".cfi_startproc",
    "push rbp",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset rbp, -16",
    "mov rbp, rsp",
    ".cfi_def_cfa_register rbp",
    "mov rsp, rsi",
    "call rdx",
    "mov rsp, rbp",
    ".cfi_def_cfa_register rsp",
    "pop rbp",
    ".cfi_def_cfa_offset 8",
    "ret",
    ".cfi_endproc",
    ".size kmem_hosted_call_on_stack, . - kmem_hosted_call_on_stack",
    ".popsection",
);

#[cfg(target_arch = "x86_64")]
extern "C" {
    /// Calls `f(arg)` on the stack whose top is `top` (16-aligned) and returns on this one.
    fn kmem_hosted_call_on_stack(arg: *mut c_void, top: usize, f: extern "C" fn(*mut c_void));
}

#[cfg(target_arch = "x86_64")]
fn with_stack_of(size: usize, f: &mut dyn FnMut()) {
    extern "C" fn tramp(arg: *mut c_void) {
        // SAFETY: `arg` is the `&mut &mut dyn FnMut()` passed below, alive for the call.
        let f = unsafe { &mut *arg.cast::<&mut dyn FnMut()>() };
        f();
    }
    // SAFETY: a private anonymous mapping at an address of the kernel's choosing.
    let mem = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if mem == libc::MAP_FAILED {
        f();
        return;
    }
    let top = (mem as usize + size) & !15;
    let prev = own_stack();
    let _ = OWN.try_with(|o| o.set((mem as usize, top)));
    let mut fr: &mut dyn FnMut() = f;
    let arg = (&mut fr as *mut &mut dyn FnMut()).cast::<c_void>();
    // SAFETY: `top` is the 16-aligned top of the mapping made above, which nothing else uses,
    // so `tramp` sees the ABI's alignment after the switch's `call`; the switch is an ordinary
    // C function (callee-saved registers kept, `rsp` restored from its frame pointer) and
    // `tramp` does not unwind. `arg` lives until the call returns.
    unsafe { kmem_hosted_call_on_stack(arg, top, tramp) };
    let _ = OWN.try_with(|o| o.set(prev));
    // SAFETY: unmaps exactly the mapping made above, no longer in use.
    unsafe { libc::munmap(mem, size) };
}

#[cfg(not(target_arch = "x86_64"))]
fn with_stack_of(_size: usize, f: &mut dyn FnMut()) {
    f();
}

fn symbolize_here(addr: usize, out: &mut dyn Write) -> bool {
    // A return address may sit just past its function (a call as the last instruction):
    // look up the byte before it, as Linux's %pB does for stack entries.
    let look = addr - 1;
    let mut info = libc::Dl_info {
        dli_fname: core::ptr::null(),
        dli_fbase: core::ptr::null_mut(),
        dli_sname: core::ptr::null(),
        dli_saddr: core::ptr::null_mut(),
    };
    let mut sym: *const libc::Elf64_Sym = core::ptr::null();
    // SAFETY: `info` and `sym` are valid for writes; dladdr1 only reads the loader's tables.
    let found = unsafe {
        libc::dladdr1(
            look as *const c_void,
            &mut info,
            (&mut sym as *mut *const libc::Elf64_Sym).cast(),
            RTLD_DL_SYMENT,
        )
    };
    if found == 0 {
        return false;
    }
    let obj = if info.dli_fname.is_null() {
        ""
    } else {
        // SAFETY: dladdr's file name is a NUL-terminated string owned by the loader, alive
        // while the object is loaded (it is: an address of it is on a stack or in a record).
        unsafe { CStr::from_ptr(info.dli_fname) }
            .to_str()
            .unwrap_or("")
    };
    let base = info.dli_fbase as usize;
    // The dynamic symbol, if it covers the address.
    if !info.dli_sname.is_null() && !sym.is_null() {
        let start = info.dli_saddr as usize;
        // SAFETY: dladdr1 with RTLD_DL_SYMENT stores a pointer to the symbol's entry in the
        // object's dynamic symbol table, alive while the object is loaded.
        let size = unsafe { (*sym).st_size } as usize;
        if look >= start && look - start < size.max(1) {
            // SAFETY: `dli_sname` is non-null (checked above) and is dladdr's NUL-terminated symbol
            // name, owned by the loader and alive while the object is loaded.
            let name = unsafe { CStr::from_ptr(info.dli_sname) };
            let obj = if is_main(base) { "" } else { obj };
            return print_sym(out, name.to_bytes(), addr - start, size, obj).is_ok();
        }
    }
    let main = is_main(base);
    let path: &CStr = if main || !obj.contains('/') {
        c"/proc/self/exe"
    } else {
        // SAFETY: `dli_fname` is dladdr's NUL-terminated file name, owned by the loader and alive
        // while the object is loaded (it is: `addr` lies in it).
        unsafe { CStr::from_ptr(info.dli_fname) }
    };
    let obj = if main { "" } else { obj };
    match elf::lookup(path, base, look) {
        Some(s) => print_sym(out, s.name, addr - s.start, s.size, obj).is_ok(),
        None => false,
    }
}

/// Whether the object loaded at `base` is the main program (named without ` [object]`).
fn is_main(base: usize) -> bool {
    // SAFETY: getauxval has no preconditions.
    let phdr = unsafe { libc::getauxval(libc::AT_PHDR) } as usize;
    let mut info = libc::Dl_info {
        dli_fname: core::ptr::null(),
        dli_fbase: core::ptr::null_mut(),
        dli_sname: core::ptr::null(),
        dli_saddr: core::ptr::null_mut(),
    };
    // SAFETY: `info` is valid for writes; dladdr only reads the loader's tables.
    phdr != 0
        && unsafe { libc::dladdr(phdr as *const c_void, &mut info) } != 0
        && info.dli_fbase as usize == base
}

fn print_sym(out: &mut dyn Write, name: &[u8], off: usize, size: usize, obj: &str) -> fmt::Result {
    demangle(name, out)?;
    write!(out, "+0x{off:x}/0x{size:x}")?;
    if !obj.is_empty() {
        let base = obj.rsplit('/').next().unwrap_or(obj);
        write!(out, " [{base}]")?;
    }
    Ok(())
}

/// Writes a symbol name, demangling Rust's legacy mangling (`_ZN…17h<hash>E`, without the
/// hash); anything else is written as it is.
pub(crate) fn demangle(name: &[u8], out: &mut dyn Write) -> fmt::Result {
    let raw = |out: &mut dyn Write| -> fmt::Result {
        for &b in name {
            out.write_char(if b.is_ascii_graphic() { b as char } else { '?' })?;
        }
        Ok(())
    };
    let Some(mut rest) = name.strip_prefix(b"_ZN") else {
        return raw(out);
    };
    // Split into length-prefixed parts first, so that a malformed name prints raw.
    let mut parts: [&[u8]; 32] = [&[]; 32];
    let mut n = 0;
    while let Some(&c) = rest.first() {
        if c == b'E' {
            break;
        }
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let len: usize = match core::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|s| s.parse().ok())
        {
            Some(l) if l > 0 && digits + l <= rest.len() && n < parts.len() => l,
            _ => return raw(out),
        };
        parts[n] = &rest[digits..digits + len];
        n += 1;
        rest = &rest[digits + len..];
    }
    if rest.first() != Some(&b'E') || n == 0 {
        return raw(out);
    }
    let is_hash =
        |p: &[u8]| p.len() == 17 && p[0] == b'h' && p[1..].iter().all(u8::is_ascii_hexdigit);
    if is_hash(parts[n - 1]) {
        n -= 1;
    }
    for (i, p) in parts[..n].iter().enumerate() {
        if i > 0 {
            out.write_str("::")?;
        }
        demangle_part(p, out)?;
    }
    Ok(())
}

fn demangle_part(mut p: &[u8], out: &mut dyn Write) -> fmt::Result {
    if p.starts_with(b"_$") {
        p = &p[1..];
    }
    const ESC: [(&[u8], &str); 14] = [
        (b"$SP$", "@"),
        (b"$BP$", "*"),
        (b"$RF$", "&"),
        (b"$LT$", "<"),
        (b"$GT$", ">"),
        (b"$LP$", "("),
        (b"$RP$", ")"),
        (b"$C$", ","),
        (b"$u20$", " "),
        (b"$u27$", "'"),
        (b"$u5b$", "["),
        (b"$u5d$", "]"),
        (b"$u7b$", "{"),
        (b"$u7d$", "}"),
    ];
    'outer: while !p.is_empty() {
        if p.starts_with(b"..") {
            out.write_str("::")?;
            p = &p[2..];
            continue;
        }
        if p[0] == b'$' {
            for (e, s) in ESC {
                if p.starts_with(e) {
                    out.write_str(s)?;
                    p = &p[e.len()..];
                    continue 'outer;
                }
            }
            if p.starts_with(b"$u7e$") {
                out.write_char('~')?;
                p = &p[5..];
                continue;
            }
        }
        out.write_char(if p[0].is_ascii_graphic() {
            p[0] as char
        } else {
            '?'
        })?;
        p = &p[1..];
    }
    Ok(())
}

/// ELF `.symtab` lookups in a read-only mapping of the object's file.
mod elf {
    use core::ffi::CStr;

    /// A function symbol found for an address.
    pub(super) struct Found {
        pub(super) name: &'static [u8],
        pub(super) start: usize,
        pub(super) size: usize,
    }

    /// Names live in a per-call mapping; they are copied here before it is unmapped.
    struct NameBuf {
        buf: [u8; 256],
    }

    thread_local! {
        static NAME: core::cell::UnsafeCell<NameBuf> =
            const { core::cell::UnsafeCell::new(NameBuf { buf: [0; 256] }) };
    }

    const ET_DYN: u16 = 3;
    const SHT_SYMTAB: u32 = 2;
    const STT_FUNC: u8 = 2;

    fn rd<T: Copy>(m: &[u8], off: usize) -> Option<T> {
        let end = off.checked_add(core::mem::size_of::<T>())?;
        if end > m.len() {
            return None;
        }
        // SAFETY: `[off, off + size_of::<T>())` is inside `m` (checked); read_unaligned
        // takes any alignment; T is a plain integer type (callers).
        Some(unsafe { core::ptr::read_unaligned(m.as_ptr().add(off).cast::<T>()) })
    }

    /// The function symbol of `path` (loaded at `base`) containing `addr`.
    pub(super) fn lookup(path: &CStr, base: usize, addr: usize) -> Option<Found> {
        // SAFETY: a plain open of a NUL-terminated path.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `st` is valid for writes; fd is ours.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: `fd` is the descriptor `open` just returned and we own; `st` is a local, writable
        // `libc::stat`, so `fstat` writes only into it.
        let ok = unsafe { libc::fstat(fd, &mut st) } == 0 && st.st_size > 64;
        let len = st.st_size as usize;
        let map = if ok {
            // SAFETY: a private read-only mapping of our own fd at an address of the kernel's
            // choosing; no existing mapping is affected.
            unsafe {
                libc::mmap(
                    core::ptr::null_mut(),
                    len,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE,
                    fd,
                    0,
                )
            }
        } else {
            libc::MAP_FAILED
        };
        // SAFETY: fd is ours; the mapping stays valid after close.
        unsafe { libc::close(fd) };
        if map == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: the mapping is `len` readable bytes until the munmap below. A file
        // truncated meanwhile could make pages beyond its new end fault (SIGBUS); objects
        // of a running program are not truncated in place.
        let m = unsafe { core::slice::from_raw_parts(map.cast::<u8>(), len) };
        let r = search(m, base, addr);
        // SAFETY: unmaps exactly the mapping made above; `m` is not used afterwards (the
        // name was copied out by `search`).
        unsafe { libc::munmap(map, len) };
        r
    }

    fn search(m: &[u8], base: usize, addr: usize) -> Option<Found> {
        if m.get(..5)? != b"\x7fELF\x02" {
            return None;
        }
        let e_type: u16 = rd(m, 16)?;
        let bias = if e_type == ET_DYN { base } else { 0 };
        let key = addr.checked_sub(bias)? as u64;
        let shoff: u64 = rd(m, 0x28)?;
        let shentsize: u16 = rd(m, 0x3a)?;
        let shnum: u16 = rd(m, 0x3c)?;
        for i in 0..shnum as usize {
            let sh = shoff as usize + i * shentsize as usize;
            if rd::<u32>(m, sh + 4)? != SHT_SYMTAB {
                continue;
            }
            let off: u64 = rd(m, sh + 0x18)?;
            let size: u64 = rd(m, sh + 0x20)?;
            let link: u32 = rd(m, sh + 0x28)?;
            let strsh = shoff as usize + link as usize * shentsize as usize;
            let stroff: u64 = rd(m, strsh + 0x18)?;
            let mut s = off as usize;
            while s + 24 <= (off + size) as usize {
                let info: u8 = rd(m, s + 4)?;
                let value: u64 = rd(m, s + 8)?;
                let ssize: u64 = rd(m, s + 16)?;
                if info & 0xf == STT_FUNC && value <= key && key < value + ssize.max(1) {
                    let name_off = stroff as usize + rd::<u32>(m, s)? as usize;
                    let tail = m.get(name_off..)?;
                    let n = tail.iter().position(|&b| b == 0)?.min(255);
                    let name = NAME
                        .try_with(|nb| {
                            // SAFETY: thread-local, used only here and by the caller on this
                            // thread until its next lookup (print_sym runs before any).
                            let nb = unsafe { &mut *nb.get() };
                            nb.buf[..n].copy_from_slice(&tail[..n]);
                            // SAFETY: the buffer lives as long as the thread; the caller
                            // uses the name before this thread looks up another symbol.
                            unsafe { core::slice::from_raw_parts(nb.buf.as_ptr(), n) }
                        })
                        .ok()?;
                    return Some(Found {
                        name,
                        start: value as usize + bias,
                        size: ssize as usize,
                    });
                }
                s += 24;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dm(s: &str) -> String {
        let mut o = String::new();
        demangle(s.as_bytes(), &mut o).unwrap();
        o
    }

    #[test]
    fn demangles_legacy_rust_names() {
        assert_eq!(
            dm("_ZN4kmem4slab7kmalloc17h0123456789abcdefE"),
            "kmem::slab::kmalloc"
        );
        assert_eq!(
            dm("_ZN47_$LT$kmem..Machine$LT$P$GT$$u20$as$u20$Drop$GT$4drop17h0123456789abcdefE"),
            "<kmem::Machine<P> as Drop>::drop"
        );
        assert_eq!(dm("malloc"), "malloc");
        assert_eq!(dm("_ZN3foo"), "_ZN3foo");
        assert_eq!(dm("_ZN99xE"), "_ZN99xE");
    }

    #[inline(never)]
    fn deep(n: usize, walk: StackWalk, out: &mut [usize]) -> usize {
        if n == 0 {
            let here = 0u64;
            stack_trace(
                walk,
                out,
                core::hint::black_box(&here as *const u64 as usize),
            )
        } else {
            let r = deep(n - 1, walk, out);
            core::hint::black_box(r)
        }
    }

    /// The symbols of a stack trace's entries, one a line.
    fn symbolized(trace: &[usize]) -> String {
        let mut names = String::new();
        for &e in trace {
            let mut s = String::new();
            if symbolize(e, &mut s) {
                names.push_str(&s);
                names.push('\n');
            }
        }
        names
    }

    #[test]
    fn unwinder_walks_and_symbolises() {
        let mut out = [0usize; 16];
        let n = deep(5, StackWalk::Unwind, &mut out);
        assert!(n >= 6, "{n}");
        let names = symbolized(&out[..n]);
        assert!(names.contains("::deep+0x"), "{names}");
        // The walker's own frames are skipped: the first is `deep`'s caller, `deep` itself.
        assert!(!names.contains("stack_trace"), "{names}");
        assert!(!names.contains("walk_unwind"), "{names}");
    }

    #[inline(never)]
    fn on_own_stack_from(out: &mut [usize]) -> usize {
        let mut n = 0;
        with_own_stack(&mut || n = deep(2, StackWalk::Unwind, out));
        core::hint::black_box(n)
    }

    /// A stack trace taken on a stack of `with_own_stack` (a kmemcheck report on a signal
    /// stack) goes on through the switch into the frames of the code that switched. Before
    /// the switch had unwind information, the walk ended at the own stack's top.
    #[test]
    fn unwinder_walks_through_the_stack_switch() {
        let mut out = [0usize; 32];
        let n = on_own_stack_from(&mut out);
        let names = symbolized(&out[..n]);
        assert!(names.contains("::deep+0x"), "{names}");
        assert!(names.contains("::on_own_stack_from+0x"), "{names}");
        assert!(
            names.contains("unwinder_walks_through_the_stack_switch"),
            "{names}"
        );
    }

    #[test]
    fn frame_pointer_walk_stays_in_the_stack() {
        // Whatever the build's frame pointers, the walk is bounded and never faults; in
        // another thread too (its top is the thread descriptor).
        let mut out = [0usize; 16];
        let n = deep(3, StackWalk::FramePointers, &mut out);
        assert!(n <= 16);
        let n2 = std::thread::spawn(|| {
            let mut out = [0usize; 16];
            deep(3, StackWalk::FramePointers, &mut out)
        })
        .join()
        .unwrap();
        assert!(n2 <= 16);
        assert_eq!(deep(1, StackWalk::Off, &mut out), 0);
    }
}
