"""The two objectives' training settings: typed, frozen, each default and constraint stated once.

`PretrainSettings` (`clippings pretrain`) and `SupConSettings` (`clippings train`) hold what the user chooses:
the command's flags of the same names take their defaults from here, `pretrain` and `train_supcon` take them
as keywords, and a worker reads them as attributes of its task. A value outside its constraint is refused
when the settings are made, as one BadInput line of `clippings.params`' shape ("The 'lr' parameter of pretrain
must be a float in the range (0.0, 1.0]. Got 0.0 instead."). `dataclasses.asdict` gives the values that a
run records (`clippings.train.fit.training_settings`) and its model's `clippings.json` describes.

Light on purpose (no torch, no Ray): the argument definitions import it to build the parser.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from clippings.errors import BadInput
from clippings.params import Interval, validate_params

CONSTRAINTS = {
    "epochs": Interval(int, 1, None),
    "batch_size": Interval(int, 2, None),
    "im_wt": Interval(float, 0.0, 1.0),
    "m": Interval(int, 1, None),
    "k": Interval(int, 1, None),
    "temperature": Interval(float, 0.0, None, open_low=True),
    "groups_per_step": Interval(int, 1, None),
    "lr": Interval(float, 0.0, 1.0, open_low=True),
    "vision_lr": Interval(float, 0.0, 1.0),
    "text_lr": Interval(float, 0.0, 1.0),
    "view_weight": Interval(float, 0.0, None),
    "view_p": Interval(float, 0.0, 1.0),
    "clip_weight": Interval(float, 0.0, None),
    "seed": Interval(int, 0, None),
}
"""Every setting's constraint (a name both objectives have means the same in both)."""
OPTIONAL = ("vision_lr", "text_lr")
"""The settings that may be None (an encoder's rate: None is `lr`)."""


def _validate(command: str, settings: Any) -> None:
    """Check each field against its constraint, in field order (the first violation is the one named)."""
    for name, value in asdict(settings).items():
        if value is None and name not in OPTIONAL:  # validate_params skips None (an optional flag left out)
            raise BadInput(f"The '{name}' parameter of {command} must be {CONSTRAINTS[name].describe()}. "
                           "Got None instead.")
        validate_params(command, {name: value}, {name: CONSTRAINTS[name]})


@dataclass(frozen=True, kw_only=True)
class PretrainSettings:
    """Continued CLIP pretraining (`clippings.train.pretrain`).

    epochs: passes over the training pairs (the learning-rate schedule spans them). batch_size: the global
    batch as asked (the one used is capped at the training pairs and rounded down to a multiple of the lanes).
    lr: peak rate of the heads and, unless set apart, of the encoders. vision_lr, text_lr: an encoder's own
    peak rate (None: lr; 0 locks that tower and its head). view_weight: λ of the image-image view term (0: the
    plain CLIP loss). clip_weight: weight of the CLIP term; 0 needs view_weight > 0 and text_lr = 0 (the image
    tower then learns from its views alone beside the locked text tower). seed: data order, held-out slice
    and views.
    """

    epochs: int = 8
    batch_size: int = 64
    lr: float = 1e-3
    vision_lr: float | None = None
    text_lr: float | None = None
    view_weight: float = 0.0
    clip_weight: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        _validate("pretrain", self)
        if self.clip_weight == 0 and self.view_weight == 0:
            raise BadInput("pretrain: --clip-weight 0 and --view-weight 0 leave no loss to train: "
                           "give one of them a weight above 0")
        if self.clip_weight == 0 and self.text_lr != 0:
            raise BadInput("pretrain: --clip-weight 0 gives the text tower no training signal (only weight decay): "
                           "add --text-lr 0 to lock it")


@dataclass(frozen=True, kw_only=True)
class SupConSettings:
    """CLIPPINGS SupCon fine-tuning (`clippings.train.supcon`).

    im_wt: w of the pooled embedding normalise(w·img + (1−w)·txt) (1: image only, 0: text only). m: items per
    class in a group. k: hard-negative classes per group. temperature: SupCon's. groups_per_step: groups of
    k·m items per optimizer step (the run uses it rounded up to a multiple of the workers). epochs, lr,
    vision_lr, text_lr: as `PretrainSettings` (a pretrained text encoder wants text_lr ~2e-5). view_p: the
    probability that a training image is replaced, at each step, by another print and scan of it from the hard
    archive's family of degradations (`clippings.train.views.scan_view`; 0: the archive's images as they are).
    seed: the batch plans' and the views'.
    """

    im_wt: float = 0.5
    m: int = 3
    k: int = 3
    temperature: float = 0.1
    groups_per_step: int = 8
    epochs: int = 10
    lr: float = 5e-4
    vision_lr: float | None = None
    text_lr: float | None = None
    view_p: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        _validate("train", self)


TrainSettings = PretrainSettings | SupConSettings
"""Either objective's settings: what the shared epoch loop reads (epochs, lr, vision_lr, text_lr, seed)."""


def model_record(settings: TrainSettings) -> dict[str, Any]:
    """The settings a trained model's `clippings.json` describes: all but `epochs` (the checkpoint's own
    `epochs_trained` stands there)."""
    return {name: value for name, value in asdict(settings).items() if name != "epochs"}
