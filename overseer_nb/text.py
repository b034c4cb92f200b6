"""Shortening text for display and storage: one rule and one marker everywhere.

Pure string functions; the engine's output capture, the journal and the
widget's panel all shorten with these, so a reader always sees the same marker.
"""

from __future__ import annotations

__all__ = ["marker", "clip_middle", "clip_tail", "clip_end"]


def marker(left_out: int) -> str:
    """The line put where ``left_out`` characters were cut out."""
    return f"\n[... {left_out:,} characters not kept ...]\n"


def clip_middle(text: str | None, limit: int) -> str:
    """``text``, or its first and last ``limit // 2`` characters with :func:`marker` between."""
    if not text:
        return ""
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + marker(len(text) - 2 * half) + text[len(text) - half:]


def clip_tail(text: str | None, limit: int) -> str:
    """The last ``limit`` characters of ``text``, after :func:`marker` if any were cut."""
    if not text:
        return ""
    if len(text) <= limit:
        return text
    return marker(len(text) - limit).lstrip("\n") + text[-limit:]


def clip_end(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters on one line, ending in ``...`` if it was longer."""
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."
