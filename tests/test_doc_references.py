"""Every document the repository cites is in the repository.

Scans the tracked text files (``git ls-files``: source, docs, configs, README, tests, .ci) and fails on:

- a citation of the design notes that live outside the repository (the project's own protocol is
  docs/protocol.md);
- a ``docs/<name>.md`` that does not exist;
- a ``docs/protocol.md section N`` (or ``sections N-M``, ``sections N and M``) whose section N is not a
  numbered heading (``## N. ...``) of docs/protocol.md; inside docs/protocol.md, a bare ``section N`` too.

A citation may be wrapped: across lines, across comment lines, or across the implicitly concatenated
string literals of a Python message.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = "docs/protocol.md"
BINARY_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".pdf", ".pkl", ".pickle", ".npz", ".npy", ".pt", ".pth"}

# Built from parts, so that this file does not cite what it forbids.
_NOTES = "DES" + "IGN"
FORBIDDEN = re.compile(rf"\b{_NOTES}(?:\.md|\s+sections?\b)")
DOC = re.compile(r"\bdocs/([A-Za-z0-9_.-]+?)\.md\b")
# Between the words of a citation: white space, a line break into a comment, or the end of one string
# literal and the start of the next (Python's implicit concatenation, e.g. ``"... docs/protocol.md "`` /
# ``"section 5 ..."``).
_GAP = r"""(?:\s|\n\s*\#|["']\s*\n\s*[rbfuRBFU]{0,2}["'])+"""
_NUMBERS = rf"(\d+)((?:(?:{_GAP})?(?:-|–|,|and|or)(?:{_GAP})?\d+)*)"
PROTOCOL_SECTION = re.compile(rf"docs/protocol\.md,?{_GAP}sections?{_GAP}{_NUMBERS}")
BARE_SECTION = re.compile(rf"\bsections?{_GAP}{_NUMBERS}")
HEADING = re.compile(r"^#{1,6}\s+(\d+)\.\s", re.MULTILINE)


@cache
def tracked_texts() -> dict[str, str]:
    """Path (relative, POSIX) -> text of every tracked file that exists and reads as UTF-8."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"not a git checkout ({err}): nothing to list the tracked files with")
    texts = {}
    for name in filter(None, listed.split("\0")):
        path = ROOT / name
        if path.suffix.lower() in BINARY_SUFFIXES or not path.is_file():
            continue
        try:
            texts[name] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
    return texts


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _numbers(match: re.Match) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", match.group(1) + match.group(2))]


def protocol_sections() -> set[int]:
    return {int(n) for n in HEADING.findall((ROOT / PROTOCOL).read_text(encoding="utf-8"))}


def test_files_are_scanned():
    texts = tracked_texts()
    assert PROTOCOL in texts and "README.md" in texts
    assert _NOTES not in Path(__file__).read_text(encoding="utf-8")  # by construction, see above


def test_no_citation_of_the_design_notes_outside_the_repository():
    found = [
        f"{name}:{_line(text, m.start())}: {text[m.start() : text.find(chr(10), m.start())].strip()[:100]}"
        for name, text in sorted(tracked_texts().items())
        for m in FORBIDDEN.finditer(text)
    ]
    assert not found, (
        f"{len(found)} citation(s) of design notes users never see; cite the matching section of "
        f"{PROTOCOL} (or docs/architecture.md, docs/performance.md, README.md) instead:\n" + "\n".join(found)
    )


def test_every_cited_doc_exists():
    found = [
        f"{name}:{_line(text, m.start())}: docs/{m.group(1)}.md"
        for name, text in sorted(tracked_texts().items())
        for m in DOC.finditer(text)
        if not (ROOT / "docs" / f"{m.group(1)}.md").is_file()
    ]
    assert not found, "cited documents that are not in docs/:\n" + "\n".join(found)


def test_every_cited_protocol_section_exists():
    sections = protocol_sections()
    assert sections == set(range(1, len(sections) + 1)), f"{PROTOCOL}: numbered headings {sorted(sections)}"
    found = []
    for name, text in sorted(tracked_texts().items()):
        matches = list(PROTOCOL_SECTION.finditer(text))
        if name == PROTOCOL:
            matches += BARE_SECTION.finditer(text)
        for m in matches:
            missing = [n for n in _numbers(m) if n not in sections]
            if missing:
                found.append(f"{name}:{_line(text, m.start())}: {' '.join(m.group(0).split())}")
    assert not found, (
        f"citations of {PROTOCOL} sections that do not exist (it has {sorted(sections)}):\n"
        + "\n".join(found)
    )


def test_the_checks_find_what_they_look_for():
    """The patterns on made-up citations, wrapped as the code wraps them."""
    assert FORBIDDEN.search(f"see {_NOTES}.md 5b") and FORBIDDEN.search(f"({_NOTES} section 3)")
    assert not FORBIDDEN.search("the design section of a report")
    message = 'f"... whole-class support (docs/protocol.md "\n            "section 5) need ..."'
    assert _numbers(PROTOCOL_SECTION.search(message)) == [5]
    comment = "# the removal walk (docs/protocol.md\n    # sections 2-4 and 6)"
    assert _numbers(PROTOCOL_SECTION.search(comment)) == [2, 4, 6]
    assert [m.group(1) for m in DOC.finditer("docs/shift.md, docs/cluster.md 2a, docs/*.md")] == [
        "shift",
        "cluster",
    ]
