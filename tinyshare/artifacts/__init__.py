"""Artifacts: files on disk (atomic writes, sha256, manifests) and stage artifacts."""

from tinyshare.artifacts.files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_npy,
    atomic_write_npz,
    atomic_write_text,
    package_versions,
    sha256_file,
    write_manifest,
)
from tinyshare.artifacts.models import (
    COMPUTE_OPS,
    QuantizedModel,
    QuantizedWeight,
    graph_attr,
    is_compute_op,
    require_deploy_form,
)

__all__ = [
    "COMPUTE_OPS", "QuantizedModel", "QuantizedWeight", "atomic_write_bytes",
    "atomic_write_json", "atomic_write_npy", "atomic_write_npz", "atomic_write_text",
    "graph_attr", "is_compute_op", "package_versions", "require_deploy_form", "sha256_file",
    "write_manifest",
]
