#!/usr/bin/env bash
# Cost of checking source packs at create (issue #12): gitbak create's wall time against the
# check's own wall and CPU time (the "source packs checked" debug line: the packs of the
# repository read once and every entry's CRC32 compared with its .idx), per repository shape. The check runs
# beside pack-objects, so it costs create time only where it competes for CPU or disk.
#
#   benches/integrity.sh             ~300 MB of incompressible blobs (make-large.sh: the bytes
#                                    dominate) and ~200k small objects (the per-object work)
#   QUICK=1 benches/integrity.sh     SIZE_MB=50, COMMITS_MANY=10000
#
# Environment: GITBAK (binary to time; default: cargo build --release of this checkout, into
# CARGO_TARGET_DIR if set), BENCH_DIR (work directory, kept, fixtures reused; default: a temp
# dir, removed), RUNS (default 3), SIZE_MB (default 300), COMMITS_MANY (commits of the
# many-objects repository, 5 objects each; default 40000), TARGET_PERCENT (default 10),
# BASELINE_GITBAK (optional: a gitbak without the check, e.g. a release build of the commit
# before it; its creates alternate with the timed ones and the difference is what the check
# adds to create time).
# Exit status: 0 the check stays within TARGET_PERCENT of create time, 1 it does not, 2 a
# command failed.
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
source_root=$(dirname "$bench_dir")
fixture_scripts=$source_root/fixtures/repos

QUICK=${QUICK:-0}
RUNS=${RUNS:-3}
TARGET_PERCENT=${TARGET_PERCENT:-10}
if [ "$QUICK" = 1 ]; then
	SIZE_MB=${SIZE_MB:-50}
	COMMITS_MANY=${COMMITS_MANY:-10000}
else
	SIZE_MB=${SIZE_MB:-300}
	COMMITS_MANY=${COMMITS_MANY:-40000}
fi

# shellcheck source=benches/lib.sh
. "$bench_dir/lib.sh"
build_gitbak
hermetic_git

if [ -n "${BENCH_DIR:-}" ]; then
	mkdir -p "$BENCH_DIR"
	work=$(cd "$BENCH_DIR" && pwd -P)
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/gitbak-integrity.XXXXXX")
	trap 'rm -rf "$work"' EXIT
fi
scratch=$work/scratch
rm -rf "$scratch"
mkdir -p "$scratch"
# A private copy, so a concurrent `cargo build` cannot swap the binary halfway through.
cp "$GITBAK" "$scratch/gitbak"
gitbak_source=$GITBAK
GITBAK=$scratch/gitbak
baseline=
if [ -n "${BASELINE_GITBAK:-}" ]; then
	[ -x "$BASELINE_GITBAK" ] || fail "BASELINE_GITBAK=$BASELINE_GITBAK is not executable"
	cp "$BASELINE_GITBAK" "$scratch/baseline-gitbak"
	baseline=$scratch/baseline-gitbak
fi

# fixture DIR SCRIPT REL [VAR=VALUE...]: builds DIR/REL unless DIR/.done exists.
fixture() {
	local dir=$1 script=$2 rel=$3
	shift 3
	if [ ! -e "$dir/.done" ]; then
		progress "building $dir/$rel ($script $*)"
		rm -rf "$dir"
		mkdir -p "$dir"
		env "$@" "$fixture_scripts/$script" "$dir" "$rel" >/dev/null || fail "$script failed"
		touch "$dir/.done"
	fi
}

large_root=$work/large-${SIZE_MB}mb
fixture "$large_root" make-large.sh large.git "SIZE_MB=$SIZE_MB" COMMITS=3000
many_root=$work/many-objects-$COMMITS_MANY
fixture "$many_root" make-large.sh many.git SIZE_MB=$((COMMITS_MANY / 1000 + 1)) "COMMITS=$COMMITS_MANY"

warm() { find "$@" -type f -exec cat {} + >/dev/null; }

