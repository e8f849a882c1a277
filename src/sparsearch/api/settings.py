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

    @field_validator("indexes", "api_keys", mode="before")
    @classmethod
    def _lists_from_environment(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("api_keys")
    @classmethod
    def _keys_not_blank(cls, keys: list[SecretStr]) -> list[SecretStr]:
        if any(len(key.get_secret_value().strip()) < 8 for key in keys):
            raise ValueError("every API key needs at least 8 non-space characters")
        return keys

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
