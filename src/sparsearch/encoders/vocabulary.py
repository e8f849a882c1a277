"""The token vocabulary of a neural sparse encoder, read from its ``tokenizer.json`` alone.

The query side of the inference-free models (and IDF fitting) must tokenize exactly like the
document encoder, but must not load torch or transformers: a query costs microseconds. This module
wraps the Rust ``tokenizers`` library directly. It works for every Hugging Face fast tokenizer
(BERT WordPiece, Llama/Mistral SentencePiece-BPE, Qwen byte-level BPE): tokens are the
vocabulary strings (``"aero"``, ``"##dynamic"``, ``"▁wing"``), so a document's term ids and a
query's tokens meet in one string space.

Special tokens are the ``added_tokens`` the file marks ``"special": true`` (``[CLS]``, ``[SEP]``,
``[PAD]``, ``[UNK]``, ``[MASK]`` for BERT; ``<s>``, ``</s>``, ``<unk>`` for Llama); they are removed
from queries and forced to weight 0 in documents (docs/method.md#special-and-unknown-tokens).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from sparsearch.errors import ModelNotFoundError

TOKENIZER_FILE = "tokenizer.json"
_SURROGATES = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` with lone surrogates (undecodable bytes read with ``surrogateescape``) replaced by U+FFFD.

    The Rust tokenizer rejects strings that are not valid Unicode scalar values; replacing them keeps
    the rest of the document encodable. Valid text is returned unchanged (and uncopied).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", text)
    return text


class TokenizerVocabulary:
    """Tokenizes like a Hugging Face fast tokenizer, without transformers; implements ``Analyzer``.

    Args:
        tokenizer_json: the content of a ``tokenizer.json``.
        source: where it came from (for messages).

    Attributes:
        vocabulary: ``term_id -> token`` for every id of the tokenizer (added tokens included).
        special_ids: term ids of the special tokens.
        special_tokens: their strings.

    Raises:
        ModelNotFoundError: the file is missing or is not a tokenizer.json.

    Example:
        >>> from sparsearch.encoders.analyzers import bundled_tokenizer_dir
        >>> vocab = TokenizerVocabulary.from_file(bundled_tokenizer_dir())
        >>> vocab.tokenize("Aerodynamics of a WING [SEP]")
        ['aerodynamic', '##s', 'of', 'a', 'wing']
    """

    def __init__(self, tokenizer_json: str, source: str = "<memory>") -> None:
        import tokenizers

        try:
            self._tokenizer = tokenizers.Tokenizer.from_str(tokenizer_json)
            added = json.loads(tokenizer_json).get("added_tokens", [])
        except Exception as error:  # noqa: BLE001 - the Rust library raises plain Exception
            raise ModelNotFoundError(f"{source}: not a readable tokenizer.json ({error})") from error
        self.tokenizer_json = tokenizer_json
        self.source = source
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        vocab = self._tokenizer.get_vocab(with_added_tokens=True)
        size = max(vocab.values()) + 1 if vocab else 0
        self.vocabulary: list[str] = [""] * size
        for token, term_id in vocab.items():
            self.vocabulary[term_id] = token
        self.special_tokens = frozenset(entry["content"] for entry in added if entry.get("special"))
        self.special_ids = frozenset(vocab[token] for token in self.special_tokens if token in vocab)
        self.vocab_hash = hashlib.sha256("\n".join(self.vocabulary).encode("utf-8")).hexdigest()[:16]

    @classmethod
    def from_file(cls, tokenizer_file: str | Path) -> TokenizerVocabulary:
        """Read a ``tokenizer.json`` (or the one inside a model directory)."""
        path = Path(tokenizer_file)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        if not path.is_file():
            raise ModelNotFoundError(
                f"{path} not found: a neural sparse model needs a Hugging Face fast tokenizer (tokenizer.json); "
                "save one with AutoTokenizer.from_pretrained(...).save_pretrained(model_dir)"
            )
        return cls(path.read_text(encoding="utf-8"), source=str(path))

    @classmethod
    def from_hf_tokenizer(cls, tokenizer: Any) -> TokenizerVocabulary:
        """From a transformers fast tokenizer object (``PreTrainedTokenizerFast``)."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ModelNotFoundError(f"{type(tokenizer).__name__} is not a fast tokenizer (no tokenizer.json)")
        return cls(backend.to_str(), source=getattr(tokenizer, "name_or_path", "<memory>"))

    def save(self, path: Path) -> None:
        """Write the ``tokenizer.json`` this vocabulary was read from."""
        path.write_text(self.tokenizer_json, encoding="utf-8")

    def __len__(self) -> int:
        return len(self.vocabulary)

    @property
    def identity(self) -> dict[str, object]:
        """What a fingerprint or an IDF table records to detect tokenizer drift."""
        return {"analyzer": "hf-tokenizer", "vocab_sha256": self.vocab_hash, "vocab_size": len(self.vocabulary)}

    def tokenize(self, text: str) -> list[str]:
        """Non-special tokens of ``text`` (no truncation), in order, with repeats."""
        special = self.special_tokens
        return [
            t for t in self._tokenizer.encode(clean_text(text), add_special_tokens=False).tokens if t not in special
        ]

    def tokenize_batch(self, texts: list[str]) -> list[list[str]]:
        encodings = self._tokenizer.encode_batch([clean_text(t) for t in texts], add_special_tokens=False)
        special = self.special_tokens
        return [[t for t in encoding.tokens if t not in special] for encoding in encodings]

    def encode_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text (no special tokens added, no truncation)."""
        encodings = self._tokenizer.encode_batch([clean_text(t) for t in texts], add_special_tokens=False)
        return [encoding.ids for encoding in encodings]
