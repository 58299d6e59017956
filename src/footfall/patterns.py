"""Regular expressions compiled on first use, so that `import footfall` stays cheap."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re

_cache: dict[str, re.Pattern[str]] = {}


def compiled(pattern: str) -> re.Pattern[str]:
    found = _cache.get(pattern)
    if found is None:
        import re

        found = _cache[pattern] = re.compile(pattern)
    return found
