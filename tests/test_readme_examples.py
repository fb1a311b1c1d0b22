"""Every `dcgan ...` command README.md shows, run as written against tiny runs, so that an
example that no longer works turns this test red.

Which lines are commands (read from README.md at test time, never from a list here):

- Code blocks are ``` fences and blocks indented 4 spaces or more after a blank line (in
  a list item too). In them, a line is a command when its first word is `dcgan` (or a path
  ending in /dcgan), after an optional `$ ` prompt and optional `NAME=value` assignments
  (`CUDA_VISIBLE_DEVICES=0 dcgan ...`). A trailing backslash or an open quote continues it
  on the next line; `# comments` are dropped (shell rules, via shlex).
- `export NAME=value` lines (and bare assignments) set NAME for the block's later commands.
- After a `$ ` command, an `Error: ...` line is that command's expected error: it must exit
  non-zero and print exactly that line (the workspace's path prefix removed). Every other
  command must exit 0 and print no traceback.
- Nothing is skipped silently. A command the harness cannot run is a failure that names
  its README line: shell syntax (pipes, `&&`, `;`, redirection, `$VARS`, backticks, `~user`);
  an unclosed quote; a code line that mentions `dcgan <subcommand>` (other than inside
  backticks) without starting with it, as in `python -m dcgan train` or `cd x && dcgan
  runs`; a `runs/NNNNN-name` with no configs/name.yaml to make it from.

The workspace (the working directory of every command, so relative paths work as in the
README): `configs/` copied from the repo; tiny data wherever the configs look for it (16
random 32x32 pictures in each folder a config names, five tiny CIFAR-10 batches, an
mnist.npz and an STL-10 train_X.bin, the last three in the test's private Keras cache);
the files in EXAMPLE_FILES (a config an error example names); and, before the first
command, every `runs/NNNNN-name` the commands name, each trained from configs/name.yaml
under the train rule below and renamed to that number.

Rules that keep it tiny (the only changes made to a command):

- `dcgan train` without `--resume` (`--config`, `--data` or neither): TINY_TRAIN appended as
  `--set` overrides (16x16 images, width 8, batch 8, 4 steps, every interval 2, evaluation
  on 16 images in the random network). The README's own `--set`s come first, so these win.
- `dcgan train --resume`: a `--set train.steps=N` becomes `train.steps=RESUME_STEPS` (8,
  so a 4-step run trains 4 more steps).
- `-n N` above MAX_COUNT (64) becomes 64, and `dcgan evaluate` without `-n` gets `-n 64`
  (its default is 10,000).
- A command whose environment has TF_CONFIG (the several-hosts example) gets `--dry-run`:
  it would wait for hosts that do not exist. Nothing downloads (conftest sets
  DCGAN_OFFLINE=1), so every data set comes from the tiny files above.
- An unquoted `~` or `~/...` starting a word is the shell's $HOME: the harness expands it
  to the workspace's `home/` (a quoted one stays as written, as in a shell).
- `dcgan train --data FOLDER`: a FOLDER that is not there is made with 16 tiny pictures
  (the train rule above applies too).
- `dcgan export --format web` without `--runtime`: `--runtime` the onnxruntime-web archive
  scripts/test.sh fetched (conftest.WEB_RUNTIME), so nothing downloads.
- `dcgan view FOLDER`: `--port 0` appended; the server answers one request, the harness's
  own for the page, and stops (it would serve until Ctrl-C).
- An example with an `Error:` line runs exactly as written.

Commands run in README order through CliRunner in this process, with their environment
variables set; every failure is collected and all are reported together, after a table of
what ran (shown with the failure, or with `-rP`). Most of the time goes to training the
runs and to `dcgan evaluate`, whose FID takes a matrix square root of the random network's
1024x1024 covariances (scipy's sqrtm: 3 to 30 s here, by the load) whatever `-n` is.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import shlex
import shutil
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from conftest import WEB_RUNTIME, random_pixels, save_image

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

TINY_TRAIN = (
    "data.image_size=16",
    "data.max_images=32",
    "model.latent_dim=8",
    "model.g_width=8",
    "model.d_width=8",
    "model.max_width=16",
    "train.batch_size=8",
    "train.steps=4",
    "output.sample_every=2",
    "output.checkpoint_every=2",
    "output.log_every=2",
    "output.num_samples=4",
    "eval.every=2",
    "eval.num_samples=16",
    "eval.features=random",
)
RESUME_STEPS = 8
MAX_COUNT = 64

# Files the README's examples name that no rule above makes.
EXAMPLE_FILES = {
    # `$ dcgan train --config exp.yaml` shows the error for a misspelt key.
    "exp.yaml": "data:\n  image_sise: 32\n",
}

SHELL_SYNTAX = re.compile(r"^(\||\|\||&&|;|&|[0-9]*>>?|<|[0-9]*>&[0-9]*)$|[$`]")
RUN_NAME = re.compile(r"(?:^|/)runs/(\d{5})-([A-Za-z0-9_.-]+)")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass
class Example:
    """One README command: where it is, what it says and what it should do."""

    line: int  # README line of its first line
    text: str  # as written, continuation lines joined
    args: list[str]  # after `dcgan`
    env: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # the `Error: ...` line shown after it
    home: tuple[int, ...] = ()  # args that start with an unquoted `~/`: the shell's $HOME

    def __str__(self) -> str:
        return f"README.md:{self.line}: {self.text}"


# ---------------------------------------------------------------------------- parsing


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def code_blocks(text: str) -> list[list[tuple[int, str]]]:
    """Each code block as (README line number, line) pairs, its common indent removed."""
    lines = text.splitlines()
    blocks: list[list[tuple[int, str]]] = []
    i = 0
    while i < len(lines):
        fence = re.match(r"^( *)(```+|~~~+)", lines[i])
        if fence:
            indent, marker = len(fence.group(1)), fence.group(2)
            block = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(marker):
                block.append((i + 1, lines[i][min(indent, _indent(lines[i])) :]))
                i += 1
            blocks.append(block)
            i += 1
            continue
        if _indent(lines[i]) >= 4 and lines[i].strip() and (i == 0 or not lines[i - 1].strip()):
            indent = _indent(lines[i])
            block = []
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) >= indent):
                block.append((i + 1, lines[i][indent:]))
                i += 1
            blocks.append(block)
            continue
        i += 1
    return blocks


def _first_word(body: str) -> str:
    return body.split(maxsplit=1)[0] if body.split() else ""


def _is_dcgan(word: str) -> bool:
    return word.rsplit("/", 1)[-1] == "dcgan"


def _starts_command(body: str) -> bool:
    """A line the harness reads as shell: dcgan, an assignment or an export."""
    word = _first_word(body)
    return _is_dcgan(word) or word == "export" or bool(ASSIGNMENT.match(word))


def _mentions_command(line: str, subcommands: tuple[str, ...]) -> bool:
    """`dcgan <subcommand>` anywhere but quoted in backticks: a command the harness
    must not miss."""
    names = "|".join(subcommands)
    return bool(re.search(rf"(?<![\w`/.-])dcgan\s+({names})\b", line))


def _unquoted_tilde(text: str) -> list[bool]:
    """For each shell word of text, whether it starts with a `~` outside quotes (which
    the shell expands; a quoted one it passes on as it is)."""
    flags: list[bool] = []
    quote, in_word, i = None, False, 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == quote:
                quote = None
            elif char == "\\" and quote == '"':
                i += 1
        elif char.isspace():
            in_word = False
        else:
            if not in_word:
                if char == "#":
                    break
                flags.append(char == "~")
                in_word = True
            if char in "'\"":
                quote = char
            elif char == "\\":
                i += 1
        i += 1
    return flags


def parse_readme(text: str, subcommands: tuple[str, ...]) -> tuple[list[Example], list[str]]:
    """The README's dcgan commands, and a problem line for each one that cannot be run."""
    examples: list[Example] = []
    problems: list[str] = []
    for block in code_blocks(text):
        env: dict[str, str] = {}
        last_prompted: Example | None = None
        i = 0
        while i < len(block):
            lineno, line = block[i]
            stripped = line.strip()
            i += 1
            prompt = stripped.startswith("$ ")
            body = stripped[2:].strip() if prompt else stripped
            if not prompt and last_prompted is not None and stripped.startswith("Error:"):
                last_prompted.error = stripped
                last_prompted = None
                continue
            if prompt or not stripped:
                last_prompted = None
            if not body or body.startswith("#"):
                continue
            if not _starts_command(body):
                if _mentions_command(body, subcommands):
                    problems.append(f"README.md:{lineno}: {body}: dcgan is not the command")
                continue
            # Join continuation lines: a trailing backslash or an open quote.
            first_body, resume_at = body, i
            while True:
                try:
                    tokens = shlex.split(body.removesuffix("\\"), comments=True)
                except ValueError:
                    tokens = None
                if (tokens is None or body.endswith("\\")) and i < len(block):
                    continued = block[i][1]
                    if body.endswith("\\"):
                        body = body.removesuffix("\\") + " " + continued.strip()
                    else:  # inside quotes the line break and indent are the value's
                        body = body + "\n" + continued
                    i += 1
                    continue
                break
            shown = " ".join(body.split())
            if tokens is None:  # open to the block's end: report it, read on after it
                problems.append(f"README.md:{lineno}: {first_body}: an unclosed quote")
                i = resume_at
                continue
            written = shown.split(" #")[0]  # the comment dropped
            tilde = _unquoted_tilde(body.removesuffix("\\"))
            if len(tilde) != len(tokens):
                tilde = [token.startswith("~") for token in tokens]
            leading: dict[str, str] = {}
            while tokens and ASSIGNMENT.match(tokens[0]):
                name, _, value = tokens.pop(0).partition("=")
                leading[name] = value
                tilde.pop(0)
            if tokens and tokens[0] == "export":
                for token in tokens[1:]:
                    name, eq, value = token.partition("=")
                    if eq:
                        env[name] = value
                continue
            if not tokens:
                env.update(leading)
                continue
            if not _is_dcgan(tokens[0]):
                if _mentions_command(body, subcommands):
                    problems.append(f"README.md:{lineno}: {shown}: dcgan is not the command")
                continue
            syntax = [t for t in tokens[1:] if SHELL_SYNTAX.search(t)]
            home = tuple(n - 1 for n in range(1, len(tokens)) if tilde[n])
            # ~user is another user's home: not one the harness has.
            syntax += [tokens[n + 1] for n in home if not re.match(r"~(/|$)", tokens[n + 1])]
            example = Example(lineno, written, tokens[1:], {**env, **leading}, home=home)
            if syntax:
                problems.append(f"{example}: shell syntax the harness does not run: {syntax}")
                continue
            examples.append(example)
            last_prompted = example if prompt else None
    return examples, problems


