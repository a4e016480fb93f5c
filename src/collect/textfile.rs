//! node_exporter's `textfile` collector: the metrics in every `*.prom` file of
//! `--collector.textfile.directory` (written there by cron jobs and scripts), with
//! `node_textfile_mtime_seconds{file}` for each file read and `node_textfile_scrape_error`, 1
//! while any file cannot be read or parsed. A bad file is reported once in the log (again only
//! if it changes and is still bad) and left out; it never fails anything else. Without a
//! directory nothing is read and the error gauge is 0, as node_exporter prints it by default.
//!
//! Read at each sample rather than at each scrape, as every other family of `/metrics`: what a
//! scrape sees is at most one `--interval` old, the same for all scrapers, and the per-snapshot
//! encoding cache stays whole. A file is parsed again only when its size, modification time or
//! inode changes (writers replace files with a rename, which gives a new inode), so a sample
//! costs one directory listing and one `stat` per file, less than node_exporter's parse of every
//! file at every scrape. The series carry the node label like all of ours; a family that would
//! shadow one of the monitor's own is left out when `/metrics` is written (and reported there).
//! Families of one name in several files are merged into one, as node_exporter's registry does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{CollectError, Collector};
use crate::model::exposition::{self, ForeignFamily, MetricFamily, MetricType};
use crate::model::{KernelFamily, KernelMetricKind, Snapshot};

/// The label every series of ours carries; a file's own `node` label would clash with it.
const NODE_LABEL: &str = "node";

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileKey {
    len: u64,
    modified: Option<SystemTime>,
    /// The inode (0 where the platform has none): a file replaced by a rename is a new one.
    inode: u64,
}

impl FileKey {
    fn of(metadata: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(metadata);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            inode,
        }
    }
}

/// One file as last read.
#[derive(Debug)]
struct Cached {
    key: FileKey,
    /// Its families and modification time (Unix seconds), or why it was left out.
    outcome: Result<(Vec<MetricFamily>, f64), String>,
}

/// Reads the textfile directory each sample.
pub struct TextfileCollector {
    /// `--collector.textfile.directory`; `None`: nothing to read.
    dir: Option<PathBuf>,
    /// The `*.prom` files by name (sorted, as node_exporter lists them).
    files: BTreeMap<String, Cached>,
    /// The error listing the directory gave, while it lasts (logged when it begins).
    dir_error: Option<String>,
    /// The families of all good files, merged; rebuilt when a file changes.
    merged: Vec<Arc<ForeignFamily>>,
}

impl TextfileCollector {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self {
            dir,
            files: BTreeMap::new(),
            dir_error: None,
            merged: Vec::new(),
        }
    }

    /// Brings `files` up to date with the directory; returns whether anything changed.
    fn refresh(&mut self, dir: &Path) -> bool {
        let names = match list(dir) {
            Ok(names) => {
                if self.dir_error.take().is_some() {
                    tracing::info!("textfile directory {} is readable again", dir.display());
                }
                names
            }
            Err(e) => {
                let error = format!("cannot read the textfile directory {}: {e}", dir.display());
                if self.dir_error.as_deref() != Some(error.as_str()) {
                    tracing::warn!("{error}");
                    self.dir_error = Some(error);
                }
                Vec::new()
            }
        };
        let before = self.files.len();
        self.files.retain(|name, _| names.contains(name));
        let mut changed = self.files.len() != before;
        for name in names {
            let path = dir.join(&name);
            let key = std::fs::metadata(&path).map(|m| FileKey::of(&m));
            if let (Ok(key), Some(cached)) = (&key, self.files.get(&name)) {
                if cached.key == *key {
                    continue;
                }
            }
            let (key, outcome) = match key {
                Ok(key) => (key, read_file(&path)),
                Err(e) => (
                    FileKey {
                        len: 0,
                        modified: None,
                        inode: 0,
                    },
                    Err(format!("cannot read {}: {e}", path.display())),
                ),
            };
            if let Err(error) = &outcome {
                tracing::warn!("textfile {} left out: {error}", path.display());
            }
            self.files.insert(name, Cached { key, outcome });
            changed = true;
        }
        changed
    }

    /// Why this sample's reading is incomplete: the directory's error and the bad files'.
    fn errors(&self) -> Vec<String> {
        self.dir_error
            .iter()
            .cloned()
            .chain(self.files.iter().filter_map(|(name, cached)| {
                cached
                    .outcome
                    .as_ref()
                    .err()
                    .map(|e| format!("{name}: {e}"))
            }))
            .collect()
    }
}

impl Collector for TextfileCollector {
    fn name(&self) -> &'static str {
        "textfile"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let Some(dir) = self.dir.clone() else {
            snapshot.kernel_families.push(scrape_error(false));
            return Ok(());
        };
        if self.refresh(&dir) {
            self.merged = merge(&dir, &self.files);
        }
        let mut mtimes = KernelFamily::new(
            "node_textfile_mtime_seconds",
            "Unixtime mtime of textfiles successfully read.",
            KernelMetricKind::Gauge,
        );
        for (name, cached) in &self.files {
            if let Ok((_, mtime)) = &cached.outcome {
                mtimes.push(&[("file", &dir.join(name).to_string_lossy())], *mtime);
            }
        }
        let errors = self.errors();
        if !mtimes.samples.is_empty() {
            snapshot.kernel_families.push(mtimes);
        }
        snapshot
            .kernel_families
            .push(scrape_error(!errors.is_empty()));
        snapshot
            .foreign_families
            .extend(self.merged.iter().cloned());
        // Like node_exporter, the collector itself succeeds; what it left out is said here.
        match errors.is_empty() {
            true => Ok(()),
            false => Err(CollectError::Partial(errors.join("; "))),
        }
    }
}

