"""Read the scope and name of an Itanium-mangled C++ symbol without a demangler.

Matching symbols by name (``Register_CONV_2D``, ``MicroInterpreter::...``) must not depend
on ``c++filt`` being installed and must not confuse a function's name with its parameter
types (``GetOptionalTensorData(..., CompressionTensorData const*, ...)``), so the name is
read from the mangled form: ``<length><identifier>`` tokens of the (nested) name, with
template arguments skipped. The tests compare it with ``c++filt`` on every function of
the TFLM library.
"""

from __future__ import annotations

import re

__all__ = ["qualified_name"]

_SUBST_RE = re.compile(r"S(?:[0-9A-Z]*_|[tabsiod])|T[0-9]*_")  # S_, S0_, St, Sa...; template params T_, T0_
_CTOR_DTOR_RE = re.compile(r"[CD][0-5I]")


def qualified_name(mangled: str) -> tuple[str, ...]:
    """The scope and name identifiers of an Itanium-mangled C++ symbol, without demangling.

    ``_ZNK6tflite5micro16MicroInterpreter5inputEm`` -> ``("tflite", "micro",
    "MicroInterpreter", "input")``; template arguments and parameter types are skipped,
    ``_GLOBAL__N_1`` reads ``"(anonymous namespace)"``, constructors repeat the class name
    and destructors read ``"~Class"``; thunk prefixes and GCC suffixes (``.isra.0``,
    ``.cold``) are dropped. A name that is not mangled (``DebugLog``) is returned alone.
    Operators, lambdas and other rare forms stop the reading early: it then returns the
    identifiers read so far.
    """
    s = mangled.split(".", 1)[0]
    if not s.startswith("_Z"):
        return (mangled,)
    i = 2
    if s.startswith("Th", i):  # non-virtual thunk: Th <offset> _
        i = s.find("_", i) + 1
    elif s.startswith("Tv", i):  # virtual thunk: Tv <offset> _ <offset> _
        i = s.find("_", s.find("_", i) + 1) + 1
    if s.startswith("L", i):  # internal linkage
        i += 1
    ids: list[str] = []
    nested = s.startswith("N", i)
    if nested:
        i += 1
        while i < len(s) and s[i] in "rVKRO":  # cv- and ref-qualifiers of a member function
            i += 1
    while 0 < i < len(s):
        c, last = s[i], i
        if c.isdigit():
            j = _digits_end(s, i)
            ident = s[j:j + int(s[i:j])]
            ids.append("(anonymous namespace)" if ident.startswith("_GLOBAL__N") else ident)
            i = j + len(ident)
        elif c == "I":
            i = _skip_template_args(s, i)
        elif c == "L" and nested:  # internal linkage of the next component
            i += 1
            continue
        elif c == "S" and _SUBST_RE.match(s, i):
            m = _SUBST_RE.match(s, i)
            if m.group() == "St":
                ids.append("std")
            i = m.end()
            continue  # a substitution prefixes the name that follows
        elif c in "CD" and _CTOR_DTOR_RE.match(s, i) and ids:
            ids.append(("~" if c == "D" else "") + ids[-1])
            i += 2
        elif c == "B":  # ABI tag: B <len> <tag>
            j = _digits_end(s, i + 1)
            i = j + int(s[i + 1:j] or 0)
        else:
            break
        if not nested and s[last] != "I" and not s.startswith("I", i):
            break
    return tuple(ids)


def _digits_end(s: str, i: int) -> int:
    while i < len(s) and s[i].isdigit():
        i += 1
    return i


def _skip_template_args(s: str, i: int) -> int:
    """Index just past the template argument list ``I ... E`` that starts at ``s[i]``."""
    depth = 0
    while i < len(s):
        c = s[i]
        if c.isdigit():
            j = _digits_end(s, i)
            i = j + int(s[i:j])
            continue
        m = _SUBST_RE.match(s, i) if c in "ST" else None
        if m:
            i = m.end()
            continue
        if c == "L":  # literal: L <type> <value> E, e.g. Lj200E, LNS0_10KernelTypeE0E
            j = i + 1
            if s.startswith("N", j):
                j = _skip_template_args(s, j)
            elif j < len(s) and s[j].isdigit():
                j = _digits_end(s, j)
                j += int(s[i + 1:j])
            else:
                j += 1
            i = s.find("E", j) + 1 or len(s)
            if depth == 0:
                return i
            continue
        if c in "INXJF":  # F: a function type, F <ret> <params> E
            depth += 1
        elif c == "E":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i
