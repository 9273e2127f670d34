#!/usr/bin/env bash
# Install OHIF's prebuilt viewer (the dist/ of the npm package @ohif/app) into
# build/ohif/dist, git-ignored. Idempotent: skips when that version is already there.
# Usage: scripts/install-ohif.sh VERSION [DEST]
set -euo pipefail
version="${1:?usage: install-ohif.sh VERSION [DEST]}"
dest="${2:-build/ohif}"
if [ -f "$dest/VERSION" ] && [ "$(cat "$dest/VERSION")" = "$version" ] && [ -f "$dest/dist/index.html" ]; then
  exit 0
fi
command -v npm >/dev/null || "$(dirname "$0")/install-debian-packages.sh" npm
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "fetching OHIF viewer @ohif/app@$version"
(cd "$tmp" && npm pack --silent "@ohif/app@$version" >/dev/null)
tar -xzf "$tmp"/ohif-app-*.tgz -C "$tmp" package/dist package/LICENSE
rm -rf "$dest"
mkdir -p "$dest"
mv "$tmp/package/dist" "$tmp/package/LICENSE" "$dest/"
echo "$version" > "$dest/VERSION"
