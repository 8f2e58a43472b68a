//! Reloading the routes of a running `run`: on SIGHUP, and with `--watch` when the routes file
//! changes. The new configuration is validated completely (see `hubroute::ops::LiveTable`);
//! any error keeps the current routes and logs every diagnostic.
//!
//! One thread waits for SIGHUP (signal-hook, the crate tokio's own signal handling is built
//! on), one polls the routes file (twice a second, comparing contents: a few kilobytes, and no
//! platform file-watching API to get wrong across editors that replace files), and one
//! performs reloads one at a time, off the message path.

use crate::routes_cmd::render_config;
use hubroute::ops::{codes, LiveTable, ReloadError};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::time::Duration;

/// What a reload reads and checks.
#[derive(Clone, Debug)]
pub struct ReloadPlan {
    /// The routing configuration file.
    pub routes: PathBuf,
    /// The hub name used when the configuration names none.
    pub hub_name: String,
    /// Endpoints with a sink bound: the only ones a new table may route to.
    pub bound: BTreeSet<String>,
}

/// Why a reload happens.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Signal,
    FileChanged,
}

/// The running reload threads; SIGHUP goes back to its default when dropped is not needed:
/// the process is ending.
pub struct Reloader {
    signals: signal_hook::iterator::Handle,
}

impl Drop for Reloader {
    fn drop(&mut self) {
        self.signals.close();
    }
}

/// Called with each table swapped in (to hand it to the pipeline).
pub type OnSwap = Box<dyn Fn(&hubroute::ops::Versioned) + Send>;

/// Starts reloading `live` on SIGHUP and, with `watch`, on changes of the routes file; each
/// new table is also given to `on_swap`.
pub fn spawn(
    live: Arc<LiveTable>,
    plan: ReloadPlan,
    watch: bool,
    on_swap: OnSwap,
) -> Result<Reloader, String> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])
        .map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
    let handle = signals.handle();
    let (tx, rx) = channel::<Trigger>();
    let signal_tx = tx.clone();
    std::thread::Builder::new()
        .name("hubroute-sighup".into())
        .spawn(move || {
            for _ in signals.forever() {
                if signal_tx.send(Trigger::Signal).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| format!("cannot start the reload thread: {e}"))?;
    if watch {
        let path = plan.routes.clone();
        std::thread::Builder::new()
            .name("hubroute-watch".into())
            .spawn(move || watch_file(path, tx))
            .map_err(|e| format!("cannot start the watch thread: {e}"))?;
    }
    // The text of the table in use: a change the watcher sees after SIGHUP already loaded it
    // is not loaded twice.
    let mut in_use = std::fs::read_to_string(&plan.routes).ok();
    std::thread::Builder::new()
        .name("hubroute-reload".into())
        .spawn(move || {
            for trigger in rx {
                let why = match trigger {
                    Trigger::Signal => "SIGHUP",
                    Trigger::FileChanged => "the routes file changed",
                };
                // Either trigger with the text already in use changes nothing: with --watch a
                // SIGHUP right after an edit finds the watcher has loaded it already, and
                // loading it again would only bump the generation.
                if std::fs::read_to_string(&plan.routes).ok() == in_use {
                    if matches!(trigger, Trigger::Signal) {
                        tracing::info!(
                            generation = live.load().generation,
                            reason = why,
                            "routes unchanged: generation {} stays in use",
                            live.load().generation
                        );
                    }
                    continue;
                }
                if let Some(text) = reload(&live, &plan, why) {
                    on_swap(&live.load());
                    in_use = Some(text);
                }
            }
        })
        .map_err(|e| format!("cannot start the reload thread: {e}"))?;
    Ok(Reloader { signals: handle })
}

/// Sends a trigger whenever the file's contents differ from the last seen.
fn watch_file(path: PathBuf, tx: Sender<Trigger>) {
    let mut last = std::fs::read(&path).ok();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = std::fs::read(&path).ok();
        if now.is_some() && now != last {
            last = now;
            if tx.send(Trigger::FileChanged).is_err() {
                return;
            }
        }
    }
}

/// Reads, validates and swaps in the routes of `plan`, logging what happened; the text now in
/// use if it was swapped in.
pub fn reload(live: &LiveTable, plan: &ReloadPlan, why: &str) -> Option<String> {
    let path = plan.routes.display().to_string();
    let text = match std::fs::read_to_string(&plan.routes) {
        Ok(t) => t,
        Err(e) => {
            let err = live.refuse(ReloadError {
                code: codes::RELOAD_UNREADABLE,
                diagnostics: Vec::new(),
                unbound: Vec::new(),
                message: format!("cannot read {path}: {e}; the current routes stay in use"),
            });
            tracing::error!(code = err.code, file = %path, reason = why, "reload refused: {}", err.message);
            return None;
        }
    };
    match live.reload(&text, &plan.hub_name, &|name| plan.bound.contains(name)) {
        Ok(done) => {
            for w in &done.warnings {
                tracing::warn!(code = w.code, file = %path, "{}", render_config(&plan.routes, w).trim_end());
            }
            tracing::info!(
                generation = done.generation,
                file = %path,
                reason = why,
                routes_changed = %done.routes_changed.join(","),
                endpoints_added = %done.endpoints_added.join(","),
                endpoints_removed = %done.endpoints_removed.join(","),
                "routes reloaded: generation {} in use for the next message",
                done.generation
            );
            Some(text)
        }
        Err(err) => {
            for d in &err.diagnostics {
                let rendered = render_config(&plan.routes, d);
                if d.is_error() {
                    tracing::error!(code = d.code, file = %path, "{}", rendered.trim_end());
                } else {
                    tracing::warn!(code = d.code, file = %path, "{}", rendered.trim_end());
                }
            }
            tracing::error!(
                code = err.code,
                file = %path,
                reason = why,
                generation = live.load().generation,
                "reload refused: {}",
                err.message
            );
            None
        }
    }
}
