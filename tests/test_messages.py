"""Messages that state a number or a default say the one the code uses."""

from __future__ import annotations

import math
import re

import pytest
from train_helpers import make_archive

from clippings.cli import build_parser, main
from clippings.link.cells import nlist_for
from clippings.train.pairs import lanes_for
from clippings.train.pretrain import LANES


@pytest.mark.parametrize("workers", [1, 3])
def test_pretrain_names_the_minimum_it_checks(tmp_path, capsys, workers):
    archive = make_archive(str(tmp_path / "small"), 3, 1, seed=0, labelled=False)
    need = max(2 * workers, lanes_for(workers, LANES))
    assert main(["pretrain", "--archive", archive, "--out", str(tmp_path / "m"), "--workers", str(workers)]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"3 distinct image-caption pairs \(\d to train on, \d held out\); pretraining needs at "
                     rf"least {need} to train on and 1 held out: give a larger archive\n$", err), err


def test_link_nlist_help_states_the_default_the_code_uses():
    link = build_parser()._subparsers._group_actions[0].choices["link"]
    help_text = next(a.help for a in link._actions if "--nlist" in a.option_strings)
    assert help_text == "ivf cells (default: 2·√n, at least 16)"
    for n in (100, 10_000, 1_000_000):
        assert nlist_for(n) == max(16, round(2 * math.sqrt(n)))
