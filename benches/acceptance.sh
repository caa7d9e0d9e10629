#!/usr/bin/env bash
# Acceptance figures: gitbak create/restore timed against plain git baselines, and gitbak's own
# peak RSS. Prints absolute numbers, the median ratio gitbak ÷ baseline, and PASS/FAIL per target.
#
#   benches/acceptance.sh                 full run (~300 MB repo, 50k refs, 1000 small repos)
#   QUICK=1 benches/acceptance.sh         smaller (SIZE_MB=50, 200 small repos)
#
# Environment: GITBAK (binary to time; default: cargo build --release of this checkout),
# BENCH_DIR (work directory, kept, fixtures reused across runs; default: a temp dir, removed),
# RUNS (timed runs per side, default 3), SIZE_MB, REFS, SMALL_REPOS, QUICK,
# SMALL_RESTORE_BASELINE=1 (also time a sequential `git clone --mirror` loop against the small
# restores; off by default, it adds ~100 ms per repository per run).
# Needs bash 5, git, coreutils, python3 (medians and the table). Exit status: 0 all targets
# pass, 1 some target fails, 2 a command failed.
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
source_root=$(dirname "$bench_dir")
fixture_scripts=$source_root/fixtures/repos

QUICK=${QUICK:-0}
RUNS=${RUNS:-3}
if [ "$QUICK" = 1 ]; then
	SIZE_MB=${SIZE_MB:-50}
	SMALL_REPOS=${SMALL_REPOS:-200}
else
	SIZE_MB=${SIZE_MB:-300}
	SMALL_REPOS=${SMALL_REPOS:-1000}
fi
REFS=${REFS:-50000}
export SIZE_MB REFS
unset COMMITS # make-large.sh's knob; keep its default so figures compare across machines

# shellcheck source=benches/lib.sh
. "$bench_dir/lib.sh"

# --- binary ---------------------------------------------------------------------------------
build_gitbak

# --- hermetic git, same for gitbak and the baselines ----------------------------------------
hermetic_git

# --- work directory -------------------------------------------------------------------------
if [ -n "${BENCH_DIR:-}" ]; then
	mkdir -p "$BENCH_DIR"
	work=$(cd "$BENCH_DIR" && pwd -P)
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/gitbak-bench.XXXXXX")
	trap 'rm -rf "$work"' EXIT
fi
scratch=$work/scratch # everything the runs write; fixtures live beside it and are reused
rm -rf "$scratch"
mkdir -p "$scratch"
results=$scratch/results.tsv
: >"$results"
# A private copy, so a concurrent `cargo build` cannot swap the binary halfway through the runs.
cp "$GITBAK" "$scratch/gitbak"
gitbak_source=$GITBAK
GITBAK=$scratch/gitbak

# --- helpers --------------------------------------------------------------------------------

# timed ARRAY CMD...: runs CMD (with the caller's redirections) and appends its wall time in
# microseconds to ARRAY. EPOCHREALTIME is a builtin, so nothing is forked around the command.
timed() {
	local -n timed_into=$1
	shift
	local start=$EPOCHREALTIME status=0
	"$@" || status=$?
	local end=$EPOCHREALTIME
	((status == 0)) || fail "exit $status: $* (logs in $scratch)"
	timed_into+=($((${end/./} - ${start/./})))
}

# warm PATH...: reads every file under PATH into the page cache, outside the timing. Some hosts
# reclaim idle page cache within a minute (e.g. DAMON-based proactive reclaim), so the inputs of
# each timed run are read again just before it, for gitbak and baseline alike.
warm() {
	find "$@" -type f -exec cat {} + >/dev/null
}

# peak_rss STDIN STDOUT CMD...: runs CMD in the background and prints the VmHWM (KiB) of that
# process alone, polled every ~20 ms until it exits. VmHWM only grows, so the last value read is
# the peak (up to the last 20 ms). Git children have their own /proc entries and are not counted,
# unlike /usr/bin/time's max RSS.
peak_rss() {
	local input=$1 output=$2 pid peak=0 key value rest status=0
	shift 2
	"$@" <"$input" >"$output" 2>&1 &
	pid=$!
	while [ -e "/proc/$pid/status" ]; do
		{
			while read -r key value rest; do
				if [ "$key" = VmHWM: ]; then peak=$value; fi
			done <"/proc/$pid/status"
		} 2>/dev/null || true
		sleep 0.02
	done
	wait "$pid" || status=$?
	((status == 0)) || fail "exit $status: $* (log: $output)"
	echo "$peak"
}

