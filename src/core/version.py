"""The version of the hub (one place: the package, the CLI, /metrics and the OpenAPI document read it)."""

VERSION = "0.1.0"
