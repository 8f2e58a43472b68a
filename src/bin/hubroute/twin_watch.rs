//! A running router's view of its twin directory and device registry: both are files that
//! `hubroute twin set` and `hubroute device ...` (or an editor) change atomically, while the
//! router holds its store. The router takes them in at start (so changes made while it was
//! down are not lost) and then polls them (`--twin-poll`, default 1 s; comparing modification
//! times and lengths, not contents, so a large fleet costs a `stat` per file), routing a
//! `TwinChangeEvents` or `DeviceLifecycleEvents` notification per change.
//!
//! Why files and polling rather than an API on the router: the commands then work the same
//! whether or not a router runs (the next start picks the change up), need no credentials of
//! their own, and cannot race the router's store, which only the router opens.

use crate::logging::{say, Level};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use hubroute::pipeline::Pipeline;
use hubroute::twin::{read_registry, LiveTwins, SyncReport};

/// What the router watches.
#[derive(Clone, Debug)]
pub struct WatchPlan {
    pub twin_dir: Option<PathBuf>,
    pub devices: Option<PathBuf>,
    pub poll: Duration,
}

fn log(what: &str, report: &SyncReport) {
    for p in &report.problems {
        say(Level::Warn, &format!("warning: {p}"));
    }
    if report.events > 0 {
        tracing::info!(
            events = report.events,
            "{what}: {} notifications routed",
            report.events
        );
    }
}

/// What the watcher remembers between polls.
#[derive(Default)]
pub struct WatchState {
    /// The last error logged (not repeated while it stays the same).
    last_error: Option<String>,
    /// The registry file's modification time and length when it was last taken in: it is
    /// parsed again (keys decoded) only when they change.
    registry_stamp: Option<(Option<SystemTime>, u64)>,
}

/// Takes the files in once; errors are logged (the router goes on with what it has).
pub fn sync_once(twins: &LiveTwins, pipeline: &Pipeline, plan: &WatchPlan, state: &mut WatchState) {
    let now = SystemTime::now();
    let mut errors = Vec::new();
    // Files first: a twin file of a device the registry then creates is that device's first
    // state (part of its creation notification), not a change of an empty twin.
    if let Some(dir) = &plan.twin_dir {
        match twins.sync_files(pipeline, dir, now) {
            Ok(report) => log("twin directory", &report),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if let Some(path) = &plan.devices {
        let stamp = std::fs::metadata(path)
            .ok()
            .map(|m| (m.modified().ok(), m.len()));
        if stamp.is_none() || stamp != state.registry_stamp {
            match read_registry(path).and_then(|r| twins.sync_registry(pipeline, &r, now)) {
                Ok(report) => {
                    log("device registry", &report);
                    state.registry_stamp = stamp;
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    let error = (!errors.is_empty()).then(|| errors.join("; "));
    if error.is_some() && error != state.last_error {
        let e = error.as_deref().unwrap_or_default();
        say(Level::Error, &format!("error: twins: {e}"));
    }
    state.last_error = error;
}

/// Runs `work` while a thread keeps the twins in step with the files; the thread stops (after
/// its current sync) before this returns, so the pipeline can then be shut down.
pub fn while_watching<R>(
    twins: &LiveTwins,
    pipeline: &Pipeline,
    plan: &WatchPlan,
    mut state: WatchState,
    work: impl FnOnce() -> R,
) -> R {
    if plan.twin_dir.is_none() && plan.devices.is_none() {
        return work();
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut next = Instant::now() + plan.poll;
            while !stop.load(Ordering::Acquire) {
                if Instant::now() >= next {
                    sync_once(twins, pipeline, plan, &mut state);
                    next = Instant::now() + plan.poll;
                }
                std::thread::sleep(Duration::from_millis(20).min(plan.poll));
            }
        });
        let result = work();
        stop.store(true, Ordering::Release);
        result
    })
}
