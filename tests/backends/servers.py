"""Start and stop real servers on 127.0.0.1 for the backend tests.

Each pytest process (each xdist worker) starts its own servers on its own free ports in
its own scratch folder, so workers never share state or ports. A server that does not
come up within `STARTUP_TIMEOUT` seconds fails the test with the tail of its log.
Recipes and quirks: shared/servers.md.
"""

from __future__ import annotations

import base64
import ctypes
import hashlib
import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
SERVER_VENV = Path(os.environ.get("VAULTSYNC_SERVER_VENV", "/opt/vaultsync-srv"))
APACHE_MODULES = "/usr/lib/apache2/modules"

S3_KEY, S3_SECRET = "vsaccess", "vs-s3-secret-Q7x"
DAV_USER, DAV_PASSWORD = "vsuser", "vs-dav-pass-K3z"


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_block(count: int, offsets: tuple[int, ...] = (0,)) -> int:
    """A base port B with B+i+o free for every i < count and o in offsets (SeaweedFS
    puts its gRPC ports at +10000)."""
    rng = random.Random()
    for _ in range(500):
        base = rng.randrange(10000, 22000 - count)  # +10000 stays below the ephemeral range
        if all(port_free(base + i + o) for i in range(count) for o in offsets):
            return base
    raise RuntimeError("no free block of ports found")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Server:
    name: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    info: dict[str, str] = field(default_factory=dict)
    leftovers: list[Path] = field(default_factory=list)  # removed after stop()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def start(self, argv: list[str], *, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> None:
        with open(self.log, "ab") as log:
            try:
                self.proc = subprocess.Popen(
                    argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            except OSError as exc:
                pytest.fail(f"{self.name}: cannot run {argv[0]}: {exc} "
                            "(run scripts/install-servers.sh)", pytrace=False)
        self.wait()

    def wait(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.proc.returncode} at startup; "
                            f"log tail:\n{self.log_tail()}", pytrace=False)
            if port_open(self.port):
                return
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"{self.name} did not listen on 127.0.0.1:{self.port} within "
                    f"{STARTUP_TIMEOUT:.0f} s; log tail:\n{self.log_tail()}", pytrace=False)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for path in self.leftovers:
            path.unlink(missing_ok=True)


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when pytest dies, even by SIGKILL (Linux
    PR_SET_PDEATHSIG), so a killed test run leaves no server behind."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def make_scratch() -> Path:
    """A fresh scratch folder that Apache's www-data workers can traverse (a 0700
    folder such as pytest's tmp_path gives 403 on every request). Scratch folders of
    earlier runs whose pytest process is gone (killed) are removed first."""
    for old in Path("/tmp").glob("vaultsync-backends-*"):
        pid = old.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)
    root = Path("/tmp") / f"vaultsync-backends-{os.getpid()}-{random.randrange(1 << 30):x}"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    for sub in ("run", "data", "conf", "ssh"):
        (root / sub).mkdir()
    return root


def remove_scratch(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)


def _bin(name: str) -> str:
    path = SERVER_VENV / "bin" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/install-servers.sh "
                    f"(VAULTSYNC_SERVER_VENV={SERVER_VENV})", pytrace=False)
    return str(path)


# -- S3 ----------------------------------------------------------------------------------

