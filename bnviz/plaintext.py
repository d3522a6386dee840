"""Text from a recording (layer names, paths, metadata) shown as plain text, never as control.

A name may hold terminal escapes (ANSI colours, a bell, a NUL), bidirectional overrides that
reorder what a reader sees, or characters XML forbids; ``printable`` spells each such character
as an escape (``\\x1b``, ``\\u202e``), so it reaches a terminal, a Qt label or an SVG as the
characters themselves. Markup is the renderer's job (``html.escape`` where HTML is rendered).
"""

from __future__ import annotations

import re

# C0/C1 controls and DEL; bidirectional embeddings, overrides and isolates; line and paragraph
# separators; the non-characters XML forbids (lone surrogates, U+FFFE, U+FFFF).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff\ufffe\uffff]")


def _escape(m: re.Match) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text) -> str:
    """``text`` with every control, reordering or XML-forbidden character written as an escape."""
    return _UNSAFE.sub(_escape, str(text))
