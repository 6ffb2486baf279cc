"""Device images: spec keys, the qemu command, safe package extraction, and (emulated) real builds.

The ``emulated`` tests need qemu-user-static, apt-get and the network (Debian and PyPI).
They build images into a temporary cache once per session; set
``TINYSHARE_TEST_IMAGE_CACHE`` to a folder to keep and reuse the images between runs.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from tinyshare.errors import BoardError, RuntimeUnavailableError
from tinyshare.targets.emulation import (
    DeviceImage,
    ImageSpec,
    ensure_image,
    image_spec_for,
    platform_tags,
    verify_image,
)
from tinyshare.targets.emulation import device_image as device_image_module
from tinyshare.targets.emulation import image as image_module
from tinyshare.targets.emulation.apt import sha256_file
from tinyshare.targets.emulation.build import tree_bytes
from tinyshare.targets.emulation.debs import extract_deb

HEX64 = re.compile(r"[0-9a-f]{64}")
needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")


# ---------------------------------------------------------------- specs (pure)

def test_spec_key_is_stable_and_names_the_image():
    a = image_spec_for("arm64", "cortex-a72", 4, ["litert", "onnxruntime"])
    b = image_spec_for("aarch64", "cortex-a72", 4, ["litert", "onnxruntime", "litert"])
    assert a == b and a.key == b.key
    assert re.fullmatch(r"[0-9a-f]{16}", a.key)
    assert a.name == f"arm64-{a.key}"


def test_spec_key_changes_with_pins_core_count_and_runtimes():
    base = image_spec_for("arm64", "cortex-a72", 4, ["litert"])
    repinned = dataclasses.replace(base.runtimes[0], requirements=(
        "ai-edge-litert==2.2.0", *base.runtimes[0].requirements[1:]))
    variants = [
        dataclasses.replace(base, runtimes=(repinned,)),
        image_spec_for("arm64", "cortex-a72", 2, ["litert"]),
        image_spec_for("arm64", "cortex-a57", 4, ["litert"]),
        image_spec_for("arm64", "cortex-a72", 4, ["litert", "tflite-runtime"]),
        dataclasses.replace(base, debian_mirror="http://ftp.debian.org/debian"),
    ]
    keys = {base.key, *(v.key for v in variants)}
    assert len(keys) == 1 + len(variants)


def test_runtime_wheel_sets_are_pinned_per_arch():
    spec = image_spec_for("arm64", "cortex-a72", 4, ["litert", "onnxruntime", "tflite-runtime"])
    pins = {ws.name: dict(r.split("==") for r in ws.requirements) for ws in spec.runtimes}
    assert pins["litert"]["ai-edge-litert"] == "2.3.0"
    assert pins["onnxruntime"]["onnxruntime"] == "1.32.0"
    assert pins["tflite-runtime"]["tflite-runtime"] == "2.14.0"
    assert int(pins["tflite-runtime"]["numpy"].split(".")[0]) < 2  # tflite-runtime 2.14 needs numpy<2
    assert all("manylinux_2_17_aarch64" in ws.platforms for ws in spec.runtimes)

    hf = image_spec_for("armhf", "cortex-a53", 4, ["tflite-runtime"])
    (tfl,) = hf.runtimes
    assert tfl.requirements == ("tflite-runtime==2.14.0",)
    assert "python3-numpy" in hf.debian_packages  # no armv7l numpy<2 wheel on PyPI
    assert "manylinux_2_34_armv7l" in tfl.platforms and "linux_armv7l" in tfl.platforms
    assert not any("aarch64" in tag for tag in tfl.platforms)


@pytest.mark.parametrize("runtime", ["litert", "onnxruntime"])
def test_armhf_runtime_without_armv7l_wheels_is_a_one_line_board_error(runtime):
    with pytest.raises(BoardError) as err:
        image_spec_for("armhf", "cortex-a53", 4, [runtime])
    message = str(err.value)
    assert "\n" not in message and runtime in message and "armv7l" in message and "tflite-runtime" in message


def test_unknown_runtime_core_or_unpinned_requirement_is_a_board_error():
    with pytest.raises(BoardError, match="tflm"):
        image_spec_for("arm64", "cortex-a72", 4, ["tflm"])
    with pytest.raises(BoardError, match="cortex-z9"):
        image_spec_for("arm64", "cortex-z9", 4, ["litert"])
    spec = image_spec_for("arm64", "cortex-a72", 4, ["litert"])
    loose = dataclasses.replace(spec.runtimes[0], requirements=("ai-edge-litert>=2",))
    with pytest.raises(BoardError, match="pinned"):
        dataclasses.replace(spec, runtimes=(loose,))


def test_platform_tags_cover_every_glibc_up_to_the_suite():
    tags = platform_tags("arm64")
    assert tags[0] == "manylinux_2_17_aarch64"
    assert {"manylinux_2_27_aarch64", "manylinux_2_34_aarch64", "manylinux_2_36_aarch64"} <= set(tags)
    assert "manylinux_2_37_aarch64" not in tags  # bookworm has glibc 2.36


# ---------------------------------------------------------------- the qemu command (pure)

def test_command_runs_the_guest_python_with_the_board_core(tmp_path, monkeypatch):
    monkeypatch.setattr(device_image_module, "qemu_cpu_models",
                        lambda qemu: frozenset({"cortex-a53", "cortex-a72", "max"}))
    spec = image_spec_for("arm64", "cortex-a72", 4, ["litert", "onnxruntime"])
    image = DeviceImage.at(tmp_path / spec.name, spec, Path("/usr/bin/qemu-aarch64-static"))
    argv, env = image.command("onnxruntime", "/work/run.py", ["--batch", 32])
    sysroot = str(tmp_path / spec.name / "sysroot")
    assert argv == ["/usr/bin/qemu-aarch64-static", "-cpu", "cortex-a72", "-L", sysroot,
                    f"{sysroot}/usr/bin/python3.11", "/work/run.py", "--batch", "32"]
    assert "max" not in argv
    assert env["PYTHONPATH"] == str(tmp_path / spec.name / "site" / "onnxruntime")
    assert env["PYTHONNOUSERSITE"] == "1" and env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert "LD_PRELOAD" not in env and "VIRTUAL_ENV" not in env
    assert "PYTHONPATH" not in image.command(None, "/work/run.py")[1]
    with pytest.raises(BoardError, match="tflite-runtime"):
        image.command("tflite-runtime", "/work/run.py")
    with pytest.raises(BoardError, match="cortex-a53"):
        image.command("litert", "/work/run.py", core="cortex-a53")


def test_missing_qemu_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    spec = image_spec_for("arm64", "cortex-a72", 4, ["litert"])
    with pytest.raises(RuntimeUnavailableError) as err:
        ensure_image(spec, cache_dir=tmp_path / "images")
    assert "qemu-aarch64-static" in str(err.value)
    assert "apt-get install qemu-user-static" in str(err.value)
    assert not (tmp_path / "images").exists()


def test_verify_image_lists_what_is_missing(tmp_path):
    spec = image_spec_for("arm64", "cortex-a72", 4, ["litert"])
    root = tmp_path / spec.name
    (root / "sysroot").mkdir(parents=True)
    problems = verify_image(DeviceImage.at(root, spec, Path("/nonexistent/qemu")))
    text = " | ".join(problems)
    for part in ("COMPLETE", "manifest.json", "python3.11", "cpuinfo", "litert", "qemu"):
        assert part in text
    assert verify_image(DeviceImage.at(tmp_path / "nope", spec, Path("/q"))) == [f"{tmp_path / 'nope'} does not exist"]


# ---------------------------------------------------------------- package extraction (dpkg-deb, no network)

def _ar_member(name: str, data: bytes) -> bytes:
    header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
    return header + data + (b"\n" if len(data) % 2 else b"")


def _tar(entries: list[tuple[str, str, str]]) -> bytes:
    """A gzip tar of (name, kind, payload) with kind file/dir/symlink/hardlink (payload = link target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            data = b""
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, payload
            else:
                data = payload.encode()
                info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _deb(path: Path, entries: list[tuple[str, str, str]]) -> Path:
    """A .deb whose data tarball holds exactly ``entries`` (names dpkg-deb -b would never write)."""
    control = "Package: evil\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.com>\nDescription: t\n"
    parts = [_ar_member("debian-binary", b"2.0\n"),
             _ar_member("control.tar.gz", _tar([("./", "dir", ""), ("./control", "file", control)])),
             _ar_member("data.tar.gz", _tar(entries))]
    path.write_bytes(b"!<arch>\n" + b"".join(parts))
    return path


def _dpkg_built_deb(tmp_path: Path, name: str, make_tree) -> Path:
    tree = tmp_path / f"{name}-tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.com>\nDescription: t\n")
    make_tree(tree)
    out = tmp_path / f"{name}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(tree), str(out)], check=True,
                   capture_output=True, timeout=60)
    return out


