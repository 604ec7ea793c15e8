"""Everything else a checkpoint or run folder can steer, besides the plugin it names.

* **File names in the metadata**: ``backbone_file`` (the run's frozen random backbone) must be a
  plain ``.safetensors`` name beside the checkpoint: ``../`` and absolute paths are refused (the
  old code loaded another run's or any file's weights); ``backbone_source`` (the weights of
  training time) must be an absolute path to a non-empty weights file (``.pth``, ``.pt``,
  ``.safetensors``, ``.bin``, ``.ckpt``), so a checkpoint cannot send the reader to a text file,
  a pipe or a pseudo-file such as ``/proc/kmsg`` whose read blocks.
* **Declared tensors**: the names, shapes and dtypes in the safetensors header are compared with
  the model before any tensor is read. A sparse file declaring a 4 GiB tensor under a backbone
  name (or as a ``G.*`` tensor) is refused without that tensor being read (the old reader
  read every tensor first); NaN linear weights are refused (the old reader gave NaN distances).
  The ranking net G (kept for calibration) is read only when its six tensors have G's names,
  shapes, float dtypes and a hidden width of at most 1024.
* **JSON**: metadata values nested 100 000 deep (``plugin_options``, ``bapps_provenance``) end in
  a CheckpointError or an "unreadable" note, not a RecursionError; a run's optimizer state with a
  bad key, a shape that does not fit, missing or deep parameter groups ends in a CheckpointError
  naming the file (the old code raised ValueError, KeyError, RecursionError); on ``--resume`` the
  epoch file's declared tensors are checked against the model before they are read.
* **Pickle** stays refused: a code-running pickle as ``latest.safetensors`` or ``.pth`` leaves no
  marker.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from bapps_toolkit.errors import CheckpointError
from bapps_toolkit.metrics import trained
from bapps_toolkit.metrics.provenance import calibration_from_metadata
from bapps_toolkit.metrics.trained import FORMAT, build_lpips, load_metric_from_checkpoint
from bapps_toolkit.train import TrainConfig, resume_config, train
from bapps_toolkit.train.checkpoint import OPTIM_FORMAT, load_optimizer_

from .ckpt_tools import plugin_meta, touch_command, write_checkpoint

try:
    from bapps_toolkit.metrics import safetensors_io
except ImportError:  # the reader before this module existed: the tests show what it did
    safetensors_io = trained

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ALEX = (64, 192, 384, 256, 256)
GIB = 1 << 30


def alex_lins(value: float = 0.1) -> dict[str, torch.Tensor]:
    return {f"lin.{k}.weight": torch.full((1, c, 1, 1), value) for k, c in enumerate(ALEX)}


@pytest.fixture(scope="module")
def alex_backbone() -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in build_lpips("alex", "0.1", "random", 3).backbone.state_dict().items()}


# ------------------------------------------------------------------------------------------
# file names in the metadata

@pytest.mark.parametrize("name", ["../elsewhere/backbone.safetensors", "ABSOLUTE", "sub/backbone.safetensors",
                                  ".hidden.safetensors", "backbone.pth"])
def test_backbone_file_must_sit_beside_the_checkpoint(tmp_path, alex_backbone, name):
    outside = tmp_path / "elsewhere" / "backbone.safetensors"
    outside.parent.mkdir()
    save_file(alex_backbone, str(outside), metadata={"format": "bapps-toolkit/backbone"})
    (tmp_path / "run" / "sub").mkdir(parents=True)
    save_file(alex_backbone, str(tmp_path / "run" / "sub" / "backbone.safetensors"))
    name = str(outside) if name == "ABSOLUTE" else name
    ck = write_checkpoint(tmp_path / "run" / "latest.safetensors",
                          {"net": "alex", "backbone_in_file": "0", "backbone_file": name}, alex_lins())
    with pytest.raises(CheckpointError, match="is not a plain .safetensors file name beside the checkpoint"):
        load_metric_from_checkpoint(ck)


@pytest.mark.parametrize("kind", ["text file", "relative path", "empty .pth", "no suffix"])
def test_recorded_backbone_source_must_be_a_weights_file(tmp_path, kind, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = {"text file": tmp_path / "notes.txt", "relative path": Path("weights.pth"),
              "empty .pth": tmp_path / "empty.pth", "no suffix": tmp_path / "kmsg"}[kind]
    (tmp_path / target).write_bytes(b"" if kind == "empty .pth" else b"not weights at all")
    digest = hashlib.sha256((tmp_path / target).read_bytes()).hexdigest()
    ck = write_checkpoint(tmp_path / "c.safetensors", {"net": "alex", "backbone_in_file": "0",
                                                       "backbone_source": str(target), "backbone_sha256": digest},
                          alex_lins())
    words = "are an empty file" if kind == "empty .pth" else "not an absolute path to a weights file"
    with pytest.raises(CheckpointError, match=words):
        load_metric_from_checkpoint(ck)


# ------------------------------------------------------------------------------------------
# declared tensors: checked before they are read

def write_sparse_safetensors(path: Path, small: dict[str, torch.Tensor], big: tuple[str, list[int]],
                             metadata: dict[str, str]) -> Path:
    """A valid safetensors file whose last tensor ``big`` (float32, ``shape``) is declared but
    left as a hole: the file takes a few KiB of disk whatever the declared size."""
    header: dict[str, Any] = {"__metadata__": metadata}
    blobs, offset = [], 0
    for name, t in small.items():
        data = t.contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    size = 4 * int(torch.tensor(big[1]).prod())
    header[big[0]] = {"dtype": "F32", "shape": big[1], "data_offsets": [offset, offset + size]}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
        fh.truncate(8 + len(text) + offset + size)
    return path


@pytest.fixture
def reads(monkeypatch) -> Iterator[list[tuple[str, int]]]:
    """Every tensor the checkpoint readers materialise, ``(name, bytes)``; one over 64 MiB is
    not read but refused with an AssertionError (so a failing test cannot allocate gigabytes)."""
    seen: list[tuple[str, int]] = []
    real = safe_open

    class Spy:
        def __init__(self, *args: Any, **kwargs: Any):
            self._f = real(*args, **kwargs)

        def __enter__(self) -> Spy:
            self._f.__enter__()
            return self

        def __exit__(self, *exc: Any) -> None:
            self._f.__exit__(*exc)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._f, name)

        def get_tensor(self, name: str) -> torch.Tensor:
            piece = self._f.get_slice(name)
            n = 4 * int(torch.tensor(piece.get_shape()).prod())
            seen.append((name, n))
            if n > 64 << 20:
                raise AssertionError(f"read the declared {n >> 20} MiB tensor {name}")
            return self._f.get_tensor(name)

    for module in (safetensors_io, trained):
        monkeypatch.setattr(module, "safe_open", Spy, raising=False)
    yield seen


@pytest.mark.parametrize("big", [("backbone.features.0.weight", [GIB]), ("G.model.0.weight", [GIB]),
                                 ("backbone.features.0.bias", [64, GIB // 64])])
def test_a_declared_4_gib_tensor_is_never_read(tmp_path, alex_backbone, reads, big):
    small = dict(alex_lins())
    small.update({f"backbone.{k}": v for k, v in alex_backbone.items() if f"backbone.{k}" != big[0]})
    ck = write_sparse_safetensors(tmp_path / "sparse.safetensors", small, big,
                                  {"format": FORMAT, "net": "alex", "version": "0.1", "backbone_in_file": "1"})
    assert ck.stat().st_size > 4 * GIB and ck.stat().st_blocks * 512 < 64 << 20  # sparse
    if big[0].startswith("G."):
        with pytest.raises(CheckpointError, match="ranking net G"):
            load_metric_from_checkpoint(ck)
    else:
        with pytest.raises(CheckpointError, match=r"stored backbone tensor 'features\.0\.(weight|bias)' is F32"):
            load_metric_from_checkpoint(ck)
    assert not [name for name, n in reads if n > 64 << 20]


def _g_state(width: int = 32) -> dict[str, torch.Tensor]:
    return {"G.model.0.weight": torch.zeros(width, 5, 1, 1), "G.model.0.bias": torch.zeros(width),
            "G.model.2.weight": torch.zeros(width, width, 1, 1), "G.model.2.bias": torch.zeros(width),
            "G.model.4.weight": torch.full((1, width, 1, 1), 0.5), "G.model.4.bias": torch.zeros(1)}


@pytest.mark.parametrize("case", ["missing", "extra", "shape", "int", "wide", "scalar"])
def test_ranking_net_is_checked_before_reading(tmp_path, alex_backbone, reads, case):
    g = _g_state()
    if case == "missing":
        del g["G.model.2.bias"]
    elif case == "extra":
        g["G.model.6.weight"] = torch.zeros(1)
    elif case == "shape":
        g["G.model.2.weight"] = torch.zeros(32, 31, 1, 1)
    elif case == "int":
        g["G.model.4.bias"] = torch.zeros(1, dtype=torch.int32)
    elif case == "wide":
        g = _g_state(1025)
    else:
        g["G.model.0.bias"] = torch.zeros(())
    tensors = {**alex_lins(), **{f"backbone.{k}": v for k, v in alex_backbone.items()}, **g}
    ck = write_checkpoint(tmp_path / "g.safetensors", {"net": "alex", "backbone_in_file": "1"}, tensors)
    with pytest.raises(CheckpointError, match=r"g\.safetensors: ranking net G"):
        load_metric_from_checkpoint(ck)
    assert not [name for name, _ in reads if name.startswith("G.")]


def test_a_good_ranking_net_is_kept(tmp_path, alex_backbone):
    tensors = {**alex_lins(), **{f"backbone.{k}": v for k, v in alex_backbone.items()}, **_g_state()}
    ck = write_checkpoint(tmp_path / "g.safetensors", {"net": "alex", "backbone_in_file": "1"}, tensors)
    model = load_metric_from_checkpoint(ck)
    assert model.ranking_net is not None and sorted(model.ranking_net) == sorted(k[2:] for k in _g_state())
    assert float(model.ranking_net["model.4.weight"][0, 3]) == 0.5


def test_declared_lin_shapes_are_checked_before_reading(tmp_path, alex_backbone, reads):
    small = {f"backbone.{k}": v for k, v in alex_backbone.items()}
    small.update({f"lin.{k}.weight": torch.zeros(1, c, 1, 1) for k, c in enumerate(ALEX[:4])})
    ck = write_sparse_safetensors(tmp_path / "sparse.safetensors", small, ("lin.4.weight", [1, GIB, 1, 1]),
                                  {"format": FORMAT, "net": "alex", "version": "0.1", "backbone_in_file": "1"})
    with pytest.raises(CheckpointError, match=r"linear layers of shapes .* do not fit LPIPS net 'alex'"):
        load_metric_from_checkpoint(ck)
    assert not [name for name, _ in reads if name.startswith("lin.")]


def test_nan_linear_weights_are_refused(tmp_path, alex_backbone):
    tensors = alex_lins(float("nan"))
    tensors.update({f"backbone.{k}": v for k, v in alex_backbone.items()})
    ck = write_checkpoint(tmp_path / "nan.safetensors", {"net": "alex", "backbone_in_file": "1"}, tensors)
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_metric_from_checkpoint(ck)


@pytest.mark.parametrize("key", ["lin.00.weight", "lin.+1.weight", "lin.0.x.weight", "backbone.", "other"])
def test_unexpected_tensor_names(tmp_path, key):
    ck = write_checkpoint(tmp_path / "k.safetensors", {"net": "alex"}, {**alex_lins(), key: torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"k\.safetensors: unexpected key"):
        load_metric_from_checkpoint(ck)


# ------------------------------------------------------------------------------------------
# JSON in the metadata

DEEP = "[" * 100_000 + "]" * 100_000
DEEP_SHORT = "[" * 30_000 + "]" * 30_000  # within the 64 KiB bound, far past the recursion limit


def test_deep_plugin_options_are_a_checkpoint_error(tmp_path):
    meta = plugin_meta("os:system")
    meta["plugin_options"] = DEEP_SHORT
    ck = write_checkpoint(tmp_path / "deep.safetensors", meta)
    with pytest.raises(CheckpointError, match="metadata 'plugin_options' is not valid JSON"):
        load_metric_from_checkpoint(ck)
    meta["plugin_options"] = json.dumps({"command": "x" * 100_000})
    ck = write_checkpoint(tmp_path / "long.safetensors", meta)
    with pytest.raises(CheckpointError, match="metadata 'plugin_options' is 100015 characters long"):
        load_metric_from_checkpoint(ck)


def test_deep_provenance_is_unreadable_not_a_crash():
    assert calibration_from_metadata({"bapps_provenance": DEEP}) == (False, "unreadable bapps_provenance metadata")


def test_a_header_length_ending_in_0x80_is_not_a_pickle(tmp_path, alex_backbone):
    """The old sniffer called every file whose first byte is 0x80 a pickle: a valid checkpoint
    whose header length is 128 mod 256 was refused."""
    tensors = alex_lins()
    tensors.update({f"backbone.{k}": v for k, v in alex_backbone.items()})
    for pad in range(0, 300, 8):
        ck = write_checkpoint(tmp_path / "c.safetensors", {"net": "alex", "backbone_in_file": "1", "pad": "x" * pad},
                              tensors)
        if ck.read_bytes()[:1] == b"\x80":
            break
    assert ck.read_bytes()[:1] == b"\x80"
    assert load_metric_from_checkpoint(ck).channels == list(ALEX)


# ------------------------------------------------------------------------------------------
# optimizer state and the epoch file of a resumed run

@pytest.fixture
def adam() -> torch.optim.Adam:
    params = [torch.nn.Parameter(torch.zeros(3, 2)), torch.nn.Parameter(torch.zeros(4))]
    return torch.optim.Adam(params, lr=0.1)


def _optim_file(path: Path, tensors: dict[str, torch.Tensor], **meta: str) -> Path:
    full = {"format": OPTIM_FORMAT, "param_names": json.dumps(["a", "b"]),
            "param_groups": json.dumps([{"lr": 0.1, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0,
                                         "amsgrad": False, "maximize": False, "foreach": None,
                                         "capturable": False, "differentiable": False, "fused": None,
                                         "params": [0, 1]}]),
            "scalars": "{}", **meta}
    save_file(tensors, str(path), metadata=full)
    return path


GOOD = {"state.0.exp_avg": torch.ones(3, 2), "state.0.exp_avg_sq": torch.ones(3, 2), "state.0.step": torch.tensor(1.)}


@pytest.mark.parametrize("case, tensors, meta, words", [
    ("bad key", {"state.x.exp_avg": torch.ones(3, 2)}, {}, r"optimizer tensor 'state\.x\.exp_avg'"),
    ("other shape", {"state.1.exp_avg": torch.ones(3, 2)}, {}, r"'state\.1\.exp_avg' \(F32 \[3, 2\]\) does not fit"),
    ("param out of range", {"state.9.exp_avg": torch.ones(1)}, {}, r"'state\.9\.exp_avg'"),
    ("int state", {"state.0.exp_avg": torch.ones(3, 2, dtype=torch.int64)}, {}, r"I64"),
    ("no groups", GOOD, {"param_groups": ""}, "parameter groups are missing"),
    ("deep groups", GOOD, {"param_groups": DEEP}, "'param_groups' is not valid JSON"),
    ("groups not a list", GOOD, {"param_groups": "{}"}, "'param_groups' is a JSON dict"),
    ("bad groups", GOOD, {"param_groups": json.dumps([{"params": [7]}])}, "does not fit this model"),
    ("bad scalars", GOOD, {"scalars": json.dumps({"abc": {}})}, "scalars entry 'abc'"),
])
def test_hostile_optimizer_state(tmp_path, adam, case, tensors, meta, words):
    path = _optim_file(tmp_path / "o.safetensors", tensors, **meta)
    with pytest.raises(CheckpointError, match=words) as err:
        load_optimizer_(adam, ["a", "b"], path)
    assert str(path) in str(err.value)


def test_good_optimizer_state_loads(tmp_path, adam):
    load_optimizer_(adam, ["a", "b"], _optim_file(tmp_path / "o.safetensors", GOOD))
    assert torch.equal(adam.state[adam.param_groups[0]["params"][0]]["exp_avg"], torch.ones(3, 2))


class _Stop(Exception):
    pass


def _stop_in_epoch_2(epoch: int, step: int) -> None:
    if epoch == 2:
        raise _Stop


def test_resume_checks_the_epoch_file_before_reading_it(tiny_tree, tmp_path, reads):
    data = tiny_tree(("2afc/train/cnn",), n=4)
    out = tmp_path / "run"
    cfg = TrainConfig(data=str(data), out=str(out), backbone_weights="random", epochs=1, decay_epochs=1,
                      batch_size=2, datasets=["train/cnn"], progress=False)
    with pytest.raises(_Stop):
        train(cfg, on_step=_stop_in_epoch_2)
    epoch1 = out / "epoch_001.safetensors"
    with safe_open(str(epoch1), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys() if k != "G.model.0.weight"}  # noqa: SIM118
    write_sparse_safetensors(epoch1, tensors, ("G.model.0.weight", [GIB]), meta)
    reads.clear()
    with pytest.raises(CheckpointError, match=r"epoch_001\.safetensors: the stored model tensor 'G\.model\.0\.weight'"):
        train(resume_config(out))
    assert not [name for name, n in reads if n > 64 << 20]


# ------------------------------------------------------------------------------------------
# pickle stays refused

class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (touch_command(self.marker),)


@pytest.mark.parametrize("name", ["latest.safetensors", "latest.lin.pth"])
def test_pickle_checkpoint_never_runs(tmp_path, name):
    marker = tmp_path / "MARKER"
    run = tmp_path / "run"
    run.mkdir()
    if name.endswith(".pth"):
        torch.save({"lin0.model.1.weight": _Payload(marker)}, str(run / name))
    else:
        (run / name).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CheckpointError, match="refus") as err:
        load_metric_from_checkpoint(run / name)
    assert not marker.exists() and str(run / name) in str(err.value)


# ------------------------------------------------------------------------------------------
# text a file puts into messages and labels

def test_terminal_escapes_in_a_plugin_spec_never_reach_the_message(tmp_path):
    spec = "os:system\x1b]0;owned\x07\x1b[2J"
    ck = write_checkpoint(tmp_path / "esc.safetensors", plugin_meta(spec))
    with pytest.raises(CheckpointError, match="which is not a plugin spec") as err:
        load_metric_from_checkpoint(ck, trust_plugin=spec)
    assert "\x1b" not in str(err.value) and "\x07" not in str(err.value)


def test_terminal_escapes_in_a_calibration_note_never_reach_the_label(tmp_path, alex_backbone):
    tensors = alex_lins()
    tensors.update({f"backbone.{k}": v for k, v in alex_backbone.items()})
    meta = {"net": "alex", "backbone_in_file": "1", "calibrated": "0",
            "calibration_note": "\x1b[2J\x1b[31mall fine\nreally"}
    ck = write_checkpoint(tmp_path / "note.safetensors", meta, tensors)
    model = load_metric_from_checkpoint(ck)
    assert not model.calibrated and "all fine" in model.label
    assert model.label.isprintable()
