"""The ``paper`` preset: the metrics of Table 5 of Zhang et al. 2018 that the toolkit has."""
from __future__ import annotations

import pytest

from bapps_toolkit.cli.main import main
from bapps_toolkit.evaluate import run_evaluation
from bapps_toolkit.metrics import list_metrics
from bapps_toolkit.metrics.presets import PAPER, PAPER_LEFT_OUT, PRESETS, expand_presets

RANDOM = {"alex": "random", "vgg": "random", "squeeze": "random"}


def test_paper_members_exist_and_expand_in_table_order():
    assert PAPER == ("l2-lab-official", "ssim-lab-official", "fsimc", "lpips-squeeze-baseline",
                     "lpips-alex-baseline", "lpips-vgg-baseline", "lpips-squeeze", "lpips-alex", "lpips-vgg")
    assert set(PAPER) <= set(list_metrics())
    specs, options = expand_presets(["paper"])
    assert specs == list(PAPER)
    assert options == {f"lpips-{n}": {"version": "0.0"} for n in ("squeeze", "alex", "vgg")}
    # a member also named by hand appears once; other specs keep their place; case-insensitive
    specs, _ = expand_presets(["l2", "PAPER", "fsimc"])
    assert specs == ["l2", *PAPER]
    assert "HDR-VDP" in PAPER_LEFT_OUT and any("tune" in k for k in PAPER_LEFT_OUT)
    assert set(PRESETS) == {"paper"}


def test_bapps_metrics_lists_the_preset(capsys):
    assert main(["metrics"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("paper "))
    assert "Table 5" in line and "l2-lab-official" in line and "version=0.0" in line


@pytest.mark.filterwarnings("ignore:.*UNCALIBRATED")
def test_evaluate_paper_preset(tiny_tree):
    root = tiny_tree(keys=("2afc/val/cnn",), n=4)
    res = run_evaluation(root, ["paper"], backbone_weights=RANDOM, n_boot=10, progress=False,
                         metric_options=["lpips-alex.version=0.1"], compare=("lpips-vgg-v0.0", "l2-lab-official"))
    t = res.table
    ids = [m for m in dict.fromkeys(t.metric) if m != "human"]
    assert ids == ["l2-lab-official", "ssim-lab-official", "fsimc", "lpips-squeeze-baseline",
                   "lpips-alex-baseline", "lpips-vgg-baseline", "lpips-squeeze-v0.0", "lpips-alex",
                   "lpips-vgg-v0.0"]  # the caller's option wins over the preset's version
    lpips_rows = t[t.metric.str.startswith("lpips")]
    assert not lpips_rows.calibrated.any() and lpips_rows.label.str.contains("UNCALIBRATED").all()
    assert t[t.metric == "l2-lab-official"].calibrated.all()
    assert [c["a"] for c in res.comparisons] == ["lpips-vgg-v0.0"]


def test_readme_reproduction_commands_parse():
    """The commands of "Reproducing the paper's numbers" (docs/tasks/evaluate.md) parse as written."""
    import re
    import shlex
    from pathlib import Path

    from bapps_toolkit.cli.main import build_parser

    page = Path(__file__).resolve().parents[1] / "docs" / "tasks" / "evaluate.md"
    section = page.read_text(encoding="utf-8").split("## Reproducing the paper's numbers\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block
    commands = [shlex.split(line, comments=True) for line in block.group(1).splitlines() if line.strip()]
    assert [c[1] for c in commands] == ["download", "pack", "evaluate", "evaluate"]
    for argv in commands:
        assert argv[0] == "bapps"
        args = build_parser().parse_args(argv[1:])
        if argv[1] == "evaluate":
            assert args.metrics == ["paper"]
    specs, _ = expand_presets(["paper"])
    compare = build_parser().parse_args(commands[3][1:]).compare
    ids = {"lpips-alex-v0.0" if s == "lpips-alex" else s for s in specs}
    assert set(compare) <= ids
