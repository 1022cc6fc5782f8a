#!/usr/bin/env bash
# Builds the previous release of the shop, the commit .ci/previous-release names, as
# target/debug/shop-previous: the real binary of that release (every store compiled in), for the
# mixed-version test (tests/system/deploys.rs). Its source is exported from git into
# target/previous-release/ and built in the repository's own target folder, so every dependency
# the tests already compiled is reused; only the shop itself is compiled again. Its binary is
# renamed at build time so it never replaces this tree's target/debug/shop.
set -euo pipefail
cd "$(dirname "$0")/.."
read -r commit version < <(grep -v '^#' .ci/previous-release | head -n 1)
if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
  echo "the previous release $version ($commit, .ci/previous-release) is not in this clone's history" >&2
  echo "(a shallow clone? git fetch --unshallow)" >&2
  exit 1
fi
source_dir=target/previous-release/$commit
if [ ! -f "$source_dir/Cargo.toml" ]; then
  rm -rf target/previous-release
  mkdir -p "$source_dir"
  git archive "$commit" | tar -x -C "$source_dir"
  # The same package at another path, with its binary named apart.
  python3 - "$source_dir/Cargo.toml" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
text = text.replace('default-run = "shop"', 'default-run = "shop-previous"')
text, renamed = re.subn(r'(\[\[bin\]\]\nname = )"shop"', r'\1"shop-previous"', text)
if renamed != 1:
    sys.exit(f"{path}: no [[bin]] named shop to rename")
open(path, "w").write(text)
PY
fi
started=$(date +%s)
CARGO_TARGET_DIR=$PWD/target cargo build --quiet --manifest-path "$source_dir/Cargo.toml" \
  --locked -p shop --bin shop-previous --features redis,postgres,memcached
echo "previous release $version ($commit) built as target/debug/shop-previous in $(($(date +%s) - started)) s"
