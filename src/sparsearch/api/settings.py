"""Service settings: one pydantic-settings class read from ``SPARSEARCH_*`` environment variables.

Build it once at start (``Settings()`` reads the environment, keyword arguments override it) and pass
it to :func:`sparsearch.api.create_app`; nothing reads the environment after that. Tests build their
own ``Settings(...)`` instead of patching environment variables.

Which indexes are served
------------------------
``indexes`` lists the indexes the service answers for; the first one is the default of requests that
name no index. Each entry is ``LOCATION`` or ``NAME=LOCATION``:

* ``backend="embedded"``: ``LOCATION`` is an index directory built by ``sparsearch index``; its name
  defaults to the directory's name (``indexes/cranfield`` -> ``cranfield``).
* ``backend="opensearch"`` / ``"elasticsearch"``: ``LOCATION`` is the index name on the engine at
  ``engine_url``; the name the API uses defaults to it.

In the environment, lists are comma-separated or a JSON array::

    SPARSEARCH_INDEXES=indexes/cranfield,wp=indexes/cranfield-wordpiece
    SPARSEARCH_API_KEYS='["key-one", "key-two"]'

What one request may cost
-------------------------
A search request's cost is the number of hits it asks for: ``queries x top_k`` (a single search has
one query). A request costing more than ``max_hits_per_request`` (20,000: 100 queries x top_k 200),
or more than ``max_explained_hits_per_request`` (2,000: 20 queries x top_k 100) when it asks for
``explain`` (matched tokens and highlights, about ten times the work per hit), is refused with 422
``too_many_hits`` before any work. Measured on cranfield (2 cores): 100 x 100 plain hits take 0.4 s,
10 x 100 explained hits 0.6 s; before these limits, 100 x 1000 explained hits took 34-53 s and 1 GB.

A search still running after ``search_timeout_seconds`` stops at its next check (between queries,
and between hits when explaining) and answers 504 ``search_timeout``; one whose client hung up stops
the same way, so no worker thread keeps computing an answer nobody will read.

Connections (``sparsearch serve`` only; another ASGI server has its own settings): a request head
(request line and headers) must arrive within ``request_head_timeout_seconds`` of the connection
opening or of the previous response, and fit in ``max_request_head_bytes``; an idle keep-alive
connection closes after ``keep_alive_timeout_seconds``; past ``max_concurrency`` open connections or
requests in progress, new requests get 503 at once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

INDEX_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""Index names are safe in URL paths: letters, digits, ``.``, ``_``, ``-``; at most 64 characters."""

_INDEX_NAME = re.compile(INDEX_NAME_PATTERN)
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
# "*", a host name or address (letters, digits, ".", "-", ":" for IPv6), or "*." and a domain
_HOST_PATTERN = re.compile(r"^(\*|(\*\.)?[A-Za-z0-9.:\[\]-]{1,253})$")

Backend = Literal["embedded", "opensearch", "elasticsearch"]


@dataclass(frozen=True)
class IndexSpec:
    """One served index: the ``name`` used in URLs and request bodies, and where it lives."""

    name: str
    location: str


