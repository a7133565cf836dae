//! Whether Rust's default test harness (libtest) runs this process, for `LOCKWATCH_HARNESS`'s
//! default (SPEC §4: `none`, or `libtest` where the runtime can tell for certain).
//!
//! It can, on Linux, from the executable itself: a test binary built with the harness (what
//! `cargo test` builds for `#[test]` functions, unless `harness = false`) defines libtest's
//! entry point `test::test_main_static` (or `test_main_static_abort`), which its generated
//! `main` calls; no other binary links the `test` crate (it is unstable, only the harness uses
//! it). So the executable's symbol table is read once, when a scan first needs the answer
//! (never on an acquisition), and the answer kept. A stripped executable, another platform, or
//! any error reading it gives `false`: lockwatch then keeps counting the main thread as one that
//! might end a wait, as under `none`.

use crate::config::{self, Harness};
use std::sync::OnceLock;

/// Whether the process's main thread, while lockwatch has not seen it, only coordinates tests
/// and can end no wait: under `LOCKWATCH_HARNESS=libtest`, or by default where libtest is known
/// to run the process.
pub(crate) fn main_thread_only_coordinates() -> bool {
    match config::harness() {
        Harness::Libtest => true,
        Harness::None => !config::harness_chosen() && runs_this_process(),
    }
}

/// Whether the running executable is a libtest test binary (see the module docs).
pub(crate) fn runs_this_process() -> bool {
    static ANSWER: OnceLock<bool> = OnceLock::new();
    *ANSWER.get_or_init(|| {
        #[cfg(target_os = "linux")]
        {
            elf::defines_libtest_entry("/proc/self/exe").unwrap_or(false)
        }
        #[cfg(not(target_os = "linux"))]
        {
            false
        }
    })
}

/// Whether a symbol name is libtest's entry point, in the legacy or the v0 mangling
/// (`_ZN4test16test_main_static17h…E`, `_RNvCs…_4test16test_main_static`): the function
/// `test_main_static` (or `test_main_static_abort`) at the root of the crate `test`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn is_libtest_entry(name: &[u8]) -> bool {
    const ENTRIES: [&[u8]; 2] = [b"4test16test_main_static", b"4test22test_main_static_abort"];
    // What may follow the path: nothing, a legacy hash (`17h…E`), a suffix (`.llvm.…`).
    let ends = |rest: &[u8]| matches!(rest.first(), None | Some(b'1'..=b'9' | b'E' | b'.'));
    ENTRIES.iter().any(|entry| {
        if let Some(rest) = name
            .strip_prefix(b"_ZN")
            .and_then(|r| r.strip_prefix(*entry))
        {
            return ends(rest);
        }
        // v0: the crate root is `C`, with an optional disambiguator `s…_`, then its name.
        name.starts_with(b"_R")
            && name.windows(entry.len() + 1).enumerate().any(|(at, w)| {
                matches!(w[0], b'_' | b'C')
                    && &w[1..] == *entry
                    && ends(&name[at + 1 + entry.len()..])
            })
    })
}

/// The executable's symbol table, through `object` (already built for backtrace's symbolizer),
/// read in pieces as the table is walked rather than as a whole file.
#[cfg(target_os = "linux")]
mod elf {
    use object::{Object, ObjectSymbol, ReadCache, SymbolKind};

    /// Whether the ELF file at `path` defines a function named as libtest's entry point;
    /// `None` if it cannot be read as an ELF file.
    pub(super) fn defines_libtest_entry(path: &str) -> Option<bool> {
        let cache = ReadCache::new(std::fs::File::open(path).ok()?);
        let file = object::File::parse(&cache).ok()?;
        Some(file.symbols().any(|symbol| {
            symbol.kind() == SymbolKind::Text
                && symbol.is_definition()
                && symbol.name_bytes().is_ok_and(super::is_libtest_entry)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::is_libtest_entry;

    #[test]
    fn libtest_entry_names_in_both_manglings() {
        for name in [
            "_ZN4test16test_main_static17h0123456789abcdefE",
            "_ZN4test22test_main_static_abort17h0123456789abcdefE",
            "_RNvCs1234abcd_4test16test_main_static",
            "_RNvCsQ1w2e3_4test22test_main_static_abort",
            "_RNvC4test16test_main_static",
        ] {
            assert!(is_libtest_entry(name.as_bytes()), "{name}");
        }
        for name in [
            "_ZN8mycrate4test16test_main_static17h0123456789abcdefE",
            "_ZN4test16test_main_statics17h0123456789abcdefE",
            "_RNvNtCs1234_7mycrate4test16test_main_static",
            "test_main_static",
            "",
        ] {
            assert!(!is_libtest_entry(name.as_bytes()), "{name}");
        }
    }

    /// This unit-test binary is itself built with libtest.
    #[test]
    #[cfg(target_os = "linux")]
    fn a_test_binary_is_recognised() {
        assert!(super::runs_this_process());
    }
}
