//! Loading the source text a rendering quotes: the one place outside the runtime that reads
//! the files a report names.

use std::fs;
use std::path::Path;

use crate::model::Report;
use crate::render::Sources;

/// A file larger than this is not quoted (it is no source file a report points into).
const MAX_SOURCE_BYTES: u64 = 8 << 20;

/// Reads every file the reports' locations and backtrace frames name, a relative path under
/// `root` (the current directory if `None`), each once. Keys are the paths exactly as the
/// reports give them. A file that cannot be read (missing, not UTF-8, too large) is simply
/// absent: the renderers then show its locations as `file:line:col`.
pub fn load(reports: &[Report], root: Option<&Path>) -> Sources {
    let mut sources = Sources::new();
    let mut tried: Vec<&str> = Vec::new();
    for report in reports {
        let locations = report.locations().into_iter().map(|l| l.file.as_str());
        let frames = report.frames().filter_map(|f| f.file.as_deref());
        for file in locations.chain(frames) {
            if tried.contains(&file) {
                continue;
            }
            tried.push(file);
            if let Some(text) = read(root, file) {
                sources.insert(file, text);
            }
        }
    }
    sources
}

fn read(root: Option<&Path>, file: &str) -> Option<String> {
    let path = Path::new(file);
    let path = match root {
        Some(root) if path.is_relative() => root.join(path),
        _ => path.to_path_buf(),
    };
    let meta = fs::metadata(&path).ok()?;
    if !meta.is_file() || meta.len() > MAX_SOURCE_BYTES {
        return None;
    }
    fs::read_to_string(path).ok()
}
