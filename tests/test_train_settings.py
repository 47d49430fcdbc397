"""Training settings (issue #32): typed, frozen dataclasses whose defaults the commands share, refusing a bad
value in the one message shape, and recording the same keys and values as runs and models always have."""

from __future__ import annotations

import dataclasses

import pytest

from clippings.cli import build_parser
from clippings.commands.pretrain import settings_of
from clippings.errors import BadInput
from clippings.train.settings import PretrainSettings, SupConSettings, model_record


def test_settings_are_frozen_and_keyword_only():
    settings = SupConSettings(im_wt=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.im_wt = 0.0
    with pytest.raises(TypeError):
        PretrainSettings(8)
    with pytest.raises(TypeError, match="epoch"):
        PretrainSettings(epoch=2)  # a misspelt name is no silent default
    assert dataclasses.replace(settings, groups_per_step=9).groups_per_step == 9 and settings.groups_per_step == 8


@pytest.mark.parametrize("kind, values, message", [
    (PretrainSettings, {"lr": 0}, "The 'lr' parameter of pretrain must be a float in the range (0.0, 1.0]. "
                                  "Got 0 instead."),
    (PretrainSettings, {"batch_size": 1}, "The 'batch_size' parameter of pretrain must be an int in the range "
                                          "[2, inf). Got 1 instead."),
    (PretrainSettings, {"epochs": 2.0}, "The 'epochs' parameter of pretrain must be an int in the range [1, inf). "
                                        "Got 2.0 instead."),
    (PretrainSettings, {"view_weight": None}, "The 'view_weight' parameter of pretrain must be a float in the "
                                              "range [0.0, inf). Got None instead."),
    (SupConSettings, {"im_wt": 1.5}, "The 'im_wt' parameter of train must be a float in the range [0.0, 1.0]. "
                                     "Got 1.5 instead."),
    (SupConSettings, {"temperature": 0.0}, "The 'temperature' parameter of train must be a float in the range "
                                           "(0.0, inf). Got 0.0 instead."),
    (SupConSettings, {"text_lr": 1.5, "seed": -1}, "The 'text_lr' parameter of train must be a float in the "
                                                   "range [0.0, 1.0]. Got 1.5 instead."),  # field order
])
def test_a_bad_value_is_refused_in_one_line(kind, values, message):
    with pytest.raises(BadInput) as e:
        kind(**values)
    assert str(e.value) == message


def test_pretrain_weights_need_a_loss_and_a_locked_text_tower():
    with pytest.raises(BadInput, match="--clip-weight 0 and --view-weight 0 leave no loss to train"):
        PretrainSettings(clip_weight=0.0)
    with pytest.raises(BadInput, match="add --text-lr 0 to lock it"):
        PretrainSettings(clip_weight=0.0, view_weight=1.0)
    assert PretrainSettings(clip_weight=0.0, view_weight=1.0, text_lr=0.0).vision_lr is None
    assert SupConSettings(vision_lr=None, text_lr=0.0).text_lr == 0.0  # an encoder's rate may be left to lr


def test_the_commands_take_their_defaults_from_the_settings():
    parser = build_parser()
    pre = parser.parse_args(["pretrain", "--archive", "a", "--out", "m"])
    train = parser.parse_args(["train", "--archive", "a", "--val", "v", "--out", "m", "--model", "tiny"])
    assert settings_of(PretrainSettings, pre) == PretrainSettings()
    assert settings_of(SupConSettings, train) == SupConSettings()
    assert settings_of(SupConSettings, parser.parse_args(
        ["train", "--archive", "a", "--val", "v", "--out", "m", "--model", "tiny", "--m", "4", "--text-lr", "2e-5"]
    )) == SupConSettings(m=4, text_lr=2e-5)


def test_records_keep_their_keys_and_values():
    """What runs record (settings.json) and models describe (clippings.json) is what it was before the
    settings were dataclasses: the same defaults under the same names (plus SupCon's view_p, whose default 0
    trains as before)."""
    assert dataclasses.asdict(SupConSettings()) == {
        "im_wt": 0.5, "m": 3, "k": 3, "temperature": 0.1, "groups_per_step": 8, "epochs": 10, "lr": 5e-4,
        "vision_lr": None, "text_lr": None, "view_p": 0.0, "seed": 0}
    assert dataclasses.asdict(PretrainSettings()) == {
        "epochs": 8, "batch_size": 64, "lr": 1e-3, "vision_lr": None, "text_lr": None, "view_weight": 0.0,
        "clip_weight": 1.0, "seed": 0}
    assert model_record(PretrainSettings(batch_size=32)) == {
        "batch_size": 32, "lr": 1e-3, "vision_lr": None, "text_lr": None, "view_weight": 0.0, "clip_weight": 1.0,
        "seed": 0}


def test_the_library_entries_refuse_a_bad_setting_before_any_work(tmp_path):
    from clippings.train.pretrain import pretrain
    from clippings.train.supcon import train_supcon

    missing = str(tmp_path / "no-archive")  # never read: the settings are refused first
    with pytest.raises(BadInput, match="The 'lr' parameter of pretrain"):
        pretrain(missing, str(tmp_path / "m"), lr=0.0)
    with pytest.raises(BadInput, match="The 'k' parameter of train"):
        train_supcon(missing, missing, str(tmp_path / "m"), model="tiny", k=0)
    with pytest.raises(TypeError, match="groups"):
        train_supcon(missing, missing, str(tmp_path / "m"), model="tiny", groups=4)
    assert not (tmp_path / "m_runs").exists()
