"""``planmon config``: show the settings in force and check they are valid."""

from __future__ import annotations

import argparse
import json

from planmon.config import describe_settings, load_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    epilog = "settings (environment variable, default):\n" + "\n".join(
        f"  {name:<44} {default or '(unset)':<16} {help_text}"
        for name, default, help_text in describe_settings()
    )
    parser = subparsers.add_parser(
        "config",
        help="show and validate planmon's settings",
        description="Validate the PLANMON_* settings and print the values in force.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_commands = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = config_commands.add_parser(
        "show",
        help="print the validated settings",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    settings = load_settings()
    values = settings.model_dump(mode="json")
    if args.json:
        print(json.dumps(values, indent=2, sort_keys=True))
    else:
        for name, value in values.items():
            print(f"{name} = {value}")
    return 0
