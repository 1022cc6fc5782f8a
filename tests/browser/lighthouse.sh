#!/usr/bin/env bash
# Lighthouse (pinned to 12 here) on the four pages docs/shopper.md names, with the mobile and the
# desktop presets, against a shop that is already running (behind nginx, as every deployment file
# runs it: compression is nginx's). Prints one Markdown row per page and preset.
#   bash tests/browser/lighthouse.sh http://127.0.0.1:8090
set -euo pipefail
base=${1:?usage: lighthouse.sh BASE_URL}
cd "$(dirname "$0")"
[ -x node_modules/.bin/lighthouse ] || npm install --no-save --no-audit --no-fund --silent lighthouse@12
export CHROME_PATH=${CHROME_PATH:-/usr/bin/chromium}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "| page | preset | performance | accessibility | best practices | SEO |"
echo "| --- | --- | ---: | ---: | ---: | ---: |"
for path in / /products/1 /cart /login; do
  for preset in mobile desktop; do
    flags=()
    [ "$preset" = desktop ] && flags=(--preset=desktop)
    node_modules/.bin/lighthouse "$base$path" --quiet "${flags[@]}" \
      --chrome-flags="--headless=new --no-sandbox --disable-gpu" \
      --output=json --output-path="$out/report.json" >/dev/null 2>&1
    python3 - "$out/report.json" "$path" "$preset" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
scores = [round(report["categories"][c]["score"] * 100)
          for c in ("performance", "accessibility", "best-practices", "seo")]
print(f"| `{sys.argv[2]}` | {sys.argv[3]} | " + " | ".join(map(str, scores)) + " |")
PY
  done
done