@needs_dpkg
def test_symlink_escaping_the_sysroot_is_refused(tmp_path):
    def tree(root: Path) -> None:
        (root / "usr/lib").mkdir(parents=True)
        (root / "usr/lib/ok.txt").write_text("ok")
        (root / "usr/lib/etc").symlink_to("../../../etc")

    deb = _dpkg_built_deb(tmp_path, "escape-link", tree)
    sysroot = tmp_path / "sysroot"
    with pytest.raises(RuntimeUnavailableError, match="usr/lib/etc"):
        extract_deb(deb, sysroot)
    assert list(sysroot.iterdir()) == []  # refused before anything was unpacked


@needs_dpkg
@pytest.mark.parametrize(("entries", "why"), [
    ([("./../escape.txt", "file", "x")], "has a '..' path component"),
    ([("./usr/../../escape.txt", "file", "x")], "has a '..' path component"),
    ([("/etc/escape.txt", "file", "x")], "has an absolute path"),
    ([("./usr/", "dir", ""), ("./usr/passwd", "hardlink", "../etc/passwd")], "has a '..' path component"),
    ([("./usr/", "dir", ""), ("./usr/x", "symlink", "/usr/../../etc")], "outside the sysroot"),
    ([("./lib", "symlink", "usr/lib"), ("./lib/evil.so", "file", "x")], "through a symlink"),
], ids=["dotdot", "inner-dotdot", "absolute", "hardlink-dotdot", "abs-symlink-dotdot", "through-link"])
def test_path_escaping_members_are_refused(tmp_path, entries, why):
    sysroot = tmp_path / "sysroot"
    with pytest.raises(RuntimeUnavailableError, match=re.escape(why)):
        extract_deb(_deb(tmp_path / "evil.deb", entries), sysroot)
    assert not (tmp_path / "escape.txt").exists()
    assert list(sysroot.iterdir()) == []


