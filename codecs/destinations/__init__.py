"""Destination registry: one line per destination type."""

from __future__ import annotations

from .base import Action, Destination, HttpRequest, Preset
from .pushwoosh import PUSHWOOSH
from .webhook import WEBHOOK
from .xtremepush import XTREMEPUSH

__all__ = ["REGISTRY", "Action", "Destination", "HttpRequest", "Preset"]

REGISTRY: dict[str, Destination] = {
    PUSHWOOSH.slug: PUSHWOOSH,
    XTREMEPUSH.slug: XTREMEPUSH,
    WEBHOOK.slug: WEBHOOK,
}
