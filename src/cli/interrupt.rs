//! SIGINT and SIGTERM during `sync`: the first one asks the sync to stop once the writes under
//! way are done and recorded; a second one ends the process at once.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// Set by the first SIGINT or SIGTERM; the library stops starting actions once it is set.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The signal that set [`INTERRUPTED`].
static SIGNAL: AtomicI32 = AtomicI32::new(0);

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
}

/// Installs the handler for SIGINT and SIGTERM.
pub fn install() -> io::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the sigaction struct is zeroed (a valid value), then filled in; the handler
        // only does async-signal-safe work. SA_RESTART keeps the I/O under way from failing
        // with EINTR.
        let result = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
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