/// `node_textfile_scrape_error`.
fn scrape_error(errored: bool) -> KernelFamily {
    KernelFamily::single(
        "node_textfile_scrape_error",
        "1 if there was an error opening or reading a file, 0 otherwise",
        KernelMetricKind::Gauge,
        if errored { 1.0 } else { 0.0 },
    )
}

/// The `*.prom` names in `dir`, sorted.
fn list(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.ends_with(".prom"))
        .collect();
    names.sort_unstable();
    Ok(names)
}

/// One file's families and modification time, or why it is left out.
fn read_file(path: &Path) -> Result<(Vec<MetricFamily>, f64), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let families = check(exposition::parse(&text).map_err(|e| format!("cannot parse it: {e}"))?)?;
    // Taken after the parse, as node_exporter does, so a failure never looks fresh.
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| format!("cannot stat it: {e}"))?;
    let seconds = mtime.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Ok((families, seconds as f64))
}

/// What node_exporter refuses of a parsed file beyond the syntax: client-side timestamps; and
/// what only our output refuses: a `node` label, which would clash with our node label.
pub fn check(families: Vec<MetricFamily>) -> Result<Vec<MetricFamily>, String> {
    let samples = || families.iter().flat_map(|f| &f.samples);
    if samples().any(|s| s.timestamp_ms.is_some()) {
        return Err("it has client-side timestamps, which are not supported".into());
    }
    if let Some(s) = samples().find(|s| s.labels.iter().any(|(k, _)| k == NODE_LABEL)) {
        return Err(format!(
            "{} has a `{NODE_LABEL}` label, which the monitor adds to every series itself",
            s.name
        ));
    }
    Ok(families)
}

/// The families of all good files, one per name: a later file's family of a name seen before
/// joins it when it is of the same type (and HELP, when both have one); its series already seen
/// are dropped. HELP is filled in as node_exporter does; labels are completed (missing ones as
/// empty values) and ordered by name, as node_exporter writes them.
fn merge(dir: &Path, files: &BTreeMap<String, Cached>) -> Vec<Arc<ForeignFamily>> {
    let mut merged: Vec<(MetricFamily, Vec<String>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut seen: HashSet<(String, Vec<(String, String)>)> = HashSet::new();
    for (name, cached) in files {
        let Ok((families, _)) = &cached.outcome else {
            continue;
        };
        let path = dir.join(name).to_string_lossy().into_owned();
        for family in families {
            let at = match index.get(&family.name) {
                None => {
                    index.insert(family.name.clone(), merged.len());
                    merged.push((
                        MetricFamily {
                            samples: Vec::new(),
                            ..family.clone()
                        },
                        Vec::new(),
                    ));
                    merged.len() - 1
                }
                Some(&at) => at,
            };
            let (into, sources) = &mut merged[at];
            if into.kind != family.kind {
                tracing::warn!(
                    "textfile {path}: {} is a {} here but a {} in {}: left out",
                    family.name,
                    family.kind.as_str(),
                    into.kind.as_str(),
                    sources.join(", ")
                );
                continue;
            }
            if let (Some(theirs), Some(ours)) = (&family.help, &into.help) {
                if theirs != ours {
                    tracing::warn!(
                        "textfile {path}: {} has another HELP than in {}: left out",
                        family.name,
                        sources.join(", ")
                    );
                    continue;
                }
            }
            if into.help.is_none() {
                into.help.clone_from(&family.help);
            }
            for sample in &family.samples {
                let mut labels = sample.labels.clone();
                labels.sort_unstable();
                if !seen.insert((sample.name.clone(), labels)) {
                    tracing::warn!(
                        "textfile {path}: {}{{{}}} was read before: left out",
                        sample.name,
                        label_text(&sample.labels)
                    );
                    continue;
                }
                into.samples.push(sample.clone());
            }
            sources.push(path.clone());
        }
    }
    merged
        .into_iter()
        .filter(|(family, _)| !family.samples.is_empty())
        .map(|(mut family, sources)| {
            let source = sources.join(", ");
            if family.help.is_none() {
                family.help = Some(format!("Metric read from {source}"));
            }
            complete_labels(&mut family);
            Arc::new(ForeignFamily { family, source })
        })
        .collect()
}

/// Gives every series of `family` the same label names (missing ones empty, as node_exporter
/// pads them) in name order; a histogram's `le` and a summary's `quantile` stay last.
pub fn complete_labels(family: &mut MetricFamily) {
    let special = match family.kind {
        MetricType::Histogram => "le",
        MetricType::Summary => "quantile",
        _ => "",
    };
    let names: Vec<String> = family
        .samples
        .iter()
        .flat_map(|s| s.labels.iter().map(|(k, _)| k))
        .filter(|k| *k != special)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .cloned()
        .collect();
    for sample in &mut family.samples {
        for name in &names {
            if !sample.labels.iter().any(|(k, _)| k == name) {
                sample.labels.push((name.clone(), String::new()));
            }
        }
        sample
            .labels
            .sort_by(|(a, _), (b, _)| (a == special, a).cmp(&(b == special, b)));
    }
}

fn label_text(labels: &[(String, String)]) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests;
