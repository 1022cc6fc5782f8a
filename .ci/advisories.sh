#!/usr/bin/env bash
# Checks every dependency against the RustSec advisory database: the live one where it can be
# fetched, else the snapshot beside the repository (../shared/rustsec/advisory-db.tar.gz), and
# says which one and its date. An advisory fails CI unless deny.toml allows it with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."

if live=$(timeout 120 cargo deny check advisories 2>&1); then
  echo "$live"
  echo "cargo deny advisories: checked against the live RustSec database, fetched now ($(date -u +%F))"
  exit 0
elif ! grep -q "failed to fetch advisory database" <<<"$live"; then
  echo "$live"
  exit 1
fi

snapshot=../shared/rustsec/advisory-db.tar.gz
if [ ! -f "$snapshot" ]; then
  echo "cargo deny advisories: NOT CHECKED, the live database cannot be fetched and $snapshot is missing" >&2
  exit 1
fi
db=$(mktemp -d)
trap 'rm -rf "$db"' EXIT
tar -xzf "$snapshot" -C "$db"
# The same rules, reading the database from the snapshot. cargo-deny looks for it in a folder
# named after the database's URL, which its first offline run names.
cp deny.toml "$db/deny.toml"
printf '\n[advisories]\ndb-path = "%s"\n' "$db" >>"$db/deny.toml"
folder=$(cargo deny --config "$db/deny.toml" --offline check advisories 2>&1 | grep -o 'advisory-db-[0-9a-f]\+' | head -1 || true)
if [ -z "$folder" ]; then
  echo "cargo deny advisories: NOT CHECKED, cargo-deny did not name the folder it reads the snapshot from" >&2
  exit 1
fi
mv "$db/advisory-db" "$db/$folder"
snapshot_date=$(git -C "$db/$folder" show -s --format=%cs HEAD)
cargo deny --config "$db/deny.toml" --offline check advisories
echo "cargo deny advisories: checked against the RustSec snapshot of $snapshot_date (../shared/rustsec; the live database cannot be fetched here)"
