#!/usr/bin/env bash
# Incremental backups (issue #10): time and bytes of `gitbak create --incremental` against a full
# run over the same node, git processes started for unchanged repositories, and the restore of a
# 14-step chain against the restore of one full backup of the same final state.
#
#   benches/incremental.sh                1000 small repositories + 3 with packs of LARGE_MB=200
#   QUICK=1 benches/incremental.sh        200 small + 3 of 50 MB
#
# Environment: GITBAK (binary to time; default: cargo build --release of this checkout),
# BENCH_DIR (work directory, kept, fixtures reused across runs; default: a temp dir, removed),
# RUNS (timed runs per figure, default 3), SMALL_REPOS, LARGE_MB, CHANGED (repositories that get
# one commit before each incremental run, default 10), CHAIN (steps, default 14).
# Needs bash 5, git, coreutils, openssl, perl, python3. Exit status: 0 all targets pass, 1 some
# target fails, 2 a command failed.
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
source_root=$(dirname "$bench_dir")
fixture_scripts=$source_root/fixtures/repos

QUICK=${QUICK:-0}
RUNS=${RUNS:-3}
CHANGED=${CHANGED:-10}
CHAIN=${CHAIN:-14}
if [ "$QUICK" = 1 ]; then
	SMALL_REPOS=${SMALL_REPOS:-200}
	LARGE_MB=${LARGE_MB:-50}
else
	SMALL_REPOS=${SMALL_REPOS:-1000}
	LARGE_MB=${LARGE_MB:-200}
fi

# shellcheck source=benches/lib.sh
. "$bench_dir/lib.sh"
build_gitbak
hermetic_git
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@gitbak.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@gitbak.invalid

# --- work directory -------------------------------------------------------------------------
if [ -n "${BENCH_DIR:-}" ]; then
	mkdir -p "$BENCH_DIR"
	work=$(cd "$BENCH_DIR" && pwd -P)
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/gitbak-incremental.XXXXXX")
	trap 'rm -rf "$work"' EXIT
fi
scratch=$work/scratch
rm -rf "$scratch"
mkdir -p "$scratch"
cp "$GITBAK" "$scratch/gitbak"
GITBAK=$scratch/gitbak

# --- helpers --------------------------------------------------------------------------------
bytes_under() { du -sb "$1" 2>/dev/null | cut -f1; }
job_line() { printf '{"storage_name":"default","relative_path":"%s"}\n' "$1"; }

# commit_to REPO TAG: one new commit on HEAD's branch, as a push of a small change would.
commit_to() {
	local repo=$1 tag=$2 head parent blob tree commit
	head=$(git -C "$repo" symbolic-ref HEAD)
	parent=$(git -C "$repo" rev-parse "$head")
	blob=$(printf '%s\n' "$tag" | git -C "$repo" hash-object -w --stdin)
	tree=$(printf '100644 blob %s\tbench-%s.txt\n' "$blob" "$tag" | git -C "$repo" mktree --missing)
	commit=$(git -C "$repo" commit-tree "$tree" -p "$parent" -m "bench $tag")
	git -C "$repo" update-ref "$head" "$commit"
}

# --- fixtures: SMALL_REPOS copies of make-linear.sh, 3 copies of make-large.sh ---------------
root=$work/node-$SMALL_REPOS-$LARGE_MB
jobs=$root/jobs.jsonl
if [ ! -e "$root/.done" ]; then
	progress "building $SMALL_REPOS small and 3 large (${LARGE_MB} MB) repositories in $root"
	rm -rf "$root"
	mkdir -p "$root/storage"
	"$fixture_scripts/make-linear.sh" "$root/template" linear.git >/dev/null
	SIZE_MB=$LARGE_MB "$fixture_scripts/make-large.sh" "$root/template" large.git >/dev/null
	: >"$jobs"
	for ((n = 1; n <= 3; n++)); do
		rel="@hashed/la/rg/large-$n.git"
		mkdir -p "$(dirname "$root/storage/$rel")"
		cp -a "$root/template/large.git" "$root/storage/$rel"
		job_line "$rel" >>"$jobs"
	done
	for ((n = 1; n <= SMALL_REPOS; n++)); do
		printf -v rel '@hashed/%02x/%02x/%d.git' $((n * 37 % 256)) $((n * 101 % 256)) "$n"
		mkdir -p "$(dirname "$root/storage/$rel")"
		cp -a "$root/template/linear.git" "$root/storage/$rel"
		job_line "$rel" >>"$jobs"
	done
	touch "$root/.done"
