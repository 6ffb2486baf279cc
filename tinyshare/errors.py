"""The typed error tree. The CLI turns any ``TinyshareError`` into one line and exit code 2."""

from __future__ import annotations


class TinyshareError(Exception):
    """Base of every error tinyshare raises on purpose (bad input, unmet budgets, ...)."""

    exit_code = 2


class ConfigError(TinyshareError):
    """A config file, field or ``--set`` override is missing, malformed or mistyped."""


class DataError(TinyshareError):
    """A data file (npz) is missing or holds arrays of the wrong shape or dtype."""


class BoardError(TinyshareError):
    """An unknown board name, or a board profile file that does not validate."""


class ModelFileError(TinyshareError):
    """A model file (.tflite / .onnx) is missing, truncated or not what it claims."""


class UnsupportedOpError(TinyshareError):
    """The model uses an op (or op version) the target runtime does not register."""


class BudgetExceededError(TinyshareError):
    """The model does not fit the board's flash or RAM budget."""


class RuntimeUnavailableError(TinyshareError):
    """A runtime (LiteRT, onnxruntime, TFLM, ...) cannot be imported or started."""


class ToolTimeoutError(RuntimeUnavailableError):
    """An external tool (compiler, emulator, Vela...) ran past its time limit."""


class SharingError(TinyshareError):
    """Weight sharing was broken by a stage (a shared weight duplicated or quantized twice)."""


class QuantizationError(TinyshareError):
    """The quantized graph is not fully int8 (an op on the path is not supported)."""


class ExportError(TinyshareError):
    """An exporter produced, or would produce, a file that breaks the int8 contract."""


class ReportError(TinyshareError):
    """A report (``report.json``) does not match its JSON Schema, or cannot be rendered.

    A report is built by tinyshare, so this is a tinyshare bug, not bad input: exit code 3.
    """

    exit_code = 3


class RunLockedError(TinyshareError):
    """Another process is writing the same run folder (``runs/<name>/``): its lock file
    ``runs/.<name>.lock`` is held. The message names the holder's PID and host."""


class OutputWriteError(TinyshareError):
    """The run's output folder cannot be written: read-only, no permission, or full disk.
    Nothing half-written is kept; the message says what to do."""


class RunFolderError(TinyshareError):
    """A path given as a run folder is not one (no readable top-level ``manifest.json``)."""
