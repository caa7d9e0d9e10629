//! What `prune` prints: the plan per repository (all of it with
//! `--dry-run`, the removed backups otherwise) and a summary, or the same
//! as JSON (schema in the README, "gitbak prune"). Does no work.

use serde::Serialize;

use crate::cli::table::{human_bytes, Table};
use crate::cmd::prune::{Outcome, PruneReport, RepositoryPlan, Verdict};
use crate::layout::catalog::Catalog;
use crate::retention::Reason;

/// A count and its bytes.
#[derive(Debug, Default, Clone, Copy, Serialize)]
struct Tally {
    count: usize,
    bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
    }
}

/// What was (or, in a dry run, would be) removed.
#[derive(Debug, Default)]
struct Removed {
    manifests: Tally,
    files: Tally,
    temporaries: Tally,
    markers: usize,
}

impl Removed {
    fn bytes(&self) -> u64 {
        self.manifests.bytes + self.files.bytes + self.temporaries.bytes
    }
}

fn removed(report: &PruneReport) -> Removed {
    let mut removed = Removed::default();
    let catalog = &report.catalog;
    match &report.executed {
        None => {
            let plan = &report.plan;
            for &index in &plan.manifests {
                removed.manifests.add(catalog.manifests[index].size);
            }
            for &index in &plan.files {
                removed.files.add(catalog.files()[index].size.unwrap_or(0));
            }
            for meta in &plan.temporaries {
                removed.temporaries.add(meta.size);
            }
            removed.markers = plan.markers.len();
        }
        Some(executed) => {
            let done = |deletions: &[crate::cmd::prune::Deletion], tally: &mut Tally| {
                for deletion in deletions.iter().filter(|d| d.outcome == Outcome::Deleted) {
                    tally.add(deletion.bytes);
                }
            };
            done(&executed.manifests, &mut removed.manifests);
            done(&executed.files, &mut removed.files);
            done(&executed.temporaries, &mut removed.temporaries);
            let mut markers = Tally::default();
            done(&executed.markers, &mut markers);
            removed.markers = markers.count;
        }
    }
    removed
}

/// Files and temporaries waiting out the grace period, and the earliest
/// time one of them becomes removable.
fn waiting(report: &PruneReport) -> (Tally, Tally, Option<String>) {
    let plan = &report.plan;
    let mut files = Tally::default();
    for (index, _) in &plan.waiting_files {
        files.add(report.catalog.files()[*index].size.unwrap_or(0));
    }
    let mut temporaries = Tally::default();
    for (meta, _) in &plan.waiting_temporaries {
        temporaries.add(meta.size);
    }
    let earliest = plan
        .waiting_files
        .iter()
        .map(|(_, since)| *since)
        .chain(plan.waiting_temporaries.iter().map(|(_, since)| *since))
        .min()
        .map(|since| plan.removable_after(since).to_string());
    (files, temporaries, earliest)
}

fn backup_id(catalog: &Catalog, manifest: usize) -> String {
    catalog.manifests[manifest]
        .backup_id
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default()
}

fn kind(catalog: &Catalog, manifest: usize) -> &'static str {
    match &catalog.manifests[manifest].content {
        Ok(summary) => summary.kind.name(),
        Err(_) => "unreadable",
    }
}

fn why(verdict: &Verdict, files_still_needed: usize) -> String {
    match verdict {
        Verdict::Keep(reasons) => {
            let reasons: Vec<String> = reasons.iter().map(Reason::to_string).collect();
            reasons.join(", ")
        }
        Verdict::Remove if files_still_needed > 0 => {
            format!("{files_still_needed} of its files stay: a kept backup's chain needs them")
        }
        Verdict::Remove => String::new(),
        Verdict::Unreadable => "manifest unreadable: kept".into(),
    }
}

fn action(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Keep(_) | Verdict::Unreadable => "keep",
        Verdict::Remove => "remove",
    }
}

pub fn text(report: &PruneReport) -> String {
    let catalog = &report.catalog;
    let dry_run = report.executed.is_none();
    let mut out = String::new();
    for repository in &report.plan.repositories {
        let shown = repository
            .backups
            .iter()
            .filter(|backup| dry_run || backup.verdict == Verdict::Remove);
        let mut table = Table::new(&["ACTION", "ID", "TIME", "KIND", "WHY"]);
        for backup in shown {
            let time = catalog.backup_time(backup.manifest);
            table.row(vec![
                action(&backup.verdict).into(),
                backup_id(catalog, backup.manifest),
                time.map_or_else(|| "time unknown".into(), |time| time.to_string()),
                kind(catalog, backup.manifest).into(),
                why(&backup.verdict, backup.files_still_needed),
            ]);
        }
        if dry_run
            || repository
                .backups
                .iter()
                .any(|b| b.verdict == Verdict::Remove)
        {
            out.push_str(&format!("{}\n", repository.repository));
            out.push_str(&table.render("  "));
        }
    }
    out.push_str(&summary(report));
    out
}

fn summary(report: &PruneReport) -> String {
    let removed = removed(report);
    let (files, temporaries, earliest) = waiting(report);
    let verb = if report.executed.is_some() {
        "Removed"
    } else {
        "Would remove"
    };
    let mut out = format!(
        "{verb} {} manifests ({}), {} data files ({}), {} temporary files ({}) and {} markers: {} {}.\n",
        removed.manifests.count,
        human_bytes(removed.manifests.bytes),
        removed.files.count,
        human_bytes(removed.files.bytes),
        removed.temporaries.count,
        human_bytes(removed.temporaries.bytes),
        removed.markers,
        human_bytes(removed.bytes()),
        if report.executed.is_some() { "freed" } else { "to free" },
    );
    if let Some(earliest) = earliest {
        out.push_str(&format!(
            "Waiting out the grace period ({}): {} data files ({}) no manifest names and {} \
             temporary files ({}); a prune after {earliest} removes the first of them.\n",
            report.grace,
            files.count,
            human_bytes(files.bytes),
            temporaries.count,
            human_bytes(temporaries.bytes),
        ));
    }
    if report.executed.as_ref().is_some_and(|e| e.interrupted) {
        out.push_str("Interrupted: run prune again to finish.\n");
    }
    out
}

