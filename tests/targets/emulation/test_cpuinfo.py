"""The board-true /proc/cpuinfo text and the qemu -cpu model per core (pure, no qemu needed)."""

from __future__ import annotations

import pytest

from tinyshare.errors import BoardError, RuntimeUnavailableError
from tinyshare.targets.emulation.cpuinfo import CORES, cpuinfo_text, parse_cpuinfo, qemu_cpu

# MIDR PartNum per core, from Arm's Technical Reference Manuals.
PARTS = {"cortex-a53": "0xd03", "cortex-a55": "0xd05", "cortex-a57": "0xd07",
         "cortex-a72": "0xd08", "cortex-a76": "0xd0b", "cortex-a78": "0xd41"}
X86_FIELDS = {"vendor_id", "cpu family", "model", "flags", "cache size", "fpu", "bugs", "cpu MHz"}
# The -cpu models qemu-aarch64 7.2 offers (qemu-aarch64-static -cpu help).
QEMU72_AARCH64 = {"a64fx", "cortex-a35", "cortex-a53", "cortex-a57", "cortex-a72", "cortex-a76",
                  "max", "neoverse-n1"}


@pytest.mark.parametrize(("core", "cores", "arch"), [
    ("cortex-a72", 4, "arm64"),   # Raspberry Pi 4
    ("cortex-a53", 4, "arm64"),   # Raspberry Pi Zero 2 W
    ("cortex-a76", 4, "arm64"),   # Raspberry Pi 5
    ("cortex-a57", 4, "arm64"),   # Jetson Nano
    ("cortex-a53", 4, "armhf"),   # Raspberry Pi 3 with a 32-bit OS
    ("cortex-a72", 1, "arm64"),
    ("cortex-a55", 8, "arm64"),
    ("cortex-a78", 6, "arm64"),
], ids=lambda v: str(v))
def test_cpuinfo_parses_back_to_the_board(core, cores, arch):
    blocks = parse_cpuinfo(cpuinfo_text(core, cores, arch))
    assert len(blocks) == cores
    assert [b["processor"] for b in blocks] == [str(i) for i in range(cores)]
    for block in blocks:
        assert block["CPU part"] == PARTS[core]
        assert block["CPU implementer"] == "0x41"
        assert block["CPU architecture"] == ("8" if arch == "arm64" else "7")
        assert not X86_FIELDS & set(block)
        features = block["Features"].split()
        if arch == "arm64":
            assert {"fp", "asimd", "cpuid"} <= set(features)
            assert "model name" not in block
        else:
            assert {"neon", "vfpv4", "idiva"} <= set(features)
            assert "asimd" not in features
            assert block["model name"].startswith("ARMv7 Processor") and block["model name"].endswith("(v7l)")


def test_cpuinfo_variant_and_revision_match_the_core():
    a72 = parse_cpuinfo(cpuinfo_text("cortex-a72", 1, "arm64"))[0]
    assert (a72["CPU variant"], a72["CPU revision"]) == ("0x0", "3")  # Pi 4: A72 r0p3
    a76 = parse_cpuinfo(cpuinfo_text("cortex-a76", 1, "arm64"))[0]
    assert (a76["CPU variant"], a76["CPU revision"]) == ("0x4", "1")  # Pi 5: A76 r4p1
    assert "asimddp" in a76["Features"].split()  # Armv8.2 dot product
    assert "asimddp" not in a72["Features"].split()


def test_cpuinfo_text_is_kernel_formatted():
    text = cpuinfo_text("cortex-a72", 2, "arm64")
    assert text.startswith("processor\t: 0\n")
    assert "\n\nprocessor\t: 1\n" in text
    assert "CPU architecture: 8\n" in text
    assert text.endswith("CPU revision\t: 3\n\n")


def test_unknown_core_is_a_board_error_listing_the_known_ones():
    with pytest.raises(BoardError) as err:
        cpuinfo_text("cortex-x1", 4, "arm64")
    assert "cortex-x1" in str(err.value) and "cortex-a72" in str(err.value)


@pytest.mark.parametrize(("core", "cores", "arch"), [
    ("cortex-a72", 0, "arm64"), ("cortex-a72", True, "arm64"), ("cortex-a72", 4, "x86_64"),
])
def test_bad_core_count_or_arch_is_a_board_error(core, cores, arch):
    with pytest.raises(BoardError):
        cpuinfo_text(core, cores, arch)


@pytest.mark.parametrize("core", CORES.names())
@pytest.mark.parametrize("arch", ["arm64", "armhf"])
def test_qemu_model_is_never_max(core, arch):
    model = qemu_cpu(core, arch)
    assert model != "max"
    assert model.startswith("cortex-")


def test_qemu_model_is_the_core_itself_when_qemu_has_it():
    for core in ("cortex-a53", "cortex-a57", "cortex-a72", "cortex-a76"):
        assert qemu_cpu(core, "arm64", QEMU72_AARCH64) == core


def test_qemu_model_falls_back_to_a_same_isa_model():
    # qemu 7.2 has no cortex-a55 / cortex-a78; cortex-a76 has the same Armv8.2 user ISA.
    assert qemu_cpu("cortex-a55", "arm64", QEMU72_AARCH64) == "cortex-a76"
    assert qemu_cpu("cortex-a55", "arm64", QEMU72_AARCH64 | {"cortex-a55"}) == "cortex-a55"
    # qemu-arm has no Armv8 AArch32 model: cortex-a7 is the ISA subset, not max.
    assert qemu_cpu("cortex-a53", "armhf", {"cortex-a7", "cortex-a15", "max"}) == "cortex-a7"


def test_qemu_without_a_model_for_the_core_is_unavailable():
    with pytest.raises(RuntimeUnavailableError) as err:
        qemu_cpu("cortex-a76", "arm64", {"cortex-a53", "max"})
    assert "cortex-a76" in str(err.value)
