"""The functions of an x86-64 ELF shared library and the references between them.

``read_elf_code(path)`` reads the symbol table (``.symtab``: locals included), the code
bytes and the dynamic relocations, with pyelftools when it is importable (pin
``pyelftools==0.33``) and otherwise with binutils ``nm`` and ``readelf`` found on ``PATH``;
both give the same ``ElfCode``.

A *function* is a defined symbol with a size in an executable section; aliases at one
address (C1/C2 constructors, ``.localalias``) count once. A function *references*
another when its bytes hold

* a ``call``/``jmp``/``jcc`` with a rel32 displacement landing on the other's first byte, or
* a RIP-relative operand (``lea``/``mov``/``push``/``cmp`` ``disp32(%rip)``, no immediate
  after it) that points at the other's first byte, at a data object that the relocations
  fill with function addresses (a vtable, a registration table), or at a relocated
  pointer slot (a GOT entry).

The bytes are not disassembled: every byte position where such an encoding could start
is tried, and a candidate counts only when its target is one of those addresses (in
tflite-micro's ``_runtime.so``: ~1,800 function starts and ~2.8 KB of pointer tables, so a
random 32-bit displacement hits one with a probability of about 1e-6). The tests compare
the result with ``objdump -d``. Calls through the PLT to functions of the same library
are not followed: a library linked that way is refused.

Names are kept mangled; ``tinyshare.targets._mangled.qualified_name`` reads them.
"""

from __future__ import annotations

import bisect
import re
import shutil
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from tinyshare.errors import RuntimeUnavailableError
from tinyshare.targets._proc import run

__all__ = ["ElfCode", "read_elf_code"]

_TOOL_TIMEOUT_S = 120
_SHF_ALLOC, _SHF_EXECINSTR = 0x2, 0x4
# x86-64 relocation types: R_X86_64_64, GLOB_DAT, JUMP_SLOT, RELATIVE.
_R_64, _R_GLOB_DAT, _R_JUMP_SLOT, _R_RELATIVE = 1, 6, 7, 8
_BRANCH = re.compile(rb"[\xe8\xe9]|\x0f[\x80-\x8f]")  # call rel32, jmp rel32, jcc rel32
_RIP_MODRM = re.compile(rb"[\x05\x0d\x15\x1d\x25\x2d\x35\x3d]")  # ModRM mod=00 rm=101: disp32(%rip)


@dataclass(frozen=True)
class ElfCode:
    """The functions of one library and what each references.

    Attributes:
        path: the library file.
        reader: what read it, e.g. ``"pyelftools 0.33"`` or ``"binutils nm + readelf 2.40"``.
        sizes: function address -> size in bytes (``st_size``; the largest among aliases).
        names: function address -> its mangled symbol names, sorted.
        references: function address -> addresses of the functions it references, in the
            order the references appear in its bytes (repeats kept).
    """

    path: Path
    reader: str
    sizes: Mapping[int, int]
    names: Mapping[int, tuple[str, ...]]
    references: Mapping[int, tuple[int, ...]] = field(repr=False)

    def name(self, address: int) -> str:
        """The first mangled name of the function at ``address``."""
        return self.names[address][0]

    def reachable(self, roots: Iterable[int], blocked: frozenset[int] = frozenset()) -> frozenset[int]:
        """Every function reachable from ``roots`` through references, ``blocked`` ones excluded.

        A blocked function is neither counted nor followed (a blocked root is dropped).
        """
        seen: set[int] = set()
        stack = [a for a in roots if a not in blocked]
        while stack:
            a = stack.pop()
            if a in seen:
                continue
            seen.add(a)
            stack.extend(t for t in self.references.get(a, ()) if t not in blocked and t not in seen)
        return frozenset(seen)

    def size_bytes(self, addresses: Iterable[int]) -> int:
        """Sum of the sizes of the functions at ``addresses`` (each address once), in bytes."""
        return sum(self.sizes[a] for a in set(addresses))


@dataclass
class _Raw:
    """What a reader extracts; ``_build`` turns it into an ``ElfCode``."""

    reader: str
    functions: list[tuple[str, int, int]]  # (mangled name, address, size)
    objects: list[tuple[int, int]]  # (address, size) of sized data symbols
    code: list[tuple[int, bytes]]  # (address, bytes) of each executable section
    pointers: dict[int, int]  # relocated slot address -> the address written there
    plt_targets: list[str]  # JUMP_SLOT relocations that resolve inside this library


