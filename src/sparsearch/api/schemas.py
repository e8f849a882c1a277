"""Request and response bodies of the HTTP API (pydantic models; bounds and examples show in /docs).

These are the wire format only; the engines' own types (:class:`~sparsearch.backends.base.Hit`,
:class:`~sparsearch.types.Document`) stay internal. Requests are strict: unknown
fields, wrong JSON types (``"10"`` for ``top_k``) and text that is not valid Unicode are refused
with 422 and the one error body.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from sparsearch.corpus import DOC_ID_PATTERN, MAX_DOC_ID_CHARS, doc_id_problem

MAX_TOP_K = 1000
MAX_QUERY_CHARS = 2048
MAX_BATCH_QUERIES = 100
MAX_DOCUMENTS_PER_REQUEST = 100
MAX_TITLE_CHARS = 2_000
MAX_TEXT_CHARS = 100_000
MAX_INDEX_NAME_CHARS = 64

EXAMPLE_QUERY = "hypersonic heat transfer"

# Patterns shown in the OpenAPI schema; the validators use the same rules, so the schema and the
# server agree on every string (schemathesis checks that schema-valid data is accepted). Whitespace is
# spelled out as ECMAScript's set (JSON Schema patterns are ECMAScript), because Python's \s differs
# (it also matches U+001C..U+001F and U+0085). Document ids follow the corpus reader's rule
# (sparsearch.corpus.doc_id_problem and its DOC_ID_PATTERN), so an id the API accepts can be indexed.
_SPACE = r"\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
NOT_BLANK_PATTERN = rf"[^{_SPACE}]"
_NON_SPACE = re.compile(NOT_BLANK_PATTERN)


def _valid_unicode(text: str) -> str:
    """Refuse lone surrogates (``"\\ud800"`` in JSON): they cannot be encoded, stored or tokenized."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"contains an unpaired UTF-16 surrogate at character {error.start}; send valid Unicode text"
        ) from None
    return text


def _not_blank(text: str) -> str:
    if not _NON_SPACE.search(text):
        raise ValueError("is empty or only whitespace: send some words to search for")
    return text


def _valid_doc_id(doc_id: str) -> str:
    """The corpus reader's id rule (:func:`sparsearch.corpus.doc_id_problem`)."""
    problem = doc_id_problem(doc_id)
    if problem:
        raise ValueError(problem)
    return doc_id


def _integer_not_text(value: object) -> object:
    """Accept JSON integers (``10`` or ``10.0``, as JSON Schema does), refuse ``"10"`` and booleans."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a JSON integer, e.g. 10")
    return value


UnicodeText = Annotated[str, AfterValidator(_valid_unicode)]
QueryText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_QUERY_CHARS),
    Field(json_schema_extra={"pattern": NOT_BLANK_PATTERN}),
    AfterValidator(_valid_unicode),
    AfterValidator(_not_blank),
]
DocId = Annotated[
    str,
    StringConstraints(max_length=MAX_DOC_ID_CHARS),
    Field(json_schema_extra={"pattern": DOC_ID_PATTERN}),
    AfterValidator(_valid_doc_id),
]
IndexName = Annotated[
    str,
    Field(
        max_length=MAX_INDEX_NAME_CHARS,
        description="Index to search (see GET /v1/indexes); omitted: the service's default index.",
        examples=["cranfield"],
    ),
]
TopK = Annotated[
    int,
    Field(ge=1, le=MAX_TOP_K, strict=False, description="Number of hits to return."),
    BeforeValidator(_integer_not_text),
]


SearchMode = Annotated[
    Literal["sparse", "hybrid"],
    Field(
        description="sparse: the inference-free dot product (default). hybrid: the top 100 sparse candidates "
        "re-ranked by fusing in the dense model's cosine (the index must be built with --dense and the server "
        "needs the neural extra, else 409); at most 100 hits, scored by the fusion; explain then explains the "
        "sparse stage (contributions add up to the sparse dot product, not to the fused score).",
    ),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# -- search ----------------------------------------------------------------------------------------------
class SearchRequest(_Request):
    """One text query."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"query": EXAMPLE_QUERY, "top_k": 5},
                {"query": "boundary layer transition", "top_k": 3, "index": "cranfield", "explain": True},
                {"query": "boundary layer transition", "top_k": 10, "mode": "hybrid"},
            ]
        }
    )

    query: QueryText = Field(description="The query text (not blank).", examples=[EXAMPLE_QUERY])
    top_k: TopK = 10
    index: IndexName | None = None
    explain: bool = Field(
        False,
        description="Add, per hit, the query tokens that matched and their contribution (query weight x "
        "document weight; the contributions sum to the score) and where they occur in title and snippet.",
    )
    mode: SearchMode = "sparse"