/// One `reasons` entry of the JSON.
#[derive(Serialize)]
#[serde(untagged)]
enum ReasonJson {
    Period {
        rule: &'static str,
        number: u32,
        /// `null`: unlimited.
        of: Option<u32>,
        oldest: bool,
    },
    Within {
        rule: &'static str,
        duration: String,
    },
    Plain {
        rule: &'static str,
    },
}

impl From<&Reason> for ReasonJson {
    fn from(reason: &Reason) -> Self {
        match *reason {
            Reason::Period {
                period,
                number,
                of,
                oldest,
            } => Self::Period {
                rule: period.name(),
                number,
                of,
                oldest,
            },
            Reason::Within(duration) => Self::Within {
                rule: "within",
                duration: duration.to_string(),
            },
            Reason::Newest => Self::Plain { rule: "newest" },
            Reason::TimeUnknown => Self::Plain {
                rule: "time_unknown",
            },
            Reason::AfterNow => Self::Plain { rule: "after_now" },
        }
    }
}

#[derive(Serialize)]
struct BackupJson<'a> {
    id: String,
    time: Option<String>,
    kind: &'static str,
    manifest: &'a str,
    action: &'static str,
    reasons: Vec<ReasonJson>,
    files_still_needed: usize,
}

#[derive(Serialize)]
struct RepositoryJson<'a> {
    storage: &'a str,
    relative_path: &'a str,
    backups: Vec<BackupJson<'a>>,
}

#[derive(Serialize)]
struct RemovedJson {
    manifests: Tally,
    data_files: Tally,
    temporary_files: Tally,
    markers: usize,
    bytes: u64,
}

#[derive(Serialize)]
struct WaitingJson {
    data_files: Tally,
    temporary_files: Tally,
    removable_after: Option<String>,
}

#[derive(Serialize)]
struct ProblemJson<'a> {
    key: &'a str,
    error: &'a str,
}

/// The `--json` document (README, "gitbak prune"): fields in this order.
#[derive(Serialize)]
struct PruneJson<'a> {
    dry_run: bool,
    now: String,
    grace: String,
    interrupted: bool,
    repositories: Vec<RepositoryJson<'a>>,
    removed: RemovedJson,
    waiting: WaitingJson,
    failed: Vec<ProblemJson<'a>>,
    locked: Vec<ProblemJson<'a>>,
    warnings: &'a [String],
}

fn repository_json<'a>(catalog: &'a Catalog, repository: &'a RepositoryPlan) -> RepositoryJson<'a> {
    let backups = repository
        .backups
        .iter()
        .map(|backup| BackupJson {
            id: backup_id(catalog, backup.manifest),
            time: catalog.backup_time(backup.manifest).map(|t| t.to_string()),
            manifest: catalog.manifests[backup.manifest].key.as_str(),
            kind: kind(catalog, backup.manifest),
            action: match backup.verdict {
                Verdict::Unreadable => "unreadable",
                ref verdict => action(verdict),
            },
            reasons: match &backup.verdict {
                Verdict::Keep(reasons) => reasons.iter().map(ReasonJson::from).collect(),
                _ => Vec::new(),
            },
            files_still_needed: backup.files_still_needed,
        })
        .collect();
    RepositoryJson {
        storage: repository.repository.storage.as_str(),
        relative_path: repository.repository.path.as_str(),
        backups,
    }
}

/// The deletions whose outcome `select` picks, with its detail.
fn problems<'a>(
    report: &'a PruneReport,
    select: fn(&Outcome) -> Option<&String>,
) -> Vec<ProblemJson<'a>> {
    let Some(executed) = &report.executed else {
        return Vec::new();
    };
    executed
        .all()
        .filter_map(|deletion| {
            Some(ProblemJson {
                key: deletion.key.as_str(),
                error: select(&deletion.outcome)?,
            })
        })
        .collect()
}

pub fn json(report: &PruneReport) -> String {
    let removed = removed(report);
    let (files, temporaries, earliest) = waiting(report);
    let document = PruneJson {
        dry_run: report.executed.is_none(),
        now: report.plan.now.to_string(),
        grace: report.grace.to_string(),
        interrupted: report.executed.as_ref().is_some_and(|e| e.interrupted),
        repositories: report
            .plan
            .repositories
            .iter()
            .map(|repository| repository_json(&report.catalog, repository))
            .collect(),
        removed: RemovedJson {
            bytes: removed.bytes(),
            manifests: removed.manifests,
            data_files: removed.files,
            temporary_files: removed.temporaries,
            markers: removed.markers,
        },
        waiting: WaitingJson {
            data_files: files,
            temporary_files: temporaries,
            removable_after: earliest,
        },
        failed: problems(report, |outcome| match outcome {
            Outcome::Failed(error) => Some(error),
            _ => None,
        }),
        locked: problems(report, |outcome| match outcome {
            Outcome::Locked(detail) => Some(detail),
            _ => None,
        }),
        warnings: &report.warnings,
    };
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
    text.push('\n');
    text
}
