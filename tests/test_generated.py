"""The generated files (docs/exit-codes.md, docs/commands.md, completions/) match the code,
the exit codes are the design's, and the shell completion really completes."""

from __future__ import annotations

import ast
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from vaultsync import errors
from vaultsync.cli import app as cli

REPO_ROOT = Path(__file__).resolve().parent.parent
GEN_DOCS = REPO_ROOT / "scripts" / "gen-docs.py"
SHELLS = ("bash", "zsh", "fish")
# design.md, "Exit codes"
DESIGN_CODES = {
    "EXIT_OK": 0, "EXIT_ATTENTION": 1, "EXIT_USAGE": 2, "EXIT_REMOTE": 3,
    "EXIT_SAFETY": 4, "EXIT_INTEGRITY": 5, "EXIT_LOCKED": 6, "EXIT_LOCAL": 7, "EXIT_BUG": 70,
    "EXIT_INTERRUPTED": 130,
}


def gen_docs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(GEN_DOCS), *args], capture_output=True,
                          text=True, timeout=60)


def test_committed_generated_files_match_the_code() -> None:
    proc = gen_docs("--check")
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_check_names_stale_and_missing_files(tmp_path: Path) -> None:
    assert gen_docs("--out", str(tmp_path)).returncode == 0
    with (tmp_path / "docs" / "commands.md").open("a") as f:
        f.write("hand edit\n")
    (tmp_path / "completions" / "vaultsync.fish").unlink()
    proc = gen_docs("--check", "--out", str(tmp_path))
    assert proc.returncode == 1
    stale = {line.strip() for line in proc.stderr.splitlines()[1:]}
    assert stale == {"docs/commands.md", "completions/vaultsync.fish"}


def test_exit_codes_are_the_designs() -> None:
    constants = {name: value for name, value in vars(errors).items()
                 if name.startswith("EXIT_")}
    assert constants == DESIGN_CODES
    for cls in errors.all_error_classes():
        assert cls.exit_code in DESIGN_CODES.values(), cls
        assert cls.__dict__.get("__doc__"), f"{cls.__name__} needs a docstring for the docs"
    expected = {
        errors.UsageError: 2, errors.NotAVault: 2, errors.NoRemote: 2,
        errors.RemoteError: 3, errors.AuthError: 3, errors.TransientError: 3,
        errors.SafetyStop: 4, errors.FormatTooNew: 4, errors.IntegrityError: 5,
        errors.LockHeld: 6, errors.Interrupted: 130,
    }
    assert {cls: cls.exit_code for cls in expected} == expected


def test_every_error_class_lives_in_errors_py() -> None:
    """docs/exit-codes.md sees only the classes errors.py defines (or imports)."""
    names = {cls.__name__ for cls in errors.all_error_classes()} | {"Exception"}
    elsewhere = []
    for path in sorted((REPO_ROOT / "vaultsync").rglob("*.py")):
        if path.name == "errors.py" and path.parent.name == "vaultsync":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", None)) for b in node.bases}
                if bases & (names - {"Exception"}):
                    elsewhere.append(f"{path.relative_to(REPO_ROOT)}: {node.name}")
    assert not elsewhere


def app_commands() -> dict[str, list[str]]:
    """Command path below `vaultsync` -> its option names, from the live app."""
    root = typer.main.get_command(cli.app)
    found: dict[str, list[str]] = {}

    def walk(group: Any, ctx: Any, prefix: str) -> None:
        for name in group.list_commands(ctx):
            cmd = group.get_command(ctx, name)
            if cmd is None or cmd.hidden:
                continue
            sub = cmd.make_context(name, [], parent=ctx, resilient_parsing=True)
            help_opt = cmd.get_help_option(sub)  # documented once, not per command
            found[prefix + name] = [o for p in cmd.get_params(sub) if p is not help_opt
                                    and p.param_type_name == "option" for o in p.opts]
            if hasattr(cmd, "list_commands"):
                walk(cmd, sub, f"{prefix}{name} ")

    walk(root, root.make_context("vaultsync", [], resilient_parsing=True), "")
    return found


def test_every_command_and_option_is_in_commands_md() -> None:
    commands = app_commands()
    assert "sync" in commands and "verify" in commands
    text = (REPO_ROOT / "docs" / "commands.md").read_text()
    sections = {s.split("\n", 1)[0]: s for s in text.split("\n## ")[1:]}
    for path, options in commands.items():
        section = sections.get(f"vaultsync {path}")
        assert section is not None, f"vaultsync {path} is not in docs/commands.md"
        for opt in options:
            assert f"`{opt}" in section or f" {opt}" in section, (path, opt)


# How each shell's script calls back into the program (typer's protocol).
COMPLETE_ENV = {
    "bash": {"COMP_WORDS": "vaultsync ", "COMP_CWORD": "1"},
    "zsh": {"_TYPER_COMPLETE_ARGS": "vaultsync "},
    "fish": {"_TYPER_COMPLETE_ARGS": "vaultsync ", "_TYPER_COMPLETE_FISH_ACTION": "get-args"},
}


@pytest.mark.parametrize("shell", SHELLS)
def test_every_command_is_offered_by_each_completion_script(
        shell: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # typer's scripts hold no command names: they ask the program. So check that the
    # script calls `vaultsync` with this shell's protocol, and that the protocol offers
    # every command.
    script = (REPO_ROOT / "completions" / f"vaultsync.{shell}").read_text()
    assert f"_VAULTSYNC_COMPLETE=complete_{shell}" in script
    assert "vaultsync" in script.split()  # by name, not by a path on this machine
    assert str(REPO_ROOT) not in script and ".venv" not in script
    monkeypatch.setenv("_VAULTSYNC_COMPLETE", f"complete_{shell}")
    for key, value in COMPLETE_ENV[shell].items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exit_:
        cli.main([])
    assert exit_.value.code in (0, None)
    offered = capsys.readouterr().out
    for path in app_commands():
        assert path.split()[0] in offered, f"{shell} completion does not offer {path}"


@pytest.mark.parametrize(("line", "expected"), [
    ("vaultsync sy", ["sync"]),
    ("vaultsync sync --dr", ["--dry-run"]),
])
def test_bash_completion_completes(line: str, expected: list[str]) -> None:
    bash = shutil.which("bash")
    assert bash, "bash is needed to test the bash completion"
    venv_bin = Path(sys.executable).parent
    exe = shutil.which("vaultsync", path=str(venv_bin))
    assert exe, f"no vaultsync entry point in {venv_bin}: pip install -e ."
    words = line.split()
    program = f"""
source {shlex.quote(str(REPO_ROOT / "completions" / "vaultsync.bash"))}
spec=$(complete -p vaultsync) || exit 3
func=${{spec#*-F }}; func=${{func%% *}}
type -P vaultsync
COMP_WORDS=({" ".join(shlex.quote(w) for w in words)})
COMP_CWORD={len(words) - 1}
"$func" vaultsync {shlex.quote(words[-1])} {shlex.quote(words[-2])}
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    env = {"PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
           "HOME": os.environ["HOME"]}
    proc = subprocess.run([bash, "--norc", "--noprofile", "-c", program], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    found, *offered = proc.stdout.splitlines()
    assert found == exe  # the test venv's real entry point answered
    assert offered == expected, proc.stderr