# ---------------------------------------------------------------------------- rules


def _option_index(args: list[str], *names: str) -> int | None:
    for index, arg in enumerate(args):
        if arg in names:
            return index
    return None


def tiny_args(example: Example, home: Path | None = None) -> list[str]:
    """The command as the harness runs it: see the module docstring's rules."""
    args = list(example.args)
    if home is not None:
        for index in example.home:
            args[index] = str(home) + args[index][1:]
    if example.error is not None or not args:
        return args
    command = args[0]
    if command == "train":
        if "--resume" in args:
            args = [
                f"train.steps={RESUME_STEPS}" if a.startswith("train.steps=") else a for a in args
            ]
        elif "--help" not in args and "-h" not in args:
            args += [item for override in TINY_TRAIN for item in ("--set", override)]
        if "TF_CONFIG" in example.env and "--dry-run" not in args:
            args.append("--dry-run")
    count = _option_index(args, "-n")
    if count is not None and count + 1 < len(args):
        try:
            if int(args[count + 1]) > MAX_COUNT:
                args[count + 1] = str(MAX_COUNT)
        except ValueError:
            pass  # not a number: the command refuses it as a user would see
    elif command == "evaluate":
        args += ["-n", str(MAX_COUNT)]
    if command == "export" and "web" in args and "--runtime" not in args:
        args += ["--runtime", str(WEB_RUNTIME)]
    if command == "view" and "--port" not in args:
        args += ["--port", "0"]
    return args


