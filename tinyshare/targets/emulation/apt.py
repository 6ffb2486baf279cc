"""A private apt tree that fetches one architecture's Debian packages without touching the host's apt.

Everything apt reads or writes lives under the tree's root: sources, lists, archives, an
empty dpkg status. ``APT_CONFIG`` points apt at the tree's own ``apt.conf`` before apt reads
anything else, so the host's ``/etc/apt/apt.conf.d`` (its hooks, caches and
architectures) is never read and never changed. Proxies still work through the
``http_proxy`` environment variable. Signatures are checked with the host's
``debian-archive-keyring``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tinyshare.errors import RuntimeUnavailableError
from tinyshare.targets._proc import find_tool, last_lines, run

log = logging.getLogger(__name__)

KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
# Packages in the dependency closure that a Python process never runs: dpkg's own tools
# and maintainer-script helpers.
EXCLUDED = frozenset({"dpkg", "tar", "install-info", "mailcap", "debconf", "sensible-utils"})
_EXCLUDED_PREFIXES = ("perl",)
_INST_RE = re.compile(r"^Inst (\S+) \((\S+) .*\[(\S+)\]\)", re.M)
UPDATE_TIMEOUT_S = 300
DOWNLOAD_TIMEOUT_S = 600


@dataclass(frozen=True)
class DebPackage:
    """One Debian binary package as the archive's Packages index lists it.

    Attributes:
        name: e.g. ``"libc6"``.
        version: e.g. ``"2.36-9+deb12u13"``.
        arch: ``"arm64"``, ``"armhf"`` or ``"all"``.
        sha256: hex digest of the ``.deb`` from the signed index.
        size_bytes: size of the ``.deb``.
    """

    name: str
    version: str
    arch: str
    sha256: str
    size_bytes: int

    @property
    def filename(self) -> str:
        """The file name ``apt-get download`` gives the package."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"


def excluded(name: str) -> bool:
    """Whether package ``name`` is left out of a sysroot (see ``EXCLUDED``)."""
    return name in EXCLUDED or name.startswith(_EXCLUDED_PREFIXES)


