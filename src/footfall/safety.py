"""The safety net: refuse strings that look like they identify someone or grant access.

`sensitive_kind(text)` names what a string looks like ("email", "ip address",
"mac address", "file path", "token", "url with credentials", "card number",
"phone number", "too long", "nested encoding") or returns None.
`sensitive_kind_in(values)` does the same for a list, and also catches what only
shows when the items are joined.

The SDK runs it on outgoing properties; the collector runs it on every stored
string, on the event loop, for strings a hostile client chose. So it is built to be
linear in the length of its input:

- a string longer than MAX_CHECKED_CHARS is refused before any pattern runs, and
  one that NFKC expands past MAX_NORMALISED_CHARS before the second pass;
- every rule has a cheap pre-check (no "@", no email pattern);
- no pattern has nested or overlapping quantifiers or an unbounded lookaround:
  repeats are bounded, possessive, or separated by a character the repeat excludes,
  and open-ended shapes (tokens, IPv6) are found as maximal runs and judged in Python.

Look-alikes are folded by one normalising step (NFKC, a few confusables and
invisible characters, other scripts' digits), and encodings undone: HTML character
references (`&#64;`, `&#x40;`, `&commat;`) and percent-encoding to the end
(`%252540` is `%2540` is `%40` is "@"), in one linear pass. Decoding can reveal more
to fold or decode, so the step repeats, at most MAX_DECODE_ROUNDS times; a string
that still decodes further after that is refused as a "nested encoding" (no honest
value is encoded that many times over). The rules run on both the original and the
normalised text.

A UUID is refused as a "token": it is an id, and an id links events to one install
or person, which is what the hashed install id exists to avoid.
"""

from __future__ import annotations

from footfall.patterns import compiled

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from collections.abc import Callable, Sequence

    _Rule = tuple[str, Callable[[str, int], bool], str, Callable[[str], bool] | None]

MAX_CHECKED_CHARS = 512  # per string; a longer one is refused as "too long"
MAX_NORMALISED_CHARS = 2 * MAX_CHECKED_CHARS  # after NFKC, which can expand a character 18-fold
MAX_CHECKED_LIST_CHARS = 16 * 1024  # all items of one list together
MAX_DECODE_ROUNDS = 4  # of HTML then percent decoding: "&amp;#37;40" is "&#37;40", then "%40" and "@"
TOO_LONG = "too long"
NESTED_ENCODING = "nested encoding"

_CARD_MIN_DIGITS = 13
_CARD_MAX_DIGITS = 19
_CARD_FIRST_DIGITS = "23456"  # Mastercard 2-series, Amex/Diners/JCB, Visa, Mastercard, Discover/UnionPay
_LUHN_DOUBLED = str.maketrans("0123456789", "0246813579")  # the digit sum of twice each digit
_PHONE_MIN_DIGITS = 7
_MIXED_TOKEN_MIN_CHARS = 24
_BARE_TOKEN_MIN_CHARS = 32  # hex or lowercase letters and digits: an md5 is 32

# Characters NFKC leaves alone that read as "." or "/", and invisible ones that split a match.
_FOLD = {
    0x3002: ".",  # ideographic full stop (NFKC maps the halfwidth one to it)
    0x2215: "/",  # division slash
    0x2044: "/",  # fraction slash
    0x29F8: "/",  # big solidus
    0x2216: "\\",  # set minus
    0x00AD: None,  # soft hyphen
    0x200B: None,  # zero width space
    0x200C: None,  # zero width non-joiner
    0x200D: None,  # zero width joiner
    0x2060: None,  # word joiner
    0xFEFF: None,  # zero width no-break space
}


def _digit_count(text: str) -> int:
    return sum(map(text.count, "0123456789"))


def _is_ipv6(candidate: str) -> bool:
    if candidate.count(":") < 2:
        return False
    import ipaddress

    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def _is_card_number(candidate: str) -> bool:
    # Digit groups of a card as written ("4111 1111 1111 1111"); any run of consecutive
    # groups with 13 to 19 digits, a card's first digit and a valid Luhn sum is a card.
    groups = candidate.replace("-", " ").split(" ")
    for first, group in enumerate(groups):
        if group[0] not in _CARD_FIRST_DIGITS:
            continue
        digit_count = 0
        # Groups have 3 digits or more, so at most 6 of them fit in 19 digits: linear overall.
        for last in range(first, len(groups)):
            digit_count += len(groups[last])
            if digit_count > _CARD_MAX_DIGITS:
                break
            if digit_count >= _CARD_MIN_DIGITS and _luhn_valid("".join(groups[first : last + 1])):
                return True
    return False