echo "gitbak source pack check: create time against the check's own time"
echo "  gitbak:   $gitbak_source ($("$GITBAK" --version 2>/dev/null || echo '?')), checkout $built_checkout"
echo "  git:      $(git --version)"
echo "  machine:  $(nproc) CPUs, $(uname -sr); load $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "  runs:     $RUNS, warm cache, local --path (the fastest create path: the check's largest share)"
[ -z "$baseline" ] || echo "  baseline: $BASELINE_GITBAK ($("$baseline" --version 2>/dev/null || echo '?')), alternating"
echo
printf '%-28s %10s %8s %10s %10s %8s  %s\n' repository "pack MB" objects "create ms" "check ms" share verdict
status=0

# create_once DIR ROOT RUN [BINARY]: one create, its debug log (with the check's line) in DIR.
create_once() {
	GITBAK_LOG=gitbak=debug "${4:-$GITBAK}" create --path "$1/backup-$3" --storage "default=$2" \
		--id "bench$3" <"$1/jobs.jsonl" >"$1/create.log" 2>"$1/debug-$3.log"
	rm -rf "$1/backup-$3"
}

ms() { printf '%s\n' "$@" | awk '{printf "%d ", $1 / 1000}'; }

# bench SLUG NAME ROOT REL
bench() {
	local slug=$1 name=$2 root=$3 rel=$4 i line
	local repo=$root/$rel dir=$scratch/$slug
	local -a creates=() checks=() cpus=() baselines=()
	mkdir -p "$dir"
	printf '{"storage_name":"default","relative_path":"%s"}\n' "$rel" >"$dir/jobs.jsonl"
	for ((i = 1; i <= RUNS; i++)); do
		progress "$name: create run $i/$RUNS"
		warm "$repo"
		creates+=("$(elapsed_us create_once "$dir" "$root" "$i")")
		line=$(grep 'source packs checked' "$dir/debug-$i.log") || fail "no check line in $dir/debug-$i.log"
		[[ $line =~ elapsed_us=([0-9]+) ]] || fail "no elapsed_us in: $line"
		checks+=("${BASH_REMATCH[1]}")
		[[ $line =~ cpu_us=([0-9]+) ]] || fail "no cpu_us in: $line"
		cpus+=("${BASH_REMATCH[1]}")
		if [ -n "$baseline" ]; then
			warm "$repo"
			baselines+=("$(elapsed_us create_once "$dir" "$root" "base$i" "$baseline")")
		fi
	done
	local create check cpu bytes objects share verdict
	create=$(median "${creates[@]}")
	check=$(median "${checks[@]}")
	cpu=$(median "${cpus[@]}")
	bytes=$(du -cb "$repo"/objects/pack/*.pack | tail -1 | cut -f1)
	objects=$(git --git-dir="$repo" count-objects -v | awk '/^in-pack:/ {print $2}')
	share=$(awk -v c="$check" -v t="$create" 'BEGIN {printf "%.1f", 100 * c / t}')
	if awk -v s="$share" -v t="$TARGET_PERCENT" 'BEGIN {exit !(s <= t)}'; then
		verdict="PASS (<= $TARGET_PERCENT%)"
	else
		verdict="FAIL (> $TARGET_PERCENT%)"
		status=1
	fi
	printf '%-28s %10.1f %8s %10.0f %10.0f %7s%%  %s\n' "$name" "$(awk -v b="$bytes" 'BEGIN {print b / 1048576}')" \
		"$objects" "$((create / 1000))" "$((check / 1000))" "$share" "$verdict"
	echo "  runs (ms): create $(ms "${creates[@]}")/ check $(ms "${checks[@]}")/ check CPU $(ms "${cpus[@]}")"
	echo "  check CPU time (its own cost, whatever else runs): $((cpu / 1000)) ms, $(awk -v c="$cpu" -v t="$create" 'BEGIN {printf "%.1f", 100 * c / t}')% of create time"
	if [ -n "$baseline" ]; then
		local base added
		base=$(median "${baselines[@]}")
		added=$(awk -v c="$create" -v b="$base" 'BEGIN {printf "%+.1f", 100 * (c - b) / b}')
		echo "  without the check (BASELINE_GITBAK): create $((base / 1000)) ms (runs: $(ms "${baselines[@]}")); with it ${added}%"
	fi
}

bench large "large ($SIZE_MB MB blobs)" "$large_root" large.git
bench many "many objects ($COMMITS_MANY commits)" "$many_root" many.git
echo
echo "  load:     $(cut -d' ' -f1-3 /proc/loadavg) at end"
exit "$status"
