"""The experiment config: typed, frozen, validated before TensorFlow is imported.

One YAML file per experiment. Every key has a default taken from the DCGAN paper
(Radford et al., 2015), so an empty file trains the embedded digits data.
"""

from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from dcgan.errors import ConfigError, printable, shorten
from dcgan.files.reading import MiB, UnsafeFile, read_text

MIN_BASE, MAX_BASE = 3, 7
SOURCES_WITH_PATH = ("folder", "stl10")


class _Section(BaseModel):
    # strict: a quoted "32" or a 1.5 for an integer is a mistake, not something to coerce;
    # .nan and .inf are never a setting.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


def _utf8_path(path: Path) -> Path:
    # The run log, config.yaml and TensorBoard's writer all store paths as UTF-8.
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"'{printable(str(path))}' is not valid UTF-8: rename it or choose another"
        ) from None
    return path


LoosePath = Annotated[Path, Field(strict=False), AfterValidator(_utf8_path)]

# Bounds on sizes that pass every type check and still cannot be trained: a 3*2**30 image or
# a 10**8 latent ends in an out-of-memory error deep in TensorFlow.
MAX_IMAGE_SIZE = 1024
MAX_LATENT_DIM = 4096
MAX_WIDTH = 4096
MAX_BATCH = 65536
# The copy rate above which a generator is said to copy its training images: training's
# warning (eval.copy_rate_warning) and `dcgan nearest`'s verdict.
COPY_RATE_WARNING = 0.2
MAX_EVAL_SAMPLES = 20000  # the device KID's kernel is N x N floats: 1.6 GB at this bound
# The training images `evaluate` and `nearest` compare with: all of a data set up to this
# many, else a fixed random subset of this many (`evaluate --max-real`'s default).
MAX_REAL = 10000


def _image_size(value: Any) -> int | tuple[int, int]:
    """A side for square images, or [height, width]; a square [h, h] is kept as h."""
    sides = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(sides) not in (1, 2) or not all(
        isinstance(side, int) and not isinstance(side, bool) for side in sides
    ):
        raise _KeyError(
            "data.image_size",
            "should be a whole number of pixels, or [height, width] such as [64, 128] "
            f"(got {shorten(repr(value), 60)})",
        )
    for side in sides:
        if not 0 < side <= MAX_IMAGE_SIZE:
            raise _KeyError(
                "data.image_size",
                f"{side} is not a size from 1 to the {MAX_IMAGE_SIZE} pixels allowed",
            )
    return sides[0] if len(set(sides)) == 1 else (sides[0], sides[1])


ImageSize = Annotated[int | tuple[int, int], BeforeValidator(_image_size)]

MAX_CLASSES = 1000
CONDITIONAL_MODE_SEEKING = 1.0  # MSGAN's weight


