"""Section sizes from ``arm-none-eabi-size -A``, summed into flash and RAM.

flash = text + rodata + data (the .data init image is stored in flash);
RAM = data + bss (zero-initialized data, the model's arena included). The reserved stack
(``.stack``) is counted apart. Debug, comment and attribute sections are not loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinyshare.errors import RuntimeUnavailableError
from tinyshare.targets import _proc

# ELF output sections of the test image (cortex_m/sections.ld), by kind
_IMAGE_KINDS = {
    ".vectors": "text", ".text": "text", ".ARM.exidx": "text",
    ".rodata": "rodata", ".model_rodata": "rodata",
    ".data": "data",
    ".bss": "bss", ".arena": "bss",
    ".stack": "stack",
}
# input sections of an object file, by name prefix (-ffunction-sections -fdata-sections)
_OBJECT_PREFIXES = (
    (".text", "text"), (".ARM.exidx", "text"), (".rodata", "rodata"), (".data", "data"),
    (".bss", "bss"),
)
_NOT_LOADED = (".debug", ".comment", ".ARM.attributes", ".note", ".ARM.extab")


@dataclass(frozen=True)
class SectionSizes:
    """Bytes per kind of section in one file (or several object files together).

    Attributes:
        text, rodata, data, bss, stack: bytes of each kind.
        sections: (name, bytes) of every loaded section, in file order.
    """

    text: int
    rodata: int
    data: int
    bss: int
    stack: int
    sections: tuple[tuple[str, int], ...]

    @property
    def flash_bytes(self) -> int:
        """text + rodata + data (the .data init image), bytes."""
        return self.text + self.rodata + self.data

    @property
    def ram_bytes(self) -> int:
        """data + bss, bytes (the stack is not included)."""
        return self.data + self.bss


def parse_size_a(text: str) -> dict[str, list[tuple[str, int, int]]]:
    """``size -A`` output → {file: [(section, size, addr)]}; files in the order printed.

    Raises:
        RuntimeUnavailableError: a line is neither a header, a section nor a total.
    """
    files: dict[str, list[tuple[str, int, int]]] = {}
    current: list[tuple[str, int, int]] | None = None
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[:3] == ["section", "size", "addr"] or parts[0] == "Total":
            continue
        if line.rstrip().endswith(":") and len(parts) <= 2:
            current = files.setdefault(line.rstrip()[:-1].strip(), [])
            continue
        if current is None or len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
            raise RuntimeUnavailableError(f"size -A: unexpected line {line!r}")
        current.append((parts[0], int(parts[1]), int(parts[2])))
    return files


def _sum(rows: list[tuple[str, int]]) -> SectionSizes:
    kinds = {"text": 0, "rodata": 0, "data": 0, "bss": 0, "stack": 0}
    for kind, size in rows:
        kinds[kind] += size
    return SectionSizes(**kinds, sections=())


def image_sizes(sections: list[tuple[str, int, int]], elf: Path) -> SectionSizes:
    """Sizes of a linked test image.

    Raises:
        RuntimeUnavailableError: a loaded section that ``sections.ld`` does not name.
    """
    rows, loaded = [], []
    for name, size, _addr in sections:
        if name.startswith(_NOT_LOADED):
            continue
        if name not in _IMAGE_KINDS:
            raise RuntimeUnavailableError(f"{elf.name}: section {name!r} is not placed by "
                                          "sections.ld; cannot count it as flash or RAM")
        rows.append((_IMAGE_KINDS[name], size))
        loaded.append((name, size))
    total = _sum(rows)
    return SectionSizes(total.text, total.rodata, total.data, total.bss, total.stack,
                        tuple(loaded))


def object_sizes(files: dict[str, list[tuple[str, int, int]]]) -> SectionSizes:
    """Sizes of object files together, by input-section prefix (before --gc-sections)."""
    rows, loaded = [], []
    for sections in files.values():
        for name, size, _addr in sections:
            kind = next((k for prefix, k in _OBJECT_PREFIXES if name.startswith(prefix)), None)
            if kind is not None and size:
                rows.append((kind, size))
                loaded.append((name, size))
    total = _sum(rows)
    return SectionSizes(total.text, total.rodata, total.data, total.bss, 0, tuple(loaded))


def read_sizes(size_tool: Path, paths: list[Path], *, timeout_s: float
               ) -> dict[str, list[tuple[str, int, int]]]:
    """Run ``size -A`` (decimal) on ``paths``.

    Raises:
        RuntimeUnavailableError: the tool fails or prints something unexpected.
    """
    out = _proc.run([size_tool, "-A", "-d", *paths], timeout_s=timeout_s,
                    what=f"{size_tool.name} -A").stdout
    return parse_size_a(out)
