#!/usr/bin/env python3
"""Set up and run crmbridge from a fresh clone with nothing but Python and the package registries.

    python3 scripts/dev.py demo    # the live demo: sandbox + daemon + a simulated sales team
    python3 scripts/dev.py test    # the whole test suite, lint and type checks

Each creates (or reuses) a virtual environment in ``.venv`` and installs crmbridge and the plugins
in ``plugins/`` into it, editable, with the development tools. The install is redone only when a
``pyproject.toml`` changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".crmbridge-installed"


def plugins() -> list[Path]:
    return sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())


def fingerprint() -> str:
    digest = hashlib.sha256()
    for path in [ROOT / "pyproject.toml", *(p / "pyproject.toml" for p in plugins())]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def run(*args: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], cwd=ROOT, check=True, env=env)


def ensure_env() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - run by whatever python3 the machine has
        sys.exit(f"crmbridge needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print(f"creating the virtual environment {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = fingerprint()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    editable = ["-e", ".[dev]"]
    for plugin in plugins():
        extra = "[test]" if "test =" in (plugin / "pyproject.toml").read_text() else ""
        editable += ["-e", f"{plugin.relative_to(ROOT)}{extra}"]
    run(PYTHON, "-m", "pip", "install", "--quiet", *editable)
    STAMP.write_text(wanted)


def test(extra: list[str]) -> int:
    """ruff, mypy (strict on crmbridge/), then the whole pytest suite on both cores."""
    ensure_env()
    run(BIN / "ruff", "check", ".")
    run(BIN / "ruff", "format", "--check", ".")
    run(BIN / "mypy")
    workers = ["-n", os.environ.get("CRMBRIDGE_TEST_WORKERS", "auto")]
    return subprocess.call([str(PYTHON), "-m", "pytest", *workers, *extra], cwd=ROOT)


def demo(extra: list[str]) -> int:
    """The live demo (see ``crmbridge demo --help``)."""
    ensure_env()
    return subprocess.call([str(BIN / "crmbridge"), "demo", *extra], cwd=ROOT)


def main() -> int:
    commands = {"test": test, "demo": demo}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        return 2
    try:
        return commands[sys.argv[1]](sys.argv[2:])
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1


if __name__ == "__main__":
    sys.exit(main())
