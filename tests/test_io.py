"""Outputs are written atomically and reproducibly."""
import pytest
import torch

from erc.runtime.files import save_torch


def test_the_same_object_saved_twice_gives_the_same_bytes(tmp_path):
    obj = {"features": torch.randn(5, 3, generator=torch.Generator().manual_seed(0)), "ids": ["a", "b"]}
    save_torch(obj, tmp_path / "one.pt")
    save_torch(obj, tmp_path / "two.pt")  # another name: the archive inside must not carry the file's name
    assert (tmp_path / "one.pt").read_bytes() == (tmp_path / "two.pt").read_bytes()
    assert torch.equal(torch.load(tmp_path / "one.pt")["features"], obj["features"])


def test_a_failed_save_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.pt"
    save_torch({"a": 1}, path)
    with pytest.raises(Exception):
        save_torch({"f": lambda: 0}, path)  # a lambda cannot be pickled
    assert torch.load(path) == {"a": 1} and sorted(p.name for p in tmp_path.iterdir()) == ["out.pt"]