def read_elf_code(path: str | Path) -> ElfCode:
    """Read a library's functions and references (pyelftools, else binutils).

    Args:
        path: an x86-64 ELF shared library with a ``.symtab`` (not stripped).

    Returns:
        The library's ``ElfCode``.

    Raises:
        RuntimeUnavailableError: the file is missing, not x86-64 ELF, stripped, calls its
            own functions through the PLT, or can be read neither with pyelftools nor with
            ``nm``/``readelf`` (the message says which to install).
    """
    path = Path(path)
    if not path.is_file():
        raise RuntimeUnavailableError(f"{path} does not exist")
    try:
        import elftools  # noqa: F401  (optional: pyelftools)
    except ImportError:
        raw = _read_binutils(path)
    else:
        raw = _read_pyelftools(path)
    return _build(path, raw)


# --- readers -------------------------------------------------------------------------------------

def _read_pyelftools(path: Path) -> _Raw:
    import elftools
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection

    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if elf["e_machine"] != "EM_X86_64":
                raise RuntimeUnavailableError(f"{path} is {elf['e_machine']} code; only x86-64 is read")
            symtab = elf.get_section_by_name(".symtab")
            if symtab is None:
                raise RuntimeUnavailableError(f"{path} has no .symtab (stripped); its functions cannot be sized")
            sections = list(elf.iter_sections())
            functions, objects = [], []
            for sym in symtab.iter_symbols():
                index, size = sym["st_shndx"], sym["st_size"]
                if not isinstance(index, int) or size == 0 or sym["st_info"]["type"] in ("STT_SECTION", "STT_FILE"):
                    continue
                flags = sections[index]["sh_flags"]
                if flags & _SHF_EXECINSTR:
                    functions.append((sym.name, sym["st_value"], size))
                elif flags & _SHF_ALLOC:
                    objects.append((sym["st_value"], size))
            code = [(s["sh_addr"], s.data()) for s in sections
                    if s["sh_flags"] & _SHF_EXECINSTR and s["sh_type"] == "SHT_PROGBITS"]
            pointers: dict[int, int] = {}
            plt_targets: list[str] = []
            for sec in sections:
                if not isinstance(sec, RelocationSection) or not sec["sh_flags"] & _SHF_ALLOC:
                    continue
                dynsym = elf.get_section(sec["sh_link"])
                for rel in sec.iter_relocations():
                    kind, addend = rel["r_info_type"], rel["r_addend"] if sec.is_RELA() else 0
                    if kind == _R_RELATIVE:
                        pointers[rel["r_offset"]] = addend
                    elif kind in (_R_64, _R_GLOB_DAT, _R_JUMP_SLOT):
                        sym = dynsym.get_symbol(rel["r_info_sym"])
                        if sym["st_shndx"] == "SHN_UNDEF":
                            continue
                        if kind == _R_JUMP_SLOT:
                            plt_targets.append(sym.name)
                        pointers[rel["r_offset"]] = sym["st_value"] + addend
    except (OSError, ELFError) as exc:
        raise RuntimeUnavailableError(f"pyelftools cannot read {path}: {exc}") from None
    return _Raw(f"pyelftools {elftools.__version__}", functions, objects, code, pointers, plt_targets)


def _tool(name: str, *args: str | Path) -> str:
    """stdout of binutils tool ``name`` run on ``args`` (``targets._proc.run``)."""
    if shutil.which(name) is None:
        raise RuntimeUnavailableError(
            f"reading ELF symbols needs pyelftools (pip install pyelftools==0.33) or binutils "
            f"({name} not found on PATH)")
    return run([name, *args], timeout_s=_TOOL_TIMEOUT_S,
               what=f"{name} {' '.join(map(str, args))}").stdout


_SECTION_RE = re.compile(r"^\s*\[\s*\d+\]\s+(\S+)\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+([A-Za-z]*)\s")
_FUNCTION_TYPES, _DATA_TYPES = set("TtWw"), set("DdBbRrVvuGgSs")


