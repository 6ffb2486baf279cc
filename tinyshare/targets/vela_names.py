"""The names Vela accepts, as data: cheap to import (board profiles validate against them)."""

# Vela's names, from ethos-u-vela 5.2.0 (the pinned version): ``vela --help`` for the
# accelerator configs, the bundled ``ethosu/config_files/Arm/vela.ini`` for the system
# configs and memory modes. tests/targets/test_vela.py checks them against the installed Vela.
VELA_ACCELERATOR_CONFIGS = (
    "ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256",
    "ethos-u65-256", "ethos-u65-512",
    "ethos-u85-128", "ethos-u85-256", "ethos-u85-512", "ethos-u85-1024", "ethos-u85-2048",
)
VELA_SYSTEM_CONFIGS = (
    "Ethos_U55_Deep_Embedded", "Ethos_U55_High_End_Embedded",
    "Ethos_U65_Embedded", "Ethos_U65_Mid_End", "Ethos_U65_High_End", "Ethos_U65_Client_Server",
    "Ethos_U85_SYS_Flash_Low", "Ethos_U85_SYS_Flash_High",
    "Ethos_U85_SYS_DRAM_Low", "Ethos_U85_SYS_DRAM_Mid", "Ethos_U85_SYS_DRAM_High",
)
VELA_MEMORY_MODES = (
    "Sram_Only", "Shared_Sram", "Dedicated_Sram",
    "Dedicated_Sram_256KB", "Dedicated_Sram_384KB", "Dedicated_Sram_512KB",
)
