"""Build an offline English prose corpus (BEIR ``corpus.jsonl``) from Debian documentation packages.

The shipped default sparse model is trained on the broadest text we can get without a model hub or a
dataset hub. Debian's archive is reachable through ``apt-get download``, and its documentation
packages carry a lot of varied English prose: two dictionaries (GCIDE, WordNet), three books about
Debian, the Python manual, the Linux man pages and the GNU coding standards. This script:

1. downloads a fixed list of packages, pinned by name, into ``$SPARSEARCH_CACHE/prose/debs``
   (default ``~/.cache/sparsearch/prose/debs``; reused when already there),
2. extracts each one with ``dpkg-deb -x`` (no root install) into ``prose/extracted``,
3. turns its files into sections (dictionary entries, HTML sections, man page sections), packs the
   sections' paragraphs into passages of at most 200 words, keeps English prose only (>= 30 words,
   mostly letters, enough English function words) and drops exact duplicates,
4. samples deterministically (``--seed``) down to ``--max-passages`` with an equal share per package
   (a package with fewer passages gives its unused share to the others),
5. writes ``corpus.jsonl`` (``{"_id", "title", "text"}``, ids like ``gcide-000123``, numbered before
   sampling so an id names the same passage whatever ``--max-passages`` is) and ``manifest.json``
   (package, version, licences from ``usr/share/doc/<pkg>/copyright``, passage counts, skipped packages).

Usage::

    .venv/bin/python scripts/prose_corpus.py --output ~/.cache/sparsearch/prose/corpus \
        [--max-passages 20000] [--seed 0]

Only the standard library is used; ``groff`` renders man pages when installed (else a simple roff
stripper is used).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html.parser
import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger("prose_corpus")

MAX_WORDS = 200
MIN_WORDS = 30
DEFAULT_MAX_PASSAGES = 20000


@dataclass(frozen=True)
class PackageSpec:
    """One Debian package to read prose from.

    Attributes:
        name: Debian binary package name, as given to ``apt-get download``.
        prefix: Passage id prefix (``<prefix>-000123``).
        kind: Reader to use: ``"dictd"`` (dictd index + ``.dict.dz``), ``"html"`` or ``"man"``.
        globs: Files to read, relative to the extracted package root (``**`` allowed).
        exclude: Regular expressions; a file whose relative path matches any of them is skipped.
    """

    name: str
    prefix: str
    kind: str
    globs: tuple[str, ...]
    exclude: tuple[str, ...] = ()


# Pinned by name; the versions actually used are recorded in manifest.json. All are in Debian main
# (DFSG-free): GPL, WordNet, CC-BY-SA, PSF, GFDL without invariant sections, man-pages licences.
_SPHINX_NOISE = (r"(^|/)genindex[^/]*\.html$", r"(^|/)search\.html$", r"(^|/)py-modindex\.html$", r"(^|/)_")
PACKAGES: tuple[PackageSpec, ...] = (
    PackageSpec("dict-gcide", "gcide", "dictd", ("usr/share/dictd/gcide.index",)),
    PackageSpec("dict-wn", "wordnet", "dictd", ("usr/share/dictd/wn.index",)),
    PackageSpec("debian-handbook", "handbook", "html", ("usr/share/doc/debian-handbook/html/en-US/*.html",)),
    PackageSpec("debian-reference-en", "debref", "html", ("usr/share/debian-reference/*.en.html",)),
    PackageSpec("debian-policy", "policy", "html", ("usr/share/doc/debian-policy/**/*.html",), _SPHINX_NOISE),
    PackageSpec(
        "developers-reference",
        "devref",
        "html",
        ("usr/share/developers-reference/*.html",),
        (*_SPHINX_NOISE, r"developers-reference\.html$"),
    ),
    PackageSpec("gnu-standards", "gnustd", "html", ("usr/share/doc/gnu-standards/*.html",)),
    PackageSpec(
        "python3.11-doc",
        "pydoc",
        "html",
        ("usr/share/doc/python3.11/html/**/*.html",),
        (*_SPHINX_NOISE, r"whatsnew/changelog\.html$"),
    ),
    PackageSpec("manpages", "man", "man", ("usr/share/man/man*/*.gz",)),
    PackageSpec("manpages-dev", "mandev", "man", ("usr/share/man/man*/*.gz",)),
)


@dataclass
class Section:
    """A titled run of paragraphs (an HTML section, a man page section, a dictionary entry).

    Attributes:
        title: Section, page or headword title ("" when unknown).
        paragraphs: Whitespace-normalised paragraph strings, in reading order.
    """

    title: str
    paragraphs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Passage:
    """One output passage before ids are assigned.

    Attributes:
        package: Debian package the text came from.
        title: Document, section or headword title.
        text: Whitespace-normalised passage text, 30-200 words.
    """

    package: str
    title: str
    text: str


class ProseCorpusError(RuntimeError):
    """A step that cannot go on; the message says how to fix it."""


# ---------------------------------------------------------------------------------------------------
# Text helpers


_WS = re.compile(r"\s+")
_WORD_CHARS = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
# Common English function words: their share of the tokens separates prose from code, tables,
# word lists and other languages cheaply.
_STOPWORDS = frozenset(
    "a an the of and or but to in on at by for with from as is are was were be been being it its this "
    "that these those which who whom what when where how not no can may must should will would could "
    "has have had do does did if then than so such there their they them he she his her we you your "
    "our one all any each other some into over also only more most used use".split()
)


def normalize_ws(text: str) -> str:
    """Collapse every whitespace run to one space and strip the ends."""
    return _WS.sub(" ", text).strip()


def word_count(text: str) -> int:
    """Number of whitespace-separated tokens in ``text``."""
    return len(text.split())


def is_symbol_line(line: str, min_letter_share: float = 0.5) -> bool:
    """Whether a line is mostly symbols/digits (a table rule, code, an ASCII diagram).

    Args:
        line: One line of text.
        min_letter_share: Lines whose letters are fewer than this share of the non-space
            characters count as symbol lines.

    Returns:
        True for lines with no letters or too few of them; False for blank lines.
    """
    chars = [c for c in line if not c.isspace()]
    if not chars:
        return False
    letters = sum(c.isalpha() for c in chars)
    return letters < min_letter_share * len(chars)


def is_prose(
    text: str,
    min_words: int = MIN_WORDS,
    min_letter_share: float = 0.75,
    min_word_share: float = 0.6,
    min_stopword_share: float = 0.08,
) -> bool:
    """Whether a passage reads as English prose.

    Args:
        text: Whitespace-normalised passage.
        min_words: Fewer whitespace tokens than this is too short.
        min_letter_share: Letters as a share of non-space characters.
        min_word_share: Share of tokens that are words (letters, with inner ``'`` or ``-``, and
            surrounding punctuation allowed).
        min_stopword_share: Share of tokens that are common English function words; code, tables,
            word lists and other languages fall below it.

    Returns:
        True when every threshold is met.
    """
    tokens = text.split()
    if len(tokens) < min_words:
        return False
    chars = [c for c in text if not c.isspace()]
    if sum(c.isalpha() for c in chars) < min_letter_share * len(chars):
        return False
    stripped = [t.strip(".,;:!?()[]\"'“”‘’«»—–") for t in tokens]
    words = [t for t in stripped if t and _WORD_CHARS.fullmatch(t)]
    if len(words) < min_word_share * len(tokens):
        return False
    stopwords = sum(t.lower() in _STOPWORDS for t in stripped)
    return stopwords >= min_stopword_share * len(tokens)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'“(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split text after ``.``, ``!`` or ``?`` followed by a capital letter or digit (a simple heuristic)."""
    return [s for s in _SENTENCE_END.split(text) if s]


