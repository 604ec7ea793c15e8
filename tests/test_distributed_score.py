"""``torchrun --nproc_per_node=2 -m bapps_toolkit score`` (gloo on CPU) writes what one process writes.

* folder pairs (l2 and lpips-alex on a random backbone, mixed sizes so batches of several sizes
  go round-robin to the two ranks): the CSV equals the one-process CSV byte for byte, and the
  rows printed to stdout (no ``--out``) come once, from rank 0, in pair order;
* resume: a journal of an interrupted run (with one value changed, so a rescored pair would
  show) is continued under 2 processes: the kept rows stay, the rest equal one process;
* ``--all-pairs``: the CSV and the ``.npy`` matrix (features shared out and gathered for LPIPS,
  the pairwise fallback for l2) equal one process.

``sharded`` itself (round-robin order, an error on one rank raised on every rank) is checked in
one process with a fake two-rank exchange.
"""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch
from PIL import Image
from two_ranks import run_two_ranks

from bapps_toolkit import _distributed as D
from bapps_toolkit.cli.main import main
from bapps_toolkit.scoring.pair_output import journal_path

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

_LPIPS = ["--metric", "lpips-alex", "--backbone-weights", "alex=random"]
_RUN = ["--device", "cpu", "--no-progress", "--workers", "0", "--max-batch-pixels", str(3 * 40 * 48)]


def _torchrun(*args: str, script: str | None = None) -> subprocess.CompletedProcess:
    target = [script] if script else ["-m", "bapps_toolkit", "score"]
    return run_two_ranks(*target, *args)


@pytest.fixture
def one_thread():
    """The one-process runs on one thread, as each torchrun rank here (OMP_NUM_THREADS=1): the
    float reductions of BLAS then run in the same order, so the values are bit for bit equal."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two folders of 9 pairs in three sizes (interleaved), and a folder of 7 images of one size."""
    root = tmp_path_factory.mktemp("dist_score")
    rng = np.random.default_rng(3)
    sizes = [(40, 48), (36, 36), (40, 48), (64, 40), (36, 36), (40, 48), (64, 40), (40, 48), (36, 36)]
    for k, (h, w) in enumerate(sizes):
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
        for d, arr in (("d0", a), ("d1", b)):
            (root / d).mkdir(exist_ok=True)
            Image.fromarray(arr).save(root / d / f"p{k}.png")
    (root / "all").mkdir()
    for k in range(7):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / "all" / f"i{k}.png")
    return root


class _FakeTwo:
    """Rank ``rank`` of two, whose partner's results are precomputed (no process group)."""

    def __init__(self, monkeypatch, rank, partner_items):
        self.ctx = D.DistContext(rank=rank, world=2)
        partner = iter(partner_items)

        def gather(ctx, obj):
            other = next(partner)
            return [obj, other] if rank == 0 else [other, obj]

        monkeypatch.setattr(D, "all_gather_objects", gather)


def test_sharded_round_robin_order_and_errors(monkeypatch):
    work = list(range(5))
    seen = []

    def run(items):
        for w in items:
            seen.append(w)
            yield w * 10

    fake = _FakeTwo(monkeypatch, 0, [10, 30, None])
    assert list(D.sharded(fake.ctx, work, run)) == [0, 10, 20, 30, 40]
    assert seen == [0, 2, 4]   # rank 0 ran items 0, 2, 4 only
    assert list(D.sharded(D.DistContext(), work, run)) == [0, 10, 20, 30, 40]

    def bad(items):
        yield 0
        raise ValueError("p3.png is broken")

    fake = _FakeTwo(monkeypatch, 1, [0, 20])   # rank 1 fails at its second item; rank 0 is fine
    with pytest.raises(ValueError, match="p3.png is broken"):
        list(D.sharded(fake.ctx, work, bad))
    fake = _FakeTwo(monkeypatch, 0, [0, D._Failed(1, KeyError("on rank 1"))])
    with pytest.raises(KeyError, match="on rank 1"):
        list(D.sharded(fake.ctx, work, run))