def class_name(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # digits' classes read back from YAML as numbers
    if not isinstance(value, str):
        raise ValueError(f"a class name is text, got {type(value).__name__}")
    if not value.strip() or len(value) > 100 or not value.isprintable():
        raise ValueError(
            f"'{shorten(printable(value), 60)}' is not a class name (1 to 100 printable characters)"
        )
    return value


ClassName = Annotated[str, BeforeValidator(class_name)]


def image_size_text(image_size: int | tuple[int, int]) -> str:
    """64 or 64x128 (height x width), as messages and the runs table show a size."""
    return "x".join(map(str, image_size)) if isinstance(image_size, tuple) else str(image_size)


class DataConfig(_Section):
    source: Literal["folder", "digits", "mnist", "fashion_mnist", "cifar10", "stl10"] = "digits"
    path: LoosePath | None = None
    image_size: ImageSize = 32
    channels: Literal[1, 3] = 1
    max_images: int | None = Field(None, gt=0)
    # How an image of another shape is fitted: crop its centre, or pad it with its border
    # colour (nothing of it is lost: wheels stay on a bicycle seen from the side).
    resize: Literal["crop", "pad"] = "crop"
    # Add a left-right mirrored copy of every image: twice the data, for pictures whose
    # mirror image is as likely (faces, flowers, icons; not text or digits).
    xflip: bool = False
    # The class names of a conditional run (model.conditional), in label order. Left out,
    # training fills them in: a standard data set's own names, a folder's sub-folders
    # (sorted). Given for a folder, only those sub-folders are read.
    classes: list[ClassName] | None = Field(None, min_length=2, max_length=MAX_CLASSES)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the training images."""
        size = self.image_size
        return size if isinstance(size, tuple) else (size, size)


class ModelConfig(_Section):
    arch: Literal["dcgan", "tutorial"] = "dcgan"
    latent_dim: int = Field(100, gt=0, le=MAX_LATENT_DIM)
    g_width: int = Field(
        64, gt=0, le=MAX_WIDTH
    )  # filters of G's last hidden block; doubles towards z
    d_width: int = Field(
        64, gt=0, le=MAX_WIDTH
    )  # filters of D's first block; doubles towards the logit
    max_width: int = Field(512, gt=0, le=MAX_WIDTH)
    depth: int | None = Field(
        None, gt=0, le=10
    )  # stride-2 blocks; None: as many as the size allows
    g_norm: Literal["batch", "layer", "none"] = "batch"
    d_norm: Literal["batch", "layer", "none"] = "batch"
    d_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    leaky_slope: float = Field(0.2, ge=0.0, lt=1.0)
    init_std: float | None = Field(0.02, gt=0.0)  # None: Keras' Glorot default
    # Miyato et al. (2018): every weight layer of D divided by its largest singular value.
    d_spectral_norm: bool = False
    # Decay of an exponential moving average of G's weights, used for samples, evaluation
    # and export; None: the trained weights themselves.
    ema: float | None = Field(None, gt=0.0, lt=1.0)
    # Class-conditional G and D: a learned class embedding joins z in G (Mirza & Osindero,
    # 2014) and D is a projection discriminator (Miyato & Koyama, 2018).
    conditional: bool = False
    # How G doubles its size: stride-2 transposed convolutions (the paper), or a resize
    # (nearest or bilinear) followed by a 3x3 convolution, which cannot leave the
    # checkerboard pattern of uneven overlap (Odena et al., 2016).
    upsample: Literal["transpose", "resize"] = "transpose"
    resize_method: Literal["nearest", "bilinear"] = "nearest"


class TrainConfig(_Section):
    batch_size: int = Field(128, gt=0, le=MAX_BATCH)
    steps: int = Field(5000, gt=0, le=10**10)
    g_lr: float = Field(2e-4, gt=0.0)
    d_lr: float = Field(2e-4, gt=0.0)
    beta1: float = Field(0.5, ge=0.0, lt=1.0)
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    loss: Literal["bce", "hinge", "lsgan", "wgan-gp"] = "bce"
    gp_weight: float = Field(10.0, gt=0.0)  # wgan-gp's gradient penalty
    # R1 (Mescheder et al., 2018): gamma / 2 times |grad D(x)|^2 at the real images, added
    # to D's loss with any train.loss; StyleGAN2-ADA pairs it with ADA. 0: off.
    r1_gamma: float = Field(0.0, ge=0.0, le=1e4)
    # Lazy R1 (StyleGAN2; Karras et al., 2020, "Analyzing and improving"): the penalty on
    # one step in r1_interval, at r1_gamma times r1_interval: the same pull on D at
    # 1/r1_interval of its cost. 1: every step.
    r1_interval: int = Field(1, ge=1, le=1000)
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)  # one-sided: real target 1 - this
    d_steps: int = Field(1, ge=1, le=10)  # D updates per G update, each on its own batch
    # DiffAugment (Zhao et al., 2020) on every image D sees, real and fake.
    diffaugment: list[Literal["color", "translation", "cutout"]] = []
    # ADA (Karras et al., 2020): every image D sees goes through x-flip, translation,
    # brightness, saturation, contrast and cutout, each with a probability p that follows
    # the overfitting heuristic r_t (the mean sign of D's output on reals, from its decision
    # boundary) towards ada_target, every ada_interval steps, by at most 1 per ada_kimg
    # thousand images.
    augment: Literal["none", "ada"] = "none"
    ada_target: float = Field(0.6, gt=0.0, lt=1.0)
    ada_interval: int = Field(4, ge=1)
    ada_kimg: float = Field(500.0, gt=0.0)
    # Start from another run's G and D (its newest checkpoint, or a checkpoint folder):
    # new optimizers and a new step count; for fine-tuning a model of a large set to a
    # small one. freeze_d: D's first N blocks keep those weights (Freeze-D, Mo et al., 2020).
    init_from: LoosePath | None = None
    freeze_d: int = Field(0, ge=0, le=10)
    # Mode seeking (Mao et al., 2019): the weight of a term that rewards G for images that
    # differ as much as their latents do (for one class, in a conditional run), against a
    # G that ignores z and draws one picture per class. 0: off; left out of a conditional
    # run's config, CONDITIONAL_MODE_SEEKING.
    mode_seeking: float = Field(0.0, ge=0.0, le=100.0)
    # TensorFlow's op determinism: a resumed run matches an unbroken one bit for bit.
    deterministic: bool = False
    on_nan: Literal["stop", "rollback"] = "stop"
    rollback_lr_factor: float = Field(0.5, gt=0.0, lt=1.0)  # rates times this per rollback
    max_rollbacks: int = Field(3, ge=1)
    # auto: chosen for the device at start-up, and the run log says what and why
    # (dcgan/training/execution.py). The weights are float32 in every precision, so a run can
    # resume under another one.
    precision: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    xla: Literal["auto"] | bool = "auto"
    # auto: MirroredStrategy over several local GPUs, MultiWorkerMirroredStrategy when
    # TF_CONFIG describes a cluster, one device otherwise. batch_size is the global batch.
    strategy: Literal["auto", "default", "mirrored", "multi_worker"] = "auto"
    # Training steps per call into the compiled function. Side effects happen only between
    # calls, so it must divide every interval; auto: see execution.steps_per_execution.
    steps_per_execution: Literal["auto"] | Annotated[int, Field(ge=1)] = "auto"


class OutputConfig(_Section):
    dir: LoosePath = Path("runs")
    sample_every: int = Field(500, gt=0)
    num_samples: int = Field(64, ge=2, le=1024)  # the grid's diversity compares pairs
    checkpoint_every: int = Field(1000, gt=0)
    keep_checkpoints: int = Field(3, gt=0)
    log_every: int = Field(50, gt=0)


class EvalConfig(_Section):
    # KID on num_samples generated images every `every` steps; the best checkpoint by it
    # is kept in checkpoints/best. None: no evaluation during training.
    every: int | None = Field(1000, gt=0)
    num_samples: int = Field(1000, ge=10, le=MAX_EVAL_SAMPLES)
    # auto: InceptionV3 when its weights are in Keras' cache, else a fixed random network
    # that needs no download (the log says which).
    features: Literal["auto", "inception", "random"] = "auto"
    # The memorisation check runs on data sets of at most this many images.
    copy_check_max_images: int = Field(5000, ge=0)
    copy_rate_warning: float = Field(COPY_RATE_WARNING, gt=0.0, le=1.0)


class Config(_Section):
    name: str = Field("digits", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64)
    seed: int = Field(0, ge=0, lt=2**31)
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    output: OutputConfig = OutputConfig()
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _check_across_keys(self, info: ValidationInfo) -> Config:
        shape = self.data.shape
        if self.model.arch == "tutorial":
            if any(side % 4 for side in shape) or not MIN_BASE <= min(shape) // 4 <= MAX_BASE:
                raise _KeyError(
                    "data.image_size",
                    f"{image_size_text(self.data.image_size)} is not reachable by model.arch "
                    f"'tutorial', which upsamples {MIN_BASE * 4}..{MAX_BASE * 4} by 4 (the "
                    "MNIST notebook uses 28)",
                )
        else:
            base_and_depth(shape, self.model.depth)
        if self.train.loss == "wgan-gp" and self.model.d_norm == "batch":
            raise _KeyError(
                "model.d_norm",
                "'batch' does not go with train.loss 'wgan-gp': the gradient penalty is "
                "per image, which BatchNorm mixes across the batch (use 'layer' or 'none')",
            )
        if self.train.label_smoothing and self.train.loss not in ("bce", "lsgan"):
            raise _KeyError(
                "train.label_smoothing",
                f"applies to the bce and lsgan losses, not '{self.train.loss}'",
            )
        _check_steps_per_execution(self)
        _check_classes(self)
        _check_upsample(self)
        _check_freeze_d(self)
        _check_augment(self)
        if self.model.conditional and "mode_seeking" not in self.train.model_fields_set:
            # A conditional G left alone learns to ignore z (one picture per class on the
            # digits: README, Choosing the class); unless told otherwise, it seeks modes.
            train = self.train.model_copy(update={"mode_seeking": CONDITIONAL_MODE_SEEKING})
            self = self.model_copy(update={"train": train})
        if info.context and not info.context.get("check_data", True):
            return self  # generating from a run needs no training data
        if self.data.source in SOURCES_WITH_PATH and self.data.path is None:
            raise _KeyError("data.path", f"is required for data.source '{self.data.source}'")
        if self.data.path is not None and not self.data.path.exists():
            raise _KeyError("data.path", f"'{self.data.path}' does not exist")
        if self.data.source == "folder" and not self.data.path.is_dir():
            raise _KeyError("data.path", f"'{self.data.path}' is not a folder")
        return self

    def to_yaml(self) -> str:
        return yaml.dump(self.model_dump(mode="json"), Dumper=_YamlDumper, sort_keys=False)


def _check_freeze_d(config: Config) -> None:
    if config.train.freeze_d and config.model.arch != "dcgan":
        raise _KeyError("train.freeze_d", "applies to model.arch 'dcgan'")
    if config.train.freeze_d and config.train.init_from is None:
        raise _KeyError(
            "train.freeze_d",
            "applies with train.init_from: it keeps the blocks a run started from had "
            "learned (frozen random weights would never learn)",
        )
    if config.train.freeze_d:
        _, depth = base_and_depth(config.data.shape, config.model.depth)
        if config.train.freeze_d >= depth:
            raise _KeyError(
                "train.freeze_d",
                f"{config.train.freeze_d} would freeze every one of D's {depth} blocks: "
                f"at most {depth - 1}",
            )


def _check_augment(config: Config) -> None:
    if config.train.augment == "ada" and config.train.diffaugment:
        raise _KeyError(
            "train.augment",
            "'ada' and train.diffaugment both augment what D sees: use one of them",
        )
    if config.train.augment == "ada" and config.train.loss == "wgan-gp":
        # ADA reads D's overfitting from which side of its decision boundary the reals
        # fall; a critic's scores have no such boundary.
        raise _KeyError(
            "train.augment",
            "'ada' needs a loss with a decision boundary (bce, hinge, lsgan), and "
            "train.loss 'wgan-gp' has none: use train.diffaugment with it",
        )


def _check_upsample(config: Config) -> None:
    if config.model.arch == "tutorial" and config.model.upsample != "transpose":
        raise _KeyError(
            "model.upsample", "applies to model.arch 'dcgan' (the tutorial's G is fixed)"
        )


def _check_classes(config: Config) -> None:
    classes = config.data.classes
    if classes is not None and not config.model.conditional:
        raise _KeyError("data.classes", "applies only with model.conditional: true")
    if config.model.conditional and config.model.arch != "dcgan":
        raise _KeyError("model.conditional", "needs model.arch 'dcgan'")
    if classes is not None and len(set(classes)) != len(classes):
        twice = next(name for name in classes if classes.count(name) > 1)
        raise _KeyError("data.classes", f"names '{printable(twice)}' twice")


def intervals(config: Config) -> dict[str, int]:
    """Every "every N steps" of the config that is on, by its dotted key, and train.steps:
    the steps at which something happens between two calls into the training function."""
    found = {
        "output.log_every": config.output.log_every,
        "output.sample_every": config.output.sample_every,
        "output.checkpoint_every": config.output.checkpoint_every,
        "train.steps": config.train.steps,
    }
    if config.eval.every:
        found["eval.every"] = config.eval.every
    return found


def _check_steps_per_execution(config: Config) -> None:
    steps = config.train.steps_per_execution
    if steps == "auto":
        return
    for key, every in intervals(config).items():
        if every % steps:
            raise _KeyError(
                "train.steps_per_execution",
                f"{steps} does not divide {key} ({every}): side effects happen only between "
                "calls, so every interval must be a multiple of it (or use auto)",
            )


class _KeyError(ValueError):
    """A cross-field problem that belongs to one dotted key."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key
        self.message = message


def base_and_depth(shape: tuple[int, int], depth: int | None) -> tuple[tuple[int, int], int]:
    """The generator's starting (height, width) and its number of stride-2 blocks.

    DCGAN doubles the resolution in every block, so each side must be its base * 2**depth,
    the shorter side's base 3..7; without an explicit depth the deepest such network is
    chosen. A square size keeps the messages of one number.
    """
    name = image_size_text(shape if shape[0] != shape[1] else shape[0])
    square = shape[0] == shape[1]
    if depth is not None:
        (height, rest_h), (width, rest_w) = divmod(shape[0], 2**depth), divmod(shape[1], 2**depth)
        if rest_h == rest_w == 0 and MIN_BASE <= min(height, width) <= MAX_BASE:
            return (height, width), depth
        sides = "it" if square else "each side"
        raise _KeyError(
            "model.depth",
            f"{depth} stride-2 blocks cannot reach data.image_size {name}: {sides} must be "
            f"base * 2**{depth} with a {'' if square else 'shorter '}base of "
            f"{MIN_BASE}..{MAX_BASE}",
        )
    (height, width), depth = shape, 0
    while height % 2 == 0 and width % 2 == 0 and min(height, width) // 2 >= MIN_BASE:
        height, width, depth = height // 2, width // 2, depth + 1
    if depth == 0 or not MIN_BASE <= min(height, width) <= MAX_BASE:
        how = (
            f"base * 2**k with a base of {MIN_BASE}..{MAX_BASE} and k >= 1 "
            "(e.g. 28, 32, 48, 64, 96, 128, 256)"
            if square
            else f"each side base * 2**k with the same k >= 1 and the shorter side's base "
            f"{MIN_BASE}..{MAX_BASE} (e.g. [64, 128], [48, 64], [96, 128])"
        )
        raise _KeyError("data.image_size", f"{name} cannot be reached by doubling: use {how}")
    return (height, width), depth


class _YamlDumper(yaml.SafeDumper):
    """Lists on one line, as a person writes them: image_size: [64, 128]."""


_YamlDumper.add_representer(
    list, lambda dumper, items: dumper.represent_sequence("tag:yaml.org,2002:seq", items, True)
)


class _YamlLoader(yaml.SafeLoader):
    """yaml.SafeLoader that also reads 1e-4 as a number (YAML 1.1 wants 1.0e-4)."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


MAX_CONFIG_BYTES = MiB
MAX_YAML_DEPTH = 32  # a config is three levels deep; 5,000 would overflow PyYAML's stack
MAX_YAML_VALUES = 10_000  # a config has about 60; aliases inside aliases make billions


class YamlRefused(yaml.YAMLError):
    """YAML that is valid but not something a config may hold."""

    def __init__(self, problem: str, mark):
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


def parse_yaml(text: str):
    """YAML with the safe loader, bounded: nesting is measured from PyYAML's events, which
    come without recursion, before anything is composed; aliases are welcome, but not a
    document that expands to more than MAX_YAML_VALUES values (a "billion laughs" is nine
    lines that expand to 10**9 once anything walks them, a message that shows them included)."""
    depth = 0
    for event in yaml.parse(text, Loader=_YamlLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise YamlRefused(
                    f"nested more than {MAX_YAML_DEPTH} levels deep", event.start_mark
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    loader = _YamlLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_expanded_size(root: yaml.Node) -> None:
    """The number of values root stands for once its aliases are expanded, counted once per
    node (aliases share nodes), so a billion laughs is counted, not expanded."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            if sizes[id(node)] < 0:
                raise YamlRefused("an alias refers to the collection it is in", node.start_mark)
            return sizes[id(node)]
        sizes[id(node)] = -1  # in progress: meeting it again is a cycle
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(key) + size(value) for key, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(item) for item in node.value)
        else:
            total = 1
        sizes[id(node)] = min(total, MAX_YAML_VALUES + 1)
        return sizes[id(node)]

    if size(root) > MAX_YAML_VALUES:
        raise YamlRefused(
            f"expands to more than {MAX_YAML_VALUES:,} values (aliases inside aliases)",
            root.start_mark,
        )


