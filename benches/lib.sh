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
