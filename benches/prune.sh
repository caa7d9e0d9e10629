#!/usr/bin/env bash
# Retention (issue #11): REPOS repositories × DAYS daily incremental backups (a full every 7 days via
# --max-chain 7), stamped one day apart through GITBAK_NOW; then `prune --keep-daily 7
# --keep-weekly 4` must remove exactly what the policy says (checked against an independent
# Python model of restic's rules over the manifests on disk), the kept backups must restore, and
# the freed bytes are reported. Times `list` and `prune --dry-run` on the local filesystem (target:
# under 5 s each, warm page cache) and against S3 on moto (time and request count, from moto's
# request log).
#
#   benches/prune.sh                1000 repositories × 30 days (~15 min on 2 CPUs, most of it create)
#   QUICK=1 benches/prune.sh        100 repositories
#
# Environment: GITBAK (binary to time; default: cargo build --release of this checkout),
# BENCH_DIR (work directory, kept; the backup history is reused across runs; default: a temp dir,
# removed), REPOS, DAYS (≤ 31), RUNS (timed runs per figure, default 3), S3 (0 skips moto).
# Needs bash 5, git, coreutils, curl, python3, and for S3 the emulators of
# .ci/install-emulators.sh. Exit status: 0 all targets pass, 1 some target fails, 2 a command
# failed.
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
source_root=$(dirname "$bench_dir")

QUICK=${QUICK:-0}
RUNS=${RUNS:-3}
DAYS=${DAYS:-30}
S3=${S3:-1}
if [ "$QUICK" = 1 ]; then REPOS=${REPOS:-100}; else REPOS=${REPOS:-1000}; fi
TARGET_SECONDS=5
POLICY=(--keep-daily 7 --keep-weekly 4)
((DAYS >= 1 && DAYS <= 31)) || { echo "DAYS must be 1 to 31" >&2; exit 2; }

# shellcheck source=benches/lib.sh
. "$bench_dir/lib.sh"
build_gitbak
hermetic_git
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@gitbak.invalid GIT_AUTHOR_DATE="1767225600 +0000"
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@gitbak.invalid GIT_COMMITTER_DATE="1767225600 +0000"
unset GITBAK_NOW GITBAK_FAILPOINTS

emulators=${GITBAK_EMULATORS:-$HOME/.cache/gitbak-emulators}
venv=$emulators/venv
if [ "$S3" = 1 ]; then
	[ -x "$venv/bin/moto_server" ] || fail "moto missing in $emulators; run: bash .ci/install-emulators.sh (or S3=0)"
	command -v curl >/dev/null || fail "curl is needed"
fi

# --- work directory and cleanup ---------------------------------------------------------------
if [ -n "${BENCH_DIR:-}" ]; then
	mkdir -p "$BENCH_DIR"
	work=$(cd "$BENCH_DIR" && pwd -P)
	remove_work=
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/gitbak-prune.XXXXXX")
	remove_work=1
fi
moto_pid=
cleanup() {
	[ -z "$moto_pid" ] || kill "$moto_pid" 2>/dev/null || true
	[ -z "$remove_work" ] || rm -rf "$work"
}
trap cleanup EXIT
scratch=$work/scratch
rm -rf "$scratch"
mkdir -p "$scratch"
cp "$GITBAK" "$scratch/gitbak"
GITBAK=$scratch/gitbak

# run_to FILE CMD...: CMD with its stdout in FILE, so elapsed_us prints the time alone.
run_to() {
	local out=$1
	shift
	"$@" >"$out"
}
# cpu_ms FILE: CPU time in ms (user + system) of the children in the output of `times` in FILE.
cpu_ms() {
	awk 'NR == 2 {
		split($1, u, /[ms]/); split($2, s, /[ms]/)
		printf "%d\n", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * 1000 }' "$1"
}
# measure OUT CMD...: runs CMD with its stdout in OUT; prints its wall time in us and its CPU time
# in ms (run it in a subshell of its own, so that only CMD's CPU is counted).
measure() {
	local us file=$scratch/times.$BASHPID
	us=$(elapsed_us run_to "$@")
	# Here, not in a pipeline or $(...): there `times` would see that subshell's children, none.
	times >"$file"
	echo "$us $(cpu_ms "$file")"
}
day_time() { date -u -d "2026-01-01 +$(($1 - 1)) days 02:00:00" +%Y-%m-%dT%H:%M:%SZ; }

