"""Emulated Arm Linux boards: device images (Debian sysroot + runtime wheels) run under qemu-user.

Public API:

* ``image_spec_for(arch, core, cores, runtimes) -> ImageSpec`` with the pinned wheel sets;
* ``ensure_image(spec, cache_dir=None, progress=None) -> DeviceImage`` builds or reuses
  the cached image; ``verify_image(image)`` lists what is wrong with one;
* ``DeviceImage.command(runtime, script, args, core)`` gives the qemu argv and environment;
* ``cpuinfo_text(core, cores, arch)`` is the board-true ``/proc/cpuinfo``.

Nothing here imports a runtime; the wheels are only ever run inside the guest.
"""

from __future__ import annotations

from tinyshare.targets.emulation.cpuinfo import CORES, CoreInfo, cpuinfo_text, parse_cpuinfo, qemu_cpu
from tinyshare.targets.emulation.device_image import DeviceImage
from tinyshare.targets.emulation.image import default_cache_dir, ensure_image, verify_image
from tinyshare.targets.emulation.spec import ImageSpec, WheelSet, image_spec_for, platform_tags, wheel_set

__all__ = [
    "CORES",
    "CoreInfo",
    "DeviceImage",
    "ImageSpec",
    "WheelSet",
    "cpuinfo_text",
    "default_cache_dir",
    "ensure_image",
    "image_spec_for",
    "parse_cpuinfo",
    "platform_tags",
    "qemu_cpu",
    "verify_image",
    "wheel_set",
]
