"""Check a finished run folder against its manifests (``tinyshare verify runs/<name>``).

A run folder holds a top-level ``manifest.json`` whose ``files_sha256`` maps every other
file's path to its sha256, and one ``manifest.json`` per stage folder (``data/``,
``train/``, ``export/``, ...) whose ``files`` maps each of the stage's files to
``{sha256, bytes}``. ``verify_run`` hashes every file on disk again and names each one
that differs from what a manifest lists, is listed but missing, or is present but listed
nowhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tinyshare.artifacts import sha256_file
from tinyshare.errors import RunFolderError

__all__ = ["FileProblem", "VerifyResult", "verify_run"]

RUN_MANIFEST = "manifest.json"
_ORDER = {"missing": 0, "differs": 1, "unlisted": 2}


@dataclass(frozen=True)
class FileProblem:
    """One file that does not match the manifests.

    Attributes:
        path: relative to the run folder, with ``/`` separators.
        kind: ``"differs"`` (content or size), ``"missing"`` (listed, not on disk) or
            ``"unlisted"`` (on disk, not listed where it should be).
        detail: one line: the hashes or sizes that differ, or which manifests list it.
        manifests: the manifests that disagree with the file, e.g.
            ``("manifest.json", "export/manifest.json")``.
    """

    path: str
    kind: str
    detail: str
    manifests: tuple[str, ...]


@dataclass(frozen=True)
class VerifyResult:
    """What ``verify_run`` found.

    Attributes:
        run_dir: the run folder.
        files_checked: distinct files on disk or listed in a manifest (the top-level
            ``manifest.json`` itself excluded).
        manifests: the manifests read: ``manifest.json`` then the stage manifests.
        problems: one per file that does not match, sorted by path.
    """

    run_dir: Path
    files_checked: int
    manifests: tuple[str, ...]
    problems: tuple[FileProblem, ...]

    @property
    def ok(self) -> bool:
        """Every file matches every manifest that lists it, and none is unlisted."""
        return not self.problems


def _load_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _run_manifest(run_dir: Path) -> dict[str, str]:
    """``files_sha256`` of the run's top-level manifest.

    Raises:
        RunFolderError: no folder, or no readable run manifest in it.
    """
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir} is not a run folder: no such folder")
    top = _load_json(run_dir / RUN_MANIFEST)
    files = top.get("files_sha256") if top is not None else None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        why = "no manifest.json" if not (run_dir / RUN_MANIFEST).exists() else \
            "its manifest.json is unreadable or has no files_sha256"
        raise RunFolderError(f"{run_dir} is not a run folder ({why}); give runs/<name>/ as "
                             "`tinyshare run` wrote it")
    return {str(k): v for k, v in files.items()}


def _stage_manifests(run_dir: Path, listed: dict[str, str]) -> dict[str, dict]:
    """``{"<stage>/manifest.json": {relpath: {sha256, bytes}}}`` of every stage folder
    manifest on disk (one level down, with a ``files`` table)."""
    names = {str(p.relative_to(run_dir).as_posix()) for p in run_dir.glob("*/" + RUN_MANIFEST)}
    names |= {k for k in listed if len(PurePosixPath(k).parts) == 2
              and PurePosixPath(k).name == RUN_MANIFEST}
    out = {}
    for name in sorted(names):
        data = _load_json(run_dir / name)
        files = data.get("files") if data is not None else None
        if isinstance(files, dict):
            out[name] = files
    return out


def _count(n: object) -> str:
    return f"{n:,}" if isinstance(n, int) else repr(n)


def _short(digest: object) -> str:
    return f"{str(digest)[:12]}…"


def verify_run(run_dir: str | Path) -> VerifyResult:
    """Hash every file of ``run_dir`` again and compare it with the run's manifests.

    Args:
        run_dir: a run folder ``runs/<name>/``.

    Returns:
        The ``VerifyResult``; ``ok`` when every file matches.

    Raises:
        RunFolderError: ``run_dir`` is not a folder or has no readable top-level
            ``manifest.json`` with ``files_sha256``.
    """
    run_dir = Path(run_dir)
    listed = _run_manifest(run_dir)
    on_disk = {p.relative_to(run_dir).as_posix(): p for p in sorted(run_dir.rglob("*"))
               if p.is_file() and p.relative_to(run_dir).as_posix() != RUN_MANIFEST}
    digests = {rel: sha256_file(p) for rel, p in on_disk.items()}
    stages = _stage_manifests(run_dir, listed)
    found: dict[str, list[tuple[str, str, str]]] = {}  # path -> [(kind, detail, manifest)]

    def note(rel: str, kind: str, detail: str, manifest: str) -> None:
        found.setdefault(rel, []).append((kind, detail, manifest))

    for rel, digest in listed.items():
        if rel not in on_disk:
            note(rel, "missing", "listed but not on disk", RUN_MANIFEST)
        elif digests[rel] != digest:
            note(rel, "differs", f"sha256 {_short(digests[rel])} ≠ listed {_short(digest)}",
                 RUN_MANIFEST)
    for rel in on_disk.keys() - listed.keys():
        note(rel, "unlisted", "on disk but in no manifest", RUN_MANIFEST)
    for name, files in stages.items():
        stage = PurePosixPath(name).parent
        for sub, entry in files.items():
            rel = str(stage / sub)
            entry = entry if isinstance(entry, dict) else {}
            if rel not in on_disk:
                note(rel, "missing", "listed but not on disk", name)
                continue
            size = on_disk[rel].stat().st_size
            if entry.get("bytes") not in (None, size):
                note(rel, "differs", f"{size:,} bytes ≠ listed {_count(entry['bytes'])}", name)
            elif entry.get("sha256") != digests[rel]:
                note(rel, "differs", f"sha256 {_short(digests[rel])} ≠ listed "
                     f"{_short(entry.get('sha256'))}", name)
        for rel in on_disk:
            inside = PurePosixPath(rel).relative_to(stage) if rel.startswith(f"{stage}/") else None
            if (inside is not None and str(inside) not in files and inside.name != RUN_MANIFEST
                    and not inside.name.endswith(".tmp")):
                note(rel, "unlisted", f"not in {name}", name)
    problems = []
    for rel, notes in found.items():
        kind = min((k for k, _, _ in notes), key=_ORDER.__getitem__)
        details = [d for k, d, _ in notes if k == kind]
        manifests = tuple(dict.fromkeys(m for _, _, m in notes))
        problems.append(FileProblem(rel, kind, details[0], manifests))
    problems.sort(key=lambda p: p.path)
    return VerifyResult(run_dir=run_dir, files_checked=len(on_disk.keys() | listed.keys()),
                        manifests=(RUN_MANIFEST, *stages), problems=tuple(problems))
