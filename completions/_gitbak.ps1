
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'gitbak' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'gitbak'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'gitbak' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Back up the repositories named on stdin (or every repository, with --discover)')
            [CompletionResult]::new('restore', 'restore', [CompletionResultType]::ParameterValue, 'Restore the repositories named on stdin from their latest backup, or from --id')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Show the backups a location holds, or one repository''s history')
            [CompletionResult]::new('prune', 'prune', [CompletionResultType]::ParameterValue, 'Remove the backups a retention policy does not keep, and the files no backup needs')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check that backups are whole and restore: every file there, with its recorded size and SHA-256')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print shell completions for SHELL to stdout')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gitbak;create' {
            [CompletionResult]::new('--path', '--path', [CompletionResultType]::ParameterName, 'Backup location: a directory, file:///DIR, s3://BUCKET, azblob://CONTAINER or gs://BUCKET. Default: Gitaly''s [backup] go_cloud_url')
            [CompletionResult]::new('--parallel', '--parallel', [CompletionResultType]::ParameterName, 'Maximum repositories processed at once (0: number of CPUs)')
            [CompletionResult]::new('--parallel-storage', '--parallel-storage', [CompletionResultType]::ParameterName, 'Maximum repositories processed at once per storage (0: 2)')
            [CompletionResult]::new('--storage', '--storage', [CompletionResultType]::ParameterName, 'Storage root directory; repeatable, or comma-separated; wins over the Gitaly config')
            [CompletionResult]::new('--gitaly-config', '--gitaly-config', [CompletionResultType]::ParameterName, 'Gitaly''s config.toml, for [[storage]] and [backup]. Default: /var/opt/gitlab/gitaly/config.toml if present')
            [CompletionResult]::new('--git', '--git', [CompletionResultType]::ParameterName, 'The git binary to run (2.45 or newer)')
            [CompletionResult]::new('--retries', '--retries', [CompletionResultType]::ParameterName, 'Retries of a failed object storage request (timeouts, 5xx, throttling) before giving up')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stdout as text (for a person) or JSON (for log pipelines). Default: text on a terminal, json otherwise')
            [CompletionResult]::new('--metrics-file', '--metrics-file', [CompletionResultType]::ParameterName, 'Write a Prometheus textfile for node_exporter here at the end of the run (atomically; other commands'' series in it are kept)')
            [CompletionResult]::new('--id', '--id', [CompletionResultType]::ParameterName, 'Backup id. Default: the UTC time as YYYYMMDDhhmmss. Rerunning an id resumes it')
            [CompletionResult]::new('--max-chain', '--max-chain', [CompletionResultType]::ParameterName, 'With --incremental: a chain of this many steps starts a new full backup (as do increments larger than the full backup)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Another run''s lock on a storage (gitbak-locks/ID/STORAGE) older than DURATION (such as 24h, 2d) is stale and replaced')
            [CompletionResult]::new('--part-size', '--part-size', [CompletionResultType]::ParameterName, 'Object storage upload part size, e.g. 16MiB (default 16 MiB, or Gitaly''s [backup] buffer_size)')
            [CompletionResult]::new('--upload-concurrency', '--upload-concurrency', [CompletionResultType]::ParameterName, 'Parts of one upload in flight at once')
            [CompletionResult]::new('--upload-memory', '--upload-memory', [CompletionResultType]::ParameterName, 'Memory for the part buffers of all uploads together, e.g. 1GiB (default 256 MiB); at least two parts. Uploads wait for room')
            [CompletionResult]::new('--local-storages-only', '--local-storages-only', [CompletionResultType]::ParameterName, 'Skip, with a log line, jobs whose storage is not configured on this node')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only warnings and errors (and the summary of a run that failed)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only warnings and errors (and the summary of a run that failed)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Diagnostics on stderr too (-vv: more); hides the progress display')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Diagnostics on stderr too (-vv: more); hides the progress display')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'No progress display on a terminal, no progress lines elsewhere')
            [CompletionResult]::new('--allow-empty', '--allow-empty', [CompletionResultType]::ParameterName, 'An empty job list is a success (exit 0) instead of an error (exit 2)')
            [CompletionResult]::new('--discover', '--discover', [CompletionResultType]::ParameterName, 'Back up every repository of every configured storage instead of reading stdin')
            [CompletionResult]::new('--incremental', '--incremental', [CompletionResultType]::ParameterName, 'Continue each repository''s latest backup: only what changed since is written, and nothing for an unchanged repository')
            [CompletionResult]::new('--immutable', '--immutable', [CompletionResultType]::ParameterName, 'Write-once buckets (S3 Object Lock, Azure immutability, GCS retention): never overwrite or delete anything, skip +latest.toml, send request checksums')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gitbak;restore' {
            [CompletionResult]::new('--path', '--path', [CompletionResultType]::ParameterName, 'Backup location: a directory, file:///DIR, s3://BUCKET, azblob://CONTAINER or gs://BUCKET. Default: Gitaly''s [backup] go_cloud_url')
            [CompletionResult]::new('--parallel', '--parallel', [CompletionResultType]::ParameterName, 'Maximum repositories processed at once (0: number of CPUs)')
            [CompletionResult]::new('--parallel-storage', '--parallel-storage', [CompletionResultType]::ParameterName, 'Maximum repositories processed at once per storage (0: 2)')
            [CompletionResult]::new('--storage', '--storage', [CompletionResultType]::ParameterName, 'Storage root directory; repeatable, or comma-separated; wins over the Gitaly config')
            [CompletionResult]::new('--gitaly-config', '--gitaly-config', [CompletionResultType]::ParameterName, 'Gitaly''s config.toml, for [[storage]] and [backup]. Default: /var/opt/gitlab/gitaly/config.toml if present')
            [CompletionResult]::new('--git', '--git', [CompletionResultType]::ParameterName, 'The git binary to run (2.45 or newer)')
            [CompletionResult]::new('--retries', '--retries', [CompletionResultType]::ParameterName, 'Retries of a failed object storage request (timeouts, 5xx, throttling) before giving up')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stdout as text (for a person) or JSON (for log pipelines). Default: text on a terminal, json otherwise')
            [CompletionResult]::new('--metrics-file', '--metrics-file', [CompletionResultType]::ParameterName, 'Write a Prometheus textfile for node_exporter here at the end of the run (atomically; other commands'' series in it are kept)')
            [CompletionResult]::new('--id', '--id', [CompletionResultType]::ParameterName, 'Backup id to restore. Default: the latest backup of each repository')
            [CompletionResult]::new('--at', '--at', [CompletionResultType]::ParameterName, 'Restore each repository''s newest backup taken at or before TIME: RFC 3339 (2024-01-01T12:00:00Z, or with an offset) or YYYYMMDDhhmmss in UTC')
            [CompletionResult]::new('--local-storages-only', '--local-storages-only', [CompletionResultType]::ParameterName, 'Skip, with a log line, jobs whose storage is not configured on this node')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only warnings and errors (and the summary of a run that failed)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only warnings and errors (and the summary of a run that failed)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Diagnostics on stderr too (-vv: more); hides the progress display')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Diagnostics on stderr too (-vv: more); hides the progress display')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'No progress display on a terminal, no progress lines elsewhere')
            [CompletionResult]::new('--allow-empty', '--allow-empty', [CompletionResultType]::ParameterName, 'An empty job list is a success (exit 0) instead of an error (exit 2)')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Restore every repository the location has a backup of (with --id: a backup under that id; with --at: one taken by then) instead of reading stdin. Storages not configured here are skipped')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gitbak;list' {
            [CompletionResult]::new('--path', '--path', [CompletionResultType]::ParameterName, 'Backup location: a directory, file:///DIR, s3://BUCKET, azblob://CONTAINER or gs://BUCKET. Default: Gitaly''s [backup] go_cloud_url')
            [CompletionResult]::new('--gitaly-config', '--gitaly-config', [CompletionResultType]::ParameterName, 'Gitaly''s config.toml, for [backup] go_cloud_url. Default: /var/opt/gitlab/gitaly/config.toml if present')
            [CompletionResult]::new('--retries', '--retries', [CompletionResultType]::ParameterName, 'Retries of a failed object storage request (timeouts, 5xx, throttling) before giving up')
            [CompletionResult]::new('--repository', '--repository', [CompletionResultType]::ParameterName, 'Show one repository''s history instead: STORAGE:PATH, as in a job line (default:@hashed/6b/86/6b86...git)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON (schema in the README) instead of a table')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gitbak;prune' {
            [CompletionResult]::new('--path', '--path', [CompletionResultType]::ParameterName, 'Backup location: a directory, file:///DIR, s3://BUCKET, azblob://CONTAINER or gs://BUCKET. Default: Gitaly''s [backup] go_cloud_url')
            [CompletionResult]::new('--gitaly-config', '--gitaly-config', [CompletionResultType]::ParameterName, 'Gitaly''s config.toml, for [backup] go_cloud_url. Default: /var/opt/gitlab/gitaly/config.toml if present')
            [CompletionResult]::new('--retries', '--retries', [CompletionResultType]::ParameterName, 'Retries of a failed object storage request (timeouts, 5xx, throttling) before giving up')
            [CompletionResult]::new('--keep-last', '--keep-last', [CompletionResultType]::ParameterName, 'Keep each repository''s N newest backups')
            [CompletionResult]::new('--keep-hourly', '--keep-hourly', [CompletionResultType]::ParameterName, 'Keep the newest backup of each of the N most recent hours that have one (UTC)')
            [CompletionResult]::new('--keep-daily', '--keep-daily', [CompletionResultType]::ParameterName, 'Keep the newest backup of each of the N most recent days that have one (UTC)')
            [CompletionResult]::new('--keep-weekly', '--keep-weekly', [CompletionResultType]::ParameterName, 'Keep the newest backup of each of the N most recent ISO weeks that have one')
            [CompletionResult]::new('--keep-monthly', '--keep-monthly', [CompletionResultType]::ParameterName, 'Keep the newest backup of each of the N most recent months that have one')
            [CompletionResult]::new('--keep-yearly', '--keep-yearly', [CompletionResultType]::ParameterName, 'Keep the newest backup of each of the N most recent years that have one')
            [CompletionResult]::new('--keep-within', '--keep-within', [CompletionResultType]::ParameterName, 'Keep every backup taken within DURATION (such as 30d, 1y6m, 2w, 36h) before each repository''s newest backup')
            [CompletionResult]::new('--now', '--now', [CompletionResultType]::ParameterName, 'Evaluate the policy and the grace period as of TIME (RFC 3339, or YYYYMMDDhhmmss in UTC) instead of now')
            [CompletionResult]::new('--grace', '--grace', [CompletionResultType]::ParameterName, 'Remove a data file only once no manifest has named it for this long (such as 24h, 7d, or 0 when nothing else writes to the location). A day is far longer than any one repository''s backup takes between choosing its base and writing its manifest')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Print the plan (each backup kept or removed, and why) and remove nothing')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Print the plan (each backup kept or removed, and why) and remove nothing')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON (schema in the README) instead of text')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gitbak;verify' {
            [CompletionResult]::new('--path', '--path', [CompletionResultType]::ParameterName, 'Backup location: a directory, file:///DIR, s3://BUCKET, azblob://CONTAINER or gs://BUCKET. Default: Gitaly''s [backup] go_cloud_url')
            [CompletionResult]::new('--gitaly-config', '--gitaly-config', [CompletionResultType]::ParameterName, 'Gitaly''s config.toml, for [backup] go_cloud_url. Default: /var/opt/gitlab/gitaly/config.toml if present')
            [CompletionResult]::new('--retries', '--retries', [CompletionResultType]::ParameterName, 'Retries of a failed object storage request (timeouts, 5xx, throttling) before giving up')
            [CompletionResult]::new('--id', '--id', [CompletionResultType]::ParameterName, 'Verify the backups of this id (every repository that has one) instead of each repository''s latest')
            [CompletionResult]::new('--at', '--at', [CompletionResultType]::ParameterName, 'Verify each repository''s newest backup taken at or before TIME (RFC 3339, or YYYYMMDDhhmmss in UTC), as restore --at picks it')
            [CompletionResult]::new('--repository', '--repository', [CompletionResultType]::ParameterName, 'Verify only this repository: STORAGE:PATH, as in a job line (default:@hashed/6b/86/6b86...git)')
            [CompletionResult]::new('--sample', '--sample', [CompletionResultType]::ParameterName, 'Verify N repositories picked at random (after --id, --at and --repository)')
            [CompletionResult]::new('--git', '--git', [CompletionResultType]::ParameterName, 'The git --deep runs (2.45 or newer)')
            [CompletionResult]::new('--metrics-file', '--metrics-file', [CompletionResultType]::ParameterName, 'Write a Prometheus textfile for node_exporter here at the end of the run (atomically; other commands'' series in it are kept)')
            [CompletionResult]::new('--deep', '--deep', [CompletionResultType]::ParameterName, 'Also restore each backup into a scratch directory under $TMPDIR (removed after), proving its bundles, chain and refs')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON (schema in the README) instead of a table')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gitbak;completions' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gitbak;help' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Back up the repositories named on stdin (or every repository, with --discover)')
            [CompletionResult]::new('restore', 'restore', [CompletionResultType]::ParameterValue, 'Restore the repositories named on stdin from their latest backup, or from --id')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Show the backups a location holds, or one repository''s history')
            [CompletionResult]::new('prune', 'prune', [CompletionResultType]::ParameterValue, 'Remove the backups a retention policy does not keep, and the files no backup needs')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check that backups are whole and restore: every file there, with its recorded size and SHA-256')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print shell completions for SHELL to stdout')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gitbak;help;create' {
            break
        }
        'gitbak;help;restore' {
            break
        }
        'gitbak;help;list' {
            break
        }
        'gitbak;help;prune' {
            break
        }
        'gitbak;help;verify' {
            break
        }
        'gitbak;help;completions' {
            break
        }
        'gitbak;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
