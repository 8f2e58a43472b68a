//! A counting global allocator for the allocation tests (tests/alloc.rs, tests/ingest_alloc.rs):
//! it wraps the system allocator and counts only what the measuring thread allocates while it
//! measures, so tests running in parallel and the pipeline's own threads do not disturb a count.
//! Include it with `mod counting;`: it installs itself as the test binary's global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    /// Allocations and bytes counted on this thread: tests run in parallel, each measuring
    /// its own thread.
    static COUNTS: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

fn note(size: usize) {
    if MEASURING.with(Cell::get) {
        COUNTS.with(|c| {
            let (n, bytes) = c.get();
            c.set((n + 1, bytes + size));
        });
    }
}

/// Counts this thread's allocations while `f` runs.
pub fn counted(f: impl FnOnce()) -> (usize, usize) {
    COUNTS.with(|c| c.set((0, 0)));
    MEASURING.with(|c| c.set(true));
    f();
    MEASURING.with(|c| c.set(false));
    COUNTS.with(Cell::get)
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so this
// allocator upholds exactly `System`'s guarantees; the bookkeeping only touches
// const-initialised thread-local `Cell`s, which never allocate or re-enter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded as is (see above).
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded as is.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;
