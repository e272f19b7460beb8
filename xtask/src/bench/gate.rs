//! `--check`: the fingerprint memory gate. Fingerprint runs at every client start, plugins one
//! after another, so each plugin's peak RSS is held to a bound relative to `/bin/echo`.

use std::path::PathBuf;

use super::Row;
use crate::Result;

/// Fails when a plugin's fingerprint peak RSS, relative to `/bin/echo`'s (the first row of
/// `rows`; the plugins follow in the order of `built`), exceeds its bound.
pub(super) fn fingerprint_rss(rows: &[Row], built: &[(String, PathBuf)]) -> Result {
    // Each plugin's bound is declared in its Cargo.toml (`fingerprint-rss-ratio`).
    let bounds = crate::plugins::all()?;
    for (row, (name, _)) in rows[1..].iter().zip(built) {
        let ratio = row.rss_kib as f64 / rows[0].rss_kib as f64;
        let limit = bounds
            .iter()
            .find(|plugin| &plugin.name == name)
            .map_or(crate::plugins::FINGERPRINT_RSS_RATIO, |p| {
                p.fingerprint_rss_ratio
            });
        if ratio > limit {
            return Err(format!(
                "{}: peak RSS is {ratio:.2}x that of /bin/echo, above its {limit} bound; if \
                 the code the fingerprint runs changed (or the compiler, or a dependency), \
                 run `cargo xtask order` to refresh xtask/fingerprint.order (README \"Speed\")",
                row.label
            ));
        }
    }
    Ok(())
}