ADA_KEYS = ("ada_target", "ada_interval", "ada_kimg")  # what train.augment 'ada' reads

FROZEN_ON_RESUME = (
    "model.",
    "data.image_size",
    "data.channels",
    "data.classes",
    "train.init_from",
    "train.freeze_d",
    "name",
)


def load(
    path: Path | None,
    overrides: tuple[str, ...] = (),
    *,
    frozen_keys: tuple[str, ...] = (),
    check_data: bool = True,
    preset: tuple[str, dict[str, Any]] | None = None,
) -> Config:
    """Read a YAML config (or the defaults when path is None) and apply dotted overrides.

    frozen_keys are prefixes that overrides may not touch (a resumed run's architecture);
    check_data=False skips checking that the data path exists (generating from a run);
    preset, (its origin, its keys), stands in for a file (`dcgan train --data PATH`).
    Every problem is raised as a ConfigError whose message names the file or flag and key.
    """
    if preset is not None:
        origin, raw = preset[0], copy.deepcopy(preset[1])
    else:
        origin = str(path) if path is not None else "defaults"
        raw = _read_yaml(path) if path is not None else {}
    overridden: set[str] = set()
    for item in overrides:
        key, value = _parse_override(item)
        if any(key == f or (f.endswith(".") and key.startswith(f)) for f in frozen_keys):
            raise ConfigError(f"--set {key}: cannot be changed when resuming a run")
        _set_dotted(raw, key, value)
        overridden.add(key)
    if preset is not None:
        _preset_augmentation_gives_way(raw, preset[1], overridden)
    try:
        config = Config.model_validate(raw, context={"check_data": check_data})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, raw, origin, overridden)) from None
    return _with_absolute_paths(config)