def pack_passages(paragraphs: Iterable[str], max_words: int = MAX_WORDS) -> list[str]:
    """Greedily pack paragraphs into passages of at most ``max_words`` words.

    Paragraphs are kept whole where they fit; a paragraph longer than ``max_words`` is split at
    sentence ends, and a sentence longer than ``max_words`` is cut into ``max_words``-word pieces.

    Args:
        paragraphs: Paragraph strings in reading order.
        max_words: Upper bound on words per passage.

    Returns:
        Whitespace-normalised passages in reading order (short ones are kept; filter them later).
    """
    units: list[list[str]] = []
    for paragraph in paragraphs:
        words = paragraph.split()
        if not words:
            continue
        if len(words) <= max_words:
            units.append(words)
            continue
        for sentence in split_sentences(" ".join(words)):
            sentence_words = sentence.split()
            units.extend(sentence_words[i : i + max_words] for i in range(0, len(sentence_words), max_words))
    passages: list[str] = []
    current: list[str] = []
    for unit in units:
        if current and len(current) + len(unit) > max_words:
            passages.append(" ".join(current))
            current = []
        current.extend(unit)
    if current:
        passages.append(" ".join(current))
    return passages


def sections_to_passages(package: str, sections: Iterable[Section], max_words: int = MAX_WORDS) -> list[Passage]:
    """Pack each section's paragraphs into passages and keep the English prose ones.

    Args:
        package: Package name stored on every passage.
        sections: Sections in reading order; passages never cross a section boundary.
        max_words: Upper bound on words per passage.

    Returns:
        Passages that pass :func:`is_prose`, in reading order.
    """
    passages = []
    for section in sections:
        for text in pack_passages(section.paragraphs, max_words):
            if is_prose(text):
                passages.append(Passage(package, section.title, text))
    return passages


