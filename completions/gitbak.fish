# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_gitbak_global_optspecs
    string join \n h/help V/version
end

function __fish_gitbak_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_gitbak_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_gitbak_using_subcommand
    set -l cmd (__fish_gitbak_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c gitbak -n "__fish_gitbak_needs_command" -s h -l help -d 'Print help'
complete -c gitbak -n "__fish_gitbak_needs_command" -s V -l version -d 'Print version'
complete -c gitbak -n "__fish_gitbak_needs_command" -f -a "create" -d 'Back up the repositories named on stdin (or every repository, with --discover)'
complete -c gitbak -n "__fish_gitbak_needs_command" -f -a "restore" -d 'Restore the repositories named on stdin from their latest backup, or from --id'
complete -c gitbak -n "__fish_gitbak_needs_command" -f -a "list" -d 'Show the backups a location holds, or one repository\'s history'
complete -c gitbak -n "__fish_gitbak_needs_command" -f -a "prune" -d 'Remove the backups a retention policy does not keep, and the files no backup needs'
complete -c gitbak -n "__fish_gitbak_needs_command" -f -a "verify" -d 'Check that backups are whole and restore: every file there, with its recorded size and SHA-256'
complete -c gitbak -n "__fish_gitbak_needs_command" -f -a "completions" -d 'Print shell completions for SHELL to stdout'
complete -c gitbak -n "__fish_gitbak_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -l path -d 'Backup location: a directory, file:///DIR, s3://BUCKET, azblob://CONTAINER or gs://BUCKET. Default: Gitaly\'s [backup] go_cloud_url' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -l parallel -d 'Maximum repositories processed at once (0: number of CPUs)' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -l parallel-storage -d 'Maximum repositories processed at once per storage (0: 2)' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -l storage -d 'Storage root directory; repeatable, or comma-separated; wins over the Gitaly config' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -l gitaly-config -d 'Gitaly\'s config.toml, for [[storage]] and [backup]. Default: /var/opt/gitlab/gitaly/config.toml if present' -r -F
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -l git -d 'The git binary to run (2.45 or newer)' -r -F
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -l retries -d 'Retries of a failed object storage request (timeouts, 5xx, throttling) before giving up' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -l log-format -d 'Log lines on stdout as text (for a person) or JSON (for log pipelines). Default: text on a terminal, json otherwise' -r -f -a "text\t''
json\t''"
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -l metrics-file -d 'Write a Prometheus textfile for node_exporter here at the end of the run (atomically; other commands\' series in it are kept)' -r -F
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -l id -d 'Backup id. Default: the UTC time as YYYYMMDDhhmmss. Rerunning an id resumes it' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -l max-chain -d 'With --incremental: a chain of this many steps starts a new full backup (as do increments larger than the full backup)' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -l lock-timeout -d 'Another run\'s lock on a storage (gitbak-locks/ID/STORAGE) older than DURATION (such as 24h, 2d) is stale and replaced' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -l part-size -d 'Object storage upload part size, e.g. 16MiB (default 16 MiB, or Gitaly\'s [backup] buffer_size)' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -l upload-concurrency -d 'Parts of one upload in flight at once' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -l upload-memory -d 'Memory for the part buffers of all uploads together, e.g. 1GiB (default 256 MiB); at least two parts. Uploads wait for room' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -l local-storages-only -d 'Skip, with a log line, jobs whose storage is not configured on this node'
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -s q -l quiet -d 'Only warnings and errors (and the summary of a run that failed)'
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -s v -l verbose -d 'Diagnostics on stderr too (-vv: more); hides the progress display'
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -l no-progress -d 'No progress display on a terminal, no progress lines elsewhere'
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -l allow-empty -d 'An empty job list is a success (exit 0) instead of an error (exit 2)'
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -l discover -d 'Back up every repository of every configured storage instead of reading stdin'
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -l incremental -d 'Continue each repository\'s latest backup: only what changed since is written, and nothing for an unchanged repository'
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -l immutable -d 'Write-once buckets (S3 Object Lock, Azure immutability, GCS retention): never overwrite or delete anything, skip +latest.toml, send request checksums'
complete -c gitbak -n "__fish_gitbak_using_subcommand create" -s h -l help -d 'Print help'
complete -c gitbak -n "__fish_gitbak_using_subcommand restore" -l path -d 'Backup location: a directory, file:///DIR, s3://BUCKET, azblob://CONTAINER or gs://BUCKET. Default: Gitaly\'s [backup] go_cloud_url' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand restore" -l parallel -d 'Maximum repositories processed at once (0: number of CPUs)' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand restore" -l parallel-storage -d 'Maximum repositories processed at once per storage (0: 2)' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand restore" -l storage -d 'Storage root directory; repeatable, or comma-separated; wins over the Gitaly config' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand restore" -l gitaly-config -d 'Gitaly\'s config.toml, for [[storage]] and [backup]. Default: /var/opt/gitlab/gitaly/config.toml if present' -r -F
complete -c gitbak -n "__fish_gitbak_using_subcommand restore" -l git -d 'The git binary to run (2.45 or newer)' -r -F
complete -c gitbak -n "__fish_gitbak_using_subcommand restore" -l retries -d 'Retries of a failed object storage request (timeouts, 5xx, throttling) before giving up' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand restore" -l log-format -d 'Log lines on stdout as text (for a person) or JSON (for log pipelines). Default: text on a terminal, json otherwise' -r -f -a "text\t''
json\t''"
complete -c gitbak -n "__fish_gitbak_using_subcommand restore" -l metrics-file -d 'Write a Prometheus textfile for node_exporter here at the end of the run (atomically; other commands\' series in it are kept)' -r -F
complete -c gitbak -n "__fish_gitbak_using_subcommand restore" -l id -d 'Backup id to restore. Default: the latest backup of each repository' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand restore" -l at -d 'Restore each repository\'s newest backup taken at or before TIME: RFC 3339 (2024-01-01T12:00:00Z, or with an offset) or YYYYMMDDhhmmss in UTC' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand restore" -l local-storages-only -d 'Skip, with a log line, jobs whose storage is not configured on this node'
complete -c gitbak -n "__fish_gitbak_using_subcommand restore" -s q -l quiet -d 'Only warnings and errors (and the summary of a run that failed)'
complete -c gitbak -n "__fish_gitbak_using_subcommand restore" -s v -l verbose -d 'Diagnostics on stderr too (-vv: more); hides the progress display'
complete -c gitbak -n "__fish_gitbak_using_subcommand restore" -l no-progress -d 'No progress display on a terminal, no progress lines elsewhere'
complete -c gitbak -n "__fish_gitbak_using_subcommand restore" -l allow-empty -d 'An empty job list is a success (exit 0) instead of an error (exit 2)'
complete -c gitbak -n "__fish_gitbak_using_subcommand restore" -l all -d 'Restore every repository the location has a backup of (with --id: a backup under that id; with --at: one taken by then) instead of reading stdin. Storages not configured here are skipped'
complete -c gitbak -n "__fish_gitbak_using_subcommand restore" -s h -l help -d 'Print help'
complete -c gitbak -n "__fish_gitbak_using_subcommand list" -l path -d 'Backup location: a directory, file:///DIR, s3://BUCKET, azblob://CONTAINER or gs://BUCKET. Default: Gitaly\'s [backup] go_cloud_url' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand list" -l gitaly-config -d 'Gitaly\'s config.toml, for [backup] go_cloud_url. Default: /var/opt/gitlab/gitaly/config.toml if present' -r -F
complete -c gitbak -n "__fish_gitbak_using_subcommand list" -l retries -d 'Retries of a failed object storage request (timeouts, 5xx, throttling) before giving up' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand list" -l repository -d 'Show one repository\'s history instead: STORAGE:PATH, as in a job line (default:@hashed/6b/86/6b86...git)' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand list" -l json -d 'Print JSON (schema in the README) instead of a table'
complete -c gitbak -n "__fish_gitbak_using_subcommand list" -s h -l help -d 'Print help'
complete -c gitbak -n "__fish_gitbak_using_subcommand prune" -l path -d 'Backup location: a directory, file:///DIR, s3://BUCKET, azblob://CONTAINER or gs://BUCKET. Default: Gitaly\'s [backup] go_cloud_url' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand prune" -l gitaly-config -d 'Gitaly\'s config.toml, for [backup] go_cloud_url. Default: /var/opt/gitlab/gitaly/config.toml if present' -r -F
complete -c gitbak -n "__fish_gitbak_using_subcommand prune" -l retries -d 'Retries of a failed object storage request (timeouts, 5xx, throttling) before giving up' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand prune" -l keep-last -d 'Keep each repository\'s N newest backups' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand prune" -l keep-hourly -d 'Keep the newest backup of each of the N most recent hours that have one (UTC)' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand prune" -l keep-daily -d 'Keep the newest backup of each of the N most recent days that have one (UTC)' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand prune" -l keep-weekly -d 'Keep the newest backup of each of the N most recent ISO weeks that have one' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand prune" -l keep-monthly -d 'Keep the newest backup of each of the N most recent months that have one' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand prune" -l keep-yearly -d 'Keep the newest backup of each of the N most recent years that have one' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand prune" -l keep-within -d 'Keep every backup taken within DURATION (such as 30d, 1y6m, 2w, 36h) before each repository\'s newest backup' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand prune" -l now -d 'Evaluate the policy and the grace period as of TIME (RFC 3339, or YYYYMMDDhhmmss in UTC) instead of now' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand prune" -l grace -d 'Remove a data file only once no manifest has named it for this long (such as 24h, 7d, or 0 when nothing else writes to the location). A day is far longer than any one repository\'s backup takes between choosing its base and writing its manifest' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand prune" -s n -l dry-run -d 'Print the plan (each backup kept or removed, and why) and remove nothing'
complete -c gitbak -n "__fish_gitbak_using_subcommand prune" -l json -d 'Print JSON (schema in the README) instead of text'
complete -c gitbak -n "__fish_gitbak_using_subcommand prune" -s h -l help -d 'Print help'
complete -c gitbak -n "__fish_gitbak_using_subcommand verify" -l path -d 'Backup location: a directory, file:///DIR, s3://BUCKET, azblob://CONTAINER or gs://BUCKET. Default: Gitaly\'s [backup] go_cloud_url' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand verify" -l gitaly-config -d 'Gitaly\'s config.toml, for [backup] go_cloud_url. Default: /var/opt/gitlab/gitaly/config.toml if present' -r -F
complete -c gitbak -n "__fish_gitbak_using_subcommand verify" -l retries -d 'Retries of a failed object storage request (timeouts, 5xx, throttling) before giving up' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand verify" -l id -d 'Verify the backups of this id (every repository that has one) instead of each repository\'s latest' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand verify" -l at -d 'Verify each repository\'s newest backup taken at or before TIME (RFC 3339, or YYYYMMDDhhmmss in UTC), as restore --at picks it' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand verify" -l repository -d 'Verify only this repository: STORAGE:PATH, as in a job line (default:@hashed/6b/86/6b86...git)' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand verify" -l sample -d 'Verify N repositories picked at random (after --id, --at and --repository)' -r
complete -c gitbak -n "__fish_gitbak_using_subcommand verify" -l git -d 'The git --deep runs (2.45 or newer)' -r -F
complete -c gitbak -n "__fish_gitbak_using_subcommand verify" -l metrics-file -d 'Write a Prometheus textfile for node_exporter here at the end of the run (atomically; other commands\' series in it are kept)' -r -F
complete -c gitbak -n "__fish_gitbak_using_subcommand verify" -l deep -d 'Also restore each backup into a scratch directory under $TMPDIR (removed after), proving its bundles, chain and refs'
complete -c gitbak -n "__fish_gitbak_using_subcommand verify" -l json -d 'Print JSON (schema in the README) instead of a table'
complete -c gitbak -n "__fish_gitbak_using_subcommand verify" -s h -l help -d 'Print help'
complete -c gitbak -n "__fish_gitbak_using_subcommand completions" -s h -l help -d 'Print help'
complete -c gitbak -n "__fish_gitbak_using_subcommand help; and not __fish_seen_subcommand_from create restore list prune verify completions help" -f -a "create" -d 'Back up the repositories named on stdin (or every repository, with --discover)'
complete -c gitbak -n "__fish_gitbak_using_subcommand help; and not __fish_seen_subcommand_from create restore list prune verify completions help" -f -a "restore" -d 'Restore the repositories named on stdin from their latest backup, or from --id'
complete -c gitbak -n "__fish_gitbak_using_subcommand help; and not __fish_seen_subcommand_from create restore list prune verify completions help" -f -a "list" -d 'Show the backups a location holds, or one repository\'s history'
complete -c gitbak -n "__fish_gitbak_using_subcommand help; and not __fish_seen_subcommand_from create restore list prune verify completions help" -f -a "prune" -d 'Remove the backups a retention policy does not keep, and the files no backup needs'
complete -c gitbak -n "__fish_gitbak_using_subcommand help; and not __fish_seen_subcommand_from create restore list prune verify completions help" -f -a "verify" -d 'Check that backups are whole and restore: every file there, with its recorded size and SHA-256'
complete -c gitbak -n "__fish_gitbak_using_subcommand help; and not __fish_seen_subcommand_from create restore list prune verify completions help" -f -a "completions" -d 'Print shell completions for SHELL to stdout'
complete -c gitbak -n "__fish_gitbak_using_subcommand help; and not __fish_seen_subcommand_from create restore list prune verify completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
