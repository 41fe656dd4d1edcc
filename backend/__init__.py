"""The aiohttp-realtime demo service: `python -m backend` (see README.md)."""