def _split_list(value: object) -> object:
    """Accept a JSON array or a comma-separated string for list settings coming from the environment."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def parse_index_spec(entry: str, backend: Backend) -> IndexSpec:
    """Split ``NAME=LOCATION`` (or a bare ``LOCATION``) into an :class:`IndexSpec`.

    Raises:
        ValueError: the name is not a valid index name (see :data:`INDEX_NAME_PATTERN`).
    """
    name, sep, location = entry.partition("=")
    if not sep:
        location = entry
        name = Path(entry.rstrip("/")).name if backend == "embedded" else entry
    location = location.strip()
    if not location:
        raise ValueError(f"index entry {entry!r} has no location: use DIR or NAME=DIR")
    if not _INDEX_NAME.match(name):
        raise ValueError(
            f"index name {name!r} is not allowed: use letters, digits, '.', '_' or '-' (at most 64 characters), "
            "e.g. --index cranfield=PATH"
        )
    return IndexSpec(name=name, location=location)


class Settings(BaseSettings):
    """Everything the service needs to start, validated once (environment prefix ``SPARSEARCH_``).

    Attributes:
        backend: the engine behind every served index.
        indexes: ``LOCATION`` or ``NAME=LOCATION`` entries (see the module docstring); the first is
            the default index.
        engine_url: OpenSearch/Elasticsearch URL (remote backends only), e.g. ``http://localhost:9200``.
        model: encoder for remote backends (a built-in name or a model directory); embedded indexes
            always use the encoder saved inside them.
        host: interface ``sparsearch serve`` binds to.
        port: TCP port ``sparsearch serve`` listens on.
        workers: uvicorn worker processes (each loads the model and opens the indexes).
        api_keys: accepted API keys; empty disables authentication. When set, every route but
            ``/health`` and the search page's static files needs the key in ``api_key_header``.
        api_key_header: the HTTP header carrying the API key.
        max_body_bytes: larger request bodies get 413 before they are read (default 4 MiB).
        snippet_chars: length of the text snippet returned with each hit, in characters.
        max_hits_per_request: most hits (``queries x top_k``) one search request may ask for
            (default 20,000); see "What one request may cost" above.
        max_explained_hits_per_request: the same limit for requests with ``explain`` (default 2,000).
        search_timeout_seconds: a search still running after this many seconds answers 504 (default 10).
        trim_memory_after_hits: after a request of at least this many hits, free memory is handed back
            to the operating system (glibc ``malloc_trim``; default 5,000; 0 never does).
        trusted_hosts: ``Host`` header values served (``api.example.com``, ``*.example.com``);
            others get 400. Default ``["*"]``: any host.
        request_head_timeout_seconds: seconds a connection has to send a complete request head
            (default 10); slower ones are closed (``sparsearch serve``).
        keep_alive_timeout_seconds: an idle keep-alive connection is closed after this many seconds
            (default 5; ``sparsearch serve``).
        max_concurrency: open connections or requests in progress (per worker) before new requests
            get 503 (default 1,000; ``sparsearch serve``).
        max_request_head_bytes: largest request line plus headers, in bytes (default 16 KiB;
            ``sparsearch serve``); larger ones get 400 and are closed.
    """

    model_config = SettingsConfigDict(env_prefix="SPARSEARCH_", extra="ignore", validate_default=True)

    backend: Backend = "embedded"
    indexes: Annotated[list[str], NoDecode] = Field(default_factory=list)
    engine_url: str | None = None
    model: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    api_key_header: str = "X-API-Key"
    max_body_bytes: int = Field(4_194_304, ge=1_024, le=1_073_741_824)
    snippet_chars: int = Field(240, ge=20, le=10_000)
    max_hits_per_request: int = Field(20_000, ge=1, le=10_000_000)
    max_explained_hits_per_request: int = Field(2_000, ge=1, le=10_000_000)
    search_timeout_seconds: float = Field(10.0, gt=0, le=86_400)
    trim_memory_after_hits: int = Field(5_000, ge=0)
    trusted_hosts: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])
    request_head_timeout_seconds: float = Field(10.0, gt=0, le=3_600)
    keep_alive_timeout_seconds: int = Field(5, ge=1, le=3_600)
    max_concurrency: int = Field(1_000, ge=1, le=1_000_000)
    max_request_head_bytes: int = Field(16_384, ge=1_024, le=1_048_576)

    @field_validator("indexes", "api_keys", "trusted_hosts", mode="before")
    @classmethod
    def _lists_from_environment(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("api_keys")
    @classmethod
    def _keys_not_blank(cls, keys: list[SecretStr]) -> list[SecretStr]:
        if any(len(key.get_secret_value().strip()) < 8 for key in keys):
            raise ValueError("every API key needs at least 8 non-space characters")
        return keys

    @field_validator("trusted_hosts")
    @classmethod
    def _valid_hosts(cls, hosts: list[str]) -> list[str]:
        if not hosts:
            raise ValueError('no trusted host: list the served host names, or "*" for any')
        for host in hosts:
            if not _HOST_PATTERN.match(host):
                raise ValueError(
                    f"{host!r} is not a host pattern: use a host name (api.example.com), *.example.com or *"
                )
        return [host.lower() for host in hosts]

    @field_validator("api_key_header")
    @classmethod
    def _valid_header(cls, header: str) -> str:
        if not _HEADER_NAME.match(header):
            raise ValueError(f"{header!r} is not a valid HTTP header name (letters, digits and '-')")
        return header

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if not self.indexes:
            raise ValueError("no index to serve: pass --index DIR (or set SPARSEARCH_INDEXES)")
        names = [spec.name for spec in self.index_specs()]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"index name(s) {', '.join(duplicates)} given twice: name them with --index NAME=LOCATION")
        if self.backend != "embedded" and not self.engine_url:
            raise ValueError(
                f"backend {self.backend!r} needs --url (SPARSEARCH_ENGINE_URL), e.g. http://localhost:9200"
            )
        if self.backend == "embedded" and self.engine_url:
            raise ValueError(
                "--url is only for --backend opensearch|elasticsearch; the embedded engine reads --index DIR"
            )
        return self

    def index_specs(self) -> list[IndexSpec]:
        """The served indexes, default first."""
        return [parse_index_spec(entry, self.backend) for entry in self.indexes]

    @property
    def default_index(self) -> str:
        return self.index_specs()[0].name

    def to_environment(self) -> dict[str, str]:
        """These settings as ``SPARSEARCH_*`` variables (secrets included), for worker processes."""
        environment = {}
        for field_name in type(self).model_fields:
            value = getattr(self, field_name)
            if value is None:
                continue
            if field_name == "api_keys":
                value = json.dumps([key.get_secret_value() for key in value])
            elif isinstance(value, list):
                value = json.dumps(value)
            environment[f"SPARSEARCH_{field_name.upper()}"] = str(value)
        return environment
