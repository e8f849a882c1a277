"""Finding a Java 21+ JDK and Anserini's jar, and starting the JVM (through pyjnius) that searches Lucene.

pyserini 1.6 ships Anserini 1.7.1, compiled for Java 21: an older JVM cannot load its classes (pyjnius
would fail inside the JVM, or crash it), so the version is read from the JDK's ``release`` file before
anything starts. Where Java lives: ``JAVA_HOME`` when it is 21+, else the newest 21+ JDK under the usual
install folders (Debian/Ubuntu's ``/usr/lib/jvm``, ``/opt/java``, macOS's ``/Library/Java``).

One JVM per process (pyjnius cannot restart it): its settings (``JAVA_HOME``, the class path) are made
once, on the first call of :func:`anserini_class`.
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path

from sparsearch.errors import MissingExtraError, SparsearchError

log = logging.getLogger(__name__)

MIN_JAVA = 21
JDK_FOLDERS = ("/usr/lib/jvm/*", "/opt/java/*", "/Library/Java/JavaVirtualMachines/*/Contents/Home")
_start_lock = threading.Lock()


class JavaNotFoundError(SparsearchError):
    """No Java 21+ JDK was found (the Lucene backend runs Anserini, which needs one)."""


def java_version(home: Path) -> int | None:
    """The major version of the JDK at ``home`` from its ``release`` file (``JAVA_VERSION="25.0.3"`` -> 25,
    ``"1.8.0_402"`` -> 8); ``None`` when ``home`` holds no ``bin/java`` or no readable version."""
    try:
        if not (home / "bin" / "java").is_file():
            return None
        text = (home / "release").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = re.search(r'^JAVA_VERSION="(\d+)(?:\.(\d+))?', text, flags=re.MULTILINE)
    if found is None:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def find_java_home(environ: Mapping[str, str] = os.environ, folders: tuple[str, ...] = JDK_FOLDERS) -> Path:
    """A JDK of version :data:`MIN_JAVA` or later: ``JAVA_HOME`` if it is one, else the newest in ``folders``.

    Raises:
        JavaNotFoundError: none found; the message lists what was seen and how to install one.
    """
    seen: list[str] = []
    if environ.get("JAVA_HOME"):
        home = Path(environ["JAVA_HOME"])
        version = java_version(home)
        if version is not None and version >= MIN_JAVA:
            return home
        seen.append(f"JAVA_HOME={home} (" + (f"Java {version}" if version else "no JDK there") + ")")
    found = [(java_version(Path(p)), Path(p)) for pattern in folders for p in glob.glob(pattern)]
    usable = sorted(((v, p) for v, p in found if v is not None and v >= MIN_JAVA), reverse=True)
    if usable:
        if seen:
            log.warning("%s is older than Java %d: using %s (Java %d)", seen[0], MIN_JAVA, usable[0][1], usable[0][0])
        return usable[0][1]
    seen += [f"{p} (Java {v})" for v, p in found if v is not None]
    raise JavaNotFoundError(
        f"the Lucene backend needs a Java {MIN_JAVA}+ JDK (pyserini 1.6 runs Anserini 1.7, built for Java 21); "
        f"found {', '.join(seen) or 'none'}. Install one (e.g. sudo apt-get install openjdk-21-jdk, or Temurin 21+ "
        "from adoptium.net) and set JAVA_HOME to it"
    )


def anserini_jar() -> Path:
    """The Anserini fat jar inside the installed pyserini package (found without importing pyserini).

    Raises:
        MissingExtraError: pyserini is not installed.
        JavaNotFoundError: the package holds no jar (a damaged install).
    """
    try:
        spec = importlib.util.find_spec("pyserini")
    except ValueError:  # a module entry without a spec (sys.modules["pyserini"] = None): not importable
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("pyserini", "lucene")
    jars = sorted(Path(spec.submodule_search_locations[0], "resources", "jars").glob("anserini-*-fatjar.jar"))
    if not jars:
        raise JavaNotFoundError(
            f"pyserini at {spec.submodule_search_locations[0]} has no Anserini jar under resources/jars; reinstall it: "
            "pip install --force-reinstall 'sparsearch[lucene]'"
        )
    return jars[-1]


def java_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """``environ`` with ``JAVA_HOME`` at a Java 21+ JDK, for the pyserini subprocesses (the indexer).

    pyserini builds an OpenAI client when some of its modules are imported, which fails without a key: a
    placeholder is set when none is (never used: nothing here calls OpenAI).
    """
    env = dict(environ)
    env["JAVA_HOME"] = str(find_java_home(environ))
    env.setdefault("OPENAI_API_KEY", "placeholder-not-used")
    return env


def anserini_class(name: str):  # noqa: ANN201 - a pyjnius class proxy
    """The Java class ``name`` (e.g. ``io.anserini.search.SimpleImpactSearcher``), starting the JVM on
    first use with a Java 21+ JDK and Anserini's jar on the class path.

    Raises:
        MissingExtraError: pyserini / pyjnius are not installed.
        JavaNotFoundError: no Java 21+ JDK.
    """
    jar = anserini_jar()
    try:
        import jnius_config
    except ImportError as error:
        raise MissingExtraError("jnius", "lucene") from error
    with _start_lock:
        if not jnius_config.vm_running:
            # pyjnius finds libjvm through JAVA_HOME when jnius is first imported
            os.environ["JAVA_HOME"] = str(find_java_home())
            jnius_config.add_classpath(str(jar))  # (get_classpath would import jnius: that starts the JVM)
            jnius_config.add_options("--add-modules=jdk.incubator.vector")  # as pyserini does (Lucene's SIMD)
        from jnius import autoclass

        return autoclass(name)