# children_cpu_us VAR: sets VAR to the user + system CPU (us) of every child this shell has
# reaped so far (`times`; a child's figure includes the git processes it waited for). Not in a
# command substitution: a subshell would report its own children.
children_cpu_us() {
	local -n children_cpu_into=$1
	local shell_user shell_sys user sys minutes
	times >"$scratch/times"
	{
		read -r shell_user shell_sys
		read -r user sys
	} <"$scratch/times"
	children_cpu_into=0
	for minutes in "$user" "$sys"; do # XmY.YYYs
		local seconds=${minutes#*m}
		seconds=${seconds%s}
		children_cpu_into=$((children_cpu_into + ${minutes%%m*} * 60000000 + 10#${seconds/./} * 1000))
	done
}

# record_timing LABEL BASELINE TARGET GITBAK_US BASELINE_US: one row of the figures table.
record_timing() {
	printf 'time\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >>"$results"
}
record_rss() {
	printf 'rss\t%s\t%s\t%s\n' "$1" "$2" "$3" >>"$results"
}
joined() {
	local IFS=,
	echo "$*"
}

job_line() { printf '{"storage_name":"%s","relative_path":"%s"}\n' "$1" "$2"; }

# same_refs A B: a restore must give back the same refs (checked once, outside the timing).
same_refs() {
	cmp -s <(git -C "$1" for-each-ref --format='%(objectname) %(refname)') \
		<(git -C "$2" for-each-ref --format='%(objectname) %(refname)') ||
		fail "refs of $2 differ from $1"
}

# --- fixtures (reused from BENCH_DIR when already built) ------------------------------------

# fixture DIR SCRIPT REL: builds DIR/REL with fixtures/repos/SCRIPT unless DIR/.done exists.
fixture() {
	local dir=$1 script=$2 rel=$3
	if [ ! -e "$dir/.done" ]; then
		progress "building $dir/$rel ($script)"
		rm -rf "$dir"
		mkdir -p "$dir"
		"$fixture_scripts/$script" "$dir" "$rel" >/dev/null || fail "$script failed"
		touch "$dir/.done"
	fi
}

large_root=$work/large-${SIZE_MB}mb
fixture "$large_root" make-large.sh large.git
many_root=$work/many-refs-$REFS
fixture "$many_root" make-many-refs.sh many-refs.git

# SMALL_REPOS copies of one make-linear.sh repository, alternating between two storages, at
# @hashed/xx/yy/<n>.git. small_jobs holds the stdin for gitbak; small_repos the same as paths.
small_root=$work/small-$SMALL_REPOS
small_jobs=$small_root/jobs.jsonl
if [ ! -e "$small_root/.done" ]; then
	progress "building $SMALL_REPOS small repositories in $small_root"
	rm -rf "$small_root"
	mkdir -p "$small_root/default" "$small_root/second"
	"$fixture_scripts/make-linear.sh" "$small_root/template" linear.git >/dev/null
	: >"$small_jobs"
	for ((n = 1; n <= SMALL_REPOS; n++)); do
		if ((n % 2)); then storage=default; else storage=second; fi
		printf -v rel '@hashed/%02x/%02x/%d.git' $((n * 37 % 256)) $((n * 101 % 256)) "$n"
		mkdir -p "$(dirname "$small_root/$storage/$rel")"
		cp -a "$small_root/template/linear.git" "$small_root/$storage/$rel"
		job_line "$storage" "$rel" >>"$small_jobs"
	done
	touch "$small_root/.done"
fi
small_repos=()
while IFS=$'\t' read -r storage rel; do
	small_repos+=("$small_root/$storage/$rel")
done < <(python3 -c '
import json, sys
for line in sys.stdin:
    job = json.loads(line)
    print(job["storage_name"] + "\t" + job["relative_path"])' <"$small_jobs")

# --- header ---------------------------------------------------------------------------------
load_average() { cut -d' ' -f1-3 /proc/loadavg; }
start_load=$(load_average)
{
	echo "gitbak acceptance benchmark"
	echo "  gitbak:   $gitbak_source ($("$GITBAK" --version 2>/dev/null || echo '?'))"
	echo "  checkout: $built_checkout"
	echo "  git:      $(git --version)"
	echo "  machine:  $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
	echo "  work dir: $work ($(df -PT "$work" | awk 'NR == 2 {print $2}'))"
	echo "  runs:     $RUNS per side, alternating gitbak/baseline; SIZE_MB=$SIZE_MB REFS=$REFS SMALL_REPOS=$SMALL_REPOS"
	echo "  cache:    warm, nothing dropped: untimed gitbak create + restore and git bundle create"
	echo "            precede each set of timed runs, and each run's inputs are read just before it"
	echo "  gitbak:   default parallelism (--parallel 0 = $(nproc) CPUs, 2 per storage)"
	echo "  load:     $start_load at start (1/5/15 min)"
	echo
}

# --- one large repository and the 50k-ref repository ----------------------------------------

# bench_one_repo NAME ROOT REL CREATE_TARGET RESTORE_TARGET RSS_TARGET_MIB
bench_one_repo() {
	local name=$1 root=$2 rel=$3 create_target=$4 restore_target=$5 rss_target=$6
	local dir=$scratch/$name repo=$root/$rel jobs=$scratch/$name/jobs.jsonl i kib
	local -a gitbak_create=() git_bundle=() gitbak_restore=() git_clone=()
	mkdir -p "$dir"
	job_line default "$rel" >"$jobs"

	# Untimed first runs, which also warm the cache: the backup and the bundle that the
	# restores read, with gitbak's peak RSS measured on its run.
	progress "$name: untimed create (peak RSS) and bundle"
	kib=$(peak_rss "$jobs" "$dir/create-rss.log" \
		"$GITBAK" create --path "$dir/backup" --storage "default=$root" --id restore)
	record_rss "$name: create" "$kib" "$rss_target"
	git -C "$repo" bundle create "$dir/full.bundle" --all 2>"$dir/git.log"

	progress "$name: untimed restore (peak RSS)"
	mkdir -p "$dir/restored"
	kib=$(peak_rss "$jobs" "$dir/restore-rss.log" \
		"$GITBAK" restore --path "$dir/backup" --storage "default=$dir/restored" --id restore)
	record_rss "$name: restore" "$kib" "$rss_target"
	same_refs "$repo" "$dir/restored/$rel"
	rm -rf "$dir/restored/$rel"

	for ((i = 1; i <= RUNS; i++)); do
		progress "$name: create run $i/$RUNS"
		warm "$repo"
		timed gitbak_create "$GITBAK" create --path "$dir/backup-$i" --storage "default=$root" --id "bench$i" \
			<"$jobs" >"$dir/create.log"
		rm -rf "$dir/backup-$i"
		warm "$repo"
		timed git_bundle git -C "$repo" bundle create "$dir/run.bundle" --all 2>>"$dir/git.log"
		rm -f "$dir/run.bundle"
	done
	record_timing "$name: create" "git bundle create --all" "$create_target" \
		"$(joined "${gitbak_create[@]}")" "$(joined "${git_bundle[@]}")"

	for ((i = 1; i <= RUNS; i++)); do
		progress "$name: restore run $i/$RUNS"
		warm "$dir/backup"
		timed gitbak_restore "$GITBAK" restore --path "$dir/backup" --storage "default=$dir/restored" --id restore \
			<"$jobs" >"$dir/restore.log"
		rm -rf "$dir/restored/$rel"
		warm "$dir/full.bundle"
		timed git_clone git clone --mirror -q "$dir/full.bundle" "$dir/clone.git" 2>>"$dir/git.log"
		rm -rf "$dir/clone.git"
	done
	record_timing "$name: restore" "git clone --mirror <bundle>" "$restore_target" \
		"$(joined "${gitbak_restore[@]}")" "$(joined "${git_clone[@]}")"
	rm -rf "$dir"
}

bench_one_repo "large ${SIZE_MB} MB" "$large_root" large.git 1.10 1.0 64
bench_one_repo "${REFS} refs" "$many_root" many-refs.git 0.5 1.0 -

# --- many small repositories over two storages ----------------------------------------------

# The baselines: one repository after the other, as a shell loop would.
bundle_each() {
	local out=$1 n=0 repo
	mkdir -p "$out"
	for repo in "${small_repos[@]}"; do
		git -C "$repo" bundle create "$out/$((n += 1)).bundle" --all 2>/dev/null || return
	done
}
clone_each() {
	local bundles=$1 out=$2 n
	mkdir -p "$out"
	for ((n = 1; n <= ${#small_repos[@]}; n++)); do
		git clone --mirror -q "$bundles/$n.bundle" "$out/$n.git" 2>/dev/null || return
	done
}

bench_small() {
	local name="${SMALL_REPOS} small repos" dir=$scratch/small i kib
	local -a storages=(--storage "default=$small_root/default" --storage "second=$small_root/second")
	local -a restored=(--storage "default=$dir/restored/default" --storage "second=$dir/restored/second")
	local -a gitbak_create=() git_bundle=() gitbak_restore=() git_clone=() gitbak_cpu=() git_cpu=()
	local cpu_before cpu_after
	mkdir -p "$dir"

	progress "$name: untimed create (peak RSS) and bundles"
	kib=$(peak_rss "$small_jobs" "$dir/create-rss.log" \
		"$GITBAK" create --path "$dir/backup" "${storages[@]}" --id restore)
	record_rss "$name: create" "$kib" 64
	bundle_each "$dir/bundles" || fail "git bundle create loop failed"

	progress "$name: untimed restore (peak RSS)"
	mkdir -p "$dir/restored/default" "$dir/restored/second"
	kib=$(peak_rss "$small_jobs" "$dir/restore-rss.log" \
		"$GITBAK" restore --path "$dir/backup" "${restored[@]}" --id restore)
	record_rss "$name: restore" "$kib" 64
	same_refs "${small_repos[0]}" "$dir/restored/default/${small_repos[0]#"$small_root/default/"}"
	[ "$(find "$dir/restored" -name '*.git' -prune | wc -l)" = "$SMALL_REPOS" ] ||
		fail "restore did not recreate $SMALL_REPOS repositories"

	for ((i = 1; i <= RUNS; i++)); do
		progress "$name: create run $i/$RUNS"
		warm "$small_root/default" "$small_root/second"
		children_cpu_us cpu_before
		timed gitbak_create "$GITBAK" create --path "$dir/backup-$i" "${storages[@]}" --id "bench$i" \
			<"$small_jobs" >"$dir/create.log"
		children_cpu_us cpu_after
		gitbak_cpu+=($((cpu_after - cpu_before)))
		rm -rf "$dir/backup-$i"
		warm "$small_root/default" "$small_root/second"
		children_cpu_us cpu_before
		timed git_bundle bundle_each "$dir/run-bundles"
		children_cpu_us cpu_after
		git_cpu+=($((cpu_after - cpu_before)))
		rm -rf "$dir/run-bundles"
	done
	record_timing "$name: create" "sequential git bundle create loop" 0.5 \
		"$(joined "${gitbak_create[@]}")" "$(joined "${git_bundle[@]}")"
	printf 'cpu\t%s\t%s\t%s\t%s\t%s\n' "$name: create" "$SMALL_REPOS" "$(joined "${gitbak_cpu[@]}")" \
		"$(joined "${git_cpu[@]}")" "$(joined "${git_bundle[@]}")" >>"$results"

	for ((i = 1; i <= RUNS; i++)); do
		progress "$name: restore run $i/$RUNS"
		rm -rf "$dir/restored"
		mkdir -p "$dir/restored/default" "$dir/restored/second"
		warm "$dir/backup"
		timed gitbak_restore "$GITBAK" restore --path "$dir/backup" "${restored[@]}" --id restore \
			<"$small_jobs" >"$dir/restore.log"
		rm -rf "$dir/restored"
		if [ "${SMALL_RESTORE_BASELINE:-0}" = 1 ]; then
			warm "$dir/bundles"
			timed git_clone clone_each "$dir/bundles" "$dir/clones"
			rm -rf "$dir/clones"
		fi
	done
	record_timing "$name: restore" "${git_clone[*]:+sequential git clone --mirror loop}" - \
		"$(joined "${gitbak_restore[@]}")" "$(joined "${git_clone[@]}")"
	rm -rf "$dir"
}

bench_small

# --- report ---------------------------------------------------------------------------------
end_load=$(load_average)
if awk -v load="${start_load%% *} ${end_load%% *}" -v cpus="$(nproc)" \
	'BEGIN { split(load, l, " "); exit !(l[1] > cpus / 2 || l[2] > cpus / 2) }'; then
	echo "  note: load average was $start_load at start and $end_load at the end on $(nproc) CPUs;"
	echo "        other work on this machine inflates and scatters these figures."
else
	echo "  load:     $end_load at the end"
fi
echo
python3 - "$results" <<'EOF'
import statistics, sys

timings, rss, cpus = [], [], []
for line in open(sys.argv[1]):
    fields = line.rstrip("\n").split("\t")
    {"time": timings, "rss": rss, "cpu": cpus}[fields[0]].append(fields[1:])

def seconds(text):
    return [int(us) / 1e6 for us in text.split(",") if us]

def spread(values):
    if not values:
        return f"{'-':>7} {'-':>7} {'-':>7}"
    return f"{min(values):7.3f} {statistics.median(values):7.3f} {max(values):7.3f}"

verdicts = []
print("Timings (wall seconds: min median max; ratio = gitbak median / baseline median)")
print(f"{'figure':<28} {'gitbak':>23}   {'baseline':>23}  {'ratio':>6}  {'target':>6}  result  baseline")
for label, baseline, target, ours, theirs in timings:
    ours, theirs = seconds(ours), seconds(theirs)
    ratio = statistics.median(ours) / statistics.median(theirs) if theirs else None
    if target == "-":
        shown, result = "-", "info"
    else:
        shown, result = f"<={float(target):.2f}", "PASS" if ratio <= float(target) else "FAIL"
        verdicts.append((label, f"time ratio {ratio:.2f} (target {shown})", result))
    ratio_text = f"{ratio:6.2f}" if ratio is not None else f"{'-':>6}"
    print(f"{label:<28} {spread(ours)}   {spread(theirs)}  {ratio_text}  {shown:>6}  {result:<6}  {baseline or '-'}")

if cpus:
    # What no scheduling can beat: gitbak's CPU time spread over every CPU, against the loop's wall.
    import os
    ncpu = os.cpu_count() or 1
    print()
    print("CPU time (user + system, git children included; median of the timed runs)")
    print(f"{'figure':<28} {'gitbak ms/repo':>14}  {'loop ms/repo':>12}  floor ratio on {ncpu} CPUs")
    for label, repos, ours, theirs, loop_wall in cpus:
        repos = int(repos)
        ours, theirs, loop_wall = seconds(ours), seconds(theirs), seconds(loop_wall)
        floor = statistics.median(ours) / ncpu / statistics.median(loop_wall)
        print(f"{label:<28} {statistics.median(ours) / repos * 1e3:14.2f}  "
              f"{statistics.median(theirs) / repos * 1e3:12.2f}  {floor:.2f} (gitbak CPU / {ncpu} / loop wall)")

print()
print("gitbak peak RSS (VmHWM of the gitbak process only, git children excluded)")
print(f"{'figure':<28} {'MiB':>8}  {'target':>8}  result")
for label, kib, target in rss:
    mib = int(kib) / 1024
    if target == "-":
        shown, result = "-", "info"
    else:
        shown, result = f"<={target}", "PASS" if mib <= float(target) else "FAIL"
        verdicts.append((label, f"peak RSS {mib:.1f} MiB (target {shown} MiB)", result))
    print(f"{label:<28} {mib:8.1f}  {shown:>8}  {result}")

print()
for label, what, result in verdicts:
    print(f"{result}  {label}: {what}")
failed = sum(result == "FAIL" for _, _, result in verdicts)
print(f"\n{len(verdicts) - failed} of {len(verdicts)} targets pass")
sys.exit(1 if failed else 0)
EOF
