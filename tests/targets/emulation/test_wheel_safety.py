"""Wheels are checked before pip installs them into a device image: no member may escape
the site dir (absolute paths, ``..``, backslashes or drives, symlinks)."""

from __future__ import annotations

import stat
import zipfile

import pytest

from tinyshare.errors import RuntimeUnavailableError
from tinyshare.targets.emulation.wheels import check_wheel


def _wheel(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            z.writestr(info, data)
    return path


GOOD = ("pkg/__init__.py", b"", stat.S_IFREG | 0o644)


def test_a_plain_wheel_passes(tmp_path):
    check_wheel(_wheel(tmp_path / "ok-1.0-py3-none-any.whl",
                       [GOOD, ("ok-1.0.dist-info/RECORD", b"", stat.S_IFREG | 0o644)]))


@pytest.mark.parametrize(("member", "why"), [
    (("../escape.py", b"x", stat.S_IFREG | 0o644), "has a '..' path component"),
    (("pkg/../../escape.py", b"x", stat.S_IFREG | 0o644), "has a '..' path component"),
    (("/etc/escape.py", b"x", stat.S_IFREG | 0o644), "has an absolute path"),
    (("pkg\\..\\..\\escape.py", b"x", stat.S_IFREG | 0o644), "backslash"),
    (("C:/escape.py", b"x", stat.S_IFREG | 0o644), "drive"),
    (("pkg/link", b"/etc/passwd", stat.S_IFLNK | 0o777), "is a symlink"),
], ids=["dotdot", "inner-dotdot", "absolute", "backslash", "drive", "symlink"])
def test_escaping_members_are_refused_with_one_line(tmp_path, member, why):
    wheel = _wheel(tmp_path / "evil-1.0-py3-none-any.whl", [GOOD, member])
    with pytest.raises(RuntimeUnavailableError, match=why) as exc:
        check_wheel(wheel)
    assert "evil-1.0-py3-none-any.whl" in str(exc.value) and "\n" not in str(exc.value)


def test_a_broken_zip_is_refused(tmp_path):
    bad = tmp_path / "bad-1.0-py3-none-any.whl"
    bad.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(RuntimeUnavailableError, match="not a readable wheel"):
        check_wheel(bad)
