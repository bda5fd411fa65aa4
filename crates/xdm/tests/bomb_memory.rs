//! A 1 GiB deflate bomb is refused in bounded memory: a counting allocator measures the peak of
//! live heap bytes while `read_package` runs. (One test in this binary, so no other test's
//! allocations blur the measure.)

use relais_core::Limits;
use relais_xdm::raw::{RawEntry, RawZip, deflated_zeros};
use relais_xdm::read_package;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(live, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak heap growth, in bytes, while `f` runs.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    f();
    PEAK.load(Ordering::SeqCst) - base
}

const GIB: u64 = 1 << 30;
const MIB: usize = 1 << 20;

#[test]
fn one_gib_bomb_in_bounded_memory() {
    // The measure itself works: reading a legitimate 4 MiB entry shows at least 4 MiB.
    let mut z = RawZip::new();
    z.push(RawEntry::stored(
        "IHE_XDM/SUBSET01/BIG.BIN",
        vec![7u8; 4 * MIB],
    ));
    let zip = z.to_bytes();
    let peak = peak_during(|| {
        read_package(&zip, &Limits::default()).unwrap();
    });
    assert!(peak >= 4 * MIB, "allocator not counting: peak {peak}");

    let (stream, crc) = deflated_zeros(GIB);
    let compressed = stream.len();

    // Honest header: refused from the central directory, nothing inflated.
    let mut z = RawZip::new();
    z.push(RawEntry::stored("README.TXT", b"bomb".to_vec()));
    z.push(RawEntry::precompressed(
        "IHE_XDM/SUBSET01/DOC0001.XML",
        stream.clone(),
        GIB,
        crc,
    ));
    let zip = z.to_bytes();
    let peak = peak_during(|| {
        let err = read_package(&zip, &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "ZIP-BOMB");
    });
    assert!(
        peak < 2 * MIB,
        "peak {peak} bytes for a refused-by-header bomb"
    );

    // Lying header (says 10 KiB), even with limits raised to let a 1 GiB entry through: the
    // inflation stops just past the declared size.
    let generous = Limits {
        max_zip_entry_bytes: 2 * GIB,
        max_zip_total_bytes: 4 * GIB,
        max_zip_ratio: 10_000,
        ..Limits::default()
    };
    let mut z = RawZip::new();
    z.push(
        RawEntry::precompressed("IHE_XDM/SUBSET01/DOC0001.XML", stream.clone(), GIB, crc)
            .declare_size(10 * 1024),
    );
    let zip = z.to_bytes();
    let peak = peak_during(|| {
        let err = read_package(&zip, &generous).unwrap_err();
        assert_eq!(err.code(), "ZIP-BOMB", "{err}");
    });
    assert!(peak < 2 * MIB, "peak {peak} bytes for a lying-header bomb");

    // Honest header, size limits raised to let 1 GiB through: the ratio alone refuses it.
    let sizes_only = Limits {
        max_zip_ratio: Limits::default().max_zip_ratio,
        ..generous
    };
    let mut z = RawZip::new();
    z.push(RawEntry::precompressed(
        "IHE_XDM/SUBSET01/DOC0001.XML",
        stream,
        GIB,
        crc,
    ));
    let zip = z.to_bytes();
    let peak = peak_during(|| {
        let err = read_package(&zip, &sizes_only).unwrap_err();
        assert!(err.to_string().contains("ratio"), "{err}");
    });
    assert!(peak < 2 * MIB, "peak {peak} bytes");
    assert!(compressed < 2 * MIB);
}
