#!/usr/bin/env bash
# Upload memory figures (issue #12): `gitbak create --parallel 8` of eight repositories with a
# ~512 MiB bundle each to S3 (moto), gitbak's peak RSS against `--upload-memory` + 48 MiB, and the
# aggregate throughput next to one upload of the same total size, taken as REPOS times one
# repository's upload alone (one upload of the same 512 MiB bundle, run on its own).
# Prints absolute numbers, ratios, and PASS/FAIL per budget.
#
#   benches/memory.sh                   full run: 8 x 512 MiB, budgets 256 MiB (default) and
#                                       64 MiB (~9 min on 2 CPUs; building the fixture ~3 min more)
#   QUICK=1 benches/memory.sh           SIZE_MB=128, budget 256 MiB only (a few minutes)
#   BUDGETS_MIB="256 1024" BENCH_DIR=/var/tmp/bench benches/memory.sh
#
# Environment:
#   GITBAK        binary to time (default: cargo build --release of this checkout, then copied)
#   BENCH_DIR     work directory, kept; the fixture repository is reused across runs (default:
#                 a temp dir, removed). Shares the large-<N>mb fixture with storage.sh.
#   GITBAK_EMULATORS  where .ci/install-emulators.sh put moto (default ~/.cache/gitbak-emulators)
#   SIZE_MB       size of each repository (default 512; QUICK=1: 128)
#   REPOS         repositories backed up at once, also --parallel (default 8)
#   BUDGETS_MIB   --upload-memory values in MiB, one parallel run each (default "256 64")
#   RUNS          runs of each row (default 1); the table shows the median time, the largest RSS
# Needs bash 5, git, coreutils, curl, python3, openssl and perl (make-large.sh). Moto keeps
# objects in memory (REPOS x SIZE_MB per run, more while it assembles them), so it is restarted
# before every run. Exit status: 0 all targets pass, 1 some target fails, 2 a command failed.
set -eEuo pipefail
trap 'echo "memory.sh: line $LINENO: a command failed (exit $?)" >&2; exit 2' ERR

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
source_root=$(dirname "$bench_dir")
fixture_scripts=$source_root/fixtures/repos

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
	SIZE_MB=${SIZE_MB:-128}
	BUDGETS_MIB=${BUDGETS_MIB:-256}
else
	SIZE_MB=${SIZE_MB:-512}
	BUDGETS_MIB=${BUDGETS_MIB:-256 64}
fi
export SIZE_MB
unset COMMITS # make-large.sh's knob; keep its default so figures compare across machines
REPOS=${REPOS:-8}
RUNS=${RUNS:-1}
RSS_SLACK_MIB=48 # the issue's bound: peak RSS <= --upload-memory + 48 MiB
emulators=${GITBAK_EMULATORS:-$HOME/.cache/gitbak-emulators}
moto_server=$emulators/venv/bin/moto_server

# shellcheck source=benches/lib.sh
. "$bench_dir/lib.sh"
command -v curl >/dev/null || fail "curl is needed"
[ -x "$moto_server" ] || fail "moto missing in $emulators; run: bash .ci/install-emulators.sh"

build_gitbak
hermetic_git
unset GITBAK_GIT GITBAK_UPLOAD_MEMORY GITBAK_PART_SIZE GITBAK_UPLOAD_CONCURRENCY
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE AWS_ENDPOINT_URL AWS_CA_BUNDLE GITBAK_S3_TIMEOUT_SECS
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
export AWS_ACCESS_KEY_ID=gitbak-bench AWS_SECRET_ACCESS_KEY=gitbak-bench-secret \
	AWS_EC2_METADATA_DISABLED=true AWS_DEFAULT_REGION=us-east-1

# --- work directory and cleanup ---------------------------------------------------------------
moto_pid=
remove_work=
cleanup() {
	if [ -n "$moto_pid" ]; then
		kill "$moto_pid" 2>/dev/null || true
		wait "$moto_pid" 2>/dev/null || true
	fi
	if [ -n "$remove_work" ]; then rm -rf "$remove_work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${BENCH_DIR:-}" ]; then
	mkdir -p "$BENCH_DIR"
	work=$(cd "$BENCH_DIR" && pwd -P)
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/gitbak-bench.XXXXXX")
	remove_work=$work
