"""The pages a newcomer opens first: the front page (/) and the API document (/api/v1/docs)."""
from __future__ import annotations

from gateway.site.views import bp

__all__ = ["bp"]