# --- the node: REPOS copies of one repository holding DAYS commits ----------------------------
# Commit 1 carries 16 KiB of random bytes, so a full bundle outweighs six one-file increments and
# chains end at --max-chain alone. Day d's backup sees refs/heads/main at commit d.
root=$work/node-$REPOS-$DAYS
jobs=$root/jobs.jsonl
if [ ! -e "$root/.done" ]; then
	progress "building $REPOS repositories of $DAYS commits in $root"
	rm -rf "$root"
	mkdir -p "$root/storage"
	template=$root/template.git
	git init -q --bare "$template"
	{
		for ((d = 1; d <= DAYS; d++)); do
			echo "commit refs/heads/main"
			echo "committer bench <bench@gitbak.invalid> $((1767225600 + d * 86400)) +0000"
			echo "data <<EOM"
			echo "day $d"
			echo "EOM"
			if ((d == 1)); then
				echo "M 100644 inline noise.bin"
				head -c 12288 /dev/urandom | base64 -w0 | head -c 16384 | { printf 'data 16384\n'; cat; }
				echo
			fi
			echo "M 100644 inline day-$d.txt"
			echo "data <<EOM"
			echo "day $d"
			echo "EOM"
			echo
		done
	} | git -C "$template" fast-import --quiet
	git -C "$template" rev-list --reverse refs/heads/main >"$root/commits"
	: >"$jobs"
	for ((n = 1; n <= REPOS; n++)); do
		printf -v rel '@hashed/%02x/%02x/%d.git' $((n * 37 % 256)) $((n * 101 % 256)) "$n"
		mkdir -p "$(dirname "$root/storage/$rel")"
		cp -a "$template" "$root/storage/$rel"
		printf '{"storage_name":"default","relative_path":"%s"}\n' "$rel" >>"$jobs"
	done
	touch "$root/.done"
