#!/usr/bin/env bash
# The bench's peers from Debian, installed when missing (as .ci/run installs what the tests use):
# fail2ban (fail2ban-server, fail2ban-regex) and crowdsec. Nothing comes from the internet but the
# Debian mirror: crowdsec's post-install step registers to its Central API, which fails offline and
# would leave the package half-configured (and every later apt-get failing on it), so a non-empty
# online_api_credentials.yaml is put in place first, which its postinst reads as "do not register".
# No service may start on install (policy-rc.d 101 = "action forbidden"). Needs root; prints what
# it could not install and exits 0 regardless: the bench reports a missing peer, it does not fail.
set -uo pipefail

need=()
command -v fail2ban-server >/dev/null || need+=(fail2ban)
command -v crowdsec >/dev/null || need+=(crowdsec)
capi=/etc/crowdsec/online_api_credentials.yaml
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-peers: not root, not installing ${need[*]}" >&2
    exit 0
  fi
  added_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && added_policy=1
  fi
  if [[ " ${need[*]} " == *" crowdsec "* ]] && [ ! -s "$capi" ]; then
    mkdir -p /etc/crowdsec && echo '# no Central API registration (offline)' >"$capi"
  fi
  apt-get update -qq >/dev/null 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
    || echo "install-peers: apt-get install ${need[*]} failed" >&2
  if [ -n "$added_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
# A crowdsec left half-configured by an earlier online-registration failure: configure it offline.
if [ "$(id -u)" = 0 ] && dpkg-query -W -f='${Status}' crowdsec 2>/dev/null | grep -q 'half-configured\|unpacked'; then
  [ -s "$capi" ] || echo '# no Central API registration (offline)' >"$capi"
  dpkg --configure crowdsec >/dev/null 2>&1 || echo "install-peers: dpkg --configure crowdsec failed" >&2
fi
exit 0