@needs_dpkg
def test_absolute_symlinks_are_rewritten_to_stay_in_the_sysroot(tmp_path):
    host_dir = tmp_path / "host-target"
    host_dir.mkdir()
    sysroot = tmp_path / "sysroot"
    first = _deb(tmp_path / "a.deb", [("./usr/", "dir", ""), ("./usr/x", "symlink", str(host_dir)),
                                      ("./etc/", "dir", ""), ("./etc/conf", "file", "guest")])
    extract_deb(first, sysroot)
    link = sysroot / "usr" / "x"
    assert not os.readlink(link).startswith("/")
    assert os.path.realpath(link) == os.path.realpath(sysroot / str(host_dir).lstrip("/"))
    # A later package writing through the link lands in the sysroot (or fails), never on the host.
    second = _deb(tmp_path / "b.deb", [("./usr/", "dir", ""), ("./usr/x/", "dir", ""),
                                       ("./usr/x/pwned", "file", "x")])
    try:
        extract_deb(second, sysroot)
    except RuntimeUnavailableError:
        pass
    assert list(host_dir.iterdir()) == []
    conf_link = _deb(tmp_path / "c.deb", [("./usr/", "dir", ""), ("./usr/conf", "symlink", "/etc/conf")])
    extract_deb(conf_link, sysroot)
    assert (sysroot / "usr" / "conf").read_text() == "guest"


# ---------------------------------------------------------------- real images (emulated)

