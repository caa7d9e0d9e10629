# Sourced by the benchmark scripts: messages, the gitbak binary to time, and a hermetic git.
# Expects `source_root` (the checkout) to be set; `fail` names the calling script.

progress() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
fail() {
	echo "$(basename "$0"): $*" >&2
	exit 2
}

# build_gitbak: sets GITBAK to the binary to time (the caller's, or a release build of this
# checkout) and built_checkout to what was built, for the report's header.
build_gitbak() {
	built_checkout="not built here (GITBAK given)"
	if [ -z "${GITBAK:-}" ]; then
		built_checkout="$(git -C "$source_root" rev-parse --short HEAD 2>/dev/null || echo '?')"
		git -C "$source_root" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null ||
			built_checkout+=" + uncommitted changes"
		progress "cargo build --release"
		(cd "$source_root" && cargo build --release --quiet) || fail "cargo build --release failed"
		GITBAK=${CARGO_TARGET_DIR:-$source_root/target}/release/gitbak
	fi
	[ -x "$GITBAK" ] || fail "GITBAK=$GITBAK is not executable"
}

# hermetic_git: no user or system config for gitbak or a baseline; the caller's GIT_DIR & co.
# must not leak in.
hermetic_git() {
	unset $(git rev-parse --local-env-vars) GIT_CEILING_DIRECTORIES GITBAK_GITALY_CONFIG
	export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0 LC_ALL=C
}

# elapsed_us CMD...: runs CMD (with the caller's redirections), prints its wall time in us; a
# failing CMD fails the script (its logs are under $scratch when the caller keeps them there).
elapsed_us() {
	local start=$EPOCHREALTIME status=0
	"$@" || status=$?
	local end=$EPOCHREALTIME
	((status == 0)) || fail "exit $status: $*${scratch:+ (logs in $scratch)}"
	echo $((${end/./} - ${start/./}))
}

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

# free_port: a TCP port free on 127.0.0.1 right now, for an emulator.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# run_measured INPUT OUTPUT CMD...: runs CMD in the background, stdin from INPUT, stdout and
# stderr to OUTPUT, and polls the VmHWM of that process alone every ~20 ms until it exits. Sets
# measured_us (wall time) and measured_kib (peak RSS: VmHWM only grows, so the last value read is
# the peak, up to the last 20 ms). Children (git) have their own /proc entries: not counted. Run
# the binary itself (or through `env`, which execs it), never through a shell wrapper. A failing
# CMD fails the script.
run_measured() {
	local input=$1 output=$2 pid key value rest status=0 start
	shift 2
	# An fd that never becomes readable: `read -t` on it sleeps without forking `sleep`, so the
	# poller costs next to nothing while it shares the CPUs with the measured run.
	[ -n "${measure_idle_fd:-}" ] || exec {measure_idle_fd}<> <(:)
	measured_kib=0
	start=$EPOCHREALTIME
	"$@" <"$input" >"$output" 2>&1 &
	pid=$!
	while [ -e "/proc/$pid/status" ]; do
		{
			while read -r key value rest; do
				if [ "$key" = VmHWM: ]; then measured_kib=$value; fi
			done <"/proc/$pid/status"
		} 2>/dev/null || true
		read -r -t 0.02 -u "$measure_idle_fd" _ || true
	done
	wait "$pid" || status=$?
	measured_us=$((${EPOCHREALTIME/./} - ${start/./}))
	((status == 0)) || fail "exit $status: $* (log: $output)"
}
