"""The command line builds only the sub-command it runs (start-up), and still lists every one for help."""

from __future__ import annotations

import subprocess
import sys

from streamyolox.cli import build_parser


def test_a_named_sub_command_imports_only_its_module() -> None:
    code = ("import sys; from streamyolox.cli import build_parser; build_parser(['run', 'x.yaml']); "
            "print(sorted(m for m in sys.modules if m.startswith('streamyolox.cli.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "['streamyolox.cli.run']"


def test_help_and_unknown_commands_get_every_sub_command(capsys) -> None:  # type: ignore[no-untyped-def]
    parser = build_parser(["--help"])
    choices = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"run", "validate", "stages", "streams", "bench", "train", "weights"} <= set(choices)
    assert set(build_parser(["rnu"])._subparsers._group_actions[0].choices) == set(choices)  # type: ignore[union-attr]
    # a single sub-command parses as before
    args = build_parser(["run"]).parse_args(["run", "p.yaml", "--set", "a=1"])
    assert args.file == "p.yaml" and args.sets == ["a=1"]
