"""An offline wheelhouse for a fresh virtual environment, made from this one.

* Installed distributions are **repacked** into wheels from their files (as listed in their
  ``RECORD``), with a fresh ``RECORD``: pip then installs them with ``--no-index``, so a fresh
  environment needs no network and no cache.
* Projects from source (crmbridge itself, a new plugin) are **built** with the PEP 517 backend
  installed here (hatchling), without build isolation, so pip never downloads the backend.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata as md
import io
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

SKIPPED_METADATA = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(roots: Iterable[str]) -> dict[str, md.Distribution]:
    """The installed distributions ``roots`` need, their own requirements included."""
    installed = {canonical(d.metadata["Name"]): d for d in md.distributions()}
    wanted: list[tuple[str, frozenset[str]]] = [(canonical(r), frozenset()) for r in roots]
    found: dict[str, md.Distribution] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    while wanted:
        name, extras = wanted.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        dist = installed.get(name)
        if dist is None:
            raise LookupError(f"{name} is required but not installed in {sys.prefix}")
        found[name] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if _applies(requirement, extras):
                wanted.append((canonical(requirement.name), frozenset(requirement.extras)))
    return found


def _applies(requirement: Requirement, extras: frozenset[str]) -> bool:
    if requirement.marker is None:
        return True
    environment: dict[str, str] = dict(default_environment())
    for extra in ("", *sorted(extras)):
        environment["extra"] = extra
        if requirement.marker.evaluate(environment):
            return True
    return False


def repack(dist: md.Distribution, out: Path) -> Path:
    """A wheel of an installed distribution, from the files it installed."""
    files = [f for f in dist.files or [] if not str(f).startswith("..")]
    info = next(f for f in files if f.name == "METADATA" and f.parent.name.endswith(".dist-info"))
    info_dir = str(info.parent)
    tags = [
        line.split(":", 1)[1].strip()
        for line in (dist.read_text("WHEEL") or "").splitlines()
        if line.startswith("Tag:")
    ]
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    wheel = out / f"{name}-{dist.version}-{_tag_set(tags)}.whl"
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as archive:
        for entry in files:
            path = Path(str(dist.locate_file(entry)))
            text = str(entry)
            if (
                not path.is_file()
                or "__pycache__" in entry.parts
                or text.endswith(".pyc")
                or (str(entry.parent) == info_dir and entry.name in SKIPPED_METADATA)
            ):
                continue
            data = path.read_bytes()
            archive.writestr(text, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            writer.writerow([text, f"sha256={digest.decode()}", len(data)])
        writer.writerow([f"{info_dir}/RECORD", "", ""])
        archive.writestr(f"{info_dir}/RECORD", record.getvalue())
    return wheel


def _tag_set(tags: list[str]) -> str:
    """The compressed tag set of a wheel's name: ``py2-none-any`` and ``py3-none-any`` make
    ``py2.py3-none-any``."""
    parts = [t.split("-") for t in tags]
    return "-".join(".".join(dict.fromkeys(p[i] for p in parts)) for i in range(3))


def build(project: Path, out: Path) -> Path:
    """A wheel of a source project, built by the backend installed here (no isolation)."""
    script = "import sys; from hatchling.build import build_wheel; print(build_wheel(sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-c", script, str(out)],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out / done.stdout.strip().splitlines()[-1]