def dedup_passages(passages: Iterable[Passage]) -> list[Passage]:
    """Drop passages whose exact text was already seen (SHA-1 of the UTF-8 text); the first copy wins."""
    seen: set[bytes] = set()
    kept = []
    for passage in passages:
        digest = hashlib.sha1(passage.text.encode("utf-8")).digest()
        if digest not in seen:
            seen.add(digest)
            kept.append(passage)
    return kept


def balanced_quotas(available: dict[str, int], total: int) -> dict[str, int]:
    """Share ``total`` passages out equally between packages, water-filling.

    A package with fewer passages than its share gives all it has; the rest is shared again among
    the others. Leftover units from integer division go to the packages first in ``available``'s order.

    Args:
        available: Package name -> number of passages it has (order matters for ties).
        total: Passages wanted overall.

    Returns:
        Package name -> passages to take; sums to ``min(total, sum(available))``.
    """
    quotas = dict.fromkeys(available, 0)
    open_names = [name for name, count in available.items() if count > 0]
    remaining = min(total, sum(available.values()))
    while remaining > 0 and open_names:
        share, extra = divmod(remaining, len(open_names))
        still_open = []
        for i, name in enumerate(open_names):
            want = share + (1 if i < extra else 0)
            take = min(want, available[name] - quotas[name])
            quotas[name] += take
            remaining -= take
            if quotas[name] < available[name]:
                still_open.append(name)
        open_names = still_open
    return quotas


def sample_balanced(by_package: dict[str, list[str]], total: int, seed: int) -> dict[str, list[str]]:
    """Deterministically sample an equal share of items per package (see :func:`balanced_quotas`).

    Args:
        by_package: Package name -> items (ids or passages) in reading order.
        total: Items wanted overall.
        seed: Random seed; each package draws from its own ``random.Random(f"{seed}:{name}")``
            so one package's size does not change another's sample.

    Returns:
        Package name -> the sampled items, in their original order.
    """
    quotas = balanced_quotas({name: len(items) for name, items in by_package.items()}, total)
    sampled = {}
    for name, items in by_package.items():
        rng = random.Random(f"{seed}:{name}")
        picked = sorted(rng.sample(range(len(items)), quotas[name]))
        sampled[name] = [items[i] for i in picked]
    return sampled


# ---------------------------------------------------------------------------------------------------
# HTML


_BLOCK_TAGS = frozenset(
    "p div li dd dt ul ol dl br blockquote section article tr td th h1 h2 h3 h4 h5 h6 caption figcaption".split()
)
_HEADING_TAGS = frozenset("h1 h2 h3 h4 h5 h6".split())
_VOID_TAGS = frozenset("area base br col embed hr img input link meta param source track wbr".split())
_SKIP_TAGS = frozenset("script style pre table nav head footer header form svg math noscript button".split())
# Navigation, tables of contents, code and API signatures in Sphinx, DocBook and Publican output.
_SKIP_CLASSES = frozenset(
    "sphinxsidebar sphinxsidebarwrapper related footer headerlink navheader navfooter toc docnav "
    "toctree-wrapper contents sig highlight screen programlisting synopsis literallayout "
    "mobile-nav breadcrumbs index-contents cmdsynopsis funcsynopsis header section-toc example index-cp "
    "summary-letter menu mini-toc nav-panel".split()
)
_SECTION_NUMBER = re.compile(r"^(?:(?:chapter|appendix|section)\s+)?(?:[0-9A-Z]{1,3}\.)*[0-9]{1,3}\.?\s+", re.I)


def clean_title(title: str) -> str:
    """Normalise a heading: drop pilcrows and leading section numbers like ``6.2.`` or ``Chapter 3.``."""
    title = normalize_ws(title.replace("¶", " ").replace("\u00a0", " "))
    return _SECTION_NUMBER.sub("", title).strip()


