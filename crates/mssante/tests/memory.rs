//! Memory bounds, measured with a counting allocator (one test binary, tests serialised).

mod common;

use common::*;
use relais_core::Limits;
use relais_mssante::{AttachmentRole, MailError, codes, parse_mail};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
            grew(new_size);
        }
        p
    }
}

thread_local! {
    /// Allocations made by this thread: the test harness's own threads allocate while a test
    /// runs (reporting the previous test), so "no allocation" is judged per thread.
    static THREAD_ALLOCATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn grew(size: usize) {
    let _ = THREAD_ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
    let now = CURRENT.fetch_add(size, Ordering::SeqCst) + size;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The tests of this file measure the whole process: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `f`, returning its result, the peak of live heap above the level at the start (whole
/// process), and the number of allocations this thread made meanwhile.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let allocations = THREAD_ALLOCATIONS.with(|c| c.get());
    let out = f();
    let peak = PEAK.load(Ordering::SeqCst).saturating_sub(base);
    (
        out,
        peak,
        THREAD_ALLOCATIONS.with(|c| c.get()) - allocations,
    )
}

const MIB: usize = 1024 * 1024;

#[test]
fn a_200_mb_mail_is_refused_without_parsing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Zeroed memory is mapped lazily: the 200 MB cost nothing until written.
    let mut raw = vec![0u8; 200 * MIB];
    let head = b"From: a@cha.mssante.fr\r\nMessage-ID: <big@cha>\r\n\r\n";
    raw[..head.len()].copy_from_slice(head);
    let (result, peak, allocations) = measure(|| parse_mail(&raw, &Limits::default()));
    let e = result.unwrap_err();
    assert_eq!(
        e,
        MailError::TooLarge {
            size: 200 * MIB as u64,
            limit: 80 * MIB as u64
        }
    );
    assert_eq!(e.code(), codes::MAIL_TOO_LARGE);
    assert_eq!(allocations, 0, "refused before any parsing");
    // The process-wide peak may see a few bytes of the harness's other threads; parsing would
    // cost megabytes.
    assert!(peak < 64 * 1024, "peak {peak} bytes");
}

#[test]
fn a_40_mb_attachment_costs_about_its_size() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let size = 40 * MIB;
    let mut pdf = b"%PDF-1.7\n".to_vec();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    pdf.extend((pdf.len()..size).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    let raw = base()
        .text_body(BODY)
        .attachment("application/zip", "IHE_XDM.ZIP", xdm_bytes())
        .attachment("application/pdf", PDF_NAME, pdf.clone())
        .write_to_vec()
        .unwrap();
    assert!(raw.len() > size * 4 / 3, "base64 makes the raw mail larger");

    let (mail, peak, _) = measure(|| parse_mail(&raw, &Limits::default()));
    let mail = mail.unwrap();
    assert_eq!(mail.attachments[1].role, AttachmentRole::Pdf);
    assert!(mail.attachments[1].data == pdf, "decoded intact");
    assert!(mail.findings.is_empty(), "{:?}", mail.findings);
    // Beyond the raw mail (already in memory, 4/3 of the attachment), reading costs the
    // decoded bytes once plus small change: no copy of the attachment is made.
    eprintln!(
        "raw {} MiB, peak while reading {} MiB, attachment {} MiB",
        raw.len() / MIB,
        peak / MIB,
        size / MIB
    );
    assert!(
        peak < size + size / 4,
        "peak {peak} bytes for a {size}-byte attachment"
    );
}
