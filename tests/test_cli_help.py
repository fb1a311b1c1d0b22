"""A CLI that guides: commands grouped by task with whole summaries, every option
explained, an example in every command, one default per option name, and hints that
print a command that works from where the user is."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from PIL import Image

from dcgan.cli import SECTIONS, main
from dcgan.cli import common as cli_common


def test_help_groups_every_command_by_task_with_whole_summaries(runner):
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    listed = [name for _, names in SECTIONS for name in names]
    assert sorted(listed) == sorted(main.commands)
    for title, names in SECTIONS:
        block = result.output.split(f"\n{title}:\n", 1)[1].split("\n\n", 1)[0]
        assert [line.split()[0] for line in block.splitlines()] == list(names), title
        for name in names:
            summary = main.commands[name].get_short_help_str(limit=1000)
            assert summary.endswith(".") and "..." not in summary, name
            assert " ".join(summary.split()) in " ".join(block.split()), name


def test_every_option_of_every_command_says_what_it_does():
    for name, command in main.commands.items():
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert param.help, f"dcgan {name} {param.opts[0]} has no help text"


def test_every_command_shows_an_example(runner):
    for name in main.commands:
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0
        assert "Example" in result.output and f"dcgan {name} " in result.output, name


def test_an_option_has_one_default_across_commands():
    defaults: dict[str, dict[str, object]] = {}
    for name, command in main.commands.items():
        for param in command.params:
            # -n counts different things per command: samples, scored images, grid rows.
            if isinstance(param, click.Option) and param.name != "count":
                defaults.setdefault(param.name, {})[name] = param.default
    differing = {
        option: by_command
        for option, by_command in defaults.items()
        if len({repr(value) for value in by_command.values()}) > 1
    }
    assert differing == {}


@pytest.mark.parametrize(
    "on_path, expected", [(True, "dcgan"), (False, str(Path(".venv") / "bin" / "dcgan"))]
)
def test_hints_name_a_command_that_works_from_here(monkeypatch, tmp_path, on_path, expected):
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "dcgan").write_text("#!/bin/sh\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli_common.sys, "executable", str(venv / "python"))
    found = "/usr/local/bin/dcgan" if on_path else None
    monkeypatch.setattr(cli_common.shutil, "which", lambda name: found)
    assert cli_common.command_name() == expected


def test_a_finished_run_ends_with_a_hint_that_runs_as_printed(runner, four_step_run, monkeypatch):
    monkeypatch.setattr(cli_common.shutil, "which", lambda name: None)
    result = runner.invoke(main, ["train", "--resume", str(four_step_run)])
    assert result.exit_code == 0, result.output
    script = cli_common.shown(Path(cli_common.sys.executable).parent / "dcgan")
    assert f"train further with: {script} train --resume " in result.output
    assert "with: dcgan train" not in result.output


def test_gif_of_a_run_replaces_its_own_progress_gif_but_not_another_file(
    runner, four_step_run, tmp_path
):
    result = runner.invoke(main, ["gif", str(four_step_run)])
    assert result.exit_code == 0, result.output
    with Image.open(four_step_run / "progress.gif") as gif:
        assert gif.n_frames == len(list((four_step_run / "samples").glob("step-*.png")))
    mine = tmp_path / "mine.gif"
    shutil.copy(four_step_run / "progress.gif", mine)
    result = runner.invoke(main, ["gif", str(four_step_run), "--out", str(mine)])
    assert result.exit_code == 2
    assert "mine.gif already exists: use --force" in result.output


@pytest.mark.parametrize("command", ["sample", "interpolate", "export", "evaluate", "nearest"])
def test_a_missing_ckpt_is_answered_before_tensorflow_is_imported(tmp_path, command):
    code = (
        "import sys\n"
        "from dcgan.cli import main\n"
        f"try:\n    main([{command!r}, '--ckpt', {str(tmp_path / 'gone')!r}])\n"
        "except SystemExit as exit:\n"
        "    print(exit.code, 'tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stderr.strip() == f"Error: --ckpt {tmp_path / 'gone'}: no such file or directory"
    assert out.stdout.strip() == "2 False"