@pytest.fixture(scope="session")
def image_cache(tmp_path_factory) -> Path:
    path = os.environ.get("TINYSHARE_TEST_IMAGE_CACHE")
    return Path(path) if path else tmp_path_factory.mktemp("images")


@pytest.fixture(scope="session")
def litert_image(image_cache) -> DeviceImage:
    return ensure_image(image_spec_for("arm64", "cortex-a72", 4, ["litert"]), cache_dir=image_cache)


@pytest.fixture(scope="session")
def armhf_image(image_cache) -> DeviceImage:
    return ensure_image(image_spec_for("armhf", "cortex-a53", 4, ["tflite-runtime"]), cache_dir=image_cache)


def _python_only(core: str = "cortex-a53") -> ImageSpec:
    """The cheapest image to build (no wheels, ~6 s), for rebuild and locking tests."""
    return image_spec_for("arm64", core, 1, [])


@pytest.fixture(scope="session")
def python_only_image(image_cache) -> DeviceImage:
    return ensure_image(_python_only(), cache_dir=image_cache)


_GUEST_SCRIPT = """\
import platform, sys
blocks = [b for b in open('/proc/cpuinfo').read().split('\\n\\n') if b.strip()]
parts = sorted({l.split(':')[1].strip() for b in blocks for l in b.splitlines() if l.startswith('CPU part')})
arch = [l.split(':')[1].strip() for l in blocks[0].splitlines() if l.startswith('CPU architecture')][0]
mod = __import__(sys.argv[1], fromlist=['Interpreter'])
import numpy
print(platform.machine(), len(blocks), ','.join(parts), arch, numpy.__version__, hasattr(mod, 'Interpreter'))
"""


def _run_guest(image: DeviceImage, runtime: str, module: str, tmp_path: Path) -> list[str]:
    script = tmp_path / "guest.py"
    script.write_text(_GUEST_SCRIPT)
    argv, env = image.command(runtime, script, [module])
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()


@pytest.mark.emulated
def test_manifest_lists_every_package_and_wheel(litert_image):
    manifest = json.loads(litert_image.manifest.read_text())
    spec = litert_image.spec
    assert manifest["key"] == spec.key and manifest["spec"] == spec.to_dict()
    packages = {p["name"]: p for p in manifest["debian"]["packages"]}
    assert {"libc6", "python3.11-minimal", "libpython3.11-stdlib", "libstdc++6"} <= set(packages)
    assert not {"dpkg", "tar", "perl-base", "debconf"} & set(packages)
    assert all(HEX64.fullmatch(p["sha256"]) and p["size_bytes"] > 0 and p["arch"] in ("arm64", "all")
               for p in packages.values())
    wheels = {w["file"].split("-")[0]: w for w in manifest["wheels"]["litert"]}
    assert wheels["ai_edge_litert"]["file"].startswith("ai_edge_litert-2.3.0-cp311-cp311-manylinux")
    assert wheels["numpy"]["file"].startswith("numpy-2.4.6-cp311")
    assert all(HEX64.fullmatch(w["sha256"]) for w in wheels.values())
    assert len(wheels) == len(spec.runtime("litert").requirements)  # the pinned closure, nothing else
    sizes = manifest["sizes_bytes"]
    assert sizes["sysroot"] == tree_bytes(litert_image.sysroot)
    assert sizes["site"]["litert"] == tree_bytes(litert_image.site_dirs["litert"])
    assert sizes["total"] == sizes["sysroot"] + sizes["site"]["litert"]
    assert manifest["cpuinfo"]["sha256"] == sha256_file(litert_image.cpuinfo)
    assert manifest["build_s"] > 0 and "qemu" in manifest["tools"]["qemu"]
    assert (litert_image.root / "COMPLETE").read_text().strip() == spec.key
    assert verify_image(litert_image) == []


@pytest.mark.emulated
def test_guest_python_sees_the_board_cpuinfo_and_imports_litert(litert_image, tmp_path):
    machine, count, parts, arch, numpy_version, has_interpreter = _run_guest(
        litert_image, "litert", "ai_edge_litert.interpreter", tmp_path)
    assert (machine, count, parts, arch) == ("aarch64", "4", "0xd08", "8")
    assert numpy_version == "2.4.6" and has_interpreter == "True"


