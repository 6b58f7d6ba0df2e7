"""jwtctl: the auth core, CLI and dev server for dual-token JWT auth (see README.md)."""

__version__ = "0.1.0"
