//! glibc's allocator tuned for `run` and `bridge`: the process starts itself again with
//! `GLIBC_TUNABLES` set, since glibc reads its tunables only at start (`mallopt` would need
//! `unsafe`, which this crate forbids).
//!
//! Why: a message's record is allocated by the routing thread and freed by an endpoint
//! thread. With glibc's defaults the routing thread's arena hands memory back as soon as
//! 128 KiB are free at its top and takes it again moments later: thousands of `mprotect`
//! calls per 10k messages, each holding the process's memory-map lock, which every page fault
//! takes too (`perf sched` showed the routing thread waiting on it for milliseconds at a
//! time). Keeping up to 64 MiB free and growing 16 MiB at a time took `run` on messages-10k
//! × routes-10 → `file:` from 86k to 92k messages/s (medians of 9 interleaved runs) but max
//! RSS at 100k lines up to 110 MB (untuned: 68–78 MB); 8 MiB and 2 MiB, what this sets, ran
//! as fast in the same interleaved runs and kept 83–96 MB.
//!
//! Only on Linux with glibc, and only when `GLIBC_TUNABLES` is not set at all: a setting of
//! the user's own wins (an empty one turns this off), and the restarted process has it set,
//! so it does not start again. If starting again fails, the process goes on as it is.

/// What the restarted process runs with.
pub const TUNABLES: &str = "glibc.malloc.trim_threshold=8388608:glibc.malloc.top_pad=2097152";

/// Replaces this process by the same program with the same arguments and [`TUNABLES`], unless
/// `GLIBC_TUNABLES` is set; returns only when it does not.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn restart_tuned() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    if let Some(argv0) = args.next() {
        command.arg0(argv0);
    }
    // Returns only if the program could not be started.
    let _ = command.args(args).env("GLIBC_TUNABLES", TUNABLES).exec();
}

/// Other platforms' allocators are left as they are.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn restart_tuned() {}
