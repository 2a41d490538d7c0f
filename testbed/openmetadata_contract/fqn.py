"""OpenMetadata fully qualified names (FullyQualifiedName.java): parts joined by '.', a part that
contains a '.' is wrapped in double quotes; a name may not contain '"' (unless it is a whole quoted
name, which is then normalised) nor '::'."""
from __future__ import annotations

import re

_QUOTED = re.compile(r'^"([^"]+)"$')


class InvalidName(ValueError):
    pass


def quote_name(name: str) -> str:
    m = _QUOTED.match(name)
    if m:
        inner = m.group(1)
        return name if "." in inner else inner
    if '"' in name:
        raise InvalidName(f"Invalid name {name}")
    return f'"{name}"' if "." in name else name


def unquote_name(part: str) -> str:
    m = _QUOTED.match(part)
    return m.group(1) if m else part


def build(*names: str) -> str:
    return ".".join(quote_name(n) for n in names)


def add(prefix: str, name: str) -> str:
    return f"{prefix}.{quote_name(name)}"


def split(fqn: str) -> list[str]:
    """Split into parts, quotes kept (as FullyQualifiedName.split does). Raises InvalidName."""
    parts: list[str] = []
    cur: list[str] = []
    in_quotes = False
    for ch in fqn:
        if ch == '"':
            in_quotes = not in_quotes
            cur.append(ch)
        elif ch == "." and not in_quotes:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    if in_quotes or any(p == "" for p in parts):
        raise InvalidName(f"Invalid fully qualified name {fqn}")
    for p in parts:
        if '"' in p and not _QUOTED.match(p):
            raise InvalidName(f"Invalid fully qualified name {fqn}")
    return parts


def names(fqn: str) -> list[str]:
    return [unquote_name(p) for p in split(fqn)]