class PrivateApt:
    """An apt tree under ``root`` for ``arch`` packages of Debian ``suite`` from ``mirror``.

    Raises:
        RuntimeUnavailableError: apt-get or the Debian keyring is missing.
    """

    def __init__(self, root: Path, arch: str, suite: str, mirror: str) -> None:
        self.root, self.arch, self.suite, self.mirror = Path(root), arch, suite, mirror
        self._apt_get = find_tool("apt-get")
        self._apt_cache = find_tool("apt-cache")
        if not KEYRING.is_file():
            raise RuntimeUnavailableError(f"{KEYRING} not found; install it: apt-get install debian-archive-keyring")
        for sub in ("etc/apt/apt.conf.d", "etc/apt/sources.list.d", "etc/apt/preferences.d",
                    "etc/apt/trusted.gpg.d", "var/lib/apt/lists/partial",
                    "var/cache/apt/archives/partial", "var/lib/dpkg", "var/log/apt"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "var/lib/dpkg/status").touch()
        (self.root / "etc/apt/sources.list").write_text(
            f"deb [arch={arch} signed-by={KEYRING}] {mirror} {suite} main\n")
        lines = [
            f'Dir "{self.root}/";',
            f'Dir::State::status "{self.root}/var/lib/dpkg/status";',
            'Dir::Etc "etc/apt/";',
            'Dir::Etc::Parts "apt.conf.d";',
            f'APT::Architecture "{arch}";',
            f'APT::Architectures {{ "{arch}"; }};',
            'APT::Install-Recommends "false";',
            'Debug::NoLocking "true";',
            'Acquire::Languages "none";',
            'Acquire::Retries "2";',
        ]
        if os.geteuid() == 0:  # apt drops to _apt, who cannot write into our tree
            lines.append('APT::Sandbox::User "root";')
        self._conf = self.root / "apt.conf"
        self._conf.write_text("\n".join(lines) + "\n")

    def _run(self, tool: Path, *args: str, timeout_s: float, what: str, cwd: Path | None = None):
        env = {**os.environ, "APT_CONFIG": str(self._conf), "LC_ALL": "C"}
        return run([tool, *args], timeout_s=timeout_s, what=what, cwd=cwd, env=env)

    def update(self) -> None:
        """Fetch the suite's signed Packages index.

        Raises:
            RuntimeUnavailableError: the archive could not be reached or verified.
        """
        where = f"the Debian archive {self.mirror} ({self.suite}, {self.arch})"
        try:
            proc = self._run(self._apt_get, "update", timeout_s=UPDATE_TIMEOUT_S, what=f"apt-get update from {where}")
        except RuntimeUnavailableError as exc:
            raise RuntimeUnavailableError(f"could not fetch package lists: {exc}") from None
        lists = self.root / "var/lib/apt/lists"
        if not any(p.name.endswith(f"binary-{self.arch}_Packages") or f"binary-{self.arch}_Packages." in p.name
                   for p in lists.iterdir()):
            raise RuntimeUnavailableError(
                f"could not fetch package lists from {where}: {last_lines(proc.stdout + proc.stderr, 2)}")

    def resolve(self, packages: tuple[str, ...]) -> list[DebPackage]:
        """The dependency closure of ``packages`` (no recommends), minus ``excluded`` ones.

        apt's resolver picks one package per alternative (``libblas3 | libblas.so.3``),
        which a plain recursive ``apt-cache depends`` cannot.

        Returns:
            The packages in apt's install order, with sha256 and size from the index.

        Raises:
            RuntimeUnavailableError: a package is unknown or the closure cannot be resolved.
        """
        proc = self._run(self._apt_get, "install", "--simulate", "--no-install-recommends", "--quiet",
                         *packages, timeout_s=120, what=f"resolving {' '.join(packages)}")
        chosen = [(n, v, a) for n, v, a in _INST_RE.findall(proc.stdout) if not excluded(n)]
        if not chosen:
            raise RuntimeUnavailableError(f"apt resolved no packages for {' '.join(packages)}")
        records = self._records([f"{n}={v}" for n, v, _ in chosen])
        out = []
        for name, version, arch in chosen:
            rec = records.get((name, version))
            if rec is None or "SHA256" not in rec:
                raise RuntimeUnavailableError(f"the package index has no SHA256 for {name} {version}")
            out.append(DebPackage(name, version, arch, rec["SHA256"], int(rec["Size"])))
        return out

    def _records(self, pins: list[str]) -> dict[tuple[str, str], dict[str, str]]:
        proc = self._run(self._apt_cache, "show", "--no-all-versions", *pins, timeout_s=120,
                         what="reading the package index")
        records: dict[tuple[str, str], dict[str, str]] = {}
        for stanza in proc.stdout.split("\n\n"):
            fields = dict(re.findall(r"^([A-Za-z0-9-]+): (.*)$", stanza, re.M))
            if "Package" in fields:
                records.setdefault((fields["Package"], fields["Version"]), fields)
        return records

    def download(self, packages: list[DebPackage], dest: Path) -> list[Path]:
        """Download ``packages`` into ``dest`` and check each file's sha256 against the index.

        Returns:
            The ``.deb`` paths, in the order of ``packages``.

        Raises:
            RuntimeUnavailableError: a download failed or a file's size or sha256 differs.
        """
        dest.mkdir(parents=True, exist_ok=True)
        self._run(self._apt_get, "download", *(f"{p.name}={p.version}" for p in packages),
                  timeout_s=DOWNLOAD_TIMEOUT_S, what=f"downloading {len(packages)} Debian packages", cwd=dest)
        paths = []
        for pkg in packages:
            path = dest / pkg.filename
            if not path.is_file():
                raise RuntimeUnavailableError(f"apt-get download left no {path.name}")
            digest = sha256_file(path)
            if digest != pkg.sha256 or path.stat().st_size != pkg.size_bytes:
                raise RuntimeUnavailableError(
                    f"{path.name}: sha256 {digest[:16]}… differs from the signed index ({pkg.sha256[:16]}…)")
            paths.append(path)
        return paths


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