@pytest.mark.slow
@pytest.mark.parametrize("metric", [["--metric", "l2"], _LPIPS], ids=["l2", "lpips"])
def test_torchrun_folder_pairs_equal_one_process(folders, tmp_path, metric, capsys, one_thread):
    d = ["--dir0", str(folders / "d0"), "--dir1", str(folders / "d1"), *metric, *_RUN]
    assert main(["score", *d, "--out", str(tmp_path / "one.csv")]) == 0
    assert main(["score", *d]) == 0
    one_stdout = capsys.readouterr().out
    _torchrun(*d, "--out", str(tmp_path / "two.csv"))
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert not list(tmp_path.glob("two.csv.*"))   # no journal, lock or temp file left
    assert _torchrun(*d).stdout == one_stdout      # rows once, from rank 0, in pair order


@pytest.mark.slow
def test_torchrun_resumes_a_partial_output(folders, tmp_path):
    d = ["--dir0", str(folders / "d0"), "--dir1", str(folders / "d1"), "--metric", "l2", *_RUN]
    one = tmp_path / "one.csv"
    assert main(["score", *d, "--out", str(one)]) == 0
    lines = one.read_text().splitlines(keepends=True)
    kept = lines[1:5]
    changed = kept[2].split(",")
    changed[1] = "123.5"                    # a rescored pair would lose this value
    kept[2] = ",".join(changed)
    two = tmp_path / "two.csv"
    journal_path(two).write_text(lines[0] + "".join(kept) + lines[5][:7])   # + a torn last line
    _torchrun(*d, "--out", str(two))
    expected = lines[:3] + [kept[2]] + lines[4:]
    assert two.read_text().splitlines(keepends=True) == expected
    assert not journal_path(two).exists()


@pytest.mark.slow
@pytest.mark.parametrize("metric", [["--metric", "l2"], _LPIPS], ids=["l2", "lpips"])
def test_torchrun_all_pairs_equal_one_process(folders, tmp_path, metric, one_thread):
    a = ["--dir", str(folders / "all"), "--all-pairs", *metric, *_RUN, "--batch-size", "1"]
    for name in ("one", "two"):
        run = (lambda *x: main(["score", *x]) == 0) if name == "one" else _torchrun
        assert run(*a, "--out", str(tmp_path / f"{name}.csv"))
        assert run(*a, "--out", str(tmp_path / f"{name}.npy"))
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    np.testing.assert_array_equal(np.load(tmp_path / "two.npy"), np.load(tmp_path / "one.npy"))
    assert len(np.load(tmp_path / "one.npy")) == 7


_MATRIX_SCRIPT = """
import sys
import numpy as np
from bapps_toolkit._distributed import current_context
from bapps_toolkit.scoring.pairs import all_pairs_matrix
folder, out, block = sys.argv[1], sys.argv[2], int(sys.argv[3])
m = all_pairs_matrix(folder, metric="lpips-alex", backbone_weights=["alex=random"], device="cpu",
                     progress=False, num_workers=0, batch_size=1, block_bytes=block)
np.save(out + f".rank{current_context().rank}.npy", m.matrix)
"""


@pytest.mark.slow
def test_torchrun_blocks_round_robin_every_rank_holds_the_matrix(folders, tmp_path, one_thread):
    from bapps_toolkit.scoring.pairs import all_pairs_matrix

    block = 2 * 9152 * 8 * 2   # 2 images per block (AlexNet taps at 40x40: 9152 floats): 10 blocks
    one = all_pairs_matrix(folders / "all", metric="lpips-alex", backbone_weights=["alex=random"], device="cpu",
                           progress=False, num_workers=0, batch_size=1, block_bytes=block).matrix
    script = tmp_path / "matrix.py"
    script.write_text(_MATRIX_SCRIPT)
    _torchrun(str(folders / "all"), str(tmp_path / "m"), str(block), script=str(script))
    for rank in (0, 1):
        np.testing.assert_array_equal(np.load(tmp_path / f"m.rank{rank}.npy"), one)
