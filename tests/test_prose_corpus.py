"""Unit tests of the pure text functions of scripts/prose_corpus.py (no download, no subprocess)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "prose_corpus.py"

PROSE = (
    "The open system call opens the file specified by pathname. If the specified file does not exist, "
    "it may optionally be created by open. The return value of open is a file descriptor, a small "
    "integer that is an index to an entry in the table of open file descriptors of the process."
)


@pytest.fixture(scope="module")
def pc():
    """The script loaded as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("prose_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["prose_corpus"] = module  # dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("prose_corpus", None)


# --- prose filter ------------------------------------------------------------------------------------


def test_prose_filter_keeps_english_prose(pc):
    assert pc.is_prose(PROSE)


def test_prose_filter_drops_short_passages(pc):
    assert not pc.is_prose("The file descriptor is used in subsequent system calls to refer to the open file.")


def test_prose_filter_drops_code_and_symbols(pc):
    code = " ".join(['int fd = open(path, O_RDONLY | O_CLOEXEC); if (fd == -1) { perror("open"); exit(1); }'] * 4)
    assert pc.word_count(code) >= 30
    assert not pc.is_prose(code)


def test_prose_filter_drops_word_lists_without_function_words(pc):
    word_list = "feline, cat, kitten, tomcat, tabby, mouser, moggy, puss, pussycat, grimalkin. " * 4
    assert pc.word_count(word_list) >= 30
    assert not pc.is_prose(word_list)
    assert pc.is_prose(word_list + "It is one of the words that are used for the animal and all of its kind " * 2)


def test_prose_filter_drops_other_languages(pc):
    german = (
        "Der Systemaufruf öffnet die Datei, die durch den Pfadnamen angegeben wird. Falls die angegebene "
        "Datei nicht existiert, kann sie optional erstellt werden. Der Rückgabewert ist ein Dateideskriptor, "
        "eine kleine ganze Zahl, die ein Index in die Tabelle der offenen Dateideskriptoren des Prozesses ist."
    )
    assert not pc.is_prose(german)


def test_symbol_lines(pc):
    assert pc.is_symbol_line("+------+-------+------+")
    assert pc.is_symbol_line("0x00 0x01 0x02 0x03 0x04")
    assert not pc.is_symbol_line("       The file is opened in append mode.")
    assert not pc.is_symbol_line("   ")


# --- passage splitting -----------------------------------------------------------------------------


def test_pack_keeps_small_paragraphs_together_up_to_the_limit(pc):
    paragraphs = [" ".join(["word"] * 40), " ".join(["text"] * 40), " ".join(["more"] * 40)]
    passages = pc.pack_passages(paragraphs, max_words=100)
    assert [pc.word_count(p) for p in passages] == [80, 40]
    assert passages[1] == " ".join(["more"] * 40)


def test_pack_splits_long_paragraph_at_sentence_ends(pc):
    sentence = " ".join(["lorem"] * 29) + " end."
    paragraph = "  ".join([sentence.capitalize()] * 5)  # 150 words, five sentences
    passages = pc.pack_passages([paragraph], max_words=70)
    assert [pc.word_count(p) for p in passages] == [60, 60, 30]
    assert all(p.endswith("end.") for p in passages)


def test_pack_cuts_overlong_sentences(pc):
    passages = pc.pack_passages([" ".join(["x"] * 250)], max_words=100)
    assert [pc.word_count(p) for p in passages] == [100, 100, 50]


def test_pack_normalises_whitespace(pc):
    assert pc.pack_passages(["  one\n two\tthree  ", "", "four"]) == ["one two three four"]


def test_split_sentences(pc):
    assert pc.split_sentences("It works. See open(2) e.g. here. Done!") == [
        "It works.",
        "See open(2) e.g. here.",
        "Done!",
    ]


def test_sections_to_passages_keeps_titles_and_filters(pc):
    sections = [pc.Section("open(2): DESCRIPTION", [PROSE, "int x;"]), pc.Section("Short", ["Too short."])]
    passages = pc.sections_to_passages("manpages", sections, max_words=55)
    assert [p.title for p in passages] == ["open(2): DESCRIPTION"]
    assert passages[0].package == "manpages"
    assert passages[0].text.startswith("The open system call")


# --- dedup and sampling ------------------------------------------------------------------------------


def test_dedup_keeps_first_exact_copy(pc):
    a, b, c = pc.Passage("p1", "A", "same text"), pc.Passage("p2", "B", "same text"), pc.Passage("p2", "C", "Same text")
    assert pc.dedup_passages([a, b, c]) == [a, c]


def test_balanced_quotas_water_fill(pc):
    assert pc.balanced_quotas({"a": 100, "b": 5, "c": 100}, 60) == {"a": 28, "b": 5, "c": 27}
    assert pc.balanced_quotas({"a": 3, "b": 0, "c": 4}, 60) == {"a": 3, "b": 0, "c": 4}
    assert pc.balanced_quotas({"a": 10, "b": 10}, 7) == {"a": 4, "b": 3}


def test_sample_balanced_is_seeded_and_order_preserving(pc):
    by_package = {"a": [f"a{i}" for i in range(50)], "b": [f"b{i}" for i in range(3)]}
    first = pc.sample_balanced(by_package, 10, seed=1)
    assert first == pc.sample_balanced(by_package, 10, seed=1)
    assert len(first["a"]) == 7 and first["b"] == ["b0", "b1", "b2"]
    assert first["a"] == sorted(first["a"], key=lambda s: int(s[1:]))
    others = [pc.sample_balanced(by_package, 10, seed=s)["a"] for s in range(2, 6)]
    assert any(sample != first["a"] for sample in others)


def test_sample_balanced_one_package_does_not_change_anothers_sample(pc):
    small = pc.sample_balanced({"a": list(range(100)), "b": list(range(100))}, 20, seed=3)
    big = pc.sample_balanced({"a": list(range(100)), "b": list(range(5000))}, 20, seed=3)
    assert small["a"] == big["a"]


# --- HTML ---------------------------------------------------------------------------------------------


HTML_PAGE = """<html><head><title>4. Tutorial &mdash; Docs</title><style>p {color: red}</style></head>
<body><div class="related"><a href="x">previous</a> | <a href="y">next</a></div>
<p>Intro text before any heading.</p>
<h1>4.2. Control Flow<a class="headerlink" href="#cf">¶</a></h1>
<p>The <code>if</code> statement is the best&nbsp;known
   statement type.</p>
<div class="highlight"><pre>if x &lt; 0:
    print("negative")</pre></div>
<table><tr><td>cell one</td><td>cell two</td></tr></table>
<dl><dt class="sig sig-object py">os.open(path, flags)</dt><dd><p>Open the file.</p></dd></dl>
<ul><li>First item<li>Second item</ul>
<script>var x = "<p>not text</p>";</script>
<h2>Loops</h2><p>A <em>for</em> loop iterates.</p><br><p>Second paragraph.</p>
</body></html>"""


def test_html_to_sections(pc):
    sections = pc.html_to_sections(HTML_PAGE)
    assert [s.title for s in sections] == ["Tutorial — Docs", "Control Flow", "Loops"]
    assert sections[0].paragraphs == ["Intro text before any heading."]
    assert sections[1].paragraphs == [
        "The if statement is the best known statement type.",
        "Open the file.",
        "First item",
        "Second item",
    ]
    assert sections[2].paragraphs == ["A for loop iterates.", "Second paragraph."]


def test_html_skips_nested_navigation_divs(pc):
    page = '<div class="toc"><div><p>Contents entry</p></div><p>More toc</p></div><p>Body text.</p>'
    assert pc.html_to_sections(page) == [pc.Section("", ["Body text."])]


def test_clean_title(pc):
    assert pc.clean_title(" 6.2.3. The  apt  Commands¶") == "The apt Commands"
    assert pc.clean_title("Chapter 3. Basics") == "Basics"
    assert pc.clean_title("open(2)") == "open(2)"


# --- roff / man pages ------------------------------------------------------------------------------


ROFF_PAGE = r""".\" Copyright comment
.TH OPEN 2 2023-02-05 "Linux man-pages 6.03"
.SH NAME
open \- open a file
.SH SYNOPSIS
.nf
.B #include <fcntl.h>
.fi
.SH DESCRIPTION
The
.BR open ()
system call opens the file specified by \fIpathname\fP.
If it does not exist, it \(em may be created.
.PP
Use \*(lqO_CREAT\*(rq to create it.
.TS
l l.
O_RDONLY	read only
.TE
.TP
.B O_APPEND
The file is opened in append mode.
.SH "SEE ALSO"
.BR close (2)
"""


def test_drop_roff_blocks(pc):
    dropped = pc.drop_roff_blocks(ROFF_PAGE)
    assert "#include" not in dropped and "O_RDONLY" not in dropped
    assert "O_APPEND" in dropped


def test_unescape_roff(pc):
    assert pc.unescape_roff(r"\fBbold\fR and \fIit\fP \- \(em \*(lqq\*(rq \e \&.") == "bold and it - — q \\ ."
    assert pc.unescape_roff(r"\f[CW]code\f[] \[aq]x\[aq] \s-1SMALL\s0") == "code 'x' SMALL"


def test_roff_to_sections(pc):
    sections = pc.roff_to_sections(ROFF_PAGE)
    assert [s.title for s in sections] == ["OPEN(2): NAME", "OPEN(2): DESCRIPTION"]
    assert sections[0].paragraphs == ["open - open a file"]
    assert sections[1].paragraphs == [
        "The open() system call opens the file specified by pathname. If it does not exist, it — may be created.",
        "Use O_CREAT to create it.",
        "O_APPEND The file is opened in append mode.",
    ]


RENDERED_MAN = """open(2)                     System Calls Manual                     open(2)

NAME
       open, openat - open and possibly create a file

SYNOPSIS
       #include <fcntl.h>

DESCRIPTION
       The open() system call opens the file specified by pathname.  If
       the file does not exist, it may be created.

       +---------+---------+
       | O_RDONLY  read    |
       +---------+---------+
   Subsection title
       Text of the subsection.

Linux man-pages 6.03              2023-02-05                         open(2)
"""


def test_man_text_to_sections(pc):
    sections = pc.man_text_to_sections(RENDERED_MAN)
    assert [s.title for s in sections] == ["open(2): NAME", "open(2): DESCRIPTION", "open(2): Subsection title"]
    assert sections[1].paragraphs == [
        "The open() system call opens the file specified by pathname. If the file does not exist, it may be created.",
        "| O_RDONLY read |",
    ]
    assert sections[2].paragraphs == ["Text of the subsection."]


def test_render_man_skips_so_stubs(pc):
    assert pc.render_man(".so man2/open.2\n", groff=None) == []


# --- dictionaries -------------------------------------------------------------------------------------


def test_dictd_numbers_and_index(pc):
    assert pc.decode_dictd_number("A") == 0
    assert pc.decode_dictd_number("BA") == 64
    assert pc.decode_dictd_number("U014") == ((20 * 64 + 52) * 64 + 53) * 64 + 56
    index = "00-database-url\tC\tv\ncat\tBA\tk\ncat\tBA\tk\ndog\tBk\tc\n"
    assert pc.parse_dictd_index(index) == [("cat", 64, 36), ("dog", 100, 28)]


GCIDE_ENTRY = """Cat \\Cat\\ (k[a^]t), n. [AS. cat; akin to Icel. k["o]ttr.
   Cf. {Kitten}.]
   1. (Zool.) Any animal of the family {Felidae}.
      [1913 Webster +PJC]

   Syn: feline.
"""


def test_clean_gcide_entry(pc):
    assert pc.gcide_headword(GCIDE_ENTRY) == "Cat"
    assert pc.gcide_headword("Cat o' nine tails \\Cat\" o' nine\" tails`\\, n.") == "Cat o' nine tails"
    assert pc.clean_gcide_entry(GCIDE_ENTRY) == ["Cat (kat), n. 1. (Zool.) Any animal of the family Felidae."]
    halogen = 'Halogen \\Hal"o*gen\\ (h[a^]l"[-o]*j[e^]n), n. (Chem.) An element.'
    assert pc.clean_gcide_entry(halogen) == ["Halogen, n. (Chem.) An element."]


WORDNET_ENTRY = """cat
    n 1: feline mammal usually having thick soft fur [syn: {cat},
         {true cat}]
    2: an informal term for a youth or man; "a nice guy"
    v 1: beat with a cat-o'-nine-tails
"""


def test_clean_wordnet_entry(pc):
    assert pc.clean_wordnet_entry(WORDNET_ENTRY) == [
        "cat (noun) 1. feline mammal usually having thick soft fur",
        '2. an informal term for a youth or man; "a nice guy"',
        "cat (verb) 1. beat with a cat-o'-nine-tails",
    ]


# --- licences ---------------------------------------------------------------------------------------


def test_parse_licenses_dep5(pc):
    text = (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nLicense: GPL-2+ or CC-BY-SA-3.0\n\nFiles: a\nLicense: GPL-2+\n\n"
        "License: GPL-2+\n This program is free software; you can redistribute it\n"
        "License: Permission is hereby granted, free of charge, to any person obtaining a copy\n"
    )
    assert pc.parse_licenses(text) == (["GPL-2+ or CC-BY-SA-3.0", "GPL-2+"], "dep5")


def test_parse_licenses_free_text(pc):
    text = "Permission is granted ... under the terms of the GNU Free Documentation License, Version 1.3"
    assert pc.parse_licenses(text) == (["GFDL"], "named-in-copyright-text")