def _luhn_valid(digits: str) -> bool:
    # Sums of code points, in C: every other digit from the right doubled (digit sum), minus "0"s.
    undoubled = digits[-1::-2].encode()
    doubled = digits[-2::-2].translate(_LUHN_DOUBLED).encode()
    return (sum(undoubled) + sum(doubled) - ord("0") * len(digits)) % 10 == 0


def _is_hex_token(run: str) -> bool:
    # Needs a letter and a digit, as any md5 or sha1 has: a long number or "aaaa..." is not a token.
    return not run.lower().strip("0123456789abcdef") and bool(run.strip("0123456789")) and _digit_count(run) > 0


def _is_lowercase_token(run: str) -> bool:
    return run.islower() and _digit_count(run) > 0


def _is_mixed_case_token(run: str) -> bool:
    return _digit_count(run) > 0 and run.lower() != run and run.upper() != run


_BARE_RUN = rf"(?<![A-Za-z0-9])[A-Za-z0-9]{{{_BARE_TOKEN_MIN_CHARS},}}+(?![A-Za-z0-9])"

# (kind, pre-check of the text and its digit count, pattern, judge of each match or None
# for "any match"); the first rule that matches names the kind.
_RULES: tuple[_Rule, ...] = (
    ("url with credentials", lambda t, d: "://" in t and "@" in t, r"://[^/\s@]++@", None),
    ("email", lambda t, d: "@" in t, r"[^\s@]@[^\s@]*\.[A-Za-z]{2}", None),
    ("ip address", lambda t, d: t.count(".") >= 3, r"(?a)(?<!\d)(?<!\d\.)(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)", None),
    (
        "mac address",
        lambda t, d: t.count(":") >= 5 or t.count("-") >= 5,
        r"(?i)(?<![\w:-])(?:[0-9a-f]{2}[:-]){5}[0-9a-f]{2}(?![\w:-])",
        None,
    ),
    # 45 characters is the longest IPv6 text ("ffff:...:255.255.255.255").
    ("ip address", lambda t, d: t.count(":") >= 2, r"(?<![\w:.])[0-9A-Fa-f:.]{2,45}+(?![\w:.])", _is_ipv6),
    (
        "file path",
        lambda t, d: "/" in t or "\\" in t or "~" in t,
        r"^[~/]|^[A-Za-z]:/|(?<![A-Za-z0-9])[A-Za-z]:\\|\\\\"
        r"|(?<![\w.-])(?:home|Users|root)[\\/][\w.-]|[\\/](?:home|Users|root)[\\/]"
        r"|(?:^|[\s=:,;'\"(\[])[/~][\w.-]+[\\/]",
        None,
    ),
    (
        "token",
        lambda t, d: len(t) >= 11,
        r"(?<![A-Za-z0-9])(?:gh[oprsu]_|github_pat_|[sr]k-|[prs]k_(?:live|test)_|xox[abeprs]-|AKIA|ASIA|glpat-"
        r"|eyJ|npm_|pypi-|hf_|AIza|SG\.)[A-Za-z0-9_-]{8}",
        None,
    ),
    (
        "token",
        lambda t, d: t.count("-") >= 4,
        r"(?i)(?<![0-9a-z])[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?![0-9a-z])",
        None,
    ),
    ("token", lambda t, d: len(t) >= _BARE_TOKEN_MIN_CHARS, _BARE_RUN, _is_hex_token),
    ("token", lambda t, d: len(t) >= _BARE_TOKEN_MIN_CHARS, _BARE_RUN, _is_lowercase_token),
    (
        "token",
        lambda t, d: len(t) >= _MIXED_TOKEN_MIN_CHARS,
        rf"(?<![A-Za-z0-9+/_=-])[A-Za-z0-9+/_=-]{{{_MIXED_TOKEN_MIN_CHARS},}}+",
        _is_mixed_case_token,
    ),
    (
        "card number",
        lambda t, d: d >= _CARD_MIN_DIGITS,
        r"(?a)(?<![\d.,])\d{3,}+(?:[ -]\d{3,}+)*+",  # (?a): ASCII digits only
        _is_card_number,
    ),
    (
        "phone number",
        lambda t, d: d >= _PHONE_MIN_DIGITS,
        r"(?a)(?<![\w+])\+[1-9](?:[ .-]?\(?\d\)?){6,14}(?!\d)"
        r"|(?<![\w.+-])(?:1[ .-])?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-]|\.\d)",
        None,
    ),
)

# Joining list items makes long runs of ordinary words ("ValueError" + "Http2Error" + ...,
# "python3" + "setuptools" + ...); the word-like token rules would refuse those, so the
# joined text skips them. Prefixed keys, hex, UUIDs and the rest still count.
_JOINED_RULES = tuple(rule for rule in _RULES if rule[3] not in (_is_lowercase_token, _is_mixed_case_token))