@contextlib.contextmanager
def one_request_server():
    """`dcgan view` serves until Ctrl-C: here its server answers one request for its page,
    made by the harness, and returns; the page must be the exported one."""
    import http.server
    import urllib.request

    fetched = []

    def serve_once(server, *args, **kwargs):
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        client = threading.Thread(
            target=lambda: fetched.append(urllib.request.urlopen(url, timeout=30).read())
        )
        client.start()
        server.handle_request()
        client.join(timeout=30)
        if not fetched or b'<script src="app.js">' not in fetched[0]:
            raise AssertionError("dcgan view did not serve the exported page")

    original = http.server.ThreadingHTTPServer.serve_forever
    http.server.ThreadingHTTPServer.serve_forever = serve_once
    try:
        yield
    finally:
        http.server.ThreadingHTTPServer.serve_forever = original


# ---------------------------------------------------------------------------- workspace


def _config_sources(configs: Path) -> dict[str, dict]:
    return {
        path.stem: yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for path in sorted(configs.glob("*.yaml"))
    }


def _cifar_batch(seed: int) -> bytes:
    rows = random_pixels((4, 3 * 32 * 32), seed)
    return pickle.dumps({b"data": rows, b"labels": [0, 1, 2, 3]})


def make_data(workspace: Path, keras_home: Path) -> None:
    """Tiny data wherever the configs look for it."""
    datasets = keras_home / "datasets"
    for config in _config_sources(workspace / "configs").values():
        data = config.get("data") or {}
        source, path = data.get("source", "digits"), data.get("path")
        if source == "folder":
            make_pictures(workspace / path)
        elif source == "cifar10":
            folder = datasets / "cifar-10-batches-py"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(1, 6):
                (folder / f"data_batch_{i}").write_bytes(_cifar_batch(i))
        elif source == "mnist":
            datasets.mkdir(parents=True, exist_ok=True)
            np.savez(datasets / "mnist.npz", x_train=random_pixels((16, 28, 28)))
        elif source == "stl10":
            folder = workspace / path / "stl10_binary"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "train_X.bin").write_bytes(random_pixels((16, 3, 96, 96)).tobytes())