fi
mapfile -t commits <"$root/commits"
mapfile -t repos < <(python3 -c '
import json, sys
for line in sys.stdin:
    print(json.loads(line)["relative_path"])' <"$jobs")

# --- the history: DAYS incremental runs, each stamped with its day ----------------------------
pristine=$root/backups
if [ ! -e "$root/.history-done" ]; then
	rm -rf "$pristine"
	create_us=()
	for ((d = 1; d <= DAYS; d++)); do
		progress "day $d/$DAYS: create --incremental --max-chain 7 of $REPOS repositories"
		for repo in "${repos[@]}"; do
			rm -f "$root/storage/$repo/packed-refs"
			printf '%s\n' "${commits[d - 1]}" >"$root/storage/$repo/refs/heads/main"
		done
		create_us+=("$(elapsed_us run_to "$scratch/create-$d.log" env GITBAK_NOW="$(day_time "$d")" \
			"$GITBAK" create --incremental --max-chain 7 --path "$pristine" --storage "default=$root/storage" <"$jobs")")
	done
	echo "$(median "${create_us[@]}")" >"$root/create-median-us"
	touch "$root/.history-done"
fi

# --- the model: what the policy keeps and what pruning must leave -----------------------------
# An implementation of restic's rules of its own (newest per period, ORed, the oldest kept while
# budget remains), over the backups the manifests on disk show; and the keys that remain once
# every file no kept manifest names is gone.
cat >"$scratch/model.py" <<'EOF'
import datetime, json, os, sys, tomllib

location, out = sys.argv[1], sys.argv[2]
keys = {}
for dirpath, _, names in os.walk(location):
    for name in names:
        path = os.path.join(dirpath, name)
        keys[os.path.relpath(path, location)] = os.stat(path).st_size

def when(backup_id):
    return datetime.datetime.strptime(backup_id, "%Y%m%d%H%M%S")

history = {}
for key in keys:
    if key.startswith("manifests/") and key.endswith(".toml") and not key.endswith("+latest.toml"):
        repository, name = key.rsplit("/", 1)
        history.setdefault(repository, []).append(name[: -len(".toml")])

def kept(ids):
    newest_first = sorted(ids, key=when, reverse=True)
    keep = set()
    for count, period in ((7, lambda t: t.date()), (4, lambda t: t.isocalendar()[:2])):
        last, left = None, count
        for position, backup_id in enumerate(newest_first):
            if left == 0:
                break
            bucket = period(when(backup_id))
            if bucket != last or position == len(newest_first) - 1:
                keep.add(backup_id)
                last, left = bucket, left - 1
    return keep

def named(manifest_key):
    with open(os.path.join(location, manifest_key), "rb") as f:
        manifest = tomllib.load(f)
    paths = set()
    for step in manifest.get("steps", []):
        paths.update(v for k, v in step.items() if k.endswith("_path") and v)
    paths.update(f["path"] for f in manifest.get("gitbak", {}).get("files", []))
    return paths

removed_manifests, kept_manifests, kept_ids = set(), set(), set()
for repository, ids in history.items():
    keep = kept(ids)
    kept_ids |= keep
    for backup_id in ids:
        key = f"{repository}/{backup_id}.toml"
        (kept_manifests if backup_id in keep else removed_manifests).add(key)
kept_manifests |= {key for key in keys if key.endswith("+latest.toml")}
still_named = set().union(*(named(key) for key in kept_manifests))
data = {k for k in keys if not k.startswith(("manifests/", "backup_ids/"))}
freed_data = {k for k in data if k not in still_named}
removed_markers = {k for k in keys if k.startswith("backup_ids/") and k.split("/", 1)[1] not in kept_ids}
after_first = set(keys) - removed_manifests - removed_markers | {"gitbak-prune/unreferenced.json"}
json.dump({
    "backups_per_repository": len(next(iter(history.values()))),
    "kept_ids": sorted(kept_ids),
    "removed_manifests": len(removed_manifests),
    "removed_manifest_bytes": sum(keys[k] for k in removed_manifests),
    "removed_markers": len(removed_markers),
    "freed_data": len(freed_data),
    "freed_data_bytes": sum(keys[k] for k in freed_data),
    "after_first": sorted(after_first),
    "after_sweep": sorted(after_first - freed_data),
}, open(out, "w"))
EOF
progress "modelling the policy over the manifests on disk"
python3 "$scratch/model.py" "$pristine" "$scratch/model.json"
model() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$scratch/model.json" "$1"; }
# keys_equal DIR_OR_FILE FIELD: the keys present equal the model's list FIELD.
keys_equal() {
	python3 - "$1" "$scratch/model.json" "$2" <<'EOF'
import json, os, sys
source, model, field = sys.argv[1:]
if os.path.isdir(source):
    have = {os.path.relpath(os.path.join(d, n), source) for d, _, ns in os.walk(source) for n in ns}
else:
    have = set(json.load(open(source)))
want = set(json.load(open(model))[field])
if have != want:
    print("unexpected:", sorted(have - want)[:5], "missing:", sorted(want - have)[:5], file=sys.stderr)
    sys.exit(1)
EOF
}
json_field() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
for part in sys.argv[2].split("."): d = d[part]
print(d)' "$1" "$2"; }

# The chains: a full backup of every repository on days 1, 8, 15, …
"$GITBAK" list --path "$pristine" --json >"$scratch/list.json"
python3 - "$scratch/list.json" "$REPOS" "$DAYS" <<'EOF' || fail "the history is not $DAYS runs with a full backup every 7 days"
import json, sys
rows = json.load(open(sys.argv[1]))["backups"]
repos, days = int(sys.argv[2]), int(sys.argv[3])
assert len(rows) == days, len(rows)
for day, row in enumerate(rows, 1):
    kind = "full" if day % 7 == 1 else "incremental"
    assert row[kind] == repos and row["repositories"] == repos and row["finished"], (day, row)
EOF

# --- local filesystem ---------------------------------------------------------------------------
local=$scratch/local
progress "copying the history to $local"
cp -a "$pristine" "$local"
"$GITBAK" list --path "$local" --json >/dev/null # warms the page cache
list_us=() dry_us=() list_cpu=() dry_cpu=()
for ((i = 1; i <= RUNS; i++)); do
	progress "local: list and prune --dry-run, run $i/$RUNS"
	read -r us cpu < <(measure "$scratch/local-list.json" "$GITBAK" list --path "$local" --json)
	list_us+=("$us") list_cpu+=("$cpu")
	read -r us cpu < <(measure "$scratch/local-dry.json" "$GITBAK" prune --path "$local" "${POLICY[@]}" --dry-run --json)
	dry_us+=("$us") dry_cpu+=("$cpu")
done
[ "$(json_field "$scratch/local-dry.json" removed.manifests.count)" = "$(model removed_manifests)" ] ||
	fail "the dry run would remove other manifests than the policy says"

progress "local: prune (default grace), then prune a day later"
now=$(date -u -d "$(day_time "$DAYS") +1 hour" +%Y-%m-%dT%H:%M:%SZ)
later=$(date -u -d "$(day_time "$DAYS") +1 day +2 hours" +%Y-%m-%dT%H:%M:%SZ)
prune1_us=$(elapsed_us run_to "$scratch/local-prune-1.json" "$GITBAK" prune --path "$local" "${POLICY[@]}" --now "$now" --json)
keys_equal "$local" after_first || fail "the first prune left other keys than the policy says"
[ "$(json_field "$scratch/local-prune-1.json" waiting.data_files.count)" = "$(model freed_data)" ] ||
	fail "the first prune recorded other files for the grace period"
prune2_us=$(elapsed_us run_to "$scratch/local-prune-2.json" "$GITBAK" prune --path "$local" "${POLICY[@]}" --now "$later" --json)
keys_equal "$local" after_sweep || fail "the second prune left other keys than the policy says"
[ "$(json_field "$scratch/local-prune-2.json" removed.data_files.bytes)" = "$(model freed_data_bytes)" ] ||
	fail "the freed bytes differ from the model's"
freed_bytes=$(($(json_field "$scratch/local-prune-1.json" removed.bytes) + $(json_field "$scratch/local-prune-2.json" removed.bytes)))

# The oldest kept backup of two repositories restores to its day's commit.
oldest_kept=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["kept_ids"][0])' "$scratch/model.json")
oldest_day=$(((($(date -u -d "${oldest_kept:0:8}" +%s) - $(date -u -d 20260101 +%s)) / 86400) + 1))
for repo in "${repos[0]}" "${repos[$((REPOS - 1))]}"; do
	rm -rf "$scratch/restored"
	mkdir -p "$scratch/restored"
	printf '{"storage_name":"default","relative_path":"%s"}\n' "$repo" |
		"$GITBAK" restore --path "$local" --storage "default=$scratch/restored" --id "$oldest_kept" >"$scratch/restore.log" ||
		fail "restoring $repo at $oldest_kept failed (log: $scratch/restore.log)"
	[ "$(git -C "$scratch/restored/$repo" rev-parse refs/heads/main)" = "${commits[oldest_day - 1]}" ] ||
		fail "$repo restored at $oldest_kept is not day $oldest_day's commit"
