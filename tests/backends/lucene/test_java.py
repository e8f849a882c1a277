"""Finding a Java 21+ JDK: JAVA_HOME first, then the install folders; a clear error when there is none."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sparsearch.backends.lucene.java import JavaNotFoundError, anserini_jar, find_java_home, java_version
from sparsearch.errors import MissingExtraError


def make_jdk(root: Path, name: str, version: str) -> Path:
    """A JDK folder as the finder reads it: bin/java and the release file every JDK ships."""
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("")
    (home / "release").write_text(f'IMPLEMENTOR="x"\nJAVA_VERSION="{version}"\n')
    return home


def test_java_version_reads_the_release_file(tmp_path: Path) -> None:
    assert java_version(make_jdk(tmp_path, "a", "25.0.3")) == 25
    assert java_version(make_jdk(tmp_path, "b", "1.8.0_402")) == 8
    assert java_version(make_jdk(tmp_path, "c", "21")) == 21
    assert java_version(tmp_path / "none") is None


def test_java_home_first_then_the_newest_usable(tmp_path: Path) -> None:
    old = make_jdk(tmp_path, "jdk-17", "17.0.15")
    new = make_jdk(tmp_path, "jdk-25", "25.0.3")
    mid = make_jdk(tmp_path, "jdk-21", "21.0.2")
    folders = (str(tmp_path / "*"),)
    assert find_java_home({"JAVA_HOME": str(mid)}, folders) == mid
    assert find_java_home({"JAVA_HOME": str(old)}, folders) == new  # too old: the newest 21+ instead
    assert find_java_home({}, folders) == new


def test_no_usable_jdk_says_what_was_found_and_how_to_fix(tmp_path: Path) -> None:
    old = make_jdk(tmp_path, "jdk-17", "17.0.15")
    with pytest.raises(
        JavaNotFoundError, match=r"needs a Java 21\+ JDK.*JAVA_HOME=.*jdk-17 \(Java 17\).*set JAVA_HOME"
    ):
        find_java_home({"JAVA_HOME": str(old)}, (str(tmp_path / "*"),))


def test_this_machine_has_a_usable_jdk_and_the_jar() -> None:
    """CI runs the Lucene tests for real: a JDK 21+ and pyserini's jar must be there (no skip)."""
    assert java_version(find_java_home()) >= 21
    assert anserini_jar().name.startswith("anserini-")


def test_missing_pyserini_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyserini", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'sparsearch\[lucene\]'"):
        anserini_jar()