class _SectionParser(html.parser.HTMLParser):
    """Collect headed sections of paragraphs from an HTML page, skipping navigation and code."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = [Section("")]
        self.page_title = ""
        self._buffer: list[str] = []
        self._heading: list[str] | None = None
        self._in_title = False
        self._skip_tag: str | None = None
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
            return
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth += 1
            return
        classes = set((dict(attrs).get("class") or "").split())
        if tag not in _VOID_TAGS and (tag in _SKIP_TAGS or classes & _SKIP_CLASSES):
            self._skip_tag, self._skip_depth = tag, 1
            return
        if tag in _BLOCK_TAGS:
            self._flush()
        if tag in _HEADING_TAGS:
            self._heading = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
            return
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth -= 1
                if self._skip_depth == 0:
                    self._skip_tag = None
            return
        if tag in _HEADING_TAGS and self._heading is not None:
            title = clean_title("".join(self._heading))
            self._heading = None
            self.sections.append(Section(title or self.sections[-1].title))
            return
        if tag in _BLOCK_TAGS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.page_title += data
        elif self._skip_tag is not None:
            return
        elif self._heading is not None:
            self._heading.append(data)
        else:
            self._buffer.append(data)

    def _flush(self) -> None:
        text = normalize_ws("".join(self._buffer).replace("¶", " "))
        self._buffer = []
        if text:
            self.sections[-1].paragraphs.append(text)

    def close(self) -> None:
        super().close()
        self._flush()


def html_to_sections(markup: str) -> list[Section]:
    """Split an HTML page into headed sections of plain-text paragraphs.

    Scripts, styles, ``<pre>`` code, tables, navigation bars, tables of contents and API signature
    lines are dropped; block elements end paragraphs; ``h1``-``h6`` start sections.

    Args:
        markup: The page's HTML.

    Returns:
        Sections with at least one paragraph; text before the first heading is titled with the
        page's ``<title>``.
    """
    parser = _SectionParser()
    parser.feed(markup)
    parser.close()
    page_title = clean_title(parser.page_title)
    sections = parser.sections
    if not sections[0].title:
        sections[0].title = page_title
    return [s for s in sections if s.paragraphs]


# ---------------------------------------------------------------------------------------------------
# Man pages


_ROFF_BLOCKS = re.compile(r"^\.(TS|EX|nf|EQ|PS)\b.*?^\.(?:TE|EE|fi|EN|PE)\b[^\n]*\n?", re.M | re.S)
_ROFF_SPECIAL = {
    "em": "—",
    "en": "–",
    "aq": "'",
    "dq": '"',
    "lq": "“",
    "rq": "”",
    "oq": "‘",
    "cq": "’",
    "bu": "•",
    "co": "©",
    "hy": "-",
    "mi": "-",
    "ti": "~",
    "rs": "\\",
    "Lq": "“",
    "Rq": "”",
}
_ROFF_ESCAPE = re.compile(
    r"\\(?:f(?:\[[^\]]*\]|\(..|.)|s[+-]?\d|\*(?:\[[^\]]*\]|\(..|.)|\((..)|\[([^\]]*)\]|(.))", re.S
)
_ROFF_ARGS = re.compile(r'"([^"]*)"|(\S+)')
_MAN_SKIP_SECTIONS = frozenset(
    ("SYNOPSIS", "LIBRARY", "EXAMPLE", "EXAMPLES", "SEE ALSO", "COLOPHON", "AUTHOR", "AUTHORS", "COPYRIGHT")
)


def drop_roff_blocks(source: str) -> str:
    """Remove table (``.TS``/``.TE``), example (``.EX``/``.EE``), no-fill (``.nf``/``.fi``), equation
    and picture blocks from roff source: they hold code and tables, not prose."""
    return _ROFF_BLOCKS.sub("", source)


def unescape_roff(text: str) -> str:
    """Replace roff inline escapes: drop font and size changes, map special characters to Unicode."""

    def replace(match: re.Match[str]) -> str:
        two, bracket, single = match.group(1), match.group(2), match.group(3)
        name = two or bracket
        if name is not None:
            return _ROFF_SPECIAL.get(name, "")
        if single is not None:
            return {"-": "-", "e": "\\", " ": " ", "~": " ", "0": " ", "\\": "\\", "'": "'", "`": "`"}.get(single, "")
        return ""  # \f font, \s size, \* string

    return _ROFF_ESCAPE.sub(replace, text)


def roff_to_sections(source: str) -> list[Section]:
    """Strip a man page's roff source to sections without rendering it (used when groff is absent).

    Handles the common ``man`` macros: ``.TH`` names the page, ``.SH``/``.SS`` start sections,
    paragraph macros end paragraphs, font macros keep their text; other requests are dropped, as
    are the blocks removed by :func:`drop_roff_blocks` and the sections in ``_MAN_SKIP_SECTIONS``.

    Args:
        source: Roff source of one man page.

    Returns:
        Sections titled ``"<page>(<section>): <HEADING>"``.
    """
    page = ""
    sections: list[Section] = []
    heading = ""
    paragraph: list[str] = []

    def flush() -> None:
        text = normalize_ws(" ".join(paragraph))
        paragraph.clear()
        if text and sections and heading not in _MAN_SKIP_SECTIONS:
            sections[-1].paragraphs.append(text)

    pending_heading = False
    for line in drop_roff_blocks(source).splitlines():
        if line.startswith(('.\\"', "'\\\"")) or line.strip() == ".":
            continue
        if pending_heading and not line.startswith("."):
            heading, pending_heading = normalize_ws(unescape_roff(line)).strip('"'), False
            sections.append(Section(f"{page}: {heading}" if page else heading))
            continue
        if line.startswith((".", "'")):
            request, _, rest = line[1:].strip().partition(" ")
            args = [a or b for a, b in _ROFF_ARGS.findall(rest)]
            if request == "TH":
                page = f"{args[0]}({args[1]})" if len(args) >= 2 else (args[0] if args else "")
            elif request in ("SH", "SS"):
                flush()
                if args:
                    heading = normalize_ws(unescape_roff(" ".join(args)))
                    sections.append(Section(f"{page}: {heading}" if page else heading))
                else:
                    pending_heading = True
            elif request in ("PP", "LP", "P", "HP", "TP", "sp", "IP"):
                flush()
                if request == "IP" and args:
                    paragraph.append(unescape_roff(args[0]))
            elif request in ("B", "I", "SM", "SB"):
                paragraph.append(unescape_roff(" ".join(args)))
            elif request in ("BR", "RB", "IR", "RI", "BI", "IB"):
                paragraph.append(unescape_roff("".join(args)))
            continue
        paragraph.append(unescape_roff(line))
    flush()
    return [s for s in sections if s.paragraphs]


_MAN_HEADER = re.compile(r"^\S+\([^)]*\)\s{2,}.*\s{2,}\S+\([^)]*\)\s*$")


def man_text_to_sections(rendered: str) -> list[Section]:
    """Split a man page rendered to plain text (``groff -man -Tutf8 -P-cbou``) into sections.

    Lines starting in column 0 are section headings, lines indented by 1-4 spaces subsection
    headings; blank lines end paragraphs; the running header/footer and lines that are mostly
    symbols are dropped, as are the sections in ``_MAN_SKIP_SECTIONS``.

    Args:
        rendered: The rendered page (no overstrikes or escape sequences).

    Returns:
        Sections titled ``"<page>(<section>): <HEADING>"``.
    """
    lines = rendered.splitlines()
    nonblank = [i for i, line in enumerate(lines) if line.strip()]
    if not nonblank:
        return []
    page = ""
    first = lines[nonblank[0]]
    if _MAN_HEADER.match(first):
        page = first.split()[0]
        lines[nonblank[0]] = ""
    if len(nonblank) > 1 and not lines[nonblank[-1]].startswith(" "):
        lines[nonblank[-1]] = ""  # footer: "Linux man-pages 6.03  2023-02-05  open(2)"
    sections: list[Section] = []
    top = ""
    paragraph: list[str] = []

    def flush() -> None:
        text = normalize_ws(" ".join(paragraph))
        paragraph.clear()
        if text and sections and top not in _MAN_SKIP_SECTIONS:
            sections[-1].paragraphs.append(text)

    for line in lines:
        if not line.strip():
            flush()
            continue
        indent = len(line) - len(line.lstrip(" "))
        if indent < 5 and not is_symbol_line(line):
            flush()
            heading = normalize_ws(line)
            if indent == 0:
                top = heading
            sections.append(Section(f"{page}: {heading}" if page else heading))
            continue
        if not is_symbol_line(line):
            paragraph.append(line)
    flush()
    return [s for s in sections if s.paragraphs]


def render_man(source: str, groff: str | None) -> list[Section]:
    """Turn one man page's roff source into sections, with groff when available.

    Args:
        source: Roff source (already decompressed).
        groff: Path to the ``groff`` binary, or None to use :func:`roff_to_sections`.

    Returns:
        The page's prose sections; ``[]`` for ``.so`` redirect stubs.
    """
    if source.lstrip().startswith(".so "):
        return []
    if groff is None:
        return roff_to_sections(source)
    # -P-cbou: plain text without overstrikes/SGR; LL: wide lines; HY=0: no hyphenation.
    result = subprocess.run(
        [groff, "-man", "-Tutf8", "-P-cbou", "-rLL=150n", "-rHY=0"],
        input=drop_roff_blocks(source),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        return roff_to_sections(source)
    return man_text_to_sections(result.stdout)


# ---------------------------------------------------------------------------------------------------
# dictd dictionaries (GCIDE, WordNet)


_DICTD_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def decode_dictd_number(encoded: str) -> int:
    """Decode a dictd index offset/length (base-64 digits ``A-Za-z0-9+/``, most significant first)."""
    value = 0
    for char in encoded:
        value = value * 64 + _DICTD_DIGITS.index(char)
    return value


def parse_dictd_index(text: str) -> list[tuple[str, int, int]]:
    """Parse a dictd ``.index`` file into ``(headword, byte offset, byte length)`` rows.

    Rows naming an entry already listed (same offset), and the ``00-database-*`` metadata rows,
    are dropped.
    """
    rows = []
    seen: set[int] = set()
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or parts[0].startswith("00-"):
            continue
        offset, length = decode_dictd_number(parts[1]), decode_dictd_number(parts[2])
        if offset not in seen:
            seen.add(offset)
            rows.append((parts[0], offset, length))
    return rows


_GCIDE_ACCENT = re.compile(r"\[([^\[\]\s]{1,3})\]")
_GCIDE_PRONUNCIATION = re.compile(r"\\[^\\]{0,300}\\")
# Respelled pronunciation in parentheses, with stress marks: (h[a^]l"[-o]*j[e^]n)
_GCIDE_RESPELLING = re.compile(r"\([^()\s]*[\"*][^()\s]*\)")
_BRACKETED = re.compile(r"\[[^\[\]]*\]")


def gcide_headword(entry: str) -> str:
    """The headword of a GCIDE entry: its first line up to the pronunciation, without stress marks.

    The dictd index lists an entry under other words too (``certify`` finds the ``Notify`` entry),
    so the entry itself names it.
    """
    head = entry.lstrip().split("\n", 1)[0].split("\\", 1)[0]
    return normalize_ws(head.replace('"', "").replace("*", "").replace("`", ""))


def clean_gcide_entry(entry: str) -> list[str]:
    """Turn one GCIDE entry into paragraphs of plain text.

    Accent codes like ``[a^]`` or ``["o]`` become the bare letter; pronunciations (``\\cat\\`` and
    respellings with stress marks like ``(h[a^]l"o*jen)``),
    etymologies and source tags (``[1913 Webster]``) and other bracketed notes are removed, as are
    the ``{}`` cross-reference marks and ``Syn:`` word lists.

    Args:
        entry: The entry as stored in ``gcide.dict`` (headword line first).

    Returns:
        Whitespace-normalised paragraphs (blank-line separated blocks of the entry).
    """

    def accent(match: re.Match[str]) -> str:
        inner = match.group(1)
        letters = "".join(c for c in inner if c.isalpha())
        if letters and (len(letters) < len(inner) or inner.lower() in ("ae", "oe")):
            return letters
        return match.group(0)

    text = _GCIDE_PRONUNCIATION.sub(" ", entry)
    text = _GCIDE_RESPELLING.sub(" ", text)
    text = _GCIDE_ACCENT.sub(accent, text)
    text = re.sub(r"\s+([,;.])", r"\1", text)
    previous = None
    while previous != text:  # innermost first, for nested brackets
        previous, text = text, _BRACKETED.sub(" ", text)
    text = text.replace("{", "").replace("}", "")
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        paragraph = normalize_ws(block)
        if paragraph and not paragraph.startswith("Syn:"):
            paragraphs.append(paragraph)
    return paragraphs


_WORDNET_POS = {"n": "noun", "v": "verb", "adj": "adjective", "adv": "adverb"}
_WORDNET_SENSE = re.compile(r"^\s+(?:(n|v|adj|adv)\s+)?(\d+):\s", re.M)
_WORDNET_LIST = re.compile(r"\[(?:syn|ant|also|ptcp|pl|see):[^\]]*\]", re.S)


def clean_wordnet_entry(entry: str) -> list[str]:
    """Turn one WordNet (``wn.dict``) entry into one paragraph per sense.

    The first sense of each part of speech is prefixed with the headword and the part of speech
    (``"cat (noun) 1. feline mammal ..."``); ``[syn: ...]``-style word lists and ``{}`` marks are removed.

    Args:
        entry: The entry as stored in ``wn.dict`` (headword line first, senses indented).

    Returns:
        Whitespace-normalised paragraphs, one per sense.
    """
    headword, _, body = entry.partition("\n")
    body = _WORDNET_LIST.sub(" ", body).replace("{", "").replace("}", "")
    matches = list(_WORDNET_SENSE.finditer(body))
    paragraphs = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(body)
        definition = normalize_ws(body[match.end() : end])
        pos, number = match.group(1), match.group(2)
        prefix = f"{headword.strip()} ({_WORDNET_POS[pos]}) " if pos else ""
        paragraphs.append(f"{prefix}{number}. {definition}")
    return paragraphs


def dictd_sections(index_path: Path) -> Iterator[Section]:
    """Yield one section per dictionary entry (title = headword) of a dictd dictionary.

    Args:
        index_path: ``<name>.index``; the entries are read from ``<name>.dict.dz`` beside it
            (dictzip is gzip-compatible) or ``<name>.dict``.
    """
    dict_path = index_path.with_suffix(".dict.dz")
    if dict_path.exists():
        data = gzip.decompress(dict_path.read_bytes())
    else:
        data = index_path.with_suffix(".dict").read_bytes()
    wordnet = index_path.stem in ("wn", "wordnet")
    for headword, offset, length in parse_dictd_index(index_path.read_text(encoding="utf-8", errors="replace")):
        entry = data[offset : offset + length].decode("utf-8", errors="replace")
        if wordnet:
            yield Section(headword, clean_wordnet_entry(entry))
        else:
            yield Section(gcide_headword(entry) or headword, clean_gcide_entry(entry))


# ---------------------------------------------------------------------------------------------------
# Packages: download, extract, licence, read


def default_cache_dir() -> Path:
    """``$SPARSEARCH_CACHE/prose`` or ``~/.cache/sparsearch/prose``."""
    from sparsearch._cache import cache_root

    return cache_root() / "prose"


def download_deb(name: str, debs_dir: Path) -> Path:
    """Return the cached ``.deb`` of package ``name``, downloading it with ``apt-get download`` if needed.

    Args:
        name: Debian binary package name.
        debs_dir: Cache folder for ``.deb`` files.

    Returns:
        Path of the ``.deb`` file.

    Raises:
        ProseCorpusError: apt-get is missing or the download failed (one-line message).
    """
    cached = sorted(debs_dir.glob(f"{name}_*.deb"))
    if cached:
        return cached[-1]
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        raise ProseCorpusError(
            f"apt-get not found: cannot download {name}; run on Debian/Ubuntu or put {name}_*.deb in {debs_dir}"
        )
    debs_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([apt_get, "download", name], cwd=debs_dir, capture_output=True, text=True, check=False)
    cached = sorted(debs_dir.glob(f"{name}_*.deb"))
    if result.returncode != 0 or not cached:
        errors = [line for line in result.stderr.splitlines() if line.startswith("E:")] or result.stderr.splitlines()
        reason = errors[-1] if errors else f"exit status {result.returncode}"
        raise ProseCorpusError(f"apt-get download {name} failed: {reason} (try 'apt-get update' first)")
    return cached[-1]


def deb_version(deb: Path) -> str:
    """The ``Version`` field of a ``.deb`` (``dpkg-deb -f``)."""
    result = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def extract_deb(deb: Path, extracted_dir: Path) -> Path:
    """Extract a ``.deb`` with ``dpkg-deb -x`` (no install, no root needed) once, and return its root.

    Extracts into a temporary folder renamed into place, so an interrupted run never leaves a half
    extracted tree that later runs would trust.

    Raises:
        ProseCorpusError: dpkg-deb is missing or failed.
    """
    root = extracted_dir / deb.stem
    if root.is_dir():
        return root
    if shutil.which("dpkg-deb") is None:
        raise ProseCorpusError(f"dpkg-deb not found: cannot extract {deb.name}; install the dpkg package")
    extracted_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{deb.stem}.", dir=extracted_dir))
    result = subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ProseCorpusError(f"dpkg-deb -x {deb.name} failed: {normalize_ws(result.stderr)}")
    tmp.rename(root)
    return root


_LICENSE_FIELD = re.compile(r"^License:[ \t]*(\S[^\n]*)$", re.M)
# For copyright files that are not in the machine-readable (DEP-5) format.
_LICENSE_PHRASES = (
    ("GNU Free Documentation License", "GFDL"),
    ("GNU Lesser General Public License", "LGPL"),
    ("GNU Library General Public License", "LGPL"),
    ("GNU General Public License", "GPL"),
    ("PYTHON SOFTWARE FOUNDATION LICENSE", "PSF-2.0"),
    ("Creative Commons", "CC"),
)


def parse_licenses(copyright_text: str) -> tuple[list[str], str]:
    """Read the licence short names from a Debian ``copyright`` file.

    Args:
        copyright_text: Contents of ``usr/share/doc/<pkg>/copyright``.

    Returns:
        ``(names, source)``: for a machine-readable (DEP-5) file, the distinct ``License:`` short
        names in order of appearance and ``"dep5"``; otherwise the licences named in its prose
        (from a small phrase table: a hint, since such a text may name a licence only to compare
        with it) and ``"named-in-copyright-text"``.
    """
    if copyright_text.lstrip().startswith("Format:"):
        names: list[str] = []
        for value in _LICENSE_FIELD.findall(copyright_text):
            value = value.strip()
            if len(value.split()) <= 6 and value not in names:
                names.append(value)
        return names, "dep5"
    found = []
    lowered = copyright_text.lower()
    for phrase, name in _LICENSE_PHRASES:
        if phrase.lower() in lowered and name not in found:
            found.append(name)
    return found, "named-in-copyright-text"


def package_licenses(root: Path, name: str, roots: dict[str, Path]) -> tuple[list[str], str]:
    """Licences of an extracted package (see :func:`parse_licenses`).

    Args:
        root: The package's extracted root.
        name: The package name.
        roots: Package name -> extracted root of the packages read so far: a doc folder that is a
            symlink to another package's (``usr/share/doc/manpages-dev -> manpages``) is read there.

    Returns:
        ``(names, source)``; ``([], "missing")`` when no copyright file is found.
    """
    doc = root / "usr" / "share" / "doc" / name
    if doc.is_symlink():
        target = Path(os.readlink(doc)).name
        if target in roots:
            names, source = package_licenses(roots[target], target, roots)
            return names, f"{source} (from {target})"
    path = doc / "copyright"
    if not path.is_file():
        return [], "missing"
    return parse_licenses(path.read_text(encoding="utf-8", errors="replace"))


def package_files(root: Path, spec: PackageSpec) -> list[Path]:
    """The files of an extracted package that ``spec`` reads, sorted, duplicates and excludes removed."""
    files = {p for pattern in spec.globs for p in root.glob(pattern) if p.is_file() and not p.is_symlink()}
    excludes = [re.compile(e) for e in spec.exclude]
    kept = [p for p in files if not any(e.search(p.relative_to(root).as_posix()) for e in excludes)]
    return sorted(kept)


def read_sections(root: Path, spec: PackageSpec, groff: str | None) -> Iterator[Section]:
    """Yield the prose sections of an extracted package, file by file in sorted order."""
    for path in package_files(root, spec):
        if spec.kind == "dictd":
            yield from dictd_sections(path)
        elif spec.kind == "html":
            yield from html_to_sections(path.read_text(encoding="utf-8", errors="replace"))
        elif spec.kind == "man":
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            yield from render_man(raw.decode("utf-8", errors="replace"), groff)
        else:
            raise ProseCorpusError(f"unknown reader kind {spec.kind!r} for {spec.name}")


# ---------------------------------------------------------------------------------------------------
# Main


def write_corpus(output: Path, rows: Sequence[dict[str, str]], manifest: dict) -> None:
    """Write ``corpus.jsonl`` (one ``{"_id", "title", "text"}`` object a line) and ``manifest.json``.

    Each file is written beside its final name and renamed into place.
    """
    output.mkdir(parents=True, exist_ok=True)
    tmp = output / "corpus.jsonl.tmp"
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(output / "corpus.jsonl")
    tmp = output / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(output / "manifest.json")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True, help="folder for corpus.jsonl and manifest.json")
    parser.add_argument("--max-passages", type=int, default=DEFAULT_MAX_PASSAGES, help="passages to keep in all")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: $SPARSEARCH_CACHE/prose")
    args = parser.parse_args(argv)
    if args.max_passages < 1:
        parser.error("--max-passages must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Build the corpus; returns the process exit status (1 when no package could be read)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    cache = (args.cache_dir or default_cache_dir()).expanduser()
    groff = shutil.which("groff")
    if groff is None:
        logger.warning("groff not found: man pages are stripped of roff macros without rendering")

    # 1. download and extract each package; read, pack, filter its passages
    skipped: list[dict[str, str]] = []
    packages: list[dict] = []
    passages: list[Passage] = []
    roots: dict[str, Path] = {}
    for spec in PACKAGES:
        try:
            deb = download_deb(spec.name, cache / "debs")
            root = extract_deb(deb, cache / "extracted")
        except ProseCorpusError as error:
            print(f"skipping {spec.name}: {error}", file=sys.stderr)
            skipped.append({"package": spec.name, "reason": str(error)})
            continue
        roots[spec.name] = root
        licenses, license_source = package_licenses(root, spec.name, roots)
        found = sections_to_passages(spec.name, read_sections(root, spec, groff))
        logger.info("%s: %d prose passages from %s", spec.name, len(found), deb.name)
        passages.extend(found)
        packages.append(
            {
                "package": spec.name,
                "version": deb_version(deb),
                "id_prefix": spec.prefix,
                "licenses": licenses,
                "license_source": license_source,
                "deb": deb.name,
                "deb_bytes": deb.stat().st_size,
            }
        )
    if not packages:
        print("error: no package could be downloaded or read; see the messages above", file=sys.stderr)
        return 1

    # 2. drop duplicates across all packages, number per package, sample a balanced share
    by_package: dict[str, list[dict[str, str]]] = {p["package"]: [] for p in packages}
    prefixes = {spec.name: spec.prefix for spec in PACKAGES}
    for passage in dedup_passages(passages):
        rows = by_package[passage.package]
        doc_id = f"{prefixes[passage.package]}-{len(rows):06d}"
        rows.append({"_id": doc_id, "title": passage.title, "text": passage.text})
    sampled = sample_balanced(by_package, args.max_passages, args.seed)
    rows = [row for name in by_package for row in sampled[name]]

    # 3. write corpus.jsonl and manifest.json
    for entry in packages:
        entry["passages_available"] = len(by_package[entry["package"]])
        entry["passages"] = len(sampled[entry["package"]])
        entry["words"] = sum(word_count(row["text"]) for row in sampled[entry["package"]])
    manifest = {
        "format": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seed": args.seed,
        "max_passages": args.max_passages,
        "passages": len(rows),
        "words": sum(entry["words"] for entry in packages),
        "passage_words": {"min": MIN_WORDS, "max": MAX_WORDS},
        "man_renderer": "groff" if groff else "roff-strip",
        "packages": packages,
        "skipped": skipped,
    }
    write_corpus(args.output.expanduser(), rows, manifest)
    elapsed = time.perf_counter() - started
    print(f"wrote {len(rows)} passages ({manifest['words']} words) to {args.output} in {elapsed:.0f} s")
    for entry in packages:
        print(f"  {entry['package']} {entry['version']}: {entry['passages']}/{entry['passages_available']} passages")
    for entry in skipped:
        print(f"  skipped {entry['package']}: {entry['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
