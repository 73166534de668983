"""Where the hub's non-Python files live: inside the installed package, or in the source checkout.

A wheel carries them under `asrhub/_data/` (copied there by the build step in setup.py: the default
config, the .proto, the demo page with its vendored Socket.IO client). An editable install or a
checkout has no `_data/`: the same relative paths are read from the repository root instead. Nothing
here imports the rest of the package.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the `asrhub` package (src/ in a checkout)
PACKAGED = PACKAGE_DIR / "_data"
CHECKOUT = PACKAGE_DIR.parent  # the repository root when running from a checkout

#: Relative paths shipped in the wheel (setup.py copies exactly these).
SHIPPED = ("config/config.yaml", "config/config.example.yaml", "protos/asrhub/v1/asrhub.proto",
           "frontend/realtime-streaming")


def resource(rel: str) -> Path:
    """The packaged copy of `rel` when the package carries one, else the checkout's."""
    packaged = PACKAGED / rel
    return packaged if packaged.exists() else CHECKOUT / rel


def is_packaged() -> bool:
    return PACKAGED.is_dir()