fi
scratch=$work/memory-scratch
rm -rf "$scratch"
mkdir -p "$scratch"
# A private copy, so a concurrent `cargo build` cannot swap the binary halfway through the runs.
cp "$GITBAK" "$scratch/gitbak"
gitbak_source=$GITBAK
GITBAK=$scratch/gitbak

# --- moto, restarted for every run so that its memory starts empty ----------------------------
start_moto() {
	local port deadline=$((SECONDS + 60))
	port=$(free_port)
	s3_endpoint=http://127.0.0.1:$port
	"$moto_server" -H 127.0.0.1 -p "$port" >"$scratch/moto.log" 2>&1 &
	moto_pid=$!
	until [ "$(curl -s -o /dev/null -w '%{http_code}' "$s3_endpoint/" 2>/dev/null)" = 200 ]; do
		kill -0 "$moto_pid" 2>/dev/null || fail "moto exited at start (log: $scratch/moto.log)"
		((SECONDS < deadline)) || fail "moto did not answer within 60 s (log: $scratch/moto.log)"
		sleep 0.1
	done
	# moto takes unsigned bucket requests.
	curl -sSf -o /dev/null -X PUT "$s3_endpoint/bench" || fail "could not create the bucket in moto"
}
stop_moto() {
	kill "$moto_pid" 2>/dev/null || true
	wait "$moto_pid" 2>/dev/null || true
	moto_pid=
}
s3_url() { echo "s3://bench?endpoint=$s3_endpoint&use_path_style=true&region=us-east-1"; }

# --- fixture: one make-large.sh repository, hard-linked REPOS times ----------------------------
large_root=$work/large-${SIZE_MB}mb
if [ ! -e "$large_root/.done" ]; then
	progress "building $large_root/large.git (make-large.sh, SIZE_MB=$SIZE_MB)"
	rm -rf "$large_root"
	mkdir -p "$large_root"
	"$fixture_scripts/make-large.sh" "$large_root" large.git >/dev/null || fail "make-large.sh failed"
	touch "$large_root/.done"
fi
# Hard links: every repository has its own refs and bundle, while the page cache holds the pack
# once (the machine's disk is not what is measured). gitbak and git only read them.
storage_root=$scratch/storage
mkdir -p "$storage_root"
: >"$scratch/jobs-all.jsonl"
for ((i = 1; i <= REPOS; i++)); do
	cp -al "$large_root/large.git" "$storage_root/repo-$i.git"
	printf '{"storage_name":"default","relative_path":"repo-%d.git"}\n' "$i" >>"$scratch/jobs-all.jsonl"
done
head -n 1 "$scratch/jobs-all.jsonl" >"$scratch/jobs-one.jsonl"
warm() { find "$@" -type f -exec cat {} + >/dev/null; }

# The bundle's size, from an untimed create of one repository to a local directory.
progress "seed: gitbak create of one repository to a local directory (untimed)"
warm "$large_root"
"$GITBAK" create --path "$scratch/seed" --storage "default=$storage_root" --id seed \
	<"$scratch/jobs-one.jsonl" >"$scratch/seed.log" 2>&1 || fail "seed create failed (log: $scratch/seed.log)"
bundle_bytes=$(stat -c %s "$scratch/seed/default/repo-1.git/seed/001.bundle")
rm -rf "$scratch/seed"