def make_runs(runner: CliRunner, main, examples: list[Example], workspace: Path) -> list[str]:
    """Every runs/NNNNN-name the commands name, trained from configs/name.yaml; a problem
    line for each the harness cannot make."""
    wanted: dict[str, tuple[int, Example]] = {}
    for example in examples:
        for arg in example.args:
            for number, name in RUN_NAME.findall(arg):
                wanted.setdefault(f"{number}-{name}", (int(number), example))
    problems = []
    runs = workspace / "runs"
    for folder, (number, example) in sorted(wanted.items(), key=lambda item: item[1][0]):
        name = folder.split("-", 1)[1]
        if (runs / folder).exists():
            continue
        config = Path("configs") / f"{name}.yaml"
        if not (workspace / config).is_file():
            problems.append(f"{example}: names {folder}, and there is no {config} to make it")
            continue
        before = set(runs.iterdir()) if runs.is_dir() else set()
        args = tiny_args(Example(0, "", ["train", "--config", str(config)]))
        result = runner.invoke(main, args, prog_name="dcgan")
        made = sorted(set(runs.iterdir()) - before) if runs.is_dir() else []
        if result.exit_code != 0 or len(made) != 1:
            problems.append(f"{example}: could not make runs/{folder}:\n{result.output}")
            continue
        if int(made[0].name.split("-")[0]) > number:
            problems.append(f"{example}: runs/{folder} would be made as {made[0].name}")
            continue
        made[0].rename(runs / folder)
    return problems


def make_pictures(folder: Path, count: int = 16) -> None:
    for i in range(count):
        save_image(folder / f"{folder.name}-{i:02d}.png", random_pixels((32, 32, 3), i))


def make_inputs(args: list[str]) -> None:
    """The folder `dcgan train --data FOLDER` names, when it is not there: tiny pictures."""
    data = _option_index(args, "--data")
    if args[:1] == ["train"] and data is not None and data + 1 < len(args):
        folder = Path(args[data + 1])
        if not folder.exists():
            make_pictures(folder)


def make_workspace(workspace: Path) -> None:
    shutil.copytree(REPO / "configs", workspace / "configs")
    make_data(workspace, Path(os.environ["KERAS_HOME"]))
    for name, content in EXAMPLE_FILES.items():
        (workspace / name).write_text(content, encoding="utf-8")


# ---------------------------------------------------------------------------- running


def check(example: Example, result, workspace: Path) -> str | None:
    """Why the command's outcome is not what the README shows, or None."""
    output = result.output
    for prefix in {str(workspace.resolve()), str(workspace)}:
        output = output.replace(prefix + os.sep, "")
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    if crashed:
        output += "".join(traceback.format_exception(result.exception))
    if example.error is not None:
        if result.exit_code == 0:
            return f"exit 0, expected the README's {example.error!r}"
        if crashed or example.error not in output.splitlines():
            return f"exit {result.exit_code}, not the README's {example.error!r}:\n{output}"
        return None
    if result.exit_code != 0 or crashed or "Traceback" in output:
        return f"exit {result.exit_code}:\n{output}"
    return None


def run_examples(text: str, workspace: Path) -> tuple[list[str], list[str]]:
    """Run every command of a README text in workspace (the working directory): each
    command's line (how it ran) and each failure's description."""
    from dcgan.cli import main

    subcommands = tuple(main.commands)
    examples, problems = parse_readme(text, subcommands)
    runner = CliRunner()
    began = time.perf_counter()
    problems += make_runs(runner, main, examples, workspace)
    ran = [f"made the runs the commands name in {time.perf_counter() - began:.1f} s"]
    for example in examples:
        args = tiny_args(example, workspace / "home")
        make_inputs(args)
        env = dict(example.env)
        began = time.perf_counter()
        serving = one_request_server() if args[:1] == ["view"] else contextlib.nullcontext()
        with serving:
            result = runner.invoke(main, args, env=env, prog_name="dcgan")
        seconds = time.perf_counter() - began
        why = check(example, result, workspace)
        ran.append(
            f"{'FAIL' if why else 'ok  '} {seconds:4.1f} s {example}\n"
            f"     ran: dcgan {shlex.join(args)}"
        )
        if why:
            problems.append(f"{example}\n  ran: dcgan {shlex.join(args)}\n  {why.strip()}")
    return ran, problems


