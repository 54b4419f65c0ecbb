"""Text helpers shared by every layer: nothing here knows about agents."""

from __future__ import annotations


def scrub(text: str) -> str:
    """`text` without lone UTF-16 surrogates (each becomes U+FFFD), so it can be encoded as UTF-8.

    They arrive from `os.listdir` on non-UTF-8 file names and from servers that send half an emoji as
    `"\\ud83d"`; left in, they make every later `.encode("utf-8")` (a trace line, the next request) raise.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Through UTF-16: a split pair joins up again, a lone half becomes U+FFFD.
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text