class BatchSearchRequest(_Request):
    """Several text queries answered in one request, against one index."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"queries": [EXAMPLE_QUERY, "boundary layer transition"], "top_k": 3}]}
    )

    queries: list[QueryText] = Field(
        min_length=1,
        max_length=MAX_BATCH_QUERIES,
        description=f"The query texts (1 to {MAX_BATCH_QUERIES}); results come back in the same order.",
    )
    top_k: TopK = 10
    index: IndexName | None = None
    explain: bool = False
    mode: SearchMode = "sparse"


class MatchedToken(BaseModel):
    """One query token found in the document, and what it adds to the score."""

    token: str = Field(description="Token of the encoder's vocabulary (a stem, a word or a WordPiece).")
    query_weight: float = Field(description="Weight of the token in the encoded query.")
    document_weight: float = Field(description="Weight of the token in the stored document vector.")
    contribution: float = Field(description="query_weight x document_weight.")


class Highlight(BaseModel):
    """A word of the title or snippet whose tokens matched the query (character offsets, end exclusive)."""

    field: Literal["title", "snippet"]
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    tokens: list[str] = Field(description="The matched tokens this word produces.")


class Explanation(BaseModel):
    """Why a document scored what it did: the matched tokens, largest contribution first."""

    matched: list[MatchedToken]
    highlights: list[Highlight]


class SearchHit(BaseModel):
    """One ranked document."""

    id: str = Field(description="The document's id.", examples=["184"])
    score: float = Field(
        description="Dot product of query and document weights (hybrid mode: the fused score).", examples=[21.73]
    )
    title: str | None = Field(None, description="Stored title (null when the backend stores none).")
    snippet: str | None = Field(
        None, description="The start of the stored text, or with explain, a passage around the first match."
    )
    explain: Explanation | None = Field(None, description="Present when the request asked for explain.")


class SearchResponse(BaseModel):
    """Hits in rank order: score descending, then id ascending."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "hits": [
                        {
                            "id": "184",
                            "score": 21.7,
                            "title": "heat transfer to bodies in hypersonic flow",
                            "snippet": "heat transfer to bodies in hypersonic flow ...",
                        }
                    ],
                    "took_ms": 2.1,
                    "model": "bm25",
                    "index": "cranfield",
                }
            ]
        }
    )

    hits: list[SearchHit]
    took_ms: float = Field(description="Time spent answering, in milliseconds (encoding, retrieval, documents).")
    model: str = Field(description="Name of the encoder that encoded the query.")
    index: str = Field(description="The index that answered.")


class QueryResult(BaseModel):
    query: str
    hits: list[SearchHit]


class BatchSearchResponse(BaseModel):
    results: list[QueryResult] = Field(description="One result per query, in request order.")
    took_ms: float
    model: str
    index: str


# -- documents -------------------------------------------------------------------------------------------
class DocumentIn(_Request):
    """A document to add, or to replace when its id exists."""

    id: DocId = Field(examples=["new-1"])
    title: Annotated[UnicodeText, StringConstraints(max_length=MAX_TITLE_CHARS)] = ""
    text: Annotated[UnicodeText, StringConstraints(max_length=MAX_TEXT_CHARS)] = Field(
        examples=["Heat transfer measurements on a blunt cone at Mach 10."]
    )


class UpsertRequest(_Request):
    """A small batch of documents, encoded by the index's encoder exactly as the indexing job does."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "documents": [
                        {"id": "new-1", "title": "Blunt cone", "text": "Heat transfer on a blunt cone at Mach 10."}
                    ]
                }
            ]
        }
    )

    documents: list[DocumentIn] = Field(
        min_length=1,
        max_length=MAX_DOCUMENTS_PER_REQUEST,
        description="Documents in order; when an id repeats, the last one wins (as if sent one after another).",
    )


class UpsertResponse(BaseModel):
    index: str
    upserted: int = Field(description="Documents added or replaced.")
    documents: int = Field(description="Documents in the index afterwards.")
    took_ms: float


class DeleteResponse(BaseModel):
    index: str
    id: str
    deleted: bool
    documents: int = Field(description="Documents in the index afterwards.")


# -- indexes ---------------------------------------------------------------------------------------------
class IndexSummary(BaseModel):
    name: str = Field(examples=["cranfield"])
    backend: str = Field(examples=["embedded"])
    model: str = Field(examples=["bm25"])
    documents: int = Field(examples=[1400])
    default: bool = Field(description="Whether requests that name no index use this one.")


class IndexList(BaseModel):
    indexes: list[IndexSummary]


class IndexDetail(IndexSummary):
    encoder: dict[str, str] = Field(description="Fingerprint of the encoder that built the index.")
    build: dict[str, Any] = Field(
        description="Build information (embedded: creation and update times, generation, postings, bytes on disk)."
    )


# -- operations ------------------------------------------------------------------------------------------
class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    status: Literal["ready"] = "ready"
    indexes: dict[str, dict[str, Any]] = Field(description="Per index: its model and the engine's health report.")


# -- errors ----------------------------------------------------------------------------------------------
class ErrorDetail(BaseModel):
    loc: list[str] = Field(description="Where the problem is, e.g. ['body', 'top_k'].")
    message: str
    type: str


class ErrorInfo(BaseModel):
    code: str = Field(
        description="Machine-readable reason, e.g. invalid_request, unknown_index.", examples=["invalid_request"]
    )
    message: str = Field(
        description="What went wrong and how to fix it.",
        examples=["body.top_k: Input should be less than or equal to 1000"],
    )
    request_id: str = Field(description="Also in the X-Request-ID response header; quote it when reporting a problem.")
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorInfo


class MergeResponse(BaseModel):
    """``POST /v1/indexes/{name}/merge``: what a force merge did."""

    index: str
    merged: bool = Field(description="False when the index was already one segment without deletions.")
    segments: int = Field(description="Segments after the merge (1 for a non-empty index).")
    documents: int
    terms: int = Field(description="Distinct tokens after the merge (those of deleted documents are gone).")
    bytes: int = Field(description="Bytes on disk after the merge.")
    took_ms: float
