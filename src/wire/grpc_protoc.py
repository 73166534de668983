"""Compile the gRPC contract to Python with grpc_tools.protoc.

Used at build time (setup.py loads this file on its own, so it imports nothing from the package) to
ship the stubs in the wheel as `asrhub.wire.gen`, and at run time by grpc_gen as the fallback for a
checkout or an editable install.
"""

from __future__ import annotations

from pathlib import Path

OUTPUTS = ("asrhub_pb2.py", "asrhub_pb2.pyi", "asrhub_pb2_grpc.py")
_HEADER = '"""Generated from protos/asrhub/v1/asrhub.proto by asrhub.wire.grpc_protoc; do not edit."""\n'


def compile_proto(proto_root: Path, out: Path) -> None:
    """Write the package tree `out/asrhub/v1/{asrhub_pb2,asrhub_pb2_grpc}.py` (+ .pyi, __init__.py)."""
    import grpc_tools
    from grpc_tools import protoc

    proto = proto_root / "asrhub" / "v1" / "asrhub.proto"
    if not proto.exists():
        raise RuntimeError(f"gRPC contract not found: {proto}")
    out.mkdir(parents=True, exist_ok=True)
    include = Path(grpc_tools.__file__).resolve().parent / "_proto"
    rc = protoc.main(["grpc_tools.protoc", f"-I{proto_root}", f"-I{include}", f"--python_out={out}",
                      f"--pyi_out={out}", f"--grpc_python_out={out}", str(proto)])
    if rc != 0:
        raise RuntimeError(f"protoc failed ({rc}) on {proto}")
    v1 = out / "asrhub" / "v1"
    for d in (out, out / "asrhub", v1):
        (d / "__init__.py").write_text(_HEADER)
    # protoc writes an absolute import (`from asrhub.v1 import asrhub_pb2`) that would resolve to this
    # project's own `asrhub` package; make it relative.
    grpc_file = v1 / "asrhub_pb2_grpc.py"
    grpc_file.write_text(grpc_file.read_text().replace("from asrhub.v1 import asrhub_pb2", "from . import asrhub_pb2"))