def _read_binutils(path: Path) -> _Raw:
    header = _tool("readelf", "-h", "-W", path)
    if "X86-64" not in header or "ELF64" not in header:
        raise RuntimeUnavailableError(f"{path} is not an x86-64 ELF64 file; only x86-64 is read")
    sections = [m.groups() for m in map(_SECTION_RE.match, _tool("readelf", "-S", "-W", path).splitlines()) if m]
    if not any(name == ".symtab" for name, *_ in sections):
        raise RuntimeUnavailableError(f"{path} has no .symtab (stripped); its functions cannot be sized")
    code = []
    with open(path, "rb") as f:
        for _, kind, addr, offset, size, flags in sections:
            if "X" in flags and kind == "PROGBITS":
                f.seek(int(offset, 16))
                code.append((int(addr, 16), f.read(int(size, 16))))
    functions, objects = [], []
    for line in _tool("nm", "--defined-only", "-S", path).splitlines():
        parts = line.split(maxsplit=3)
        if len(parts) != 4 or int(parts[1], 16) == 0:
            continue
        addr, size, letter, name = int(parts[0], 16), int(parts[1], 16), parts[2], parts[3]
        if letter in _FUNCTION_TYPES:
            functions.append((name, addr, size))
        elif letter in _DATA_TYPES:
            objects.append((addr, size))
    pointers: dict[int, int] = {}
    plt_targets: list[str] = []
    for line in _tool("readelf", "-r", "-W", path).splitlines():
        parts = line.split()
        if len(parts) < 4 or not parts[2].startswith("R_X86_64_"):
            continue
        offset, kind = int(parts[0], 16), parts[2]
        if kind == "R_X86_64_RELATIVE":
            pointers[offset] = int(parts[3], 16)
        elif kind in ("R_X86_64_64", "R_X86_64_GLOB_DAT", "R_X86_64_JUMP_SLOT") and int(parts[3], 16):
            addend = int(parts[-1], 16) * (-1 if parts[-2] == "-" else 1) if parts[-2] in ("+", "-") else 0
            if kind == "R_X86_64_JUMP_SLOT":
                plt_targets.append(parts[4])
            pointers[offset] = int(parts[3], 16) + addend
    version = _tool("nm", "--version").splitlines()[0].split()[-1]
    return _Raw(f"binutils nm + readelf {version}", functions, objects, code, pointers, plt_targets)


# --- references ----------------------------------------------------------------------------------

def _build(path: Path, raw: _Raw) -> ElfCode:
    if raw.plt_targets:
        raise RuntimeUnavailableError(
            f"{path} calls its own functions through the PLT (e.g. {raw.plt_targets[0]}); "
            "such calls are not followed, so its code cannot be attributed")
    sizes: dict[int, int] = {}
    names: dict[int, set[str]] = {}
    for name, addr, size in raw.functions:
        sizes[addr] = max(size, sizes.get(addr, 0))
        names.setdefault(addr, set()).add(name)
    # Data the relocations fill with function addresses: whole objects (vtables, tables) and
    # single slots outside any sized object (GOT entries).
    fn_pointers = {slot: target for slot, target in raw.pointers.items() if target in sizes}
    objects = sorted(set(raw.objects))
    starts = [a for a, _ in objects]
    tables: dict[int, list[int]] = {}
    for slot, target in sorted(fn_pointers.items()):
        i = bisect.bisect_right(starts, slot) - 1
        owner = objects[i][0] if i >= 0 and slot < objects[i][0] + objects[i][1] else None
        tables.setdefault(slot if owner is None else owner, []).append(target)

    def pointed(t: int) -> list[int]:
        i = bisect.bisect_right(starts, t) - 1
        if i >= 0 and t < objects[i][0] + objects[i][1]:
            return tables.get(objects[i][0], [])
        return tables.get(t, []) if t in fn_pointers else []

    sections = sorted(raw.code, key=lambda s: s[0])
    section_starts = [a for a, _ in sections]
    references = {}
    for addr, size in sizes.items():
        i = bisect.bisect_right(section_starts, addr) - 1
        base, data = sections[i] if i >= 0 else (0, b"")
        if i < 0 or addr + size > base + len(data):
            references[addr] = ()
            continue
        references[addr] = _scan(data[addr - base:addr - base + size], addr, sizes, pointed)
    return ElfCode(path=path, reader=raw.reader, sizes=MappingProxyType(sizes),
                   names=MappingProxyType({a: tuple(sorted(n)) for a, n in names.items()}),
                   references=MappingProxyType(references))


def _scan(code: bytes, addr: int, functions: Mapping[int, int],
          pointed: Callable[[int], list[int]]) -> tuple[int, ...]:
    """The functions ``code`` (the bytes of the function at ``addr``) references, in byte order."""
    found: list[tuple[int, int]] = []
    end = len(code) - 4
    for pattern, via_data in ((_BRANCH, False), (_RIP_MODRM, True)):
        for m in pattern.finditer(code):
            k = m.end()
            if k > end:
                continue
            target = addr + k + 4 + struct.unpack_from("<i", code, k)[0]
            if target in functions:
                if target != addr:
                    found.append((k, target))
            elif via_data:
                found.extend((k, t) for t in pointed(target) if t != addr)
    found.sort()
    return tuple(t for _, t in found)