def _preset_augmentation_gives_way(raw: dict, preset: dict, overridden: set[str]) -> None:
    """The augmentation a user --sets replaces the one the preset picked (they cannot be
    combined): DiffAugment replaces the preset's ADA, ADA the preset's DiffAugment; the
    preset's ADA settings go with its ADA."""
    picked, train = preset.get("train", {}), raw.get("train", {})

    def user_set(key: str) -> bool:
        return f"train.{key}" in overridden

    if user_set("diffaugment") and not user_set("augment") and "augment" in picked:
        train.pop("augment", None)
    if user_set("augment") and not user_set("diffaugment") and "diffaugment" in picked:
        train.pop("diffaugment", None)
    if train.get("augment") != "ada":
        for key in ADA_KEYS:
            if key in picked and not user_set(key):
                train.pop(key, None)


def inert_settings(config: Config) -> list[str]:
    """Settings given other than their default that the rest of the config leaves without
    effect, each as a line to tell the user (a typo'd or forgotten switch)."""
    train, model = config.train, config.model
    inert: list[tuple[str, str, str]] = []  # (section, key, why it does nothing)
    if train.augment != "ada":
        inert += [("train", key, f"train.augment is '{train.augment}'") for key in ADA_KEYS]
    if train.loss != "wgan-gp":
        inert.append(("train", "gp_weight", f"train.loss is '{train.loss}'"))
    if train.on_nan != "rollback":
        inert += [("train", key, f"train.on_nan is '{train.on_nan}'")
                  for key in ("rollback_lr_factor", "max_rollbacks")]  # fmt: skip
    if model.upsample != "resize":
        inert.append(("model", "resize_method", f"model.upsample is '{model.upsample}'"))
    lines = []
    for section, key, why in inert:
        part = getattr(config, section)
        value = getattr(part, key)
        if value != type(part).model_fields[key].default:
            lines.append(f"{section}.{key} {value} has no effect: {why}")
    return lines