done

# --- S3 on moto ---------------------------------------------------------------------------------
s3_rows=()
if [ "$S3" = 1 ]; then
	port=$(free_port)
	endpoint=http://127.0.0.1:$port
	progress "starting moto on $endpoint"
	"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$scratch/moto.log" 2>&1 &
	moto_pid=$!
	deadline=$((SECONDS + 60))
	until curl -s -o /dev/null "$endpoint/"; do
		kill -0 "$moto_pid" 2>/dev/null || fail "moto exited at start (log: $scratch/moto.log)"
		((SECONDS < deadline)) || fail "moto did not answer within 60 s"
		sleep 0.2
	done
	export AWS_ACCESS_KEY_ID=gitbak-bench AWS_SECRET_ACCESS_KEY=gitbak-bench-secret \
		AWS_EC2_METADATA_DISABLED=true AWS_DEFAULT_REGION=us-east-1
	unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL
	progress "uploading the history to moto"
	"$venv/bin/python" - "$endpoint" "$pristine" <<'EOF' || fail "uploading to moto failed"
import boto3, os, sys
from concurrent.futures import ThreadPoolExecutor
endpoint, location = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
s3.create_bucket(Bucket="prune-bench")
files = [os.path.join(d, n) for d, _, ns in os.walk(location) for n in ns]
def put(path):
    with open(path, "rb") as f:
        s3.put_object(Bucket="prune-bench", Key=os.path.relpath(path, location), Body=f.read())
with ThreadPoolExecutor(16) as pool:
    list(pool.map(put, files))
