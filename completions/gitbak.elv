
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
            cand --id 'Backup id. Default: the UTC time as YYYYMMDDhhmmss. Rerunning an id resumes it'
            cand --max-chain 'With --incremental: a chain of this many steps starts a new full backup (as do increments larger than the full backup)'
            cand --part-size 'Object storage upload part size, e.g. 16MiB (default 16 MiB, or Gitaly''s [backup] buffer_size)'
            cand --upload-concurrency 'Parts of one upload in flight at once'
            cand --local-storages-only 'Skip, with a log line, jobs whose storage is not configured on this node'
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
            cand --id 'Backup id to restore. Default: the latest backup of each repository'
            cand --at 'Restore each repository''s newest backup taken at or before TIME: RFC 3339 (2024-01-01T12:00:00Z, or with an offset) or YYYYMMDDhhmmss in UTC'
            cand --local-storages-only 'Skip, with a log line, jobs whose storage is not configured on this node'
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
            cand completions 'Print shell completions for SHELL to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gitbak;help;create'= {
        }
        &'gitbak;help;restore'= {
        }
        &'gitbak;help;completions'= {
        }
        &'gitbak;help;help'= {
        }
    ]
    $completions[$command]
}
