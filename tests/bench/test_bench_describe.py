"""What the embedded adapter's ``describe()`` counts as postings, on hand-made index folders: the scanned
arrays of every ``seg-*`` folder, the exact weights of the compressed format apart, everything else listed."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_segment(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    folder.mkdir(parents=True)
    for name, array in arrays.items():
        np.save(folder / name, array)


def compressed(nnz: int, n_terms: int) -> dict[str, np.ndarray]:
    return {
        "window_offsets.npy": np.zeros(n_terms + 1, np.uint32),
        "doc_low.npy": np.zeros(nnz, np.uint16),
        "impacts.npy": np.ones(nnz, np.uint8),
        "impact_scale.npy": np.ones(n_terms, np.float32),
        "weights.npy": np.ones(nnz, np.float32),
        "doc_ids.json.npy": np.zeros(3, np.int8),  # stands for any other file of a segment
    }


def describe(index_dir: Path) -> dict:
    from adapter_embedded import Embedded

    return Embedded(corpus=None, index_dir=index_dir, options={}).describe()


def test_compressed_segments_are_summed_and_weights_kept_apart(run_module, tmp_path) -> None:
    write_segment(tmp_path / "seg-000001", compressed(nnz=1_000, n_terms=10))
    write_segment(tmp_path / "seg-000004", compressed(nnz=500, n_terms=10))
    (tmp_path / "manifest.json").write_text("{}")
    settings = describe(tmp_path)
    assert settings["format"] == "compressed" and settings["segments"] == 2
    scanned = 2 * 11 * 4 + 1_500 * 2 + 1_500 * 1 + 2 * 10 * 4  # offsets, doc_low, impacts, impact_scale
    assert settings["postings_array_bytes"] == scanned
    assert settings["postings_bytes"] == scanned + 8 * 128  # four .npy headers in each of two segments
    assert set(settings["postings_files"]) == {"window_offsets.npy", "doc_low.npy", "impacts.npy", "impact_scale.npy"}
    assert settings["postings_dtypes"]["doc_low.npy"] == "uint16"
    assert settings["rescoring_array_bytes"] == 1_500 * 4
    assert settings["rescoring_bytes"] == 1_500 * 4 + 2 * 128
    assert sorted(settings["other_files"]) == ["manifest.json", "seg-000001/doc_ids.json.npy",
                                               "seg-000004/doc_ids.json.npy"]  # fmt: skip


def test_plain_segments_count_every_array_as_postings(run_module, tmp_path) -> None:
    write_segment(
        tmp_path / "seg-000001",
        {"indptr.npy": np.zeros(11, np.uint32), "doc_idx.npy": np.zeros(100, np.int32),
         "weights.npy": np.ones(100, np.float32)},
    )  # fmt: skip
    settings = describe(tmp_path)
    assert settings["format"] == "plain"
    assert settings["postings_array_bytes"] == 11 * 4 + 100 * 4 + 100 * 4
    assert "rescoring_bytes" not in settings and settings["other_files"] == {}