def _first_kind(text: str, rules: Sequence[_Rule]) -> str | None:
    digits = _digit_count(text)
    for kind, worth_checking, pattern, judge in rules:
        if not worth_checking(text, digits):
            continue
        regex: re.Pattern[str] = compiled(pattern)
        if judge is None:
            if regex.search(text):
                return kind
        elif any(judge(match.group()) for match in regex.finditer(text)):
            return kind
    return None


def normalised(text: str) -> str:
    """The text with look-alikes folded (NFKC, confusables) and encodings undone."""
    return _normalised(text)[0]


def _normalised(text: str) -> tuple[str, bool]:
    # (the normalised text, whether decoding came to an end within MAX_DECODE_ROUNDS)
    if text.isascii() and "%" not in text and "&" not in text:
        return text, True
    folded = _folded(text)
    for _ in range(MAX_DECODE_ROUNDS):
        decoded = _decoded(folded)
        if decoded == folded:
            return folded, True
        # Decoding can reveal more look-alikes ("%EF%BC%A0" is a fullwidth "@") and more
        # encodings ("%26%2364%3B" is "&#64;").
        folded = _folded(decoded)
    return folded, _decoded(folded) == folded


def _decoded(text: str) -> str:
    # One round: HTML character references (one level), then percent-encoding (to the end).
    if "&" in text:
        import html  # imported only when needed: html.entities is a large table

        text = html.unescape(text)
    if "%" in text:
        text = _percent_decoded(text)
    return text


_HEX_VALUES = {ord(digit): int(digit, 16) for digit in "0123456789abcdefABCDEF"}
_PERCENT = ord("%")


def _percent_decoded(text: str) -> str:
    """Percent-decoded until nothing changes, in one pass: a decoded byte is looked at again
    with the bytes around it, so "%2540" is "%40" is "@". Each byte is appended once and
    each decoding removes two, so the work is linear however deep the nesting."""
    decoded = bytearray()
    for byte in text.encode("utf-8", "surrogatepass"):
        decoded.append(byte)
        while (
            len(decoded) >= 3 and decoded[-3] == _PERCENT and decoded[-2] in _HEX_VALUES and decoded[-1] in _HEX_VALUES
        ):
            value = _HEX_VALUES[decoded[-2]] * 16 + _HEX_VALUES[decoded[-1]]
            del decoded[-3:]
            decoded.append(value)
    # "%EF%BC%A0" is the UTF-8 of a fullwidth "@"; bytes that are not UTF-8 read as U+FFFD.
    return decoded.decode("utf-8", "replace")


def _folded(text: str) -> str:
    import unicodedata

    folded = unicodedata.normalize("NFKC", text).translate(_FOLD)
    if folded.isascii():
        return folded
    # Other scripts' digits ("٨١" is 81) are digits to a reader; NFKC keeps them.
    return compiled(r"(?![0-9])\d").sub(lambda digit: str(unicodedata.decimal(digit.group())), folded)


def _kind_unbounded(text: str, rules: Sequence[_Rule] = _RULES) -> str | None:
    # Linear in len(text), with no length cap: the benchmark measures it past the cap.
    kind = _first_kind(text, rules)
    if kind is None:
        folded, decoded_to_the_end = _normalised(text)
        if folded != text:
            kind = _first_kind(folded, rules)
        if kind is None and not decoded_to_the_end:
            kind = NESTED_ENCODING
    return kind


def sensitive_kind(text: str) -> str | None:
    """Name what a string looks like, if it looks like something that identifies."""
    if len(text) > MAX_CHECKED_CHARS:
        return TOO_LONG
    kind = _first_kind(text, _RULES)
    if kind is None:
        folded, decoded_to_the_end = _normalised(text)
        if len(folded) > MAX_NORMALISED_CHARS:
            return TOO_LONG  # "ﷺ" alone is 18 characters under NFKC
        if folded != text:
            kind = _first_kind(folded, _RULES)
        if kind is None and not decoded_to_the_end:
            kind = NESTED_ENCODING
    return kind


def sensitive_kind_in(values: Sequence[str]) -> str | None:
    """Like `sensitive_kind` for a list: each item, then the items joined (a token split across items)."""
    items = [value for value in values if isinstance(value, str)]
    for item in items:
        kind = sensitive_kind(item)
        if kind is not None:
            return kind
    if len(items) < 2:
        return None
    if sum(len(item) for item in items) > MAX_CHECKED_LIST_CHARS:
        return TOO_LONG
    for separator in ("", " "):
        kind = _kind_unbounded(separator.join(items), _JOINED_RULES)
        if kind is not None:
            return kind
    return None
