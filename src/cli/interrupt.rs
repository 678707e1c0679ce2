//! SIGINT and SIGTERM during `sync`: the first one asks the sync to stop once the writes under
//! way are done and recorded; a second one ends the process at once. `daemon` also takes SIGHUP
//! (reload the config) and has every signal wake its loop through a socket ([`wake_on_signal`]).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// Set by the first SIGINT or SIGTERM; the library stops starting actions once it is set.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The signal that set [`INTERRUPTED`].
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Set by SIGHUP, taken by [`reload_requested`].
static RELOAD: AtomicBool = AtomicBool::new(false);

/// A socket the handlers write one byte to, so that a loop waiting for events wakes up; -1 for
/// none.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// Writes the wake-up byte. A full socket already holds one, so a failed write loses nothing.
fn wake() {
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the buffer is a live one-byte array.
        unsafe {
            libc::write(fd, [1u8].as_ptr().cast(), 1);
        }
    }
}

/// Only async-signal-safe work here: atomics, `signal` and `raise`.
extern "C" fn on_signal(signal: libc::c_int) {
    if INTERRUPTED.load(Ordering::SeqCst) {
        // The second signal: die of it, as without a handler. The signal is blocked while its
        // handler runs, so the raised one is delivered as soon as this returns.
        // SAFETY: both calls are async-signal-safe and take no pointers.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
        return;
    }
    SIGNAL.store(signal, Ordering::SeqCst);
    INTERRUPTED.store(true, Ordering::SeqCst);
    wake();
}

/// Only async-signal-safe work here too.
extern "C" fn on_hangup(_signal: libc::c_int) {
    RELOAD.store(true, Ordering::SeqCst);
    wake();
}

/// Installs the handler for SIGINT and SIGTERM.
pub fn install() -> io::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        set_handler(signal, on_signal)?;
    }
    Ok(())
}

/// Installs the handler for SIGHUP: [`reload_requested`] says when it came.
pub fn install_reload() -> io::Result<()> {
    set_handler(libc::SIGHUP, on_hangup)
}

/// Every signal handled from now on also writes a byte to `fd` (which must stay open and
/// should be non-blocking).
pub fn wake_on_signal(fd: libc::c_int) {
    WAKE_FD.store(fd, Ordering::SeqCst);
}

/// Whether SIGHUP came since the last call.
pub fn reload_requested() -> bool {
    RELOAD.swap(false, Ordering::SeqCst)
}

fn set_handler(signal: libc::c_int, handler: extern "C" fn(libc::c_int)) -> io::Result<()> {
    // SAFETY: the sigaction struct is zeroed (a valid value), then filled in; the handler only
    // does async-signal-safe work. SA_RESTART keeps the I/O under way from failing with EINTR.
    let result = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signal, &action, std::ptr::null_mut())
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The signal received, once one was.
pub fn received() -> Option<libc::c_int> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Some(SIGNAL.load(Ordering::SeqCst))
    } else {
        None
    }
}

/// How a signal is named in messages.
pub fn signal_name(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}
