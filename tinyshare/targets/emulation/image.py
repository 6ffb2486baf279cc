"""Build or reuse a cached device image (``ensure_image``), and check one (``verify_image``).

Images live under ``$XDG_CACHE_HOME/tinyshare/images`` (default ``~/.cache/...``), never
in the repository, one folder per ``ImageSpec.key``. Building is idempotent and safe to
run from several processes at once:

* an image counts only when it passes ``verify_image`` (``COMPLETE`` written last, the
  manifest matches the spec, Python, cpuinfo and every site dir present); anything else
  is moved aside, deleted and rebuilt, never half-used;
* a build happens in a temporary folder next to the final one, under an exclusive
  ``fcntl.flock`` on ``.<arch>-<key>.lock``, and is renamed into place in one step; a
  second process waits for the lock and then finds the finished image.

Only ``apt-get install qemu-user-static`` needs root; the build itself does not.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from tinyshare.artifacts.locks import exclusive_lock
from tinyshare.errors import RuntimeUnavailableError
from tinyshare.targets._proc import find_tool
from tinyshare.targets.emulation.build import MANIFEST_FORMAT, build_image
from tinyshare.targets.emulation.cpuinfo import cpuinfo_text, qemu_cpu
from tinyshare.targets.emulation.device_image import COMPLETE, DeviceImage, qemu_cpu_models
from tinyshare.targets.emulation.spec import ImageSpec

log = logging.getLogger(__name__)

LOCK_TIMEOUT_S = 1800


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/tinyshare/images``, or ``~/.cache/tinyshare/images``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tinyshare" / "images"


def verify_image(image: DeviceImage) -> list[str]:
    """Check that an image is complete and matches its spec (cheap: no guest run).

    Args:
        image: the image to check.

    Returns:
        One line per problem; empty when the image can be used.
    """
    spec = image.spec
    if not image.root.is_dir():
        return [f"{image.root} does not exist"]
    problems = []
    if not (image.root / COMPLETE).is_file():
        problems.append(f"no {COMPLETE} marker (an interrupted build)")
    try:
        manifest = json.loads(image.manifest.read_text())
        if (manifest.get("manifest_format") != MANIFEST_FORMAT or manifest.get("key") != spec.key
                or manifest.get("spec") != spec.to_dict()):
            problems.append("manifest.json does not match the image spec")
    except (OSError, ValueError):
        problems.append("manifest.json is missing or unreadable")
    if not image.python.is_file():
        problems.append(f"the guest Python {image.python} is missing")
    try:
        if image.cpuinfo.read_text() != cpuinfo_text(spec.cpuinfo_core, spec.cores, spec.arch):
            problems.append("the sysroot's /proc/cpuinfo does not match the spec's core and count")
    except OSError:
        problems.append(f"the sysroot's /proc/cpuinfo ({image.cpuinfo}) is missing")
    for ws in spec.runtimes:
        top = ws.import_name.split(".")[0]
        site = image.site_dirs[ws.name]
        if not site.is_dir():
            problems.append(f"the {ws.name} site dir {site} is missing")
        elif top and not ((site / top).is_dir() or (site / f"{top}.py").is_file()):
            problems.append(f"the {ws.name} site dir has no {top}")
    if not image.qemu.is_file():
        problems.append(f"{image.qemu} is missing")
    return problems


@contextlib.contextmanager
def _locked(path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (one per open file, so threads exclude too).

    Raises:
        RuntimeUnavailableError: another process still holds it after ``timeout_s`` seconds.
    """
    def busy() -> RuntimeUnavailableError:
        return RuntimeUnavailableError(
            f"another process has held {path} for over {timeout_s:.0f} s")

    with exclusive_lock(path, timeout_s=timeout_s, busy=busy):
        yield


def _discard(path: Path) -> None:
    """Move ``path`` aside in one step (so it never looks like an image), then delete it."""
    trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.trash-", dir=path.parent))
    os.rename(path, trash / path.name)
    shutil.rmtree(trash, ignore_errors=True)


def ensure_image(spec: ImageSpec, *, cache_dir: str | Path | None = None,
                 progress: Callable[[str], None] | None = None) -> DeviceImage:
    """Return ``spec``'s device image, building it first if it is missing or broken.

    Args:
        spec: what the image holds (``image_spec_for`` makes one for a board).
        cache_dir: the images folder; None for ``default_cache_dir()``.
        progress: called with one line per build step (e.g. for the CLI); None for none.

    Returns:
        The image, which passes ``verify_image``.

    Raises:
        RuntimeUnavailableError: qemu, apt-get or dpkg-deb is missing (the message says
            how to install it), the installed qemu lacks a model for the core, the Debian
            archive or PyPI cannot be reached, or a package fails its checks.
    """
    qemu = find_tool(spec.qemu_binary)
    qemu_cpu(spec.cpuinfo_core, spec.arch, qemu_cpu_models(qemu))
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    image = DeviceImage.at(cache / spec.name, spec, qemu)
    if not verify_image(image):
        return image

    def say(line: str) -> None:
        log.info("%s: %s", spec.name, line)
        if progress is not None:
            progress(line)

    with _locked(cache / f".{spec.name}.lock"):
        problems = verify_image(image)
        if not problems:
            return image  # another process built it while we waited
        if image.root.exists():
            log.warning("rebuilding device image %s: %s", image.root, "; ".join(problems))
            _discard(image.root)
        for pattern in (f".{spec.name}.build-*", f".{spec.name}.trash-*"):  # left by a killed build
            for stale in cache.glob(pattern):
                shutil.rmtree(stale, ignore_errors=True)
        build = Path(tempfile.mkdtemp(prefix=f".{spec.name}.build-", dir=cache))
        try:
            say(f"building device image {spec.name} in {cache}")
            build_image(spec, build, qemu, say)
            os.chmod(build, 0o755)  # mkdtemp made it 0700
            os.rename(build, image.root)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
    problems = verify_image(image)
    if problems:
        raise RuntimeUnavailableError(f"device image {image.root} failed its checks after building: "
                                      + "; ".join(problems))
    return image