@pytest.mark.emulated
def test_armhf_guest_runs_tflite_runtime_with_debian_numpy(armhf_image, tmp_path):
    machine, count, parts, arch, numpy_version, has_interpreter = _run_guest(
        armhf_image, "tflite-runtime", "tflite_runtime.interpreter", tmp_path)
    assert (machine, count, parts, arch) == ("armv7l", "4", "0xd03", "7")
    assert numpy_version.startswith("1.") and has_interpreter == "True"


@pytest.mark.emulated
def test_ensure_image_reuses_a_good_image(litert_image):
    marker = litert_image.root / "reuse-marker"
    marker.write_text("x")
    try:
        assert ensure_image(litert_image.spec, cache_dir=litert_image.root.parent) == litert_image
        assert marker.exists()
    finally:
        marker.unlink()


def _damaged_copy(image: DeviceImage, cache: Path, damage: str) -> DeviceImage:
    """A copy of ``image`` in ``cache`` with one thing broken, plus a marker file from the old build."""
    shutil.copytree(image.root, cache / image.root.name, symlinks=True)
    copy = DeviceImage.at(cache / image.root.name, image.spec, image.qemu)
    assert verify_image(copy) == []
    (copy.root / "from-the-old-build").write_text("x")
    if damage == "no-complete":
        (copy.root / "COMPLETE").unlink()
    elif damage == "no-python":
        copy.python.unlink()
    elif damage == "wrong-manifest":
        manifest = json.loads(copy.manifest.read_text())
        manifest["spec"]["cores"] = 64
        copy.manifest.write_text(json.dumps(manifest))
    elif damage == "wrong-cpuinfo":
        copy.cpuinfo.write_text(copy.cpuinfo.read_text().replace("0xd03", "0xd08"))
    return copy


@pytest.mark.emulated
@pytest.mark.parametrize(("damage", "reported"), [
    ("no-complete", "COMPLETE"), ("no-python", "python3.11"),
    ("wrong-manifest", "manifest.json"), ("wrong-cpuinfo", "cpuinfo"),
])
def test_a_damaged_image_is_detected(python_only_image, tmp_path, damage, reported):
    problems = verify_image(_damaged_copy(python_only_image, tmp_path, damage))
    assert len(problems) == 1 and reported in problems[0]


@pytest.mark.emulated
@pytest.mark.parametrize("damage", ["no-complete", "no-python"])
def test_a_damaged_image_is_rebuilt_not_used(python_only_image, tmp_path, damage):
    image = _damaged_copy(python_only_image, tmp_path, damage)
    rebuilt = ensure_image(image.spec, cache_dir=tmp_path)
    assert rebuilt == image and verify_image(rebuilt) == []
    assert not (rebuilt.root / "from-the-old-build").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [image.root.name]


@pytest.mark.emulated
def test_concurrent_builds_give_one_good_image(tmp_path, monkeypatch):
    builds = []
    real_build = image_module.build_image

    def counting_build(*args, **kwargs):
        builds.append(threading.get_ident())
        return real_build(*args, **kwargs)

    monkeypatch.setattr(image_module, "build_image", counting_build)
    spec = _python_only("cortex-a57")
    results: list[object] = [None, None]

    def worker(i: int) -> None:
        try:
            results[i] = ensure_image(spec, cache_dir=tmp_path)
        except Exception as exc:  # noqa: BLE001 - reported by the assert below
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert all(isinstance(r, DeviceImage) for r in results), results
    assert results[0] == results[1] and verify_image(results[0]) == []
    assert len(builds) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [spec.name]


@pytest.mark.emulated
def test_unreachable_debian_archive_is_reported(tmp_path):
    spec = dataclasses.replace(_python_only(), debian_mirror="http://127.0.0.1:9/debian")
    with pytest.raises(RuntimeUnavailableError) as err:
        ensure_image(spec, cache_dir=tmp_path)
    assert "127.0.0.1:9" in str(err.value) and "package lists" in str(err.value)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []
