#!/usr/bin/env bash
# Unpacks OpenSSH 10 (openssh-client, openssh-server) from Debian bookworm-backports into a cache
# folder, beside the system's OpenSSH 9.2 and without installing anything: the interop tests need
# an sshd and ssh that speak mlkem768x25519-sha256, which 9.2 does not.
#
#   scripts/fetch-openssh10.sh        -> ${TSSH_CACHE:-$HOME/.cache/tssh}/openssh10/usr/{bin/ssh,sbin/sshd,...}
#
# The Debian mirror is taken from this machine's own apt sources, so the repository names no host.
# Idempotent: does nothing when the cache folder already holds a working ssh.
set -euo pipefail

suite="${TSSH_OPENSSH10_SUITE:-bookworm-backports}"
dest="${TSSH_CACHE:-$HOME/.cache/tssh}/openssh10"

if [ -x "$dest/usr/bin/ssh" ] && [ -x "$dest/usr/sbin/sshd" ] && [ -x "$dest/usr/lib/openssh/sshd-session" ]; then
  echo "fetch-openssh10: already present in $dest"
  exit 0
fi

# The release the backports suite belongs to ("bookworm" for "bookworm-backports").
base_suite="${suite%-backports}"

# Print "URI KEYRING" for the first enabled apt source that serves "$base_suite" (plain, not
# -security/-updates), reading both the one-line format (*.list) and the deb822 format (*.sources).
find_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v want="$base_suite" '
      /^[ \t]*deb[ \t]/ {
        keyring = ""; i = 2
        if ($2 ~ /^\[/) {                      # options: deb [arch=amd64 signed-by=/x.gpg] URI suite ...
          for (; i <= NF; i++) {
            if ($i ~ /signed-by=/) { k = $i; sub(/.*signed-by=/, "", k); sub(/\]$/, "", k); keyring = k }
            if ($i ~ /\]$/) { i++; break }
          }
        }
        if ($(i + 1) == want) { print $i, keyring; exit }
      }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822: stanzas separated by blank lines; "Enabled: no" turns one off.
    awk -v want="$base_suite" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " want " ") && uris != "") {
          split(uris, u, " "); print u[1], keyring; found = 1; exit
        }
        types = ""; uris = ""; suites = ""; keyring = ""; enabled = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      { key = tolower($1); $1 = ""; sub(/^[ \t]+/, ""); val = $0 }
      key == "types:" { types = val } key == "uris:" { uris = val } key == "suites:" { suites = val }
      key == "signed-by:" { keyring = val } key == "enabled:" { enabled = tolower(val) }
      END { if (!found) flush() }' "$f"
  done
}

read -r mirror keyring < <(find_mirror | head -n 1) || true
if [ -z "${mirror:-}" ]; then
  echo "fetch-openssh10: no apt source for '$base_suite' in /etc/apt/sources.list*; cannot derive the mirror" >&2
  exit 1
fi
# A Signed-By that holds an inline key (not a path) is not usable in a one-line source.
if [ -z "${keyring:-}" ] || [ ! -f "$keyring" ]; then
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/root"
echo "deb [signed-by=$keyring] $mirror $suite main" > "$work/sources.list"
echo "fetch-openssh10: $(cat "$work/sources.list")"

# This suite is the only source apt sees, with its own lists and cache: the system's are untouched.
apt_opts=(
  -o "Dir::Etc::SourceList=$work/sources.list"
  -o "Dir::Etc::SourceParts=-"
  -o "Dir::State::Lists=$work/lists"
  -o "Dir::Cache=$work/cache"
  -o "APT::Sandbox::User=root"
  -o "Debug::NoLocking=1"
)
apt-get "${apt_opts[@]}" -qq update
(cd "$work/debs" && apt-get "${apt_opts[@]}" -qq download "openssh-client/$suite" "openssh-server/$suite")

for deb in "$work"/debs/*.deb; do
  dpkg -x "$deb" "$work/root"
done
version="$("$work/root/usr/bin/ssh" -V 2>&1)"
case "$version" in
  OpenSSH_1[0-9]*) ;;
  *) echo "fetch-openssh10: unexpected version from the unpacked ssh: $version" >&2; exit 1 ;;
esac

# Move into place only once complete, so a failed run never leaves a half-filled cache.
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$work/root" "$dest"
echo "fetch-openssh10: $version in $dest"
