"""The safety net on adversarial strings: linear time, and the cost of one check at the cap.

    .venv/bin/python benchmarks/bench_safety_net.py      (standard library only; about 10 s)

For each adversarial family (strings that made the old patterns rescan the rest of
the string from every position), measured side by side in one run:
- per string at the cap: the time `sensitive_kind` takes on a MAX_CHECKED_CHARS string;
- 10x/1x: time at 10 times the cap over time at the cap, with the cap lifted
  (`footfall.safety._kind_unbounded`); linear time gives about 10, quadratic about 100;
- before: the same ratio for the patterns the safety net had before issue 11.
"""

# Look-alike characters (fullwidth, ideographic) are the point of these cases.
# ruff: noqa: RUF001

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from footfall.safety import MAX_CHECKED_CHARS, _kind_unbounded, sensitive_kind

SCALE = 10
REPEATS = 5  # best of: a stall of the machine is not the code's time
FAMILIES: dict[str, Callable[[int], str]] = {
    "token lookaheads": lambda n: "aA" * (n // 2),
    "email, no @": lambda n: "a" * n,
    "email, many @": lambda n: "a@" * (n // 2),
    "email, dotted domain": lambda n: "a@" + "a." * (n // 2 - 1),
    "ipv6 groups": lambda n: "1:" * (n // 2),
    "ipv6 double colons": lambda n: "1:1::" * (n // 5),
    "ipv4 dots": lambda n: "1." * (n // 2),
    "url userinfo": lambda n: "://a:" * (n // 5),
    "path segments": lambda n: " /a" * (n // 3),
    "digit groups": lambda n: "4111 " * (n // 5),
    "phone digits": lambda n: "+1" + " 1(2)" * (n // 5 - 1),
    "mixed run": lambda n: "aB1-" * (n // 4),
    "percent escapes": lambda n: "%25" * (n // 3),
    "nested percent": lambda n: "%" + "25" * (n // 2 - 2) + "40",
    "character references": lambda n: "&#64;" * (n // 5),
    "nested references": lambda n: "&" + "amp;" * (n // 4 - 1),
    "fullwidth": lambda n: "＠１．" * (n // 3),
    "nfkc expansion": lambda n: "\ufdfa" * (n // 18),
}

# The rules as they were before issue 11 (src/footfall/schema.py at e4d1717), for the "before" column.
OLD_PATTERNS = [
    re.compile(pattern)
    for pattern in (
        r"://[^/\s:@]+:[^/\s@]*@",
        r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}",
        r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])",
        r"(?i)(?<![\w:-])(?:[0-9a-f]{2}[:-]){5}[0-9a-f]{2}(?![\w:-])",
        r"(?i)(?<![\w:])(?:[0-9a-f]{1,4}:){4,7}[0-9a-f]{1,4}(?![\w:])",
        r"(?i)(?<![\w:.])(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?::(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?(?![\w:])",
        r"(?:^[~/]|^[A-Za-z]:[\\/]|[\\/](?:home|Users|root)[\\/]|\\\\)",
        r"(?:ghp_|gho_|github_pat_|sk-|xox[abpr]-|AKIA|glpat-|eyJ)[A-Za-z0-9_-]{8,}",
        r"(?=[A-Za-z0-9+/_=-]{24,})(?=\S*\d)(?=\S*[A-Z])(?=\S*[a-z])[A-Za-z0-9+/_=-]{24,}",
    )
]


def old_sensitive(text: str) -> bool:
    return any(pattern.search(text) for pattern in OLD_PATTERNS)


def best_time_s(check: Callable[[str], object], text: str, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        check(text)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    sensitive_kind("warm up: compile every pattern once")
    print(f"cap: {MAX_CHECKED_CHARS} characters; ratios are time({SCALE}x length) / time(1x length)\n")
    print(f"{'family':22} {'per string at cap':>18} {'10x/1x':>8} {'before: at cap':>15} {'before 10x/1x':>14}")
    at_cap_s: list[float] = []
    for name, make in FAMILIES.items():
        short, long = make(MAX_CHECKED_CHARS), make(MAX_CHECKED_CHARS * SCALE)
        capped_s = best_time_s(sensitive_kind, short, REPEATS)
        ratio = best_time_s(_kind_unbounded, long, REPEATS) / best_time_s(_kind_unbounded, short, REPEATS)
        old_short_s = best_time_s(old_sensitive, short, REPEATS)
        old_ratio = best_time_s(old_sensitive, long, 1) / old_short_s
        at_cap_s.append(capped_s)
        print(f"{name:22} {capped_s * 1e3:15.3f} ms {ratio:8.1f} {old_short_s * 1e3:12.3f} ms {old_ratio:14.1f}")
    print(
        f"\nworst per string at the cap: {max(at_cap_s) * 1e3:.3f} ms; mean {sum(at_cap_s) / len(at_cap_s) * 1e3:.3f} ms"
    )


if __name__ == "__main__":
    main()