# ---------------------------------------------------------------------------- tests


def _subcommands() -> tuple[str, ...]:
    from dcgan.cli import main

    return tuple(main.commands)


def test_readme_commands_are_all_runnable():
    examples, problems = parse_readme(README.read_text(encoding="utf-8"), _subcommands())
    assert not problems, "\n".join(problems)
    assert examples, "README.md shows no dcgan command"


@pytest.mark.slow
def test_readme_examples_run_as_written(tmp_path, monkeypatch):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    monkeypatch.chdir(workspace)
    make_workspace(workspace)
    ran, problems = run_examples(README.read_text(encoding="utf-8"), workspace)
    print("\n".join(ran))
    assert not problems, f"{len(problems)} README example(s) fail:\n\n" + "\n\n".join(problems)


PARSER_README = """\
# title

Prose naming `dcgan train --config x.yaml` in backticks is not a command.

    dcgan runs                         # a comment
    $ dcgan train --config exp.yaml
    Error: exp.yaml: data.image_sise: unknown key (did you mean 'image_size'?)

- a list item:

      CUDA_VISIBLE_DEVICES=0 dcgan train --config configs/a.yaml \\
          --set train.steps=9   # one
      dcgan: step 6000: a log line, not a command

    dcgan train --data ~/pics --set name='~/x'

```bash
export TF_CONFIG='{"cluster": {"worker": ["a:1", "b:1"]},
                   "task": {"type": "worker", "index": 0}}'   # index 1 on b
dcgan train --config configs/a.yaml
scripts/test.sh -k config
```
"""


def test_parser_reads_every_form():
    examples, problems = parse_readme(PARSER_README, ("runs", "train"))
    assert problems == []
    assert [(e.line, e.args, e.error) for e in examples] == [
        (5, ["runs"], None),
        (
            6,
            ["train", "--config", "exp.yaml"],
            "Error: exp.yaml: data.image_sise: unknown key (did you mean 'image_size'?)",
        ),
        (11, ["train", "--config", "configs/a.yaml", "--set", "train.steps=9"], None),
        (15, ["train", "--data", "~/pics", "--set", "name=~/x"], None),
        (20, ["train", "--config", "configs/a.yaml"], None),
    ]
    assert examples[2].env == {"CUDA_VISIBLE_DEVICES": "0"}
    assert examples[2].text == (
        "CUDA_VISIBLE_DEVICES=0 dcgan train --config configs/a.yaml --set train.steps=9"
    )
    expanded = ["train", "--data", "/h/pics", "--set", "name=~/x"]  # a quoted ~ stays
    assert tiny_args(examples[3], Path("/h"))[:5] == expanded
    assert examples[4].env["TF_CONFIG"].startswith('{"cluster"')
    assert "--dry-run" in tiny_args(examples[4])


UNRUNNABLE_README = """\
    dcgan train --config "configs/a.yaml
    cd runs && dcgan runs
    python -m dcgan train --config configs/a.yaml
    dcgan sample --ckpt $RUN -n 4
    dcgan runs > table.txt
    dcgan train --data ~bob/pictures
"""


def test_lines_the_harness_cannot_run_are_failures_naming_them():
    examples, problems = parse_readme(UNRUNNABLE_README, ("runs", "sample", "train"))
    assert examples == []
    assert [p.split(":")[1] for p in problems] == ["1", "2", "3", "4", "5", "6"]


BROKEN_README = """\
    dcgan runs --no-such-option
    $ dcgan train --config exp.yaml
    Error: exp.yaml: some other message
    dcgan sample --ckpt runs/00007-nosuchconfig
"""


def test_a_broken_example_turns_red(tmp_path, monkeypatch):
    """The harness itself fails on a bad option, a wrong error message and a run it
    cannot make, each named by its line (no training: each fails before TensorFlow)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    for name, content in EXAMPLE_FILES.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    ran, problems = run_examples(BROKEN_README, tmp_path)
    assert [r.split()[0] for r in ran[1:]] == ["FAIL"] * 3
    assert [p.split("\n")[0].split(":")[1] for p in problems] == ["4", "1", "2", "4"]
    assert "exit 2:" in problems[1] and "No such option '--no-such-option'" in problems[1]
    assert "not the README's 'Error: exp.yaml: some other message'" in problems[2]
