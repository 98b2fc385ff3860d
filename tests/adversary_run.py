"""`python -m tests.adversary_run VAULTSYNC-ARGS...`: the vaultsync command line under the
model's faults (tests/adversary.py), given in VAULTSYNC_ADVERSARY as JSON:

- read_faults: {absolute path: "eio" | "churn"}, injected into the scanner's reads;
- signal_at, signal: the process sends itself `signal` at the `signal_at`-th call into
  vaultsync code (any thread) once the command line starts, and first creates the file
  `fired`, so the parent knows.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from types import FrameType
from typing import Any


def main() -> None:
    spec = json.loads(os.environ.pop("VAULTSYNC_ADVERSARY", "{}"))
    from tests import adversary

    adversary.READ_FAULTS.update(spec.get("read_faults") or {})
    adversary.install_read_faults()
    from vaultsync.cli.app import entry as cli  # as `python -m vaultsync` runs it

    at, sig = spec.get("signal_at"), spec.get("signal")
    if at and sig:  # calls are counted from here: imports done, the command line not parsed
        import vaultsync

        package = os.path.dirname(vaultsync.__file__) + os.sep
        lock = threading.Lock()
        calls = 0

        def hook(frame: FrameType, event: str, arg: Any) -> None:
            nonlocal calls
            if event != "call" or not frame.f_code.co_filename.startswith(package):
                return
            with lock:
                calls += 1
                hit = calls == at
            if hit:
                with open(spec["fired"], "w") as f:
                    f.write(str(sig))
                os.kill(os.getpid(), sig)

        threading.setprofile(hook)
        sys.setprofile(hook)
    sys.argv = ["vaultsync", *sys.argv[1:]]
    cli()


if __name__ == "__main__":
    main()
