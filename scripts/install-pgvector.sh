#!/usr/bin/env bash
# Builds and installs the pgvector extension into the local PostgreSQL from Debian's
# source package (trixie's pgvector 0.8), for machines whose PostgreSQL lacks it.
# Idempotent: does nothing when the extension is already available. Needs root.
set -euo pipefail

PG_CONFIG=${PG_CONFIG:-$(ls -d /usr/lib/postgresql/*/bin/pg_config 2>/dev/null | sort -V | tail -n1)}
PG_MAJOR=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
EXT_DIR=$("$PG_CONFIG" --sharedir)/extension

if [ -f "$EXT_DIR/vector.control" ]; then
    echo "pgvector is already installed for PostgreSQL $PG_MAJOR"
    exit 0
fi

MIRROR=$(grep -hoE 'https?://[^ ]+/debian/?$' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
         | grep -v security | head -n1 || true)
MIRROR=${MIRROR:-$(grep -hE '^URIs:' /etc/apt/sources.list.d/debian.sources | head -n1 | awk '{print $2}')}
SRC_LIST=/etc/apt/sources.list.d/memoryrelay-pgvector-src.list
echo "deb-src ${MIRROR%/} trixie main" > "$SRC_LIST"

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "postgresql-server-dev-$PG_MAJOR" dpkg-dev make gcc >/dev/null

BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
(cd "$BUILD" && apt-get source -qq pgvector >/dev/null 2>&1)
SRC=$(find "$BUILD" -maxdepth 1 -type d -name 'pgvector-*' | head -n1)
make -s -C "$SRC" PG_CONFIG="$PG_CONFIG" OPTFLAGS="" >/dev/null
make -s -C "$SRC" PG_CONFIG="$PG_CONFIG" install >/dev/null
echo "pgvector $(basename "$SRC" | sed 's/pgvector-//') installed for PostgreSQL $PG_MAJOR"
