//! pause: the process that holds a pod sandbox's namespaces open.
//!
//! It does nothing but wait: SIGINT and SIGTERM make it exit 0, SIGCHLD makes
//! it reap every exited child (when the pod shares one PID namespace this
//! process is its PID 1 and inherits orphans), and otherwise it sleeps in
//! `pause(2)` forever. `pause -v` prints the version and exits; other arguments are ignored.

use std::io::Write;

const VERSION: &str = env!("CARGO_PKG_VERSION");

extern "C" fn on_term(_sig: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(0) }
}

extern "C" fn on_child(_sig: libc::c_int) {
    // Reap every child that has exited; never block.
    // SAFETY: waitpid is async-signal-safe; errno is saved and restored.
    unsafe {
        let errno = *libc::__errno_location();
        while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
        *libc::__errno_location() = errno;
    }
}

fn install(sig: libc::c_int, handler: extern "C" fn(libc::c_int), flags: libc::c_int) -> bool {
    // SAFETY: sigaction is called with a zeroed, fully initialised struct.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = flags;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut()) == 0
    }
}

fn main() {
    // Like upstream, `-v` prints the version; other arguments are ignored.
    if std::env::args()
        .skip(1)
        .any(|a| a.eq_ignore_ascii_case("-v"))
    {
        let _ = writeln!(std::io::stdout(), "pause.ferrokube {VERSION}");
        std::process::exit(0);
    }

    // SAFETY: getpid has no preconditions.
    if unsafe { libc::getpid() } != 1 {
        let _ = writeln!(
            std::io::stderr(),
            "Warning: pause should be the first process"
        );
    }

    let ok = install(libc::SIGINT, on_term, 0)
        && install(libc::SIGTERM, on_term, 0)
        && install(
            libc::SIGCHLD,
            on_child,
            libc::SA_NOCLDSTOP | libc::SA_RESTART,
        );
    if !ok {
        let _ = writeln!(
            std::io::stderr(),
            "pause: sigaction: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(1);
    }

    loop {
        // SAFETY: pause only returns after a signal handler ran.
        unsafe {
            libc::pause();
        }
    }
}
