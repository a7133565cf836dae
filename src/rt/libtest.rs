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

/// A minimal ELF64 little-endian reader: the section headers, the symbol table and its string
/// table, nothing else.
#[cfg(target_os = "linux")]
mod elf {
    use std::fs::File;
    use std::os::unix::fs::FileExt;

    const SHT_SYMTAB: u32 = 2;
    const STT_FUNC: u8 = 2;
    /// Sections read whole: beyond this, the executable is not looked into.
    const MAX_SECTION: u64 = 256 << 20;

    fn read_at(file: &File, offset: u64, len: u64) -> Option<Vec<u8>> {
        if len > MAX_SECTION {
            return None;
        }
        let mut buf = vec![0; usize::try_from(len).ok()?];
        file.read_exact_at(&mut buf, offset).ok()?;
        Some(buf)
    }

    fn u16_at(b: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
    }

    fn u32_at(b: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
    }

    fn u64_at(b: &[u8], at: usize) -> Option<u64> {
        Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
    }

    /// Whether the ELF file at `path` defines a function named as libtest's entry point;
    /// `None` if it cannot be read as a 64-bit little-endian ELF file with a symbol table.
    pub(super) fn defines_libtest_entry(path: &str) -> Option<bool> {
        let file = File::open(path).ok()?;
        let header = read_at(&file, 0, 64)?;
        if header[..4] != *b"\x7fELF" || header[4] != 2 || header[5] != 1 {
            return None;
        }
        let sh_offset = u64_at(&header, 0x28)?;
        let sh_entsize = u64::from(u16_at(&header, 0x3A)?);
        let sh_count = u64::from(u16_at(&header, 0x3C)?);
        if sh_entsize < 64 {
            return None;
        }
        let sections = read_at(&file, sh_offset, sh_entsize * sh_count)?;
        let section = |k: u64| -> Option<(u32, u64, u64, u32)> {
            let at = usize::try_from(k * sh_entsize).ok()?;
            Some((
                u32_at(&sections, at + 4)?,  // sh_type
                u64_at(&sections, at + 24)?, // sh_offset
                u64_at(&sections, at + 32)?, // sh_size
                u32_at(&sections, at + 40)?, // sh_link
            ))
        };
        let (_, symtab_at, symtab_len, strtab_index) =
            (0..sh_count).find_map(|k| section(k).filter(|s| s.0 == SHT_SYMTAB))?;
        let (_, strtab_at, strtab_len, _) = section(u64::from(strtab_index))?;
        let symbols = read_at(&file, symtab_at, symtab_len)?;
        let names = read_at(&file, strtab_at, strtab_len)?;
        Some(symbols.chunks_exact(24).any(|symbol| {
            let defined = u16_at(symbol, 6).is_some_and(|shndx| shndx != 0);
            let function = symbol[4] & 0xf == STT_FUNC;
            let name = u32_at(symbol, 0)
                .and_then(|at| names.get(usize::try_from(at).ok()?..))
                .map(|rest| &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]);
            defined && function && name.is_some_and(super::is_libtest_entry)
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
