
use builtin;
use str;

set edit:completion:arg-completer[gitbak] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'gitbak'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'gitbak'= {
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand create 'Back up the repositories named on stdin (or every repository, with --discover)'
            cand restore 'Restore the repositories named on stdin from their latest backup, or from --id'
            cand list 'Show the backups a location holds, or one repository''s history'
            cand prune 'Remove the backups a retention policy does not keep, and the files no backup needs'
            cand verify 'Check that backups are whole and restore: every file there, with its recorded size and SHA-256'
            cand completions 'Print shell completions for SHELL to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gitbak;create'= {
            cand --path 'Backup location: a directory, file:///DIR, s3://BUCKET, azblob://CONTAINER or gs://BUCKET. Default: Gitaly''s [backup] go_cloud_url'
            cand --parallel 'Maximum repositories processed at once (0: number of CPUs)'
            cand --parallel-storage 'Maximum repositories processed at once per storage (0: 2)'
            cand --storage 'Storage root directory; repeatable, or comma-separated; wins over the Gitaly config'
            cand --gitaly-config 'Gitaly''s config.toml, for [[storage]] and [backup]. Default: /var/opt/gitlab/gitaly/config.toml if present'
            cand --git 'The git binary to run (2.45 or newer)'
            cand --retries 'Retries of a failed object storage request (timeouts, 5xx, throttling) before giving up'
            cand --log-format 'Log lines on stdout as text (for a person) or JSON (for log pipelines). Default: text on a terminal, json otherwise'
            cand --metrics-file 'Write a Prometheus textfile for node_exporter here at the end of the run (atomically; other commands'' series in it are kept)'
            cand --id 'Backup id. Default: the UTC time as YYYYMMDDhhmmss. Rerunning an id resumes it'
            cand --max-chain 'With --incremental: a chain of this many steps starts a new full backup (as do increments larger than the full backup)'
            cand --lock-timeout 'Another run''s lock on a storage (gitbak-locks/ID/STORAGE) older than DURATION (such as 24h, 2d) is stale and replaced'
            cand --part-size 'Object storage upload part size, e.g. 16MiB (default 16 MiB, or Gitaly''s [backup] buffer_size)'
            cand --upload-concurrency 'Parts of one upload in flight at once'
            cand --upload-memory 'Memory for the part buffers of all uploads together, e.g. 1GiB (default 256 MiB); at least two parts. Uploads wait for room'
            cand --local-storages-only 'Skip, with a log line, jobs whose storage is not configured on this node'
            cand -q 'Only warnings and errors (and the summary of a run that failed)'
            cand --quiet 'Only warnings and errors (and the summary of a run that failed)'
            cand -v 'Diagnostics on stderr too (-vv: more); hides the progress display'
            cand --verbose 'Diagnostics on stderr too (-vv: more); hides the progress display'
            cand --no-progress 'No progress display on a terminal, no progress lines elsewhere'
            cand --allow-empty 'An empty job list is a success (exit 0) instead of an error (exit 2)'
            cand --discover 'Back up every repository of every configured storage instead of reading stdin'
            cand --incremental 'Continue each repository''s latest backup: only what changed since is written, and nothing for an unchanged repository'
            cand --immutable 'Write-once buckets (S3 Object Lock, Azure immutability, GCS retention): never overwrite or delete anything, skip +latest.toml, send request checksums'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gitbak;restore'= {
            cand --path 'Backup location: a directory, file:///DIR, s3://BUCKET, azblob://CONTAINER or gs://BUCKET. Default: Gitaly''s [backup] go_cloud_url'
            cand --parallel 'Maximum repositories processed at once (0: number of CPUs)'
            cand --parallel-storage 'Maximum repositories processed at once per storage (0: 2)'
            cand --storage 'Storage root directory; repeatable, or comma-separated; wins over the Gitaly config'
            cand --gitaly-config 'Gitaly''s config.toml, for [[storage]] and [backup]. Default: /var/opt/gitlab/gitaly/config.toml if present'
            cand --git 'The git binary to run (2.45 or newer)'
            cand --retries 'Retries of a failed object storage request (timeouts, 5xx, throttling) before giving up'
            cand --log-format 'Log lines on stdout as text (for a person) or JSON (for log pipelines). Default: text on a terminal, json otherwise'
            cand --metrics-file 'Write a Prometheus textfile for node_exporter here at the end of the run (atomically; other commands'' series in it are kept)'
            cand --id 'Backup id to restore. Default: the latest backup of each repository'
            cand --at 'Restore each repository''s newest backup taken at or before TIME: RFC 3339 (2024-01-01T12:00:00Z, or with an offset) or YYYYMMDDhhmmss in UTC'
            cand --local-storages-only 'Skip, with a log line, jobs whose storage is not configured on this node'
            cand -q 'Only warnings and errors (and the summary of a run that failed)'
            cand --quiet 'Only warnings and errors (and the summary of a run that failed)'
            cand -v 'Diagnostics on stderr too (-vv: more); hides the progress display'
            cand --verbose 'Diagnostics on stderr too (-vv: more); hides the progress display'
            cand --no-progress 'No progress display on a terminal, no progress lines elsewhere'
            cand --allow-empty 'An empty job list is a success (exit 0) instead of an error (exit 2)'
            cand --all 'Restore every repository the location has a backup of (with --id: a backup under that id; with --at: one taken by then) instead of reading stdin. Storages not configured here are skipped'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gitbak;list'= {
            cand --path 'Backup location: a directory, file:///DIR, s3://BUCKET, azblob://CONTAINER or gs://BUCKET. Default: Gitaly''s [backup] go_cloud_url'
            cand --gitaly-config 'Gitaly''s config.toml, for [backup] go_cloud_url. Default: /var/opt/gitlab/gitaly/config.toml if present'
            cand --retries 'Retries of a failed object storage request (timeouts, 5xx, throttling) before giving up'
            cand --repository 'Show one repository''s history instead: STORAGE:PATH, as in a job line (default:@hashed/6b/86/6b86...git)'
            cand --json 'Print JSON (schema in the README) instead of a table'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gitbak;prune'= {
            cand --path 'Backup location: a directory, file:///DIR, s3://BUCKET, azblob://CONTAINER or gs://BUCKET. Default: Gitaly''s [backup] go_cloud_url'
            cand --gitaly-config 'Gitaly''s config.toml, for [backup] go_cloud_url. Default: /var/opt/gitlab/gitaly/config.toml if present'
            cand --retries 'Retries of a failed object storage request (timeouts, 5xx, throttling) before giving up'
            cand --keep-last 'Keep each repository''s N newest backups'
            cand --keep-hourly 'Keep the newest backup of each of the N most recent hours that have one (UTC)'
            cand --keep-daily 'Keep the newest backup of each of the N most recent days that have one (UTC)'
            cand --keep-weekly 'Keep the newest backup of each of the N most recent ISO weeks that have one'
            cand --keep-monthly 'Keep the newest backup of each of the N most recent months that have one'
            cand --keep-yearly 'Keep the newest backup of each of the N most recent years that have one'
            cand --keep-within 'Keep every backup taken within DURATION (such as 30d, 1y6m, 2w, 36h) before each repository''s newest backup'
            cand --now 'Evaluate the policy and the grace period as of TIME (RFC 3339, or YYYYMMDDhhmmss in UTC) instead of now'
            cand --grace 'Remove a data file only once no manifest has named it for this long (such as 24h, 7d, or 0 when nothing else writes to the location). A day is far longer than any one repository''s backup takes between choosing its base and writing its manifest'
            cand -n 'Print the plan (each backup kept or removed, and why) and remove nothing'
            cand --dry-run 'Print the plan (each backup kept or removed, and why) and remove nothing'
            cand --json 'Print JSON (schema in the README) instead of text'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gitbak;verify'= {
            cand --path 'Backup location: a directory, file:///DIR, s3://BUCKET, azblob://CONTAINER or gs://BUCKET. Default: Gitaly''s [backup] go_cloud_url'
            cand --gitaly-config 'Gitaly''s config.toml, for [backup] go_cloud_url. Default: /var/opt/gitlab/gitaly/config.toml if present'
            cand --retries 'Retries of a failed object storage request (timeouts, 5xx, throttling) before giving up'
            cand --id 'Verify the backups of this id (every repository that has one) instead of each repository''s latest'
            cand --at 'Verify each repository''s newest backup taken at or before TIME (RFC 3339, or YYYYMMDDhhmmss in UTC), as restore --at picks it'
            cand --repository 'Verify only this repository: STORAGE:PATH, as in a job line (default:@hashed/6b/86/6b86...git)'
            cand --sample 'Verify N repositories picked at random (after --id, --at and --repository)'
            cand --git 'The git --deep runs (2.45 or newer)'
            cand --metrics-file 'Write a Prometheus textfile for node_exporter here at the end of the run (atomically; other commands'' series in it are kept)'
            cand --deep 'Also restore each backup into a scratch directory under $TMPDIR (removed after), proving its bundles, chain and refs'
            cand --json 'Print JSON (schema in the README) instead of a table'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gitbak;completions'= {
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gitbak;help'= {
            cand create 'Back up the repositories named on stdin (or every repository, with --discover)'
            cand restore 'Restore the repositories named on stdin from their latest backup, or from --id'
            cand list 'Show the backups a location holds, or one repository''s history'
            cand prune 'Remove the backups a retention policy does not keep, and the files no backup needs'
            cand verify 'Check that backups are whole and restore: every file there, with its recorded size and SHA-256'
            cand completions 'Print shell completions for SHELL to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gitbak;help;create'= {
        }
        &'gitbak;help;restore'= {
        }
        &'gitbak;help;list'= {
        }
        &'gitbak;help;prune'= {
        }
        &'gitbak;help;verify'= {
        }
        &'gitbak;help;completions'= {
        }
        &'gitbak;help;help'= {
        }
    ]
    $completions[$command]
}