load_average() { cut -d' ' -f1-3 /proc/loadavg; }
{
	echo "gitbak upload memory benchmark"
	echo "  gitbak:    $gitbak_source ($("$GITBAK" --version 2>/dev/null || echo '?'))"
	echo "  checkout:  $built_checkout"
	echo "  git:       $(git --version)"
	echo "  machine:   $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
	echo "  moto:      $("$emulators/venv/bin/python" -c 'from importlib.metadata import version; print(version("moto"))' 2>/dev/null || echo '?') on 127.0.0.1, same machine, restarted before every run"
	echo "  bundles:   $REPOS x $bundle_bytes bytes ($(awk -v b="$bundle_bytes" 'BEGIN {printf "%.1f", b / 1048576}') MiB each), make-large.sh SIZE_MB=$SIZE_MB, hard-linked copies"
	echo "  tuning:    part size 16 MiB, upload concurrency 4 (defaults); --parallel $REPOS --parallel-storage $REPOS"
	echo "  runs:      $RUNS per row; load $(load_average) at start (1/5/15 min)"
	echo
}

# --- runs -----------------------------------------------------------------------------------
# create_run JOBS LABEL ARGS...: one gitbak create of JOBS into a fresh moto; sets measured_us
# and measured_kib (run_measured).
create_run() {
	local jobs=$1 label=$2
	shift 2
	start_moto
	warm "$large_root"
	run_measured "$jobs" "$scratch/$label.log" "$GITBAK" create --path "$(s3_url)" \
		--storage "default=$storage_root" --id bench "$@"
	stop_moto
}

mib_per_s() { awk -v bytes="$1" -v us="$2" 'BEGIN {printf "%.1f", bytes / 1048576 / (us / 1e6)}'; }
seconds() { awk -v us="$1" 'BEGIN {printf "%.1f", us / 1e6}'; }
mib() { awk -v kib="$1" 'BEGIN {printf "%.1f", kib / 1024}'; }

# median_run JOBS LABEL ARGS...: RUNS runs; sets run_us (median) and run_kib (largest).
median_run() {
	local jobs=$1 label=$2 i
	shift 2
	local -a times=()
	run_kib=0
	for ((i = 1; i <= RUNS; i++)); do
		progress "$label: run $i/$RUNS"
		create_run "$jobs" "$label-$i" "$@"
		times+=("$measured_us")
		if ((measured_kib > run_kib)); then run_kib=$measured_kib; fi
	done
	run_us=$(median "${times[@]}")
}

total_bytes=$((REPOS * bundle_bytes))
median_run "$scratch/jobs-one.jsonl" one
one_us=$run_us one_kib=$run_kib
sequential_us=$((REPOS * one_us))
status=0
rows=()
ratios=()
for budget in $BUDGETS_MIB; do
	median_run "$scratch/jobs-all.jsonl" "parallel-$budget" \
		--parallel "$REPOS" --parallel-storage "$REPOS" --upload-memory "${budget}MiB"
	target_mib=$((budget + RSS_SLACK_MIB))
	verdict=PASS
	((run_kib <= target_mib * 1024)) || { verdict=FAIL; status=1; }
	rows+=("$(printf '%-44s %8s %8s %9s %11s  %s' "--parallel $REPOS, --upload-memory ${budget}MiB" \
		"$(seconds "$run_us")" "$(mib_per_s "$total_bytes" "$run_us")" "$(mib "$run_kib")" "<= $target_mib" "$verdict")")
	ratios+=("$(awk -v s="$sequential_us" -v p="$run_us" 'BEGIN {printf "%.2f", s / p}')")
done

printf '%-44s %8s %8s %9s %11s\n' run 'wall s' 'MiB/s' 'RSS MiB' 'target MiB'
printf '%-44s %8s %8s %9s %11s\n' "one repository alone (default 256 MiB)" "$(seconds "$one_us")" \
	"$(mib_per_s "$bundle_bytes" "$one_us")" "$(mib "$one_kib")" "-"
printf '%-44s %8s %8s %9s %11s\n' "  x $REPOS: one upload of the same total size" "$(seconds "$sequential_us")" \
	"$(mib_per_s "$total_bytes" "$sequential_us")" "-" "-"
printf '%s\n' "${rows[@]}"
echo
i=0
for budget in $BUDGETS_MIB; do
	echo "aggregate throughput, --upload-memory ${budget}MiB: ${ratios[i]} x one upload of the same total size"
	i=$((i + 1))
done
echo "load at end: $(load_average) (1/5/15 min)"
exit "$status"