def start_seaweedfs(root: Path) -> Server:
    base = free_port_block(5, offsets=(0, 10000))
    conf = root / "conf" / "sw-s3.json"
    conf.write_text(json.dumps({"identities": [{
        "name": "vs", "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    tmp = root / "run" / "weedtmp"
    logs = root / "run" / "weedlogs"
    data = root / "data" / "sw"
    for d in (tmp, logs, data):
        d.mkdir(parents=True)
    server = Server("SeaweedFS (weed mini)", base, root / "run" / "weed.log")
    server.start(
        [_bin("weed"), f"-logdir={logs}", "mini", f"-dir={data}",
         "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         f"-s3.port={base}", f"-master.port={base + 1}", f"-volume.port={base + 2}",
         f"-filer.port={base + 3}", f"-admin.port={base + 4}",
         f"-s3.config={conf}", "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false",
         "-admin.ui=false", "-master.telemetry=false", "-s3.autoCreateBucket=false",
         f"-filer.localSocket={tmp}/filer.sock", f"-s3.localSocket={tmp}/s3.sock"],
        env={"TMPDIR": str(tmp)},
    )
    # weed puts its gRPC sockets in /tmp whatever TMPDIR says, and leaves them behind
    # when it is killed: remove ours (by port) after it stops
    server.leftovers = [Path(f"/tmp/seaweedfs-{kind}-grpc-{base + i + 10000}.sock")
                        for i, kind in enumerate(("s3", "master", "volume", "filer", "admin"))]
    server.info["endpoint"] = f"http://127.0.0.1:{base}"
    return server


def start_moto(root: Path) -> Server:
    port = free_port()
    server = Server("moto_server", port, root / "run" / "moto.log")
    server.start([_bin("moto_server"), "-H", "127.0.0.1", "-p", str(port)])
    server.info["endpoint"] = f"http://127.0.0.1:{port}"
    return server


# -- WebDAV ------------------------------------------------------------------------------

def _htpasswd(root: Path) -> Path:
    path = root / "conf" / "htpasswd"
    if not path.exists():  # {SHA} is weak but needs no htpasswd/openssl binary: tests only
        digest = base64.b64encode(hashlib.sha1(DAV_PASSWORD.encode()).digest()).decode()
        path.write_text(f"{DAV_USER}:{{SHA}}{digest}\n")
        path.chmod(0o644)
    return path


def start_apache(root: Path) -> Server:
    port = free_port()
    data = root / "data" / "apache-dav"
    shallow = root / "data" / "apache-shallow"
    lock = root / "run" / "apache-lock"
    for d in (data, shallow, lock):
        d.mkdir()
    www = pwd.getpwnam("www-data")
    for d in (data, shallow, lock):
        os.chown(d, www.pw_uid, www.pw_gid)
    modules = ["mpm_event", "authn_core", "authn_file", "auth_basic", "authz_core",
               "authz_user", "mime", "dir", "autoindex", "alias", "dav", "dav_fs"]
    loads = "\n".join(f"LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so" for m in modules)
    run = root / "run"
    conf = root / "conf" / "apache.conf"
    conf.write_text(f"""ServerRoot "{root / 'conf'}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {run}/apache.httpd.pid
ErrorLog {run}/apache-error.log
LogLevel warn
{loads}
User www-data
Group www-data
TypesConfig /etc/mime.types
StartServers 1
ServerLimit 2
ThreadsPerChild 16
MaxRequestWorkers 32
DavLockDB {lock}/DavLock
DocumentRoot {data}
<Directory {data}>
  Dav On
  Options +Indexes
  DavDepthInfinity On
  LimitRequestBody 0
  AuthType Basic
  AuthName "vaultsync"
  AuthUserFile {_htpasswd(root)}
  Require valid-user
</Directory>
# the same without DavDepthInfinity: PROPFIND Depth: infinity gets 403, as on many servers
Alias /shallow {shallow}
<Directory {shallow}>
  Dav On
  LimitRequestBody 0
  AuthType Basic
  AuthName "vaultsync"
  AuthUserFile {root / 'conf' / 'htpasswd'}
  Require valid-user
</Directory>
""")
    server = Server("Apache mod_dav", port, run / "apache.out")
    server.start(["/usr/sbin/apache2", "-f", str(conf), "-DFOREGROUND"],
                 env={"APACHE_RUN_DIR": str(run), "APACHE_LOG_DIR": str(run)})
    server.info.update(data=str(data), shallow=str(shallow))
    return server


def start_wsgidav(root: Path) -> Server:
    port = free_port()
    data = root / "data" / "wsgidav"
    data.mkdir()
    conf = root / "conf" / "wsgidav.yaml"
    conf.write_text(f"""host: 127.0.0.1
port: {port}
server: cheroot
provider_mapping:
  "/":
    root: {data}
    readonly: false
http_authenticator:
  accept_basic: true
  accept_digest: false
  default_to_digest: false
simple_dc:
  user_mapping:
    "*":
      {DAV_USER}:
        password: {DAV_PASSWORD}
verbose: 1
property_manager: true
lock_storage: true
dir_browser:
  enable: true
""")
    server = Server("WsgiDAV", port, root / "run" / "wsgidav.log")
    server.start([_bin("wsgidav"), "-c", str(conf)])
    server.info["data"] = str(data)
    return server


# -- SSH ---------------------------------------------------------------------------------

def keygen(path: Path, comment: str) -> str:
    """An ed25519 key pair at path / path.pub; returns the public key line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                    "-f", str(path)], check=True)
    return Path(f"{path}.pub").read_text().strip()


SFTP_SERVER = "/usr/lib/openssh/sftp-server"


def start_sshd(root: Path, sftp_log: Path | None = None) -> Server:
    """sshd with internal-sftp; with `sftp_log`, the external sftp-server (the same code)
    instead, logging every request (`-l DEBUG3`) to that file rather than to syslog
    (benchmarks/bench_remote.py counts SFTP requests from it)."""
    port = free_port()
    ssh = root / "ssh"
    run = root / "run"
    host_key = ssh / "ssh_host_ed25519_key"
    host_pub = keygen(host_key, "vs-host")
    user_pub = keygen(ssh / "id_ed25519", "vs-user")
    (ssh / "authorized_keys").write_text(user_pub + "\n")
    (ssh / "authorized_keys").chmod(0o600)
    data = root / "data" / "sftp"
    data.mkdir()
    subsystem = "internal-sftp"
    if sftp_log is not None:
        wrapper = ssh / "sftp-logged"
        wrapper.write_text(f"#!/bin/sh\nexec {SFTP_SERVER} -e -l DEBUG3 2>>'{sftp_log}'\n")
        wrapper.chmod(0o755)
        subsystem = str(wrapper)
    conf = ssh / "sshd_config"
    conf.write_text(f"""ListenAddress 127.0.0.1:{port}
HostKey {host_key}
PidFile {run}/sshd.pid
AuthorizedKeysFile {ssh}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp {subsystem}
MaxStartups 100:30:200
MaxSessions 50
""")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege-separation directory
    check = subprocess.run(["/usr/sbin/sshd", "-t", "-f", str(conf)], capture_output=True,
                           text=True)
    if check.returncode != 0:
        pytest.fail(f"sshd -t rejected the config: {check.stderr}", pytrace=False)
    server = Server("OpenSSH sshd", port, run / "sshd.log")
    server.start(["/usr/sbin/sshd", "-D", "-e", "-f", str(conf)])
    kind, blob = host_pub.split()[:2]
    (ssh / "known_hosts").write_text(f"[127.0.0.1]:{port} {kind} {blob}\n")
    server.info.update(data=str(data), key=str(ssh / "id_ed25519"),
                       known_hosts=str(ssh / "known_hosts"), host_key_line=f"{kind} {blob}")
    return server