def preset_changes(config: Config, preset: dict[str, Any]) -> list[str]:
    """The preset's choices that config does not keep (a --set, or the preset's augmentation
    giving way to the user's), each as a line to tell the user beside the preset's reasons."""
    picked = _with_absolute_paths(Config.model_validate(preset, context={"check_data": False}))
    lines = []
    for name, value in preset.items():
        keys = [(name, key) for key in value] if isinstance(value, dict) else [(None, name)]
        for section, key in keys:
            if section == "train" and key in ADA_KEYS and config.train.augment != "ada":
                continue  # they went with the preset's ADA
            was, now = (_value_at(c, section, key) for c in (picked, config))
            if was != now:
                dotted = f"{section}.{key}" if section else key
                lines.append(f"{dotted} {_shown(now)}, not the preset's {_shown(was)}")
    return lines


def _value_at(config: Config, section: str | None, key: str) -> Any:
    return getattr(getattr(config, section) if section else config, key)


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return f"[{', '.join(map(str, value))}]"
    return str(value)


def _with_absolute_paths(config: Config) -> Config:
    """The run's config.yaml must still point at the data when resumed from elsewhere."""
    data_path = config.data.path.absolute() if config.data.path is not None else None
    init_from = config.train.init_from
    return config.model_copy(
        update={
            "data": config.data.model_copy(update={"path": data_path}),
            "train": config.train.model_copy(
                update={"init_from": init_from.absolute() if init_from is not None else None}
            ),
            "output": config.output.model_copy(update={"dir": config.output.dir.resolve()}),
        }
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    if path.is_dir() or not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = parse_yaml(read_text(path, MAX_CONFIG_BYTES, "config file"))
    except YamlRefused as exc:
        mark = exc.problem_mark
        raise ConfigError(
            f"{path}: line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = shorten(getattr(exc, "problem", None) or "not valid YAML")
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    except UnsafeFile as exc:
        raise ConfigError(str(exc)) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a mapping of keys, got {type(raw).__name__}")
    return raw


def _parse_override(item: str) -> tuple[str, Any]:
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or len(key) > 100 or not re.fullmatch(r"[a-z_]+(\.[a-z_0-9]+)*", key):
        raise ConfigError(
            f"--set {shorten(repr(item))}: expected key.sub=value, e.g. train.steps=200"
        )
    _check_known(key, f"--set {key}")
    try:
        value = parse_yaml(text) if text.strip() else None
    except YamlRefused as exc:
        raise ConfigError(f"--set {key}: {exc.problem}") from None
    except yaml.YAMLError:
        value = text
    return key, value


def _check_known(dotted: str, where: str) -> None:
    model: type[BaseModel] = Config
    parts = dotted.split(".")
    for depth, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            prefix = ".".join(parts[:depth])
            raise ConfigError(
                f"{where}: unknown key {shorten(repr(_qualified(prefix, part)))}"
                f"{_hint(part, fields)}"
            )
        annotation = fields[part].annotation
        is_section = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if depth < len(parts) - 1 and not is_section:
            raise ConfigError(f"{where}: {'.'.join(parts[: depth + 1])!r} has no sub-keys")
        if depth == len(parts) - 1 and is_section:
            raise ConfigError(f"{where}: {dotted!r} is a section; set one of its keys")
        if is_section:
            model = annotation


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[leaf] = value


def _describe(exc: ValidationError, raw: dict[str, Any], origin: str, overridden: set[str]) -> str:
    error = exc.errors()[0]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, _KeyError):
        key, message = cause.key, cause.message
    else:
        key = ".".join(str(part) for part in error["loc"])
        message = _message(error, raw)
    where = f"--set {key}" if key in overridden else f"{origin}: {shorten(key)}"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
    return f"{where}: {message}{suffix}"


def _message(error: dict[str, Any], raw: dict[str, Any]) -> str:
    loc = error["loc"]
    if error["type"] == "extra_forbidden":
        section: type[BaseModel] = Config
        for part in loc[:-1]:
            section = section.model_fields[str(part)].annotation  # type: ignore[assignment]
        return f"unknown key{_hint(str(loc[-1]), section.model_fields)}"
    value = error.get("input")
    shown = f" (got {shorten(repr(value), 60)})" if not isinstance(value, dict) else ""
    if error["type"] == "model_type":
        return f"must be a mapping of keys{shown}"
    return f"{error['msg'][0].lower()}{error['msg'][1:]}{shown}"


def _hint(word: str, choices: Any) -> str:
    if len(word) > 64:  # no key is that long, and matching a huge one takes a while
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _qualified(prefix: str, part: str) -> str:
    return f"{prefix}.{part}" if prefix else part
