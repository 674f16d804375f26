"""The ``wav2small`` command: one subcommand per module of this package.

Each module here defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args)``; the
subcommand is the module name with ``_`` written as ``-``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wav2small",
        description="Distil speech-emotion teachers (arousal, dominance, valence) into tiny students, "
        "evaluate them with CCC and export them to int8 ONNX.",
        epilog="The method, stage by stage: prepare -> label -> train -> evaluate -> export "
        "(recipes/distill.sh runs them in order). `wav2small COMMAND --help` explains each command.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        sub = commands.add_parser(
            info.name.replace("_", "-"),
            help=module.HELP,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError) as error:  # bad input: say what and where, no traceback
        print(f"wav2small {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