EOF
	s3_url="s3://prune-bench?endpoint=$endpoint&use_path_style=true&region=us-east-1"
	# s3_run NAME OUT CMD...: times CMD against moto, its stdout in OUT; appends "NAME
	# microseconds requests" to s3_rows, the requests counted in moto's request log.
	s3_run() {
		local name=$1 out=$2 before after us
		shift 2
		before=$(grep -cE '" [0-9]{3} ' "$scratch/moto.log" || true)
		us=$(elapsed_us run_to "$out" "$@")
		after=$(grep -cE '" [0-9]{3} ' "$scratch/moto.log" || true)
		s3_rows+=("$name $us $((after - before))")
	}
	progress "S3: list"
	s3_run "list --json" "$scratch/s3-list.json" "$GITBAK" list --path "$s3_url" --json
	progress "S3: prune --dry-run"
	s3_run "prune --dry-run" "$scratch/s3-dry.json" "$GITBAK" prune --path "$s3_url" "${POLICY[@]}" --dry-run --json
	progress "S3: prune, then prune a day later"
	s3_run "prune (manifests, markers)" "$scratch/s3-prune-1.json" "$GITBAK" prune --path "$s3_url" "${POLICY[@]}" --now "$now" --json
	s3_run "prune a day later (files)" "$scratch/s3-prune-2.json" "$GITBAK" prune --path "$s3_url" "${POLICY[@]}" --now "$later" --json
	"$venv/bin/python" - "$endpoint" "$scratch/s3-keys.json" <<'EOF' || fail "listing moto failed"
import boto3, json, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="prune-bench") for o in page.get("Contents", [])]
json.dump(keys, open(sys.argv[2], "w"))
EOF
	keys_equal "$scratch/s3-keys.json" after_sweep || fail "prune on S3 left other keys than the policy says"
fi

# --- report -------------------------------------------------------------------------------------
python3 - "$scratch/model.json" "$(median "${list_us[@]}")" "$(median "${dry_us[@]}")" \
	"$prune1_us" "$prune2_us" "$freed_bytes" "$REPOS" "$DAYS" "$TARGET_SECONDS" \
	"$(cat "$root/create-median-us")" "$(median "${list_cpu[@]}")" "$(median "${dry_cpu[@]}")" \
	"$GITBAK" "$built_checkout" "${s3_rows[@]}" <<'EOF'
import json, os, subprocess, sys
model = json.load(open(sys.argv[1]))
list_us, dry_us, prune1_us, prune2_us, freed, repos, days, target, create_us, list_cpu, dry_cpu = map(int, sys.argv[2:13])
binary, checkout, s3 = sys.argv[13], sys.argv[14], sys.argv[15:]
version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
load = open("/proc/loadavg").read().split()[:3]
print("gitbak prune benchmark")
print(f"  gitbak:   {binary} ({version}; {checkout})")
print(f"  machine:  {os.cpu_count()} CPUs, load {' '.join(load)}")
print(f"  location: {repos} repositories x {days} daily backups, a full every 7 "
      f"({repos * days} manifests); create --incremental of one day: {create_us / 1e6:.1f} s (median)")
print(f"  policy:   --keep-daily 7 --keep-weekly 4 keeps {len(model['kept_ids'])} of "
      f"{model['backups_per_repository']} backups per repository: {', '.join(i[:8] for i in model['kept_ids'])}")
print(f"  removed:  {model['removed_manifests']} manifests ({model['removed_manifest_bytes']} B), "
      f"{model['removed_markers']} markers, then {model['freed_data']} data files "
      f"({model['freed_data_bytes']} B) after the grace period: freed {freed} B ({freed / 2**20:.1f} MiB)")
print("  checked:  keys left after each prune equal the model's; the oldest kept backup restores")
print()
failed = 0
print("%-34s %10s %12s %8s" % ("local filesystem", "seconds", "CPU seconds", "target"))
for name, us, cpu, limit in (("list --json", list_us, list_cpu, target), ("prune --dry-run", dry_us, dry_cpu, target),
                             ("prune (manifests, markers)", prune1_us, None, None),
                             ("prune a day later (files)", prune2_us, None, None)):
    verdict = "" if limit is None else ("PASS" if us / 1e6 < limit else "FAIL")
    failed += verdict == "FAIL"
    shown_cpu = "" if cpu is None else "%.2f" % (cpu / 1e3)
    print("%-34s %10.2f %12s %8s  %s" % (name, us / 1e6, shown_cpu, "<%g" % limit if limit else "", verdict))
print("  (seconds: wall, median of the runs; CPU seconds: user + system of gitbak, all its threads)")
if s3:
    print()
    print("%-34s %10s %10s" % ("S3 on moto", "seconds", "requests"))
    for row in s3:
        *name, us, requests = row.split(" ")
        print("%-34s %10.2f %10s" % (" ".join(name), int(us) / 1e6, requests))
sys.exit(1 if failed else 0)
EOF