fi
mapfile -t repos < <(python3 -c '
import json, sys
for line in sys.stdin:
    print(json.loads(line)["relative_path"])' <"$jobs")
# The repositories that change: one large, the rest small.
changed=("${repos[0]}" "${repos[@]:3:$((CHANGED - 1))}")

create() { # create LOCATION ID [ARGS...]
	local location=$1 id=$2
	shift 2
	"$GITBAK" create --path "$location" --storage "default=$root/storage" --id "$id" "$@" \
		<"$jobs" >"$scratch/create-$id.log"
}

{
	echo "gitbak incremental benchmark"
	echo "  gitbak:   $GITBAK ($("$GITBAK" --version 2>/dev/null || echo '?'))"
	echo "  git:      $(git --version)"
	echo "  machine:  $(nproc) CPUs, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "  node:     $SMALL_REPOS small + 3 large (${LARGE_MB} MB packs); $CHANGED get one commit before each incremental run"
	echo "  runs:     $RUNS per figure (median); default parallelism"
	echo
}

# --- full vs incremental vs nothing changed -------------------------------------------------
backups=$scratch/backups
full_us=() full_bytes=() incr_us=() incr_bytes=() same_us=() same_bytes=()
for ((i = 1; i <= RUNS; i++)); do
	progress "full backup $i/$RUNS"
	before=$(bytes_under "$backups" || echo 0)
	full_us+=("$(elapsed_us create "$backups" "full-$i")")
	full_bytes+=($(($(bytes_under "$backups") - ${before:-0})))
done
for ((i = 1; i <= RUNS; i++)); do
	progress "one commit to $CHANGED repositories, incremental backup $i/$RUNS"
	for repo in "${changed[@]}"; do commit_to "$root/storage/$repo" "incr-$i-$RANDOM"; done
	before=$(bytes_under "$backups")
	incr_us+=("$(elapsed_us create "$backups" "incr-$i" --incremental)")
	incr_bytes+=($(($(bytes_under "$backups") - before)))
done
for ((i = 1; i <= RUNS; i++)); do
	progress "nothing changed, incremental backup $i/$RUNS"
	before=$(bytes_under "$backups")
	same_us+=("$(elapsed_us create "$backups" "same-$i" --incremental)")
	same_bytes+=($(($(bytes_under "$backups") - before)))
done

# git processes of a no-change run, counted by a wrapper (an untimed run of its own).
counter=$scratch/git-calls
printf '#!/bin/sh\necho "$*" >>"%s"\nexec git "$@"\n' "$counter" >"$scratch/counting-git"
chmod +x "$scratch/counting-git"
: >"$counter"
progress "nothing changed, counting git processes"
create "$backups" "counted" --incremental --git "$scratch/counting-git"
git_calls=$(wc -l <"$counter")

# --- a chain of CHAIN steps against one full backup of the same final state -----------------
large=$root/storage/${repos[1]}
chain_jobs=$scratch/chain.jsonl
job_line "${repos[1]}" >"$chain_jobs"
chain=$scratch/chain
progress "building a $CHAIN-step chain of ${repos[1]}"
for ((step = 1; step <= CHAIN; step++)); do
	for ((c = 1; c <= 20; c++)); do commit_to "$large" "chain-$step-$c"; done
	"$GITBAK" create --path "$chain" --storage "default=$root/storage" --id "chain-$step" \
		--incremental --max-chain "$CHAIN" <"$chain_jobs" >"$scratch/chain-create.log"
done
steps=$(python3 -c '
import sys, tomllib
print(len(tomllib.load(open(sys.argv[1], "rb"))["steps"]))' "$chain/manifests/default/${repos[1]}/chain-$CHAIN.toml")
[ "$steps" = "$CHAIN" ] || fail "the chain has $steps steps, not $CHAIN"
"$GITBAK" create --path "$scratch/final" --storage "default=$root/storage" --id final \
	<"$chain_jobs" >"$scratch/final-create.log"
# restore_from LOCATION ID: restores the chained repository into $scratch/restored.
restore_from() {
	"$GITBAK" restore --path "$1" --storage "default=$scratch/restored" --id "$2" \
		<"$chain_jobs" >"$scratch/restore-$2.log"
}
chain_us=() final_us=()
for ((i = 1; i <= RUNS; i++)); do
	progress "restore: chain vs full, run $i/$RUNS"
	rm -rf "$scratch/restored"
	mkdir -p "$scratch/restored"
	chain_us+=("$(elapsed_us restore_from "$chain" "chain-$CHAIN")")
	cmp -s <(git -C "$large" for-each-ref) <(git -C "$scratch/restored/${repos[1]}" for-each-ref) ||
		fail "the chain restored other refs"
	rm -rf "$scratch/restored"
	mkdir -p "$scratch/restored"
	final_us+=("$(elapsed_us restore_from "$scratch/final" final)")
done

# --- table ----------------------------------------------------------------------------------
python3 - "$(median "${full_us[@]}")" "$(median "${full_bytes[@]}")" \
	"$(median "${incr_us[@]}")" "$(median "${incr_bytes[@]}")" \
	"$(median "${same_us[@]}")" "$(median "${same_bytes[@]}")" "$git_calls" \
	"$(median "${chain_us[@]}")" "$(median "${final_us[@]}")" "$CHAIN" <<'EOF'
import sys
full_us, full_b, incr_us, incr_b, same_us, same_b, calls, chain_us, final_us, chain = map(int, sys.argv[1:])
rows = [
    ("incremental: time", incr_us / full_us, 0.10, "%.2f s vs full %.2f s" % (incr_us / 1e6, full_us / 1e6)),
    ("incremental: bytes written", incr_b / full_b, 0.01, "%d B vs full %d B" % (incr_b, full_b)),
    ("nothing changed: time", same_us / full_us, 0.05, "%.2f s vs full %.2f s (%d B written)" % (same_us / 1e6, full_us / 1e6, same_b)),
    ("nothing changed: git processes", calls, 0, "%d started" % calls),
    ("restore %d-step chain vs one full" % chain, chain_us / final_us, 1.3, "%.2f s vs %.2f s" % (chain_us / 1e6, final_us / 1e6)),
]
failed = 0
print("%-38s %10s %8s  %s" % ("figure", "value", "target", "absolute"))
for name, value, target, detail in rows:
    ok = value <= target
    failed += not ok
    print("%-38s %10.4f %8s  %-5s %s" % (name, value, "<=%g" % target, "PASS" if ok else "FAIL", detail))
sys.exit(1 if failed else 0)
EOF
